package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/valyala/fasthttp"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/connlimit"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// Defaults. Both listeners are on loopback so a development machine never
// publishes an app by accident; production passes real addresses.
const (
	DefaultExternalAddr          = "127.0.0.1:8000"
	DefaultInternalAddr          = "127.0.0.1:8001"
	DefaultDialTimeout           = 2 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultEjectFor              = 10 * time.Second
	DefaultMaxAttempts           = 3
	DefaultMaxIdleConnsPerHost   = 128
	DefaultWindow                = 30 * time.Second
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 120 * time.Second
	DefaultMaxHeaderBytes        = 16 << 10
	DefaultMaxConns              = 10000
	DefaultMaxConnsPerIP         = 1024
	DefaultBindRetry             = 5 * time.Second
)

// Balancing policies.
const (
	RoundRobin = "round-robin"
	LeastConn  = "least-conn"
	// Source hashes the client's address, so a client keeps its backend
	// while the backends stay the same (HAProxy's balance source); it is
	// chosen per port with HAPROXY_{n}_BALANCE.
	Source = "source"
)

// ErrBadConfig is returned (wrapped) when a Config cannot be used.
var ErrBadConfig = errors.New("gateway: bad config")

// Config configures a Gateway. The zero value of every field selects its
// default, so Config{} is a working development setup.
type Config struct {
	// ExternalAddr and InternalAddr are where the two listeners bind
	// (--gateway-addr, --internal-gateway-addr). Port 0 picks a free port;
	// empty opens no such listener (and binds no service port on its
	// host). DefaultExternalAddr and DefaultInternalAddr are the
	// development addresses for callers that want them.
	ExternalAddr string
	InternalAddr string
	// DisableServicePorts opens no service-port listeners
	// (--gateway-service-ports=false): for replicas that share a machine,
	// whose service ports would collide.
	DisableServicePorts bool
	// BindRetry is how often a service port that could not be bound is
	// tried again.
	BindRetry time.Duration
	// TLSCertFile and TLSKeyFile, both or neither, turn on TLS for the
	// external listener.
	TLSCertFile, TLSKeyFile string
	// Balance is RoundRobin (default) or LeastConn.
	Balance string
	// DialTimeout bounds connecting to a backend.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a backend's response headers
	// and for a body short enough to be copied whole (64 KiB); a longer
	// body streams without a deadline, so downloads and WebSockets are not
	// cut.
	ResponseHeaderTimeout time.Duration
	// EjectFor is how long a backend that refused a connection is left out
	// of rotation.
	EjectFor time.Duration
	// MaxAttempts bounds the backends one idempotent request tries.
	MaxAttempts int
	// RouteWait is how long such a request, having found every backend of
	// its app failing, waits for newer routes to try (redispatch.go);
	// 0: DefaultRouteWait, < 0: it does not wait.
	RouteWait time.Duration
	// MaxIdleConnsPerHost bounds the idle keep-alive connections kept per
	// backend; it should cover the requests a backend serves at once, or
	// a busy gateway reconnects all the time.
	MaxIdleConnsPerHost int
	// ReadHeaderTimeout: a client's request header must arrive within
	// this, counted from the connection's start (or a kept-alive request's
	// first byte), not per byte, so a client that sends a byte a second is
	// cut as surely as one that sends nothing. A body has no deadline: an
	// upload takes what it takes.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a kept-alive client connection that sends
	// nothing between requests.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block, which fasthttp holds
	// whole in each connection's read buffer; larger ones get 431.
	MaxHeaderBytes int
	// MaxConns caps each listener's open client connections; beyond it a
	// connection gets 503 and is closed at once. -1: no cap.
	MaxConns int
	// MaxConnsPerIP caps one client address's connections on a listener
	// (429 beyond), so one client cannot take all of MaxConns. -1: no cap
	// (behind a load balancer every client has its address).
	MaxConnsPerIP int
	// EventLoop serves the plain (non-TLS) listeners from epoll event
	// loops, one per P (and GOMAXPROCS one higher while they run),
	// instead of a goroutine per connection (--gateway-event-loop, the
	// command's default on Linux; Linux only). Requests the loops do not
	// serve themselves go to the same fasthttp path as without it; see
	// "Event loops" in the package doc.
	EventLoop bool
	// Window is the sliding window of RequestRate and Latency, in whole
	// seconds.
	Window time.Duration
	// Clock times ejections and the sliding window; nil is the wall clock.
	Clock clock.Clock
	// Log is the component logger; nil discards.
	Log *logrus.Entry
	// Registerer receives the gateway's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	if c.EventLoop && !EventLoopSupported {
		return c, fmt.Errorf("%w: the event loop (EventLoop) needs Linux", ErrBadConfig)
	}
	for _, a := range []string{c.ExternalAddr, c.InternalAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return c, fmt.Errorf("%w: listen address %q: %w", ErrBadConfig, a, err)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return c, fmt.Errorf("%w: TLS needs both a certificate file and a key file", ErrBadConfig)
	}
	switch c.Balance {
	case "":
		c.Balance = RoundRobin
	case RoundRobin, LeastConn:
	default:
		return c, fmt.Errorf("%w: balance %q (want %s or %s)", ErrBadConfig, c.Balance, RoundRobin, LeastConn)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	def(&c.EjectFor, DefaultEjectFor)
	def(&c.BindRetry, DefaultBindRetry)
	def(&c.Window, DefaultWindow)
	if c.Window < time.Second {
		c.Window = time.Second
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	// 0 is the default, -1 none (connlimit's 0).
	for _, n := range []struct {
		v   *int
		def int
	}{{&c.MaxConns, DefaultMaxConns}, {&c.MaxConnsPerIP, DefaultMaxConnsPerIP}} {
		switch {
		case *n.v == 0:
			*n.v = n.def
		case *n.v < 0:
			*n.v = 0
		}
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RouteWait == 0 {
		c.RouteWait = DefaultRouteWait
	}
	if c.MaxIdleConnsPerHost <= 0 {
		c.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = logging.Component(logging.Discard(), "gateway")
	}
	return c, nil
}

// Gateway proxies requests to apps' backends on two listeners.
type Gateway struct {
	cfg       Config
	log       *logrus.Entry
	clock     clock.Clock
	tlsConfig *tls.Config
	dialer    *net.Dialer
	tcpDialer *net.Dialer // TCP mode: no keep-alive probes (see openService)
	m         *metrics
	unrouted  [2]prometheus.Counter // per listener, resolved once

	cur      atomic.Pointer[snapshot]
	routesCh atomic.Pointer[chan struct{}] // closed at the next Update (redispatch.go)
	// routeWaits counts requests that waited for newer routes.
	routeWaits atomic.Int64

	mu       sync.Mutex // serialises Update
	apps     map[string]*appState
	backends map[backendKey]*backendState
	problems []error

	services
	stopRetry chan struct{}

	srvMu   sync.Mutex
	servers []*fasthttp.Server
	addrs   [2]net.Addr
	conns   [2]atomic.Pointer[connlimit.Listener] // per listener, once started
	h2      [2]*h2Server                          // per listener: its HTTP/2 connections
	loops   *loops                                // EventLoop's, once started
}

// snapshot is what one request sees from start to end: a route table and
// the pools of its apps.
type snapshot struct {
	table *Table
	pools map[string]*pool
	// routed: an Update has been made. Before it the gateway knows nothing
	// (a replica or edge node that has not followed any view yet) and
	// answers 503 rather than a 404 that says the app does not exist.
	routed bool
}

type backendKey struct {
	app   string
	index int
	task  string
	addr  string
}

// New builds a Gateway that routes nothing until the first Update (it
// answers 503 meanwhile: it has no view yet, not a view without the app). A bad
// TLS certificate is reported here rather than at the first handshake.
func New(cfg Config) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:      cfg,
		log:      cfg.Log,
		clock:    cfg.Clock,
		m:        newMetrics(),
		apps:     map[string]*appState{},
		backends: map[backendKey]*backendState{},
	}
	g.open, g.failed = map[svcKey]*svcListener{}, map[svcKey]bindFailure{}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS certificate %s and key %s: %w", ErrBadConfig, cfg.TLSCertFile, cfg.TLSKeyFile, err)
		}
		g.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.Registerer != nil {
		for _, c := range append(g.m.collectors(), g.connCollectors()...) {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("gateway: register metrics: %w", err)
			}
		}
	}
	g.dialer = &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	g.tcpDialer = &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: -1}
	for _, l := range []Listener{Internal, External} {
		g.unrouted[l] = g.m.unrouted.WithLabelValues(l.String())
		g.h2[l] = g.newH2Server(l)
	}
	empty, _ := buildRoutes(nil, nil)
	g.cur.Store(&snapshot{table: empty, pools: map[string]*pool{}})
	return g, nil
}

// Update swaps in routes for apps. An app or backend that cannot be routed
// is skipped (see BuildRoutes), logged when it first fails, and keeps
// nothing from earlier tables; everything else is routed. Requests in
// flight finish on the table they started with.
func (g *Gateway) Update(apps []App) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, errs := buildRoutes(apps, g.cur.Load().table)

	old := map[string]bool{}
	for _, e := range g.problems {
		old[e.Error()] = true
	}
	for _, e := range errs {
		if !old[e.Error()] {
			g.log.WithError(e).Warn("route skipped")
		}
	}
	g.problems = errs
	g.m.skipped.Set(float64(len(errs)))

	now := g.clock.Now()
	// Drop state for what left the table first, so that a backend that
	// comes back under the same task ID starts with fresh metric series.
	live := map[backendKey]bool{}
	liveApps := map[string]bool{}
	for _, ar := range t.apps {
		liveApps[ar.id] = true
		for _, b := range ar.backends {
			live[backendKey{ar.id, ar.index, b.TaskID, b.addr()}] = true
		}
	}
	for k := range g.backends {
		if bs := g.backends[k]; !live[k] {
			bs.conns.close()
			delete(g.backends, k)
			g.m.requests.DeletePartialMatch(prometheus.Labels{"app": k.app, "task": k.task})
		}
	}
	for id := range g.apps {
		if !liveApps[id] {
			delete(g.apps, id)
			g.m.requests.DeletePartialMatch(prometheus.Labels{"app": id})
			g.m.duration.DeleteLabelValues(id)
			g.m.inFlight.DeleteLabelValues(id)
			g.m.ejections.DeleteLabelValues(id)
		}
	}

	pools := make(map[string]*pool, len(t.apps))
	for key, ar := range t.apps {
		as := g.apps[ar.id]
		if as == nil {
			as = g.newAppState(ar.id)
			g.apps[ar.id] = as
		}
		p := &pool{app: as, index: ar.index, opts: ar.opts, backends: make([]*backendState, 0, len(ar.backends))}
		for _, b := range ar.backends {
			k := backendKey{ar.id, ar.index, b.TaskID, b.addr()}
			bs := g.backends[k]
			if bs == nil {
				bs = g.newBackendState(ar.id, b, now)
				g.backends[k] = bs
			}
			p.backends = append(p.backends, bs)
		}
		pools[key] = p
	}
	g.cur.Store(&snapshot{table: t, pools: pools, routed: true})
	g.routesUpdated()
	g.m.updates.Inc()
	g.syncServices(t)
}

// Problems returns what the last Update skipped, one error per app or
// backend (each a *SkipError).
func (g *Gateway) Problems() []error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]error(nil), g.problems...)
}

// Table returns the route table being served.
func (g *Gateway) Table() *Table { return g.cur.Load().table }

// RequestRate returns requests/s per backend task of appID over the sliding
// window of the gateway clock: what the autoscaler's "rps" metric reads. A
// backend younger than the window is averaged over its own age, so a new
// instance is not reported as idle. Unknown apps give an empty map.
func (g *Gateway) RequestRate(appID string) map[string]float64 {
	out := map[string]float64{}
	p := g.cur.Load().pools[appID]
	if p == nil {
		return out
	}
	now := g.clock.Now()
	for _, b := range p.backends {
		span := g.cfg.Window
		if age := now.Sub(b.since).Truncate(time.Second) + time.Second; age < span {
			span = age
		}
		out[b.TaskID] = float64(b.rate.sum(now.Unix())) / span.Seconds()
	}
	return out
}

// Latency returns appID's latency percentiles over the sliding window, and
// false for an app that is not routed.
func (g *Gateway) Latency(appID string) (Latency, bool) {
	p := g.cur.Load().pools[appID]
	if p == nil {
		return Latency{}, false
	}
	return p.app.latency.latency(g.clock.Now().Unix()), true
}

// Start binds both listeners and serves them in the background until
// Shutdown.
func (g *Gateway) Start() error {
	g.srvMu.Lock()
	defer g.srvMu.Unlock()
	if g.servers != nil {
		return errors.New("gateway: already started")
	}
	type bind struct {
		l    Listener
		addr string
	}
	var lns []net.Listener
	var loopLns []loopListener
	for _, b := range []bind{{External, g.cfg.ExternalAddr}, {Internal, g.cfg.InternalAddr}} {
		if b.addr == "" {
			continue // an empty address is no listener
		}
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			closeLoopListeners(loopLns)
			return fmt.Errorf("gateway: %s listener on %s: %w", b.l, b.addr, err)
		}
		lns = append(lns, ln)
		g.addrs[b.l] = ln.Addr()
		lim := g.limitListener(b.l, ln) // below TLS: a refusal costs no handshake
		tlsOn := b.l == External && g.tlsConfig != nil
		loop := g.cfg.EventLoop && !tlsOn
		var h fasthttp.RequestHandler
		if loop {
			h = g.handoffHandler(b.l)
		}
		srv := g.newServer(b.l, h)
		g.servers = append(g.servers, srv)
		g.h2[b.l].start()
		if loop {
			fd, err := takeListener(ln)
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				closeLoopListeners(loopLns)
				return fmt.Errorf("gateway: %s listener on %s: %w", b.l, b.addr, err)
			}
			loopLns = append(loopLns, loopListener{fd: fd, l: b.l, lim: lim, srv: srv})
			g.log.WithFields(logrus.Fields{"listener": b.l.String(), "addr": g.addrs[b.l].String(), "event_loop": true}).Info("gateway serving")
			continue
		}
		var sl net.Listener = lim
		if tlsOn {
			c := g.tlsConfig.Clone()
			c.NextProtos = []string{"h2", "http/1.1"} // h2 is recognised by its preface (h2.go)
			sl = tls.NewListener(sl, c)
		}
		sl = &sniffListener{Listener: sl, h2: g.h2[b.l]} // HTTP/2 connections go to h2.go
		go func() {
			if err := srv.Serve(sl); err != nil {
				g.log.WithError(err).WithField("listener", b.l.String()).Error("gateway listener stopped")
			}
		}()
		g.log.WithFields(logrus.Fields{"listener": b.l.String(), "addr": sl.Addr().String(), "tls": tlsOn}).Info("gateway serving")
	}
	if len(loopLns) > 0 {
		ls, err := g.startLoops(loopLns)
		if err != nil {
			closeLoopListeners(loopLns)
			return fmt.Errorf("gateway: event loops: %w", err)
		}
		g.loops = ls
	}
	if g.servers == nil {
		g.servers = []*fasthttp.Server{} // started, with no listener of its own
	}
	if !g.cfg.DisableServicePorts {
		g.svcMu.Lock()
		g.started = true
		g.svcMu.Unlock()
		g.stopRetry = make(chan struct{})
		go g.retryBinds(g.stopRetry)
		g.syncServices(g.cur.Load().table)
	}
	return nil
}

// Addr returns where listener l is bound, once Start has run; nil when it
// has no address.
func (g *Gateway) Addr(l Listener) net.Addr {
	g.srvMu.Lock()
	defer g.srvMu.Unlock()
	return g.addrs[l]
}

// Shutdown stops accepting on both listeners, waits for requests in flight
// until ctx ends, then closes idle backend connections (for good: a
// Gateway is not restarted). Hijacked (WebSocket) connections are not
// waited for.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.srvMu.Lock()
	servers := append([]*fasthttp.Server(nil), g.servers...)
	ls := g.loops
	if g.stopRetry != nil {
		close(g.stopRetry)
		g.stopRetry = nil
	}
	g.srvMu.Unlock()
	servers = append(servers, g.shutdownServices()...)
	// Both at once: a listener still accepting while the other drains
	// would take new requests during the whole wait.
	errs := make([]error, len(servers)+len(g.h2)+1)
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ShutdownWithContext(ctx); err != nil {
				errs[i] = fmt.Errorf("gateway: shutdown: %w", err)
			}
		}()
	}
	if ls != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ls.shutdown(ctx.Done()); err != nil {
				errs[len(errs)-1] = err
			}
		}()
	}
	for i, s := range g.h2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.shutdown(ctx); err != nil {
				errs[len(servers)+i] = fmt.Errorf("gateway: HTTP/2 shutdown: %w", err)
			}
		}()
	}
	wg.Wait()
	g.mu.Lock()
	for _, bs := range g.backends {
		bs.conns.close()
	}
	g.mu.Unlock()
	return errors.Join(errs...)
}
