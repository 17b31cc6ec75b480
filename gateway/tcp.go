package gateway

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// TCP mode (HAPROXY_{n}_MODE=tcp, marathon-lb's default for a port without
// a vhost): each connection to the service port is spliced to one backend,
// bytes both ways, until both sides have closed. Between two plain TCP
// connections io.Copy becomes splice(2) on Linux, so the bytes never
// enter the gateway's memory; that is why the client connection is not
// wrapped in connlimit's type here (a wrapper would turn the splice back
// into a copy through a buffer).

// acceptTCP serves one TCP-mode listener until it is closed. Running out of
// descriptors is waited out, as internal/connlimit does for the HTTP
// listeners, rather than ending the loop.
func (g *Gateway) acceptTCP(sl *svcListener, ln net.Listener) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isOutOfDescriptors(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				g.log.WithError(err).WithField("port", sl.key.port).Warn("service port accept failed; backing off")
				time.Sleep(backoff)
				continue
			}
			g.log.WithError(err).WithField("port", sl.key.port).Error("service port accept stopped")
			return
		}
		backoff = 0
		go g.serveTCP(sl, c)
	}
}

// serveTCP picks a backend for one client connection and pipes it. A
// backend that refuses the connection is ejected (passive health, as on the
// HTTP side) and the next one tried, up to Config.MaxAttempts.
func (g *Gateway) serveTCP(sl *svcListener, c net.Conn) {
	snap := g.cur.Load()
	sr := snap.table.services[sl.key.port]
	if sr == nil || sr.mode == "http" {
		c.Close() // the table moved on and this listener is closing
		return
	}
	p := snap.pools[sr.app.key]
	am := sl.m.forApp(sr.app.id)
	var hash uint64
	policy := p.policy(g.cfg.Balance)
	if policy == Source || p.opts.Sticky {
		// Sticky in TCP mode is affinity by client address: there is no
		// cookie to carry.
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			hash = fnv64a(a.IP)
		}
		policy = Source
	}
	var triedBuf [DefaultMaxAttempts]*backendState
	tried := triedBuf[:0]
	var bc net.Conn
	var b *backendState
	for attempt := 0; ; attempt++ {
		now := g.clock.Now().UnixNano()
		b = p.pick(policy, now, tried, hash)
		if b == nil {
			am.noBackend.Inc()
			c.Close()
			return
		}
		var err error
		bc, err = g.tcpDialer.Dial("tcp", b.addr)
		if err == nil {
			break
		}
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			// Out of local ports: no fault of the backend's, so no
			// ejection (which would turn a burst into 503s for EjectFor).
			am.failed.Inc()
			g.log.WithFields(logrus.Fields{"app": sr.app.id, "port": sl.key.port}).WithError(err).Warn("tcp: no local port to reach the backend")
			c.Close()
			return
		}
		g.eject(p.app, b, now, err)
		tried = append(tried, b)
		if attempt+1 >= g.cfg.MaxAttempts {
			am.failed.Inc()
			g.log.WithFields(logrus.Fields{"app": sr.app.id, "port": sl.key.port}).WithError(err).Warn("tcp: no backend took the connection")
			c.Close()
			return
		}
	}
	am.ok.Inc()
	b.inFlight.Add(1)
	sl.m.open.Inc()
	// Only the client side is tracked: closing it at Shutdown fails both
	// copies, which then close the backend side too.
	g.track(c, true)
	in, out := splice(c, bc)
	g.track(c, false)
	sl.m.open.Dec()
	b.inFlight.Add(-1)
	sl.m.bytesIn.Add(float64(in))
	sl.m.bytesOut.Add(float64(out))
}

// splice copies client→backend and backend→client until both directions
// have ended, passing a half-close on (one side's end of stream becomes
// a FIN to the other, which may still answer). An error on either side
// (a reset) ends both at once, since the other copy might otherwise wait
// for ever on a peer that will never hear back.
func splice(client, backend net.Conn) (in, out int64) {
	var failed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := io.Copy(backend, client)
		in = n
		endDirection(backend, client, err, &failed)
	}()
	n, err := io.Copy(client, backend)
	out = n
	endDirection(client, backend, err, &failed)
	<-done
	client.Close()
	backend.Close()
	return in, out
}

// endDirection ends one copy: a clean end of stream is passed on as a
// half-close; an error closes both connections.
func endDirection(dst, src net.Conn, err error, failed *atomic.Bool) {
	if err == nil && !failed.Load() {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
	}
	failed.Store(true)
	// One side reset (or failed): reset the other too, as the end of a
	// stream is passed on as a FIN. It also leaves no TIME_WAIT behind on
	// the gateway's side of a connection it did not end cleanly.
	for _, c := range []net.Conn{dst, src} {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

func isOutOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func (g *Gateway) track(c net.Conn, add bool) {
	g.connsMu.Lock()
	if add {
		if g.pipes == nil {
			g.pipes = map[net.Conn]struct{}{}
		}
		g.pipes[c] = struct{}{}
	} else {
		delete(g.pipes, c)
	}
	g.connsMu.Unlock()
}

// svcMetrics are one service port's series, resolved once per port (and
// per app for the connection counters) so a connection hashes no labels.
type svcMetrics struct {
	port              string
	m                 *metrics
	open              prometheus.Gauge
	bytesIn, bytesOut prometheus.Counter
	app               atomic.Pointer[svcAppMetrics]
}

type svcAppMetrics struct {
	id                    string
	ok, failed, noBackend prometheus.Counter
}

func (m *metrics) forPort(port uint32) *svcMetrics {
	p := strconv.FormatUint(uint64(port), 10)
	return &svcMetrics{port: p, m: m,
		open:     m.svcOpen.WithLabelValues(p),
		bytesIn:  m.svcBytes.WithLabelValues(p, "in"),
		bytesOut: m.svcBytes.WithLabelValues(p, "out"),
	}
}

func (s *svcMetrics) forApp(id string) *svcAppMetrics {
	if a := s.app.Load(); a != nil && a.id == id {
		return a
	}
	a := &svcAppMetrics{id: id,
		ok:        s.m.svcConns.WithLabelValues(s.port, id, "ok"),
		failed:    s.m.svcConns.WithLabelValues(s.port, id, "backend_failed"),
		noBackend: s.m.svcConns.WithLabelValues(s.port, id, "no_backend"),
	}
	s.app.Store(a)
	return a
}
