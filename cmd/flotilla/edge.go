package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/api"
	"github.com/flotilla-sched/flotilla/discovery"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/mesosdns"
)

// edgeConfig is `flotilla edge`: DNS and/or the gateway on a host that is
// not a replica (a public agent, where marathon-lb would run), following
// the leader's view through any replica's API.
type edgeConfig struct {
	APIs []string // replica API URLs, tried in turn
	// ZK (zk://host:port/flotilla, the replicas' --zk): find the replicas
	// from the leader election instead of APIs.
	ZK               string
	ZKSessionTimeout time.Duration
	Auth             api.Auth // credentials for the replicas' API
	HTTPAddr         string   // /ping and /metrics; "" = none
	DNSAddr          string
	DNSDomain        string
	DNSUpstreams     []string
	FrameworkName    string
	GatewayAddr      string
	InternalGWAddr   string
	GatewayTLSCert   string
	GatewayTLSKey    string
	Groups           []string // marathon-lb's --group: only these apps' routes
	// GatewayServices holds --gateway-service-ports and
	// --gateway-bind-retry; only those fields are read.
	GatewayServices gateway.Config
}

type edge struct {
	cfg      edgeConfig
	log      *logrus.Logger
	registry *prometheus.Registry
	dns      *mesosdns.Server
	gateway  *gateway.Gateway
	follower *discovery.Follower
	feed     *discovery.Feed
	zk       *zkReplicas  // with --zk
	ln       net.Listener // HTTPAddr's
}

func newEdge(cfg edgeConfig, log *logrus.Logger) (*edge, error) {
	if len(cfg.APIs) == 0 && cfg.ZK == "" {
		return nil, errors.New("--api or --zk is required: replica API URLs, comma-separated, or the replicas' ZooKeeper (zk://host:port/flotilla)")
	}
	if len(cfg.APIs) > 0 && cfg.ZK != "" {
		return nil, errors.New("--api and --zk: give one (--zk finds the replicas from their leader election)")
	}
	if cfg.DNSAddr == "" && cfg.GatewayAddr == "" && cfg.InternalGWAddr == "" {
		return nil, errors.New("nothing to serve: set --dns-addr, --gateway-addr and/or --internal-gateway-addr")
	}
	clk := clock.Real{}
	e := &edge{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	e.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	if cfg.DNSAddr != "" {
		e.dns, err = mesosdns.New(mesosdns.Config{Addr: cfg.DNSAddr, Domain: cfg.DNSDomain, Framework: cfg.FrameworkName,
			Upstreams: cfg.DNSUpstreams, Clock: clk, Log: logging.Component(log, "dns"), Version: version})
		if err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
		e.registry.MustRegister(e.dns.Collectors()...)
	}
	if cfg.GatewayAddr != "" || cfg.InternalGWAddr != "" {
		e.gateway, err = gateway.New(gateway.Config{ExternalAddr: cfg.GatewayAddr, InternalAddr: cfg.InternalGWAddr,
			TLSCertFile: cfg.GatewayTLSCert, TLSKeyFile: cfg.GatewayTLSKey, Clock: clk,
			Log: logging.Component(log, "gateway"), Registerer: e.registry,
			DisableServicePorts: cfg.GatewayServices.DisableServicePorts, BindRetry: cfg.GatewayServices.BindRetry,
			EventLoop: cfg.GatewayServices.EventLoop})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	// Any replica will do (a standby forwards to the leader); after a
	// failed poll the next one is tried. With --zk, the leader the
	// election names, read again after each failed poll.
	var mu sync.Mutex
	next := 0
	fcfg := discovery.FollowerConfig{
		Leader: func(context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return cfg.APIs[next%len(cfg.APIs)], nil
		},
		OnError: func(string, error) {
			mu.Lock()
			next++
			mu.Unlock()
		},
		Authorize: cfg.Auth.Authorize, Clock: clk, Log: logging.Component(log, "follower"),
	}
	if cfg.ZK != "" {
		timeout := cfg.ZKSessionTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		if e.zk, err = newZKReplicas(cfg.ZK, timeout, logging.Component(log, "zk")); err != nil {
			return nil, err
		}
		fcfg.Leader, fcfg.OnError = e.zk.Leader, nil
	}
	e.follower = discovery.NewFollower(fcfg)
	fc := discovery.Config{Remote: e.follower, Domain: cfg.DNSDomain, Framework: cfg.FrameworkName,
		Groups: cfg.Groups, Clock: clk, Log: logging.Component(log, "discovery")}
	if e.dns != nil {
		fc.DNS = e.dns
	}
	if e.gateway != nil {
		fc.Gateway = e.gateway
	}
	e.feed = discovery.New(fc)
	e.registry.MustRegister(e.feed.Collectors()...)
	if cfg.HTTPAddr != "" {
		if e.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("http listener: %w", err)
		}
	}
	return e, nil
}

func (e *edge) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if e.zk != nil {
		defer e.zk.Close()
	}
	if e.dns != nil {
		if err := e.dns.Start(); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		defer shutdown(e.log, "dns", e.dns.Shutdown)
	}
	if e.gateway != nil {
		if err := e.gateway.Start(); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		defer shutdown(e.log, "gateway", e.gateway.Shutdown)
	}
	go e.feed.Run(ctx)
	go e.follower.Run(ctx)
	if e.ln == nil {
		<-ctx.Done()
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if _, err := w.Write([]byte("pong\n")); err != nil {
			e.log.WithError(err).Debug("ping answer not sent")
		}
	})
	mux.Handle("/metrics", promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{}))
	if e.dns != nil {
		mux.Handle("/v1/", e.dns.HTTPHandler())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(e.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		e.log.WithError(serr).Warn("http listener did not shut down cleanly")
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func runEdge(args []string) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	var c edgeConfig
	apis := fs.String("api", os.Getenv("FLOTILLA_API"), "replica API URLs to follow, comma-separated (any replica: standbys forward to the leader)")
	fs.StringVar(&c.ZK, "zk", os.Getenv("FLOTILLA_ZK"), "instead of --api: the replicas' ZooKeeper (their --zk, e.g. zk://127.0.0.1:2181/flotilla); the leader is read from their election, again after each leader change")
	fs.DurationVar(&c.ZKSessionTimeout, "zk-session-timeout", 10*time.Second, "ZooKeeper session timeout with --zk")
	fs.StringVar(&c.Auth.Token, "token", os.Getenv("FLOTILLA_TOKEN"), "bearer token, if the API requires one (env FLOTILLA_TOKEN)")
	user := fs.String("user", os.Getenv("FLOTILLA_USER"), "user:password for HTTP basic auth (env FLOTILLA_USER)")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8090", "address serving /ping, /metrics and Mesos-DNS's /v1 API; empty: none")
	fs.StringVar(&c.DNSAddr, "dns-addr", "", "address of the DNS server (UDP and TCP); empty: no DNS")
	fs.StringVar(&c.DNSDomain, "dns-domain", "mesos", "DNS domain Flotilla is authoritative for")
	dnsUpstreamFlag(fs, &c.DNSUpstreams)
	fs.StringVar(&c.FrameworkName, "framework-name", "flotilla", "the replicas' Mesos framework name (DNS names carry it)")
	fs.StringVar(&c.GatewayAddr, "gateway-addr", "", "external gateway listener; empty: none")
	fs.StringVar(&c.InternalGWAddr, "internal-gateway-addr", "", "internal gateway listener; empty: none")
	fs.StringVar(&c.GatewayTLSCert, "gateway-tls-cert", "", "certificate file: serve the external gateway listener over TLS (with --gateway-tls-key)")
	fs.StringVar(&c.GatewayTLSKey, "gateway-tls-key", "", "key file of --gateway-tls-cert")
	gatewayServiceFlags(fs, &c.GatewayServices, &c.Groups)
	level := fs.String("log-level", "info", "log level: error, warn, info, debug, trace")
	format := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.APIs = splitComma(*apis)
	if *user != "" {
		u, p, ok := strings.Cut(*user, ":")
		if !ok {
			return errors.New("--user must be user:password")
		}
		c.Auth.Username, c.Auth.Password = u, p
	}
	log, err := logging.New(logging.Options{Level: *level, Format: *format})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := newEdge(c, log)
	if err != nil {
		return err
	}
	logging.Component(log, "flotilla").WithFields(logrus.Fields{"api": c.APIs, "zk": c.ZK, "dns": c.DNSAddr, "gateway": c.GatewayAddr,
		"internal_gateway": c.InternalGWAddr, "groups": c.Groups}).Info("edge serving")
	return e.run(ctx)
}

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
