package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/valyala/fasthttp"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Service ports (marathon-lb's frontends, one per app port): each route
// table lists the ports to serve; syncServices opens the listeners the
// table wants and closes those it no longer does, leaving every other
// listener and connection alone. A port that cannot be bound is logged,
// counted and tried again every Config.BindRetry; it never stops the
// gateway or another port.

// svcKey is one service-port listener. A change of mode or certificate is
// a new listener: an HTTP server cannot turn into a byte pipe.
type svcKey struct {
	host string
	port uint32
	mode string
	cert string
}

func (k svcKey) addr() string {
	return net.JoinHostPort(k.host, strconv.FormatUint(uint64(k.port), 10))
}

type svcListener struct {
	key svcKey
	// l is the listener whose rules apply: External when bound on the
	// external listener's host (X-Forwarded-For starts afresh there).
	l    Listener
	ln   net.Listener
	srv  *fasthttp.Server // HTTP mode
	done chan struct{}    // closed when the accept loop has ended
	m    *svcMetrics
}

type bindFailure struct {
	retryAt time.Time // gateway clock
	err     string
}

// services is the Gateway's service-port state, under svcMu.
type services struct {
	svcMu   sync.Mutex
	started bool
	stopped bool
	open    map[svcKey]*svcListener
	failed  map[svcKey]bindFailure
	pipes   map[net.Conn]struct{} // TCP-mode pipes, closed at Shutdown
	connsMu sync.Mutex
}

// serviceHosts returns the hosts a service port binds on: the internal
// listener's host, and the external one's for external services. When both
// listeners share an address, or one is a wildcard that covers the other,
// the port is bound once, on the wider of them: two binds would collide.
func (g *Gateway) serviceHosts(external bool) []struct {
	host string
	l    Listener
} {
	type hl = struct {
		host string
		l    Listener
	}
	in, ex := addrHost(g.cfg.InternalAddr), addrHost(g.cfg.ExternalAddr)
	var out []hl
	if g.cfg.InternalAddr != "" {
		out = append(out, hl{in, Internal})
	}
	if external && g.cfg.ExternalAddr != "" {
		if len(out) == 1 && (in == ex || unspecified(in) || unspecified(ex)) {
			if unspecified(ex) || in == ex {
				out[0] = hl{ex, External}
			}
			return out
		}
		out = append(out, hl{ex, External})
	}
	return out
}

func addrHost(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return h
}

func unspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// syncServices makes the open service-port listeners those t wants.
func (g *Gateway) syncServices(t *Table) {
	if g.cfg.DisableServicePorts {
		return
	}
	g.svcMu.Lock()
	defer g.svcMu.Unlock()
	if !g.started || g.stopped {
		return
	}
	want := map[svcKey]*serviceRoute{}
	wantL := map[svcKey]Listener{}
	for _, sr := range t.services {
		mode := sr.mode
		if mode != appspec.ModeHTTP {
			mode = appspec.ModeTCP
		}
		for _, h := range g.serviceHosts(sr.external) {
			k := svcKey{host: h.host, port: sr.port, mode: mode, cert: sr.cert}
			want[k], wantL[k] = sr, h.l
		}
	}
	for k, sl := range g.open {
		if want[k] == nil {
			delete(g.open, k)
			g.closeService(sl)
		}
	}
	for k := range g.failed {
		if want[k] == nil {
			delete(g.failed, k)
		}
	}
	now := g.clock.Now()
	for k, sr := range want {
		if g.open[k] != nil {
			continue
		}
		if f, ok := g.failed[k]; ok && now.Before(f.retryAt) {
			continue
		}
		sl, err := g.openService(k, wantL[k])
		if err != nil {
			g.m.svcBindErrors.WithLabelValues(strconv.FormatUint(uint64(k.port), 10), sr.app.id).Inc()
			if f, ok := g.failed[k]; !ok || f.err != err.Error() {
				g.log.WithFields(logrus.Fields{"app": sr.app.id, "port": k.port, "addr": k.addr(), "retry_in": g.cfg.BindRetry.String()}).
					WithError(err).Warn("service port not bound; retrying")
			}
			g.failed[k] = bindFailure{retryAt: now.Add(g.cfg.BindRetry), err: err.Error()}
			continue
		}
		if _, ok := g.failed[k]; ok {
			g.log.WithFields(logrus.Fields{"app": sr.app.id, "port": k.port, "addr": k.addr()}).Info("service port bound after earlier failures")
		}
		delete(g.failed, k)
		g.open[k] = sl
	}
	g.m.svcListeners.Set(float64(len(g.open)))
}

// retryBinds tries failed service ports again until the gateway stops.
func (g *Gateway) retryBinds(stop <-chan struct{}) {
	tk := g.clock.NewTicker(g.cfg.BindRetry)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C():
			g.svcMu.Lock()
			n := len(g.failed)
			g.svcMu.Unlock()
			if n > 0 {
				g.syncServices(g.cur.Load().table)
			}
		}
	}
}

func (g *Gateway) openService(k svcKey, l Listener) (*svcListener, error) {
	var tlsConf *tls.Config
	if k.cert != "" {
		// marathon-lb's crt files hold certificate and key in one PEM.
		cert, err := tls.LoadX509KeyPair(k.cert, k.cert)
		if err != nil {
			return nil, fmt.Errorf("certificate %s (HAPROXY_{n}_SSL_CERT): %w", k.cert, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if k.mode == appspec.ModeHTTP {
			tlsConf.NextProtos = []string{"http/1.1"}
		}
	}
	// No TCP keep-alive probes on service ports (HAProxy sends none
	// unless told to): setting them up costs three system calls per
	// connection, a tenth of a short connection's cost.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", k.addr())
	if err != nil {
		return nil, err
	}
	sl := &svcListener{key: k, l: l, ln: ln, done: make(chan struct{}), m: g.m.forPort(k.port)}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	if k.mode == appspec.ModeHTTP {
		sl.srv = g.newServer(l, func(ctx *fasthttp.RequestCtx) { g.serveServiceHTTP(sl, ctx) })
		go func() {
			defer close(sl.done)
			if err := sl.srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				g.log.WithError(err).WithField("port", k.port).Error("service port listener stopped")
			}
		}()
	} else {
		go func() {
			defer close(sl.done)
			g.acceptTCP(sl, ln)
		}()
	}
	g.log.WithFields(logrus.Fields{"port": k.port, "addr": ln.Addr().String(), "mode": k.mode, "tls": tlsConf != nil}).Info("service port serving")
	return sl, nil
}

// closeService stops accepting on a service port. Connections in progress
// go on: an app leaving does not cut what it is still answering.
func (g *Gateway) closeService(sl *svcListener) {
	if err := sl.ln.Close(); err != nil {
		g.log.WithError(err).WithField("port", sl.key.port).Warn("closing service port")
	}
	g.log.WithFields(logrus.Fields{"port": sl.key.port, "addr": sl.key.addr()}).Info("service port closed")
}

// ServiceAddrs lists the addresses service ports are bound on, sorted by
// port; for tests and the banner.
func (g *Gateway) ServiceAddrs() []string {
	g.svcMu.Lock()
	defer g.svcMu.Unlock()
	out := make([]string, 0, len(g.open))
	for _, sl := range g.open {
		out = append(out, sl.ln.Addr().String())
	}
	sort.Strings(out)
	return out
}

func (g *Gateway) serveServiceHTTP(sl *svcListener, ctx *fasthttp.RequestCtx) {
	snap := g.cur.Load()
	sr := snap.table.services[sl.key.port]
	if sr == nil || sr.mode != appspec.ModeHTTP {
		// The table moved on and this listener is closing.
		g.unrouted[sl.l].Inc()
		notFound(ctx)
		return
	}
	g.serveRoute(sl.l, ctx, sr.app, snap.pools[sr.app.key])
}

// shutdownServices closes every service listener and TCP pipe, and waits
// for the HTTP ones' requests in flight through stop.
func (g *Gateway) shutdownServices() []*fasthttp.Server {
	g.svcMu.Lock()
	g.stopped = true
	open := g.open
	g.open = map[svcKey]*svcListener{}
	g.svcMu.Unlock()
	var srvs []*fasthttp.Server
	for _, sl := range open {
		if sl.srv != nil {
			srvs = append(srvs, sl.srv)
			continue
		}
		g.closeService(sl)
		<-sl.done
	}
	g.connsMu.Lock()
	for c := range g.pipes {
		c.Close()
	}
	g.connsMu.Unlock()
	return srvs
}
