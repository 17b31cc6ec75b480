package gateway

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
)

// stickyCookie is the cookie that keeps an HTTP client on one backend of a
// sticky app (HAPROXY_{n}_STICKY), marathon-lb's name for it. Its value
// hashes the task ID, so it names the backend without showing it.
const stickyCookie = "mesosphere_server_id"

func stickyValue(task string) string { return strconv.FormatUint(fnv64a([]byte(task)), 36) }

// fnv64a is FNV-1a, written out so hashing a client's address per request
// allocates nothing (hash/fnv's New64a does).
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

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
	ap       netip.AddrPort // valid when the host is an IP address: the event loops dial only those
	since    time.Time
	inFlight atomic.Int64
	// ejectedUntil is a UnixNano on the gateway clock; 0 or past means in
	// rotation.
	ejectedUntil atomic.Int64
	rate         *rateWindow
	requests     [len(codeClasses)]prometheus.Counter // resolved once: no label hashing per request
	conns        *connPool                            // kept-alive connections to this backend
	cookie       string                               // the sticky cookie's value naming it (last: the fields above are the hot ones)
}

func (g *Gateway) newBackendState(app string, b Backend, now time.Time) *backendState {
	bs := &backendState{
		Backend: b,
		addr:    b.addr(),
		cookie:  stickyValue(b.TaskID),
		since:   now,
		rate:    newRateWindow(int(g.cfg.Window / time.Second)),
		conns:   &connPool{max: g.cfg.MaxIdleConnsPerHost},
	}
	if ap, err := netip.ParseAddrPort(bs.addr); err == nil && ap.Addr().Zone() == "" {
		bs.ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	for i, c := range codeClasses {
		bs.requests[i] = g.m.requests.WithLabelValues(app, b.TaskID, c)
	}
	return bs
}

// pool is one port of one app's backends in one table.
type pool struct {
	app      *appState
	index    int
	opts     Options
	backends []*backendState
}

// policy is the pool's balancing: its own (HAPROXY_{n}_BALANCE) or the
// gateway's.
func (p *pool) policy(def string) string {
	switch p.opts.Balance {
	case appspec.BalanceRoundRobin:
		return RoundRobin
	case appspec.BalanceLeastConn:
		return LeastConn
	case appspec.BalanceSource:
		return Source
	}
	return def
}

// byCookie returns the backend a sticky cookie names, if it is in
// rotation and not in tried.
func (p *pool) byCookie(cookie []byte, now int64, tried []*backendState) *backendState {
	for _, b := range p.backends {
		if b.cookie == string(cookie) && b.ejectedUntil.Load() <= now && !contains(tried, b) {
			return b
		}
	}
	return nil
}

// pick chooses a backend in rotation that tried does not hold, or nil.
// hash is the client's address hashed, for Source.
func (p *pool) pick(policy string, now int64, tried []*backendState, hash uint64) *backendState {
	n := len(p.backends)
	if n == 0 {
		return nil
	}
	var start int
	if policy == Source {
		// The same client lands on the same backend while the set is
		// unchanged; an ejected one passes it to the next, as HAProxy's
		// map-based hashing does.
		start = int(hash % uint64(n))
		policy = RoundRobin
	} else {
		start = int((p.app.next.Add(1) - 1) % uint64(n))
	}
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

// errNoHealthyBackend means every backend of the app is ejected, or it has
// none.
var errNoHealthyBackend = errors.New("gateway: no healthy backend")

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
