//go:build linux

package gateway

import (
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/flotilla-sched/flotilla/internal/connlimit"
)

// What leaves an event loop for the goroutine path: a connection, with
// the bytes the loop read from it, and sometimes an answer begun.

// Why a connection leaves its loop for the goroutine path
// (flotilla_gateway_loop_handoffs_total's reason).
const (
	handoffRequest     = "request"      // a body, Upgrade, Expect or CONNECT
	handoffHTTP2       = "http2"        // h2c with prior knowledge
	handoffMalformed   = "malformed"    // a header fasthttp must answer (400, 431)
	handoffNoBackend   = "no_backend"   // none in rotation or left to try: routes are awaited there
	handoffBackendName = "backend_name" // the backend's host is a name to resolve
	handoffStream      = "stream"       // the answer's body streams
)

// handoff gives the client connection, with what it sent so far, to the
// listener's fasthttp server, which serves it from then on; p, if set, is
// a backend answer in progress for its first request (resume).
func (lp *evLoop) handoff(c *clientConn, p *pendingAnswer, why string) {
	lp.g.m.handoffs.WithLabelValues(c.ln.l.String(), why).Inc()
	lp.detach(c)
	nc, err := fdConn(c.fd)
	if err != nil {
		lp.g.log.WithError(err).Warn("gateway loop: handing a connection over failed; it is closed")
		unix.Close(c.fd)
		c.ln.lim.Release(c.ip)
		if p != nil {
			p.abandon()
		}
		return
	}
	hc := &handoffConn{prefacedConn: prefacedConn{Conn: nc, pre: append([]byte(nil), c.in...)}, lim: c.ln.lim, ip: c.ip, pending: p}
	sc := &sniffConn{Conn: hc, h2: lp.g.h2[c.ln.l]}
	srv := c.ln.srv
	go func() {
		if err := srv.ServeConn(sc); err != nil {
			lp.g.log.WithError(err).Debug("gateway: serving a handed-over connection")
		}
	}()
}

// fdConn makes a net.Conn of a socket the loop owned; fd is closed (the
// net.Conn has its own duplicate).
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "gateway-client")
	nc, err := net.FileConn(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return nc, err
}

// resumeElsewhere hands over a request whose answer streams: the client
// connection goes to fasthttp with the request still unread in it, the
// backend connection with the answer's head read, and the goroutine path
// passes the answer on as it does every streamed one.
func (lp *evLoop) resumeElsewhere(c *clientConn) {
	u := c.up
	st := c.st
	lp.tq.remove(&u.timer)
	lp.forget(u.fd)
	bnc, err := fdConn(u.fd)
	c.up, c.st, u.c = nil, nil, nil
	if err != nil {
		lp.g.log.WithError(err).Warn("gateway loop: handing a backend connection over failed")
		st.status = fasthttp.StatusBadGateway
		lp.g.finish(st)
		releaseState(st)
		lp.closeClient(c)
		return
	}
	p := &pendingAnswer{g: lp.g, st: st,
		bc: newBackendConn(&prefacedConn{Conn: bnc, pre: append([]byte(nil), u.in[u.head:]...)})}
	c.ctx.Response.Header.CopyTo(&p.head)
	lp.handoff(c, p, handoffStream)
}

// pendingAnswer is an answer the loop began and the goroutine path
// finishes: the request state, the backend connection (the body next on
// it) and the response head already read.
type pendingAnswer struct {
	g    *Gateway
	st   *reqState
	bc   *backendConn
	head fasthttp.ResponseHeader
}

// abandon ends the request when no request of the client came to take
// the answer (handoff failed, or the connection closed first); it runs at
// most once, since take hands the answer out once.
func (p *pendingAnswer) abandon() {
	p.bc.Close()
	p.g.finish(p.st)
	releaseState(p.st)
}

// handoffConn is a client connection handed from a loop to fasthttp: its
// first reads return what the loop had read, and its connection slot is
// given back on Close.
type handoffConn struct {
	prefacedConn
	lim     *connlimit.Listener
	ip      netip.Addr
	once    sync.Once
	mu      sync.Mutex
	pending *pendingAnswer
}

func (c *handoffConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.lim.Release(c.ip)
		if p := c.take(); p != nil {
			p.abandon()
		}
	})
	return err
}

// take returns the pending answer once.
func (c *handoffConn) take() *pendingAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	c.pending = nil
	return p
}

func (c *handoffConn) CloseWrite() error {
	return c.Conn.(interface{ CloseWrite() error }).CloseWrite()
}

// pendingOf returns the answer the loop left for the request ctx serves,
// once.
func pendingOf(ctx *fasthttp.RequestCtx) *pendingAnswer {
	c := ctx.Conn()
	if sc, ok := c.(*sniffConn); ok {
		if hc, ok := sc.Conn.(*handoffConn); ok && hc.pending != nil {
			return hc.take()
		}
	}
	return nil
}

// resume finishes, on fasthttp's goroutine, an answer the loop began: the
// same respond as every answer, with the head the loop read.
func (g *Gateway) resume(ctx *fasthttp.RequestCtx, p *pendingAnswer) {
	st := p.st
	st.ctx, st.wall, st.bc = ctx, ctx.Time(), p.bc
	st.served = st.held
	p.head.CopyTo(&ctx.Response.Header)
	h := &ctx.Request.Header
	head := string(h.Method()) == fasthttp.MethodHead
	ctx.Response.SkipBody = head
	defer func() { g.handlerDone(st, st.pool.app.id, recover()) }()
	g.respond(st, head, !h.IsHTTP11())
}
