package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// appState outlives route tables: the round-robin position and the latency
// window carry over when an app's backends change.
type appState struct {
	id       string
	next     atomic.Uint64
	latency  *latencyWindow
	inFlight prometheus.Gauge
	duration prometheus.Observer
	ejected  prometheus.Counter
	noTask   [len(codeClasses)]prometheus.Counter // answers no backend gave
}

func (g *Gateway) newAppState(id string) *appState {
	a := &appState{
		id:       id,
		latency:  newLatencyWindow(int(g.cfg.Window / time.Second)),
		inFlight: g.m.inFlight.WithLabelValues(id),
		duration: g.m.duration.WithLabelValues(id),
		ejected:  g.m.ejections.WithLabelValues(id),
	}
	for i, c := range codeClasses {
		a.noTask[i] = g.m.requests.WithLabelValues(id, "", c)
	}
	return a
}

// backendState outlives route tables too, so an ejected backend stays
// ejected across updates and least-conn sees requests that started earlier.
type backendState struct {
	Backend
	addr     string
	since    time.Time
	inFlight atomic.Int64
	// ejectedUntil is a UnixNano on the gateway clock; 0 or past means in
	// rotation.
	ejectedUntil atomic.Int64
	rate         *rateWindow
	requests     [len(codeClasses)]prometheus.Counter // resolved once: no label hashing per request
	conns        *connPool                            // the lean path's keep-alive connections
}

func (g *Gateway) newBackendState(app string, b Backend, now time.Time) *backendState {
	bs := &backendState{
		Backend: b,
		addr:    b.addr(),
		since:   now,
		rate:    newRateWindow(int(g.cfg.Window / time.Second)),
		conns:   &connPool{max: g.cfg.MaxIdleConnsPerHost},
	}
	for i, c := range codeClasses {
		bs.requests[i] = g.m.requests.WithLabelValues(app, b.TaskID, c)
	}
	return bs
}

// pool is one app's backends in one table.
type pool struct {
	app      *appState
	backends []*backendState
}

// pick chooses a backend in rotation that tried does not hold, or nil.
func (p *pool) pick(policy string, now int64, tried []*backendState) *backendState {
	n := len(p.backends)
	if n == 0 {
		return nil
	}
	start := int((p.app.next.Add(1) - 1) % uint64(n))
	var best *backendState
	for i := 0; i < n; i++ {
		b := p.backends[(start+i)%n]
		if b.ejectedUntil.Load() > now || contains(tried, b) {
			continue
		}
		if policy == RoundRobin {
			return b
		}
		// Least connections; starting from the rotating position spreads
		// ties instead of always favouring the first backend.
		if best == nil || b.inFlight.Load() < best.inFlight.Load() {
			best = b
		}
	}
	return best
}

func contains(bs []*backendState, b *backendState) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// reqState follows one request through the reverse proxy (in its context).
type reqState struct {
	listener Listener
	pool     *pool
	// held is the backend whose in-flight count this request holds until
	// its response has been copied; served is who answered, for metrics.
	held, served *backendState
	status       int
	upgraded     bool
	// body is the lean path's response body, closed at the end in case a
	// panic kept the proxy from closing it, so its connection is not leaked.
	body *leanBody
}

type ctxKey struct{}

// notFoundBody is the one answer for every request without a route. It
// names nothing from the request, so an internal app's host on the external
// listener is indistinguishable from a host that does not exist.
const notFoundBody = "flotilla gateway: no route for this host and path\n"

func notFound(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(notFoundBody)))
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, notFoundBody)
}

func (g *Gateway) handler(l Listener) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(l, w, r) })
}

func (g *Gateway) serve(l Listener, w http.ResponseWriter, r *http.Request) {
	// One load: the table and pools stay this request's even if Update
	// swaps them while it runs.
	snap := g.cur.Load()
	ar := snap.table.match(l, requestHost(r.Host), r.URL.Path)
	if ar == nil {
		g.m.unrouted.WithLabelValues(l.String()).Inc()
		notFound(w)
		return
	}
	p := snap.pools[ar.id]
	st := &reqState{listener: l, pool: p}
	start := g.clock.Now()
	p.app.inFlight.Inc()
	defer func() {
		rec := recover()
		if rec != nil && rec != http.ErrAbortHandler {
			g.log.WithFields(logrus.Fields{"app": ar.id, "panic": fmt.Sprint(rec), "stack": string(debug.Stack())}).Error("gateway handler panicked")
			if st.status == 0 {
				st.status = http.StatusInternalServerError
				http.Error(w, "flotilla gateway: internal error", http.StatusInternalServerError)
			}
		}
		g.finish(st, start)
		if rec == http.ErrAbortHandler {
			// The proxy aborts a response it cannot finish copying; let
			// net/http close the connection as it expects.
			panic(rec)
		}
	}()
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
}

func (g *Gateway) finish(st *reqState, start time.Time) {
	if st.body != nil {
		st.body.Close()
	}
	now := g.clock.Now()
	a := st.pool.app
	a.inFlight.Dec()
	if st.held != nil {
		st.held.inFlight.Add(-1)
	}
	status := st.status
	if status == 0 {
		status = 499 // the client went away before any answer
	}
	c := codeClass(status)
	if b := st.served; b != nil {
		b.requests[c].Inc()
		b.rate.add(now.Unix())
	} else {
		a.noTask[c].Inc()
	}
	if !st.upgraded {
		d := now.Sub(start)
		a.duration.Observe(d.Seconds())
		a.latency.add(now.Unix(), d)
	}
}

// rewrite prepares the outgoing request; the backend is chosen later, per
// attempt, by retryTransport.
func rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(ctxKey{}).(*reqState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "backend.invalid"
	// Backends see the name the client asked for, as behind marathon-lb.
	pr.Out.Host = pr.In.Host
	if xff, ok := pr.In.Header["X-Forwarded-For"]; ok && st.listener == Internal {
		// Internal callers (including a load balancer in front of the
		// external network) are trusted to report the chain so far; on
		// the external listener a client could forge it, so it starts over.
		pr.Out.Header["X-Forwarded-For"] = xff
	}
	pr.SetXForwarded()
}

func modifyResponse(resp *http.Response) error {
	st := resp.Request.Context().Value(ctxKey{}).(*reqState)
	st.status = resp.StatusCode
	st.upgraded = resp.StatusCode == http.StatusSwitchingProtocols
	return nil
}

// errNoHealthyBackend means every backend of the app is ejected, or it has
// none.
var errNoHealthyBackend = errors.New("gateway: no healthy backend")

// retryTransport picks a backend for each attempt. A connection that
// cannot be made ejects that backend, and an idempotent request whose body
// was never read goes to another one.
type retryTransport struct{ g *Gateway }

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g := t.g
	st := req.Context().Value(ctxKey{}).(*reqState)
	// ReverseProxy sends a nil body when the request has none, and that is
	// the only body that can be sent twice.
	retryable := req.Body == nil || req.Body == http.NoBody
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
	default:
		retryable = false
	}
	lean := !g.cfg.TransportOnly && leanEligible(req)
	var triedBuf [DefaultMaxAttempts]*backendState
	tried := triedBuf[:0]
	for attempt := 0; ; attempt++ {
		now := g.clock.Now().UnixNano()
		b := st.pool.pick(g.cfg.Balance, now, tried)
		if b == nil {
			return nil, errNoHealthyBackend
		}
		b.inFlight.Add(1)
		out := *req
		u := *req.URL
		u.Host = b.addr
		out.URL = &u
		var resp *http.Response
		var err error
		if lean {
			resp, err = g.leanRoundTrip(&out, b)
		} else {
			resp, err = g.transport.RoundTrip(&out)
		}
		if err == nil {
			st.held, st.served = b, b
			st.body, _ = resp.Body.(*leanBody)
			return resp, nil
		}
		b.inFlight.Add(-1)
		if !isConnectFailure(err) {
			st.served = b // it saw the request, so the answer counts as its own
			return nil, err
		}
		g.eject(st.pool.app, b, now, err)
		tried = append(tried, b)
		if !retryable || attempt+1 >= g.cfg.MaxAttempts || req.Context().Err() != nil {
			return nil, err
		}
	}
}

// isConnectFailure is true when no connection to the backend could be made
// (so the backend never saw the request), or when a new one was dropped
// before any answer.
func isConnectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, errBackendDropped)
}

func (g *Gateway) eject(a *appState, b *backendState, now int64, err error) {
	until := now + int64(g.cfg.EjectFor)
	for {
		cur := b.ejectedUntil.Load()
		if cur > now {
			return // already ejected by a concurrent request
		}
		if b.ejectedUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	a.ejected.Inc()
	g.log.WithFields(logrus.Fields{"app": a.id, "task": b.TaskID, "addr": b.addr, "for": g.cfg.EjectFor.String()}).
		WithError(err).Warn("backend ejected")
}

// proxyError answers when no backend response came back. Its bodies name
// the app so that whoever sees them knows where to look.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(ctxKey{}).(*reqState)
	app := st.pool.app.id
	var status int
	var msg string
	var ne net.Error
	switch {
	case errors.Is(err, errNoHealthyBackend):
		status, msg = http.StatusServiceUnavailable, fmt.Sprintf("flotilla gateway: app %s has no healthy backend\n", app)
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, context.Canceled):
		status, msg = 499, "" // nobody is listening any more
	case errors.As(err, &ne) && ne.Timeout():
		status, msg = http.StatusGatewayTimeout, fmt.Sprintf("flotilla gateway: app %s: backend did not answer in time\n", app)
	default:
		status, msg = http.StatusBadGateway, fmt.Sprintf("flotilla gateway: app %s: backend failed\n", app)
	}
	st.status = status
	if status != 499 {
		fields := logrus.Fields{"app": app, "status": status}
		if st.served != nil {
			fields["task"] = st.served.TaskID
		}
		g.log.WithFields(fields).WithError(err).Warn("proxy error")
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

// bufferPool reuses the proxy's copy buffers instead of allocating 32 KiB
// per request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
