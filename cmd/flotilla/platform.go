package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/api"
	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/autoscale"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/discovery"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/framework/mesosconn"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/health"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/mesosdns"
	"github.com/flotilla-sched/flotilla/readiness"
	"github.com/flotilla-sched/flotilla/secrets"
	"github.com/flotilla-sched/flotilla/store"
)

// platformConfig is what serve and dev have in common: one replica of
// Flotilla with its API.
type platformConfig struct {
	Master string // http://host:port or zk://host:port/mesos
	ZK     string // zk://host:port[,host:port]/flotilla: election and store; "" = memory store, lone leader
	// ZKSessionTimeout is the election's and the store's ZooKeeper
	// session timeout (0: 10 s): how long a dead leader goes unnoticed.
	ZKSessionTimeout time.Duration
	APIAddr          string
	Advertise        string // URL standbys proxy to; default http://<APIAddr>
	FrameworkName    string
	Role             string
	// Roles holds the user, accepted-roles and GPU flags (roleflags.go).
	Roles           roleConfig
	FailoverTimeout time.Duration
	Hostname        string
	Auth            api.Auth
	// APIClientLimits bound slow and abusive API clients (--api-*).
	APIClientLimits api.ClientLimits
	SecretEnvType   string // secret (Mesos SECRET env var) or value (plain VALUE, for agents without SECRET support)
	DNSAddr         string // "" = no DNS server
	DNSDomain       string
	DNSUpstreams    []string // resolvers for outside names; empty = /etc/resolv.conf
	GatewayAddr     string   // external listener; "" = none
	InternalGWAddr  string   // internal listener; "" = none
	GatewayTLSCert  string
	GatewayTLSKey   string
	// GatewayClients holds the gateway's limits on slow and abusive
	// clients (--gateway-*); only those fields are read.
	GatewayClients gateway.Config
	// GatewayGroups limits the gateway to apps in these marathon-lb
	// groups (--gateway-groups); empty: every app.
	GatewayGroups []string
	// SecretPoll is how often referenced secrets are checked for a new
	// version (rotation); default 30 s.
	SecretPoll time.Duration
	// MaxInstances bounds instances per app (--max-instances); 0 means
	// appspec.DefaultMaxInstances.
	MaxInstances int
	// ServicePorts is the range service ports are assigned from
	// (--local-port-min/--local-port-max).
	ServicePorts appspec.PortRange
	// Getenv reads the standard Vault variables (VAULT_ADDR, VAULT_TOKEN…);
	// default os.Getenv.
	Getenv func(string) string
}

func (c *platformConfig) check() error {
	if c.Master == "" {
		return errors.New("--master is required (http://host:5050 or zk://host:2181/mesos)")
	}
	switch c.SecretEnvType {
	case "", "secret", "value":
	default:
		return fmt.Errorf("--secret-env-type must be secret or value, got %q", c.SecretEnvType)
	}
	if c.ZKSessionTimeout < 0 {
		return fmt.Errorf("--zk-session-timeout must be positive, got %v", c.ZKSessionTimeout)
	}
	if c.ServicePorts.Min > c.ServicePorts.Max {
		return fmt.Errorf("--local-port-min %d is above --local-port-max %d", c.ServicePorts.Min, c.ServicePorts.Max)
	}
	if c.MaxInstances < 0 {
		return fmt.Errorf("--max-instances must be positive, got %d", c.MaxInstances)
	}
	if c.Advertise == "" {
		c.Advertise = "http://" + c.APIAddr
	}
	return nil
}

// parseZK splits zk://h1:p1,h2:p2/path into servers and path.
func parseZK(s string) (servers []string, path string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "zk" || u.Host == "" {
		return nil, "", fmt.Errorf("bad ZooKeeper URL %q (want zk://host:port[,host:port]/path)", s)
	}
	path = strings.TrimRight(u.Path, "/")
	if path == "" {
		return nil, "", fmt.Errorf("ZooKeeper URL %q has no path (e.g. zk://127.0.0.1:2181/flotilla)", s)
	}
	return strings.Split(u.Host, ","), path, nil
}

// platform is one running replica: store, secrets, scheduler, Mesos
// connection with leader election, and the API.
type platform struct {
	cfg      platformConfig
	log      *logrus.Logger
	store    store.Store
	resolver *secrets.Resolver
	vault    *secrets.Vault
	sched    *framework.Scheduler
	replica  *mesosconn.Replica
	api      *api.Server
	deploy   *deploy.Service
	registry *prometheus.Registry
	ln       net.Listener
	detector mesosconn.Detector
	dns      *mesosdns.Server
	gateway  *gateway.Gateway
	feed     *discovery.Feed
	follower *discovery.Follower // nil without ZooKeeper (a lone replica always leads)
	scaler   *autoscale.Runner
	ready    *readiness.Checker
	health   *health.Checker
}

func newPlatform(ctx context.Context, cfg platformConfig, log *logrus.Logger) (*platform, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("api listener: %w", err)
	}
	// Other replicas proxy to and follow the advertised address: with
	// port 0 (tests) it must name the port the listener got.
	if host, port, err := net.SplitHostPort(cfg.APIAddr); err == nil && port == "0" && cfg.Advertise == "http://"+cfg.APIAddr {
		_, got, _ := net.SplitHostPort(ln.Addr().String())
		cfg.Advertise = "http://" + net.JoinHostPort(host, got)
	}
	p := &platform{cfg: cfg, log: log, registry: prometheus.NewRegistry(), ln: ln}
	ok := false
	defer func() {
		if !ok {
			ln.Close()
		}
	}()
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	clk := clock.Real{}
	seed := time.Now().UnixNano()

	var election mesosconn.ElectionConfig
	if cfg.ZK != "" {
		servers, root, err := parseZK(cfg.ZK)
		if err != nil {
			return nil, err
		}
		zs, err := store.NewZK(ctx, store.ZKConfig{Servers: servers, Root: root, Clock: clk, Logger: log, SessionTimeout: cfg.ZKSessionTimeout})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		p.store = zs
		election = mesosconn.ElectionConfig{Servers: servers, Path: root + "/leader", Address: cfg.Advertise, SessionTimeout: cfg.ZKSessionTimeout,
			Clock: clk, Logger: logging.Component(log, "election")}
	} else {
		p.store = store.NewMemory(clk, 0)
		// No election: this replica always leads, and /v2/leader and
		// /v2/info name it by its advertised address.
		election = mesosconn.ElectionConfig{Address: cfg.Advertise}
	}

	// Secrets: with VAULT_ADDR set, references resolve at launch; without,
	// an app that references a secret is refused at submit time.
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	vcfg, err := secrets.ConfigFromEnv(getenv)
	switch {
	case errors.Is(err, secrets.ErrNotConfigured):
		p.resolver = secrets.NewResolver(nil, clk, 10*time.Second, logging.Component(log, "secrets"))
	case err != nil:
		return nil, err
	default:
		v, err := secrets.New(vcfg, clk, logging.Component(log, "secrets"))
		if err != nil {
			return nil, err
		}
		p.vault = v
		p.resolver = secrets.NewResolver(v, clk, 10*time.Second, logging.Component(log, "secrets"))
	}

	acceptDefault, err := cfg.acceptedRolesDefault()
	if err != nil {
		return nil, err
	}
	p.sched = framework.New(framework.Config{
		Clock: clk, Rand: rand.New(rand.NewSource(seed)), Log: logging.Component(log, "framework"),
		Role: cfg.Role, AcceptedRolesDefault: acceptDefault, ResolveEnv: secretEnv(p.resolver, cfg.SecretEnvType), Tasks: p.store,
	})
	det, err := mesosconn.NewDetector(mesosconn.DetectorConfig{Master: cfg.Master, Clock: clk, Logger: logging.Component(log, "detector")})
	if err != nil {
		return nil, err
	}
	p.detector = det
	roles := []string{"*"}
	if cfg.Role != "" {
		roles = []string{cfg.Role}
	}
	p.replica, err = mesosconn.NewReplica(mesosconn.ReplicaConfig{
		Election: election,
		Conn: mesosconn.ConnConfig{Detector: det, FrameworkIDs: p.store, Name: cfg.FrameworkName, Roles: roles,
			User: cfg.Roles.MesosUser, GPUResources: cfg.Roles.GPUResources,
			FailoverTimeout: cfg.FailoverTimeout, Hostname: cfg.Hostname, WebUIURL: cfg.Advertise},
		Core:   termCore{p},
		Clock:  clk,
		Rand:   rand.New(rand.NewSource(seed + 1)),
		Logger: logging.Component(log, "replica"),
	})
	if err != nil {
		return nil, err
	}
	if cfg.DNSAddr != "" {
		p.dns, err = mesosdns.New(mesosdns.Config{Addr: cfg.DNSAddr, Domain: cfg.DNSDomain, Framework: cfg.FrameworkName, Upstreams: cfg.DNSUpstreams,
			Clock: clk, Log: logging.Component(log, "dns"), Version: version})
		if err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
		p.registry.MustRegister(p.dns.Collectors()...)
	}
	mounts := map[string]http.Handler{
		// The agents and their resources, read from the leading master
		// for the UI's cluster page; any replica can answer it.
		"/flotilla/v1/agents/": agentsHandler(func(ctx context.Context) (string, error) {
			u, _, err := p.detector.Leader(ctx)
			return u, err
		}, &http.Client{Timeout: 5 * time.Second}),
		// The replicas in the leader election, for the same page.
		"/flotilla/v1/replicas/": replicasHandler(p.replica.Candidates),
	}
	if p.dns != nil {
		// Mesos-DNS's HTTP API, beside Marathon's and behind the same auth.
		mounts["/v1/"] = p.dns.HTTPHandler()
	}
	p.deploy, err = deploy.New(deploy.Config{
		Store: p.store, Scheduler: p.sched, Clock: clk, Rand: rand.New(rand.NewSource(seed + 2)),
		Log: logging.Component(log, "deploy"), Registry: p.registry,
		Limits: appspec.Limits{MaxInstances: cfg.MaxInstances, Role: cfg.Role, GPUResources: cfg.Roles.GPUResources}, ServicePorts: cfg.ServicePorts,
	})
	if err != nil {
		return nil, err
	}
	p.api, err = api.New(api.Config{
		Scheduler: p.sched, Store: p.store, Deploy: p.deploy, Leadership: p.replica, Secrets: p.resolver, Registry: p.registry,
		Clock: clk, Log: logging.Component(log, "api"),
		Auth: cfg.Auth, Version: version, FrameworkID: p.replica.FrameworkID, Info: cfg.roleInfo(acceptDefault),
		// The feed is built after the API; read it when asked.
		View: func() *framework.Snapshot {
			if p.feed == nil {
				return nil
			}
			return p.feed.Current()
		},
		ViewChanged: func() <-chan struct{} {
			if p.feed == nil {
				return nil
			}
			return p.feed.ViewChanged()
		},
		AppHandlers: map[string]api.AppHandler{"autoscale": p.autoscaleLog, "routes": p.appRoutes},
		Mounts:      mounts, ClientLimits: cfg.APIClientLimits,
	})
	if err != nil {
		return nil, err
	}
	if cfg.GatewayAddr != "" || cfg.InternalGWAddr != "" {
		gc := cfg.GatewayClients
		p.gateway, err = gateway.New(gateway.Config{ExternalAddr: cfg.GatewayAddr, InternalAddr: cfg.InternalGWAddr,
			TLSCertFile: cfg.GatewayTLSCert, TLSKeyFile: cfg.GatewayTLSKey, Clock: clk,
			Log: logging.Component(log, "gateway"), Registerer: p.registry,
			ReadHeaderTimeout: gc.ReadHeaderTimeout, IdleTimeout: gc.IdleTimeout, MaxHeaderBytes: gc.MaxHeaderBytes,
			MaxConns: gc.MaxConns, MaxConnsPerIP: gc.MaxConnsPerIP,
			DisableServicePorts: gc.DisableServicePorts, BindRetry: gc.BindRetry, EventLoop: gc.EventLoop})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if p.dns != nil || p.gateway != nil {
		fc := discovery.Config{Scheduler: p.sched, Leader: masterRecord(det), Domain: cfg.DNSDomain,
			Framework: cfg.FrameworkName, Groups: cfg.GatewayGroups, Log: logging.Component(log, "discovery"),
			MasterPorts: masterTaskPorts(func(ctx context.Context) (string, error) {
				u, _, err := p.detector.Leader(ctx)
				return u, err
			}, p.replica.FrameworkID, &http.Client{Timeout: 5 * time.Second})}
		if p.dns != nil {
			fc.DNS = p.dns
		}
		if p.gateway != nil {
			fc.Gateway = p.gateway
		}
		if cfg.ZK != "" {
			// Standbys serve the leader's view (docs/architecture.md, HA).
			p.follower = discovery.NewFollower(discovery.FollowerConfig{
				Leader: p.replica.LeaderAddress, Skip: p.replica.IsLeader,
				Authorize: cfg.Auth.Authorize, Clock: clk, Log: logging.Component(log, "follower"),
			})
			fc.Remote = p.follower
		}
		fc.Clock = clk
		p.feed = discovery.New(fc)
		p.registry.MustRegister(p.feed.Collectors()...)
	}
	if err := p.newAutoscaler(clk, log); err != nil {
		return nil, err
	}
	// Readiness checks run within a leadership term (termCore), like the
	// autoscaler: only the leader's scheduler acts on them.
	p.ready, err = readiness.New(readiness.Config{Scheduler: p.sched, Clock: clk, Log: logging.Component(log, "readiness")})
	if err != nil {
		return nil, err
	}
	// So do the HTTP, HTTPS and TCP health checks (Mesos runs the others).
	p.health, err = health.New(health.Config{Scheduler: p.sched, Clock: clk, Log: logging.Component(log, "health")})
	if err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// termCore runs one leadership term: the API's view is restored from the
// store before the scheduler starts, so a new leader adopts the tasks of
// the apps it knows instead of killing them.
type termCore struct{ p *platform }

func (t termCore) Run(ctx context.Context, in <-chan framework.Input, act framework.Actions) error {
	log := logging.Component(t.p.log, "replica")
	if t.p.feed != nil {
		t.p.feed.SetLeading(true)
		defer t.p.feed.SetLeading(false)
	}
	if err := restoreApps(ctx, t.p.deploy.Restore, log); err != nil {
		return err
	}
	if n, err := t.p.sched.Restore(ctx); err != nil {
		log.WithError(err).Error("restoring task records failed; reconciliation will adopt tasks without their ports")
	} else if n > 0 {
		log.WithField("tasks", n).Info("task records restored")
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := t.p.deploy.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Error("deployments loop stopped")
		}
	}()
	go func() {
		defer wg.Done()
		if err := t.p.api.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Error("event stream loop stopped")
		}
	}()
	go func() {
		defer wg.Done()
		if err := t.p.scaler.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Error("autoscaler stopped")
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := t.p.ready.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Error("readiness checker stopped")
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := t.p.health.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Error("health checker stopped")
		}
	}()
	if t.p.vault != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.p.rotator().Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.WithError(err).Error("secret rotation watcher stopped")
			}
		}()
	}
	err := t.p.sched.Run(ctx, in, act)
	wg.Wait()
	return err
}

// restoreApps reads the apps and deployments from the store before the
// term schedules anything, retrying until it can: a leader elected as
// ZooKeeper comes back can hold its election session before the store's
// connection has one again, and a term that went on with the apps it could
// not read would serve an API and DNS without them (every replica
// following its view) for as long as it led. Tasks are not touched
// meanwhile: nothing is scheduled until the apps are known. It returns only
// when ctx ends (the term is over) or the apps were read.
func restoreApps(ctx context.Context, restore func(context.Context) error, log *logrus.Entry) error {
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := restore(ctx)
		if err == nil {
			if attempt > 1 {
				log.WithField("attempts", attempt).Info("apps restored from the store")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.WithError(err).WithField("retry_in", delay).Error("restoring apps from the store failed; nothing is scheduled until they are read")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// run serves until ctx ends.
func (p *platform) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.dns != nil {
		if err := p.dns.Start(); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		defer shutdown(p.log, "dns", p.dns.Shutdown)
	}
	if p.gateway != nil {
		if err := p.gateway.Start(); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		defer shutdown(p.log, "gateway", p.gateway.Shutdown)
	}
	if p.feed != nil {
		go p.feed.Run(ctx)
		go p.refreshOnMasterChange(ctx)
	}
	if p.follower != nil {
		go p.follower.Run(ctx)
	}
	srv := p.api.HTTPServer()
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(p.api.Listener(p.ln)) }()
	go func() { errc <- p.replica.Run(ctx) }()
	if p.vault != nil {
		go func() {
			if err := p.vault.Run(ctx); err != nil && ctx.Err() == nil {
				logging.Component(p.log, "secrets").WithError(err).Error("vault token maintenance stopped")
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		p.log.WithError(err).Warn("api: requests still running after 5 s were cut off")
	}
	p.detector.Close()
	if c, ok := p.store.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			p.log.WithError(err).Warn("store: close")
		}
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// rotator rolls the apps that use a secret when it gets a new version,
// through the API's own restart, so it is a normal deployment.
func (p *platform) rotator() *secrets.Rotator {
	interval := p.cfg.SecretPoll
	if interval <= 0 {
		interval = 30 * time.Second
	}
	return &secrets.Rotator{
		Backend: p.vault, Resolver: p.resolver, Interval: interval, Clock: clock.Real{},
		Log:  logging.Component(p.log, "rotation"),
		Apps: func() []*appspec.App { return p.sched.SnapshotByApp().Apps },
		Restart: func(ctx context.Context, appID string) error {
			// As POST /v2/apps/{id}/restart does: a new version, every
			// task replaced; refused while a deployment of the app runs.
			_, err := p.deploy.Apply(ctx, deploy.Op{Kind: deploy.OpRestart, ID: appID})
			return err
		},
	}
}

// newAutoscaler builds the leader's autoscaler: metrics from the agents'
// /monitor/statistics, the gateway and the tasks' Prometheus endpoints; it
// scales through the API's own scale path, so every change is a deployment.
func (p *platform) newAutoscaler(clk clock.Clock, log *logrus.Logger) error {
	// Agents ask Docker for each container's stats, about a second apiece.
	const statsTimeout = 10 * time.Second
	cpu, err := autoscale.NewAgentSource(appspec.AutoscaleCPU, p.sched.AgentURL, nil, statsTimeout)
	if err != nil {
		return err
	}
	mem, err := autoscale.NewAgentSource(appspec.AutoscaleMem, p.sched.AgentURL, nil, statsTimeout)
	if err != nil {
		return err
	}
	sources := map[string]autoscale.Source{appspec.AutoscaleCPU: cpu, appspec.AutoscaleMem: mem,
		appspec.AutoscalePrometheus: autoscale.NewPromSource(nil, 0)}
	if p.gateway != nil {
		sources[appspec.AutoscaleRPS] = autoscale.RPSSource{Rates: p.gateway}
	}
	p.scaler, err = autoscale.NewRunner(autoscale.RunnerConfig{Clock: clk, Snapshot: p.sched.SnapshotByApp,
		Scaler: deployScaler{p}, Sources: sources, Leading: p.replica.IsLeader, Log: logging.Component(log, "autoscale"),
		OnDecision: func(d autoscale.Decision) {
			if (d.Scaled || d.Error != "") && p.api != nil {
				p.api.PublishAutoscaleDecision(d.App, d)
			}
		}})
	return err
}

// deployScaler scales as a user's PUT {"instances": n} does.
type deployScaler struct{ p *platform }

func (a deployScaler) Scale(ctx context.Context, appID string, n int) error {
	_, err := a.p.deploy.Scale(ctx, appID, n)
	return err
}

// autoscaleLog serves GET /v2/apps/{id}/autoscale: the autoscaler's recent
// decisions for the app, oldest first.
func (p *platform) autoscaleLog(w http.ResponseWriter, r *http.Request, appID string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, `{"message":"only GET is allowed here"}`, http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"appId": appID, "decisions": p.scaler.Log(appID)})
}

// masterRecord gives the DNS leader./master. records: the master the
// detector follows, for an http:// master and a zk:// one alike. A master
// not known yet, or known by a name rather than an IP, has no records.
func masterRecord(det mesosconn.Detector) func() (mesosdns.Master, bool) {
	return func() (mesosdns.Master, bool) {
		now, cancel := context.WithCancel(context.Background())
		cancel() // only what is known: never wait for a master here
		leader, _, err := det.Leader(now)
		if err != nil {
			return mesosdns.Master{}, false
		}
		u, err := url.Parse(leader)
		if err != nil {
			return mesosdns.Master{}, false
		}
		host, portStr, err := net.SplitHostPort(u.Host)
		if err != nil {
			return mesosdns.Master{}, false
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		ip := net.ParseIP(host)
		if err != nil || ip == nil {
			return mesosdns.Master{}, false
		}
		return mesosdns.Master{Host: host, IP: ip, Port: uint32(port)}, true
	}
}

// refreshOnMasterChange rebuilds the DNS records whenever the detector
// finds a new leading master, so leader.<domain> follows it.
func (p *platform) refreshOnMasterChange(ctx context.Context) {
	for ctx.Err() == nil {
		_, changed, err := p.detector.Leader(ctx)
		if err != nil || changed == nil {
			return // a static master never changes; ctx ended or the detector closed
		}
		p.feed.Refresh()
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
}

// secretEnv resolves an app's secret references at launch into Mesos
// environment variables. The value leaves the secrets package only here,
// straight into the TaskInfo.
func secretEnv(r *secrets.Resolver, kind string) framework.EnvResolver {
	return func(ctx context.Context, app *appspec.App, taskID string) ([]mesos.Environment_Variable, error) {
		if len(app.Secrets) == 0 {
			return nil, nil
		}
		vals, err := r.Resolve(ctx, app)
		if err != nil {
			return nil, err
		}
		out := make([]mesos.Environment_Variable, 0, len(vals))
		for name, v := range vals {
			if kind == "value" {
				s := v.Reveal()
				out = append(out, mesos.Environment_Variable{Name: name, Type: mesos.Environment_Variable_VALUE.Enum(), Value: &s})
				continue
			}
			out = append(out, mesos.Environment_Variable{
				Name: name, Type: mesos.Environment_Variable_SECRET.Enum(),
				Secret: &mesos.Secret{Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: []byte(v.Reveal())}},
			})
		}
		return out, nil
	}
}

// shutdown stops one listener (DNS, gateway) and logs what did not stop
// cleanly: connections it cut off, sockets that failed to close.
func shutdown(log *logrus.Logger, what string, stop func(context.Context) error) {
	if err := stop(context.Background()); err != nil {
		log.WithError(err).WithField("component", what).Warn("shutdown was not clean")
	}
}
