package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/api"
	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework/mesosconn"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos"
)

// dnsUpstreamFlag registers --dns-upstream (serve, dev and edge).
func dnsUpstreamFlag(fs *flag.FlagSet, ups *[]string) {
	fs.Func("dns-upstream", "resolver for names outside the DNS domain, host:port; repeatable (default: /etc/resolv.conf)", func(v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("want host:port: %w", err)
		}
		*ups = append(*ups, v)
		return nil
	})
}

// commonFlags registers the flags serve and dev share.
func commonFlags(fs *flag.FlagSet, c *platformConfig, apiAddr string) (level, format *string) {
	fs.StringVar(&c.APIAddr, "api-addr", apiAddr, "address of the HTTP API (Marathon v2)")
	fs.StringVar(&c.Advertise, "advertise", "", "URL other replicas proxy API calls to (default http://<api-addr>)")
	fs.StringVar(&c.FrameworkName, "framework-name", "flotilla", "Mesos framework name")
	fs.StringVar(&c.Role, "role", "*", "Mesos role to run tasks under (same as --mesos-role)")
	roleFlags(fs, c)
	fs.DurationVar(&c.FailoverTimeout, "failover-timeout", mesosconn.DefaultFailoverTimeout, "how long Mesos keeps tasks running while no Flotilla is subscribed")
	fs.StringVar(&c.Hostname, "hostname", "", "hostname announced to Mesos (default: the machine's)")
	fs.StringVar(&c.Auth.Username, "auth-user", os.Getenv("FLOTILLA_AUTH_USER"), "HTTP basic user required by the API (with --auth-password)")
	fs.StringVar(&c.Auth.Password, "auth-password", os.Getenv("FLOTILLA_AUTH_PASSWORD"), "HTTP basic password required by the API")
	fs.StringVar(&c.Auth.Token, "auth-token", os.Getenv("FLOTILLA_AUTH_TOKEN"), "bearer token accepted by the API")
	fs.StringVar(&c.SecretEnvType, "secret-env-type", "secret", "how secrets reach tasks: secret (Mesos SECRET env var) or value (plain, for agents without SECRET support)")
	fs.StringVar(&c.DNSDomain, "dns-domain", "mesos", "DNS domain Flotilla is authoritative for")
	dnsUpstreamFlag(fs, &c.DNSUpstreams)
	fs.DurationVar(&c.SecretPoll, "secret-poll", 30*time.Second, "how often Vault secrets in use are checked for a new version; a new version rolls the apps that use it")
	fs.StringVar(&c.GatewayTLSCert, "gateway-tls-cert", "", "certificate file: serve the external gateway listener over TLS (with --gateway-tls-key)")
	fs.StringVar(&c.GatewayTLSKey, "gateway-tls-key", "", "key file of --gateway-tls-cert")
	c.MaxInstances = appspec.DefaultMaxInstances
	fs.Func("max-instances", fmt.Sprintf("most instances one app may ask for; a larger instances or autoscale.max is refused with 422 (default %d)", appspec.DefaultMaxInstances), func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > math.MaxInt32 {
			return fmt.Errorf("want a whole number from 1 to %d", math.MaxInt32)
		}
		c.MaxInstances = n
		return nil
	})
	c.ServicePorts = appspec.PortRange{}.WithDefaults()
	servicePortFlag(fs, "local-port-min", "lowest service port assigned to apps that leave theirs at 0 (Marathon's --local_port_min)", &c.ServicePorts.Min)
	servicePortFlag(fs, "local-port-max", "highest service port assigned to apps (Marathon's --local_port_max)", &c.ServicePorts.Max)
	apiClientFlags(fs, &c.APIClientLimits)
	gatewayClientFlags(fs, &c.GatewayClients)
	gatewayServiceFlags(fs, &c.GatewayClients, &c.GatewayGroups)
	level = fs.String("log-level", "info", "log level: error, warn, info, debug, trace")
	format = fs.String("log-format", "text", "log format: text or json")
	return level, format
}

// apiClientFlags registers the API listener's limits on slow and abusive
// clients (docs/operating.md, "Slow and abusive clients").
func apiClientFlags(fs *flag.FlagSet, l *api.ClientLimits) {
	d := api.DefaultClientLimits()
	fs.DurationVar(&l.ReadHeaderTimeout, "api-read-header-timeout", d.ReadHeaderTimeout, "a request header must arrive within this, or the connection is closed")
	fs.DurationVar(&l.BodyTimeout, "api-body-timeout", d.BodyTimeout, "a request body must arrive within this (408 otherwise)")
	fs.DurationVar(&l.IdleTimeout, "api-idle-timeout", d.IdleTimeout, "a kept-alive connection that sends nothing for this long is closed")
	fs.IntVar(&l.MaxHeaderBytes, "api-max-header-bytes", d.MaxHeaderBytes, "largest request header; larger ones get 431")
	capFlag(fs, &l.MaxConns, "api-max-conns", d.MaxConns, "most connections the API holds; more get 503 at once")
	capFlag(fs, &l.MaxConnsPerIP, "api-max-conns-per-ip", d.MaxConnsPerIP, "most connections one client address holds; more get 429 at once")
	capFlag(fs, &l.MaxEventStreams, "api-max-event-streams", d.MaxEventStreams, "most /v2/events clients; more get 503")
	capFlag(fs, &l.MaxLogFollows, "api-max-log-follows", d.MaxLogFollows, "most task log follows (logs?follow=true) open at once; more get 503")
}

// gatewayClientFlags registers the gateway listeners' limits on slow and
// abusive clients; each applies to each listener.
func gatewayClientFlags(fs *flag.FlagSet, c *gateway.Config) {
	fs.DurationVar(&c.ReadHeaderTimeout, "gateway-read-header-timeout", gateway.DefaultReadHeaderTimeout, "a request header must arrive within this, or the connection is closed")
	fs.DurationVar(&c.IdleTimeout, "gateway-idle-timeout", gateway.DefaultIdleTimeout, "a kept-alive client connection that sends nothing for this long is closed")
	fs.IntVar(&c.MaxHeaderBytes, "gateway-max-header-bytes", gateway.DefaultMaxHeaderBytes, "largest request header; larger ones get 431")
	capFlag(fs, &c.MaxConns, "gateway-max-conns", gateway.DefaultMaxConns, "most client connections a gateway listener holds; more get 503 at once")
	capFlag(fs, &c.MaxConnsPerIP, "gateway-max-conns-per-ip", gateway.DefaultMaxConnsPerIP, "most connections one client address holds on a gateway listener; more get 429 at once")
}

// gatewayServiceFlags registers what the gateway serves: which
// marathon-lb groups (serve, dev and edge alike) and whether service ports
// are bound.
func gatewayServiceFlags(fs *flag.FlagSet, c *gateway.Config, groups *[]string) {
	fs.Func("gateway-groups", "serve only the routes and service ports of apps in these marathon-lb groups (HAPROXY_GROUP, HAPROXY_{n}_GROUP; \"external\" also takes apps exposed by the exposure field; \"*\" every app), comma-separated; empty: every app", func(v string) error {
		*groups = splitComma(v)
		return nil
	})
	fs.Func("gateway-service-ports", "bind each app's service ports (marathon-lb's frontends) on the gateway listeners' hosts: true or false (default true); turn off where several gateways share a machine", func(v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.DisableServicePorts = !on
		return nil
	})
	fs.DurationVar(&c.BindRetry, "gateway-bind-retry", gateway.DefaultBindRetry, "how often a service port that could not be bound (in use, bad certificate) is tried again")
	fs.BoolVar(&c.EventLoop, "gateway-event-loop", gateway.EventLoopSupported, "serve the plain (non-TLS) gateway listeners from epoll event loops, one per core (Linux only; what the loops do not serve themselves goes to the goroutine path); false: a goroutine per connection")
}

// capFlag registers a cap where 0 means none (stored as -1, which the
// packages read as "no cap", their 0 being "the default").
func capFlag(fs *flag.FlagSet, dst *int, name string, def int, usage string) {
	*dst = def
	fs.Func(name, fmt.Sprintf("%s; 0: no cap (default %d)", usage, def), func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("want a whole number, 0 for no cap")
		}
		if n == 0 {
			n = -1
		}
		*dst = n
		return nil
	})
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c platformConfig
	fs.StringVar(&c.Master, "master", os.Getenv("FLOTILLA_MASTER"), "Mesos master: http://host:5050 or zk://host:2181/mesos")
	fs.StringVar(&c.ZK, "zk", os.Getenv("FLOTILLA_ZK"), "ZooKeeper for state and leader election, e.g. zk://127.0.0.1:2181/flotilla (empty: in-memory state, single replica)")
	fs.DurationVar(&c.ZKSessionTimeout, "zk-session-timeout", 10*time.Second, "ZooKeeper session timeout: a dead leader is replaced this long (plus under a second) after it stops; shorter fails over faster but a GC pause or network hiccup this long costs leadership (ZooKeeper bounds it to 2-20 ticks)")
	fs.StringVar(&c.DNSAddr, "dns-addr", "", "address of the DNS server (UDP and TCP), e.g. 10.0.0.5:53; empty: no DNS")
	fs.StringVar(&c.GatewayAddr, "gateway-addr", "", "external gateway listener (only apps marked external), e.g. 0.0.0.0:80; empty: none")
	fs.StringVar(&c.InternalGWAddr, "internal-gateway-addr", "", "internal gateway listener (every app, by its DNS name); empty: none")
	pprofAddr := fs.String("pprof-addr", "", "serve Go's profiles (/debug/pprof/) on this address, for loopback only (bench/memory/run.sh takes a heap profile); empty: off")
	level, format := commonFlags(fs, &c, "127.0.0.1:8080")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := logging.New(logging.Options{Level: *level, Format: *format})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *pprofAddr != "" {
		stopPprof, err := servePprof(*pprofAddr, logging.Component(log, "pprof"))
		if err != nil {
			return fmt.Errorf("--pprof-addr: %w", err)
		}
		defer stopPprof()
	}
	p, err := newPlatform(ctx, c, log)
	if err != nil {
		return err
	}
	logging.Component(log, "flotilla").WithFields(logrus.Fields{"api": p.ln.Addr().String(), "master": c.Master, "zk": c.ZK}).Info("serving")
	return p.run(ctx)
}

func runDev(args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var c platformConfig
	agents := fs.Int("agents", 3, "number of local agents")
	execName := fs.String("executor", "", "docker, process or simulated (default docker when the engine answers, else process)")
	mesosAddr := fs.String("mesos-addr", "127.0.0.1:5050", "address of the local Mesos master")
	fs.StringVar(&c.DNSAddr, "dns-addr", "127.0.0.1:8600", "address of the DNS server (UDP and TCP); empty: no DNS")
	fs.StringVar(&c.GatewayAddr, "gateway-addr", "127.0.0.1:8000", "external gateway listener (only apps marked external); empty: none")
	fs.StringVar(&c.InternalGWAddr, "internal-gateway-addr", "127.0.0.1:8001", "internal gateway listener (every app, by its DNS name); empty: none")
	pprofAddr := fs.String("pprof-addr", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off")
	shape := devShapeFlags(fs)
	level, format := commonFlags(fs, &c, "127.0.0.1:8080")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *agents <= 0 {
		return fmt.Errorf("--agents must be positive, got %d", *agents)
	}
	specs := devAgents(*agents)
	if err := shape.apply(specs, &c); err != nil {
		return err
	}
	log, err := logging.New(logging.Options{Level: *level, Format: *format})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *pprofAddr != "" {
		stopPprof, err := servePprof(*pprofAddr, logging.Component(log, "pprof"))
		if err != nil {
			return fmt.Errorf("--pprof-addr: %w", err)
		}
		defer stopPprof()
	}

	name, factory, err := localmesos.ExecutorByName(ctx, *execName, "", log)
	if err != nil {
		return err
	}
	m, err := localmesos.Start(ctx, localmesos.Config{
		Listen: *mesosAddr, AgentSpecs: specs, Executor: factory, NoSandbox: name == "simulated",
		Clock: clock.Real{}, Log: log,
	})
	if err != nil {
		return fmt.Errorf("local Mesos master: %w", err)
	}
	defer m.Close()
	c.Master = m.URL()
	p, err := newPlatform(ctx, c, log)
	if err != nil {
		return err
	}
	printBanner(os.Stdout, p, m, name)
	return p.run(ctx)
}

// devAgents gives each local agent its own loopback address as hostname
// (127.0.0.1, 127.0.0.2, …: all of 127/8 reaches this machine), so that
// hostname constraints, DNS and the gateway see distinct hosts as on a real
// cluster, and a rack attribute r1..r3.
func devAgents(n int) []localmesos.AgentSpec {
	specs := make([]localmesos.AgentSpec, n)
	for i := range specs {
		host := "127.0.0.1"
		if i < 254 {
			host = fmt.Sprintf("127.0.0.%d", i+1)
		}
		specs[i] = localmesos.AgentSpec{Hostname: host, Attributes: map[string]string{"rack": fmt.Sprintf("r%d", i%3+1)},
			Region: "local", Zone: fmt.Sprintf("z%d", i%3+1)}
	}
	return specs
}

func servicePortFlag(fs *flag.FlagSet, name, usage string, p *uint32) {
	fs.Func(name, fmt.Sprintf("%s (default %d)", usage, *p), func(v string) error {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("want a port from 1 to 65535")
		}
		*p = uint32(n)
		return nil
	})
}
