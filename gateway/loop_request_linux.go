//go:build linux

package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"

	"github.com/sirupsen/logrus"
	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// A request's way through an event loop: read, parsed, routed, sent to a
// backend, answered; and its ends when something fails (the goroutine
// path's answers, from the same functions).

func (lp *evLoop) clientEvent(c *clientConn, ev uint32) {
	if ev&unix.EPOLLOUT != 0 && len(c.pend) > 0 && !lp.flush(c) {
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 || c.closed {
		return
	}
	busy := c.st != nil || len(c.pend) > 0
	if busy && ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// A client that leaves while its answer is awaited ends the
		// request (499), as the goroutine path's watch does.
		lp.clientGone(c)
		return
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// The client's end of stream came with its request: it is
		// answered, and then the connection closes (no edge says so again).
		c.hup = true
	}
	if !lp.readClient(c) {
		if busy {
			lp.clientGone(c)
		} else {
			lp.closeClient(c)
		}
		return
	}
	lp.serveNext(c)
}

// readClient reads what the socket holds into c.in, until a short read
// (the socket is drained, so the next arrival is a new edge) or a full
// header's worth is buffered (unread: the rest waits); false when the
// client closed or failed.
func (lp *evLoop) readClient(c *clientConn) bool {
	for {
		room := lp.g.cfg.MaxHeaderBytes + 1 - len(c.in)
		if room <= 0 {
			c.unread = true
			return true
		}
		want := min(room, len(lp.buf))
		n, err := rawRead(c.fd, lp.buf[:want])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			c.unread = false
			return true
		}
		if n <= 0 {
			return false
		}
		if !c.reading {
			c.reading = true
			lp.setDeadline(c, lp.now.Add(lp.g.cfg.ReadHeaderTimeout))
		}
		c.in = append(c.in, lp.buf[:n]...)
		if n < want {
			c.unread = false
			return true
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// serveNext starts the requests c.in holds, one at a time: the next once
// the answer to this one is out.
func (lp *evLoop) serveNext(c *clientConn) {
	for !c.closed && c.st == nil && len(c.pend) == 0 {
		if c.unread && !lp.readClient(c) {
			lp.closeClient(c)
			return
		}
		if len(c.in) == 0 {
			return
		}
		if len(c.in) >= 4 && string(c.in[:4]) == h2Preface[:4] {
			lp.handoff(c, nil, handoffHTTP2) // HTTP/2 with prior knowledge (h2.go)
			return
		}
		end := bytes.Index(c.in, crlfcrlf)
		if end < 0 {
			if len(c.in) > lp.g.cfg.MaxHeaderBytes || bytes.Contains(c.in, []byte("\n\n")) {
				lp.handoff(c, nil, handoffMalformed) // fasthttp answers 431, or reads bare LFs
			}
			return
		}
		lp.startRequest(c, end+4)
	}
}

// startRequest parses the request head (n bytes of c.in) and sends it on.
func (lp *evLoop) startRequest(c *clientConn, n int) {
	ctx := c.ctx
	ctx.Request.Reset()
	ctx.Response.Reset()
	lp.src.Reset(c.in[:n])
	lp.br.Reset(&lp.src)
	h := &ctx.Request.Header
	if err := h.Read(lp.br); err != nil || lp.br.Buffered() != 0 {
		lp.handoff(c, nil, handoffMalformed) // fasthttp answers what is wrong with it
		return
	}
	// What the loop does not do goes to fasthttp whole: a body (a
	// length, or chunks: fasthttp refuses any other transfer coding), an
	// Upgrade, Expect, CONNECT. One pass over the header block finds the
	// rare headers, for this and for the rewrites.
	hs := scanRequestHeaders(h.RawHeaders())
	length := h.ContentLength()
	m := h.Method()
	if (length != 0 && length != -2) || hs.expect || (hs.hop && len(h.Peek(fasthttp.HeaderUpgrade)) > 0) ||
		string(m) == fasthttp.MethodConnect {
		lp.handoff(c, nil, handoffRequest)
		return
	}
	get, head := string(m) == fasthttp.MethodGet, string(m) == fasthttp.MethodHead
	c.req = loopReq{
		head:      head,
		http10:    !h.IsHTTP11(),
		retryable: get || head || string(m) == fasthttp.MethodOptions || string(m) == fasthttp.MethodPut || string(m) == fasthttp.MethodDelete,
		resend:    get || head || string(m) == fasthttp.MethodOptions || string(m) == fasthttp.MethodTrace,
	}
	c.reqLen = n
	c.reading = false
	lp.clearDeadline(c)
	c.closeAfter = c.closeAfter || h.ConnectionClose()
	l := c.ln.l
	snap := lp.g.cur.Load()
	ar := snap.table.match(l, requestHost(b2s(h.Host())), b2s(ctx.Path()))
	if ar == nil {
		lp.g.unrouted[l].Inc()
		if !snap.routed {
			plainAnswer(ctx, fasthttp.StatusServiceUnavailable, noViewBody)
			ctx.Response.Header.Set("Retry-After", "1")
		} else {
			notFound(ctx)
		}
		lp.writeAnswer(c, &ctx.Response, ctx.Response.Body(), false)
		return
	}
	p := snap.pools[ar.key]
	if p.opts.RedirectToHTTPS {
		redirectToHTTPS(ctx)
		lp.writeAnswer(c, &ctx.Response, nil, false)
		return
	}
	st := lp.g.acquireState(ctx, l, p)
	st.pool.app.inFlight.Inc()
	c.st = st
	st.start = lp.g.clock.Now()
	st.rewriteRequest(hs)
	lp.attempt(c)
}

// attempt sends the request to the next backend. A backend the loop cannot
// reach by itself (a name to resolve), or none left, hands the request to
// fasthttp before any backend has seen it: that path waits for newer
// routes (redispatch.go) and answers 502/503 as always.
func (lp *evLoop) attempt(c *clientConn) {
	st := c.st
	now := st.start
	if len(c.req.tried) > 0 {
		now = lp.g.clock.Now()
	}
	b := st.pick(lp.g.cfg.Balance, now.UnixNano(), c.req.tried)
	switch {
	case b == nil || len(c.req.tried) >= lp.g.cfg.MaxAttempts:
		lp.replay(c, handoffNoBackend)
		return
	case !b.ap.IsValid(): // a name: resolving it would block the loop
		lp.replay(c, handoffBackendName)
		return
	}
	lp.use(c, b, lp.idleConn(b))
}

// use sends c's request to b on u, a kept-alive connection, or on a new
// one when u is nil; b holds the request from now on.
func (lp *evLoop) use(c *clientConn, b *backendState, u *upConn) {
	b.inFlight.Add(1)
	c.st.held = b
	if u == nil {
		var err error
		if u, err = lp.dial(b); err != nil {
			lp.connectFailed(c, b, err)
			return
		}
	}
	u.c, c.up = c, u
	if u.connected {
		lp.send(u)
	}
}

// replay gives a request that no backend has seen to fasthttp, undoing
// what the loop counted for it.
func (lp *evLoop) replay(c *clientConn, why string) {
	st := c.st
	if st.held != nil {
		st.held.inFlight.Add(-1)
	}
	st.pool.app.inFlight.Dec()
	c.st = nil
	releaseState(st)
	lp.handoff(c, nil, why)
}

func (lp *evLoop) idleConn(b *backendState) *upConn {
	now := lp.now
	for {
		us := lp.idle[b]
		if len(us) == 0 {
			return nil
		}
		u := us[len(us)-1]
		lp.idle[b] = us[:len(us)-1]
		if now.Sub(u.idleSince) < idleConnTimeout {
			u.reused = true
			return u
		}
		lp.closeUp(u)
	}
}

// dial starts a non-blocking connect to b, whose address is an IP.
func (lp *evLoop) dial(b *backendState) (*upConn, error) {
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(b.ap.Port()), Addr: b.ap.Addr().As4()}
	family := unix.AF_INET
	if !b.ap.Addr().Is4() {
		sa, family = &unix.SockaddrInet6{Port: int(b.ap.Port()), Addr: b.ap.Addr().As16()}, unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, dialError(err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	u := &upConn{fd: fd, b: b, want: -1, timer: timer{idx: -1, fd: fd, up: true}}
	err = unix.Connect(fd, sa)
	switch err {
	case nil:
		u.connected = true
	case unix.EINPROGRESS:
	default:
		unix.Close(fd)
		return nil, dialError(err)
	}
	if err := lp.register(fd, evConn{up: u}); err != nil {
		unix.Close(fd)
		return nil, dialError(err)
	}
	if !u.connected {
		lp.setUpDeadline(u, lp.now.Add(lp.g.cfg.DialTimeout))
	}
	return u, nil
}

// dialError is what the dialer would have returned, so isConnectFailure,
// ejection and the logs see the same error either way.
func dialError(err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
}

// send writes the request head to u, whose client's request is in
// progress.
func (lp *evLoop) send(u *upConn) {
	c := u.c
	h := &c.ctx.Request.Header
	if len(h.Host()) == 0 {
		h.SetHost(u.b.addr) // HTTP/1.0 without Host; HTTP/1.1 backends insist on one
	}
	lp.out = h.AppendBytes(lp.out[:0])
	n, err := rawWrite(u.fd, lp.out)
	if err == nil && n < len(lp.out) {
		err = unix.EAGAIN // a fresh or idle connection takes a head whole
	}
	if err != nil {
		lp.upFailed(u, err)
		return
	}
	u.want, u.head, u.got = -1, 0, false
	lp.setUpDeadline(u, lp.now.Add(lp.g.cfg.ResponseHeaderTimeout))
}

func (lp *evLoop) upEvent(u *upConn, ev uint32) {
	if !u.connected {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if errno, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || errno != 0 {
			if err == nil {
				err = unix.Errno(errno)
			}
			c, b := u.c, u.b
			lp.closeUp(u)
			if c != nil && c.st != nil {
				c.up = nil
				lp.connectFailed(c, b, dialError(err))
			}
			return
		}
		u.connected = true
		lp.clearUpDeadline(u)
		if u.c != nil {
			lp.send(u)
		}
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	if u.c == nil {
		// An idle connection that became readable was closed by the
		// backend, or speaks out of turn: either way it is done.
		lp.closeUp(u)
		return
	}
	hup := ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for u.c != nil {
		n, err := rawRead(u.fd, lp.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if n <= 0 {
			if err == nil {
				err = io.EOF
			}
			lp.upFailed(u, err)
			return
		}
		u.got = true
		u.in = append(lp.room(u.in, n), lp.buf[:n]...)
		// A short read drained the socket, unless the peer's end of
		// stream came with it: no edge announces that again.
		short := n < len(lp.buf) && !hup
		lp.upData(u)
		if short {
			return
		}
	}
}

// upData goes on with the answer once u.in holds its head, and its body
// if short.
func (lp *evLoop) upData(u *upConn) {
	c := u.c
	st := c.st
	resp := &c.ctx.Response
	for u.want < 0 {
		end := bytes.Index(u.in[u.head:], crlfcrlf)
		if end < 0 {
			if len(u.in)-u.head > backendReadBuffer {
				lp.upFailed(u, errors.New("gateway: response header too large"))
			}
			return
		}
		lp.src.Reset(u.in[u.head : u.head+end+4])
		lp.br.Reset(&lp.src)
		if err := resp.Header.Read(lp.br); err != nil {
			lp.upFailed(u, err)
			return
		}
		code := resp.Header.StatusCode()
		if code == fasthttp.StatusSwitchingProtocols {
			lp.upFailed(u, errUnaskedSwitch)
			return
		}
		u.head += end + 4
		if code < 200 {
			continue // 100 Continue, 103 Early Hints: the real answer follows
		}
		// The head is the backend's answer: counted as its own even if
		// the body never comes.
		st.status, st.served = code, st.held
		length := resp.Header.ContentLength()
		switch {
		case c.req.head || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified:
			u.want = u.head
		case length >= 0 && length <= inlineBody:
			u.want = u.head + length
		default:
			// A long or unframed body streams: the goroutine path does
			// that (resume), from this answer on.
			lp.resumeElsewhere(c)
			return
		}
	}
	if len(u.in) < u.want {
		return
	}
	keep := !resp.Header.ConnectionClose() && len(u.in) == u.want
	st.answerHeaders(false) // st.served is set: the head came from it
	body := u.in[u.head:u.want]
	c.up, u.c = nil, nil
	lp.clearUpDeadline(u)
	// The request ends before its answer goes out, as on the goroutine
	// path (the handler returns, then fasthttp writes); and it leaves c
	// first, since writing may close the connection.
	c.st = nil
	lp.g.finish(st)
	releaseState(st)
	lp.writeAnswer(c, resp, body, true) // copies body out of u.in
	u.in = lp.trim(u.in)
	if keep {
		lp.putIdle(u)
	} else {
		lp.closeUp(u)
	}
	lp.serveNext(c)
}

func (lp *evLoop) putIdle(u *upConn) {
	if lp.ls.closing.Load() || len(lp.idle[u.b]) >= lp.g.cfg.MaxIdleConnsPerHost {
		lp.closeUp(u)
		return
	}
	u.idleSince = lp.now
	u.want, u.head = -1, 0
	lp.clearUpDeadline(u)
	lp.idle[u.b] = append(lp.idle[u.b], u)
}

// upFailed handles a backend connection that failed before the answer
// was complete.
func (lp *evLoop) upFailed(u *upConn, err error) {
	c, b := u.c, u.b
	reused, got, headDone := u.reused, u.got, u.want >= 0
	lp.closeUp(u)
	if c == nil || c.st == nil {
		return
	}
	c.up = nil
	if headDone {
		// The head was the backend's answer already: cut the client off.
		lp.cutOff(c, err)
		return
	}
	if !got && isStale(err) {
		if reused && c.req.resend {
			b.inFlight.Add(-1)
			c.st.held = nil
			lp.use(c, b, nil) // the same backend, on a new connection
			return
		}
		if !reused {
			lp.connectFailed(c, b, fmt.Errorf("%w: %w", errBackendDropped, err))
			return
		}
	}
	c.st.served = b
	lp.failRequest(c, err)
}

// connectFailed ejects b and tries another backend, as the goroutine path
// does.
func (lp *evLoop) connectFailed(c *clientConn, b *backendState, err error) {
	st := c.st
	b.inFlight.Add(-1)
	st.held = nil
	lp.g.eject(st.pool.app, b, lp.g.clock.Now().UnixNano(), err)
	c.req.tried = append(c.req.tried, b)
	if !c.req.retryable {
		st.served = b
		lp.failRequest(c, err)
		return
	}
	lp.attempt(c)
}

// failRequest answers when no backend answer came back (fail).
func (lp *evLoop) failRequest(c *clientConn, err error) {
	st := c.st
	lp.g.fail(st, err)
	if st.status == 499 {
		lp.closeClient(c)
		return
	}
	lp.answerWith(c, &c.ctx.Response, c.ctx.Response.Body(), false)
}

// cutOff ends a request whose answer had begun: the client connection
// closes, as the goroutine path does.
func (lp *evLoop) cutOff(c *clientConn, err error) {
	lp.g.logBackendError(c.st, err)
	lp.closeClient(c)
}

// recovered answers 500 for a request whose handling panicked, as the
// goroutine path does, and the connection goes on; a connection with no
// request is closed. Should that panic too, the connection is dropped.
func (lp *evLoop) recovered(fd int, rec any) {
	fields := logrus.Fields{"panic": fmt.Sprint(rec), "stack": string(debug.Stack())}
	var c *clientConn
	if fd < len(lp.conns) {
		if c = lp.conns[fd].c; c == nil {
			if u := lp.conns[fd].up; u != nil {
				if c = u.c; c == nil {
					lp.closeUp(u)
				}
			}
		}
	}
	if c != nil && c.st != nil {
		fields["app"] = c.st.pool.app.id
	}
	lp.g.log.WithFields(fields).Error("gateway handler panicked")
	if c == nil || c.closed {
		return
	}
	defer func() {
		if rec := recover(); rec != nil {
			lp.g.log.WithField("panic", fmt.Sprint(rec)).Error("gateway loop: answering a panicked request panicked too; its connection is dropped")
			c.st, c.up = nil, nil
			if !c.closed {
				lp.drop(c)
			}
		}
	}()
	if c.up != nil {
		lp.closeUp(c.up)
		c.up = nil
	}
	if c.st == nil {
		lp.closeClient(c)
		return
	}
	c.st.status = fasthttp.StatusInternalServerError
	plainAnswer(c.ctx, fasthttp.StatusInternalServerError, "flotilla gateway: internal error\n")
	lp.answerWith(c, &c.ctx.Response, c.ctx.Response.Body(), false)
}

// clientGone ends the request of a client that closed its connection: 499.
func (lp *evLoop) clientGone(c *clientConn) {
	if c.up != nil {
		lp.closeUp(c.up)
		c.up = nil
	}
	if st := c.st; st != nil {
		st.status = 0 // 499
		if st.served == nil {
			st.served = st.held // it saw the request (fail does the same)
		}
	}
	lp.closeClient(c)
}

// answerWith ends the request in progress with resp and body, then starts
// the next one c.in holds.
func (lp *evLoop) answerWith(c *clientConn, resp *fasthttp.Response, body []byte, fromBackend bool) {
	st := c.st
	if st.status == 0 {
		st.status = resp.StatusCode()
	}
	// Ended before the answer goes out, and taken off c (writing may
	// close the connection), as in upData.
	c.st = nil
	lp.g.finish(st)
	releaseState(st)
	lp.writeAnswer(c, resp, body, fromBackend)
	lp.serveNext(c)
}

// writeAnswer serialises resp with body as fasthttp's server would (its
// Date, Connection as the request asked) and writes it. A backend's head
// keeps its own framing; the gateway's own answers get a Content-Length.
func (lp *evLoop) writeAnswer(c *clientConn, resp *fasthttp.Response, body []byte, fromBackend bool) {
	resp.SkipBody = c.req.head
	if lp.ls.closing.Load() {
		c.closeAfter = true
	}
	if c.closeAfter {
		resp.Header.SetConnectionClose()
	} else if c.req.http10 {
		resp.Header.Set(fasthttp.HeaderConnection, "keep-alive")
	}
	if !fromBackend {
		resp.Header.SetContentLength(len(body))
	}
	// The head's length is not known before it is written; 4 KiB is
	// more than most.
	c.pend = resp.Header.AppendBytes(lp.room(c.pend[:0], 4<<10+len(body)))
	if !resp.SkipBody {
		c.pend = append(c.pend, body...)
	}
	c.in = c.in[:copy(c.in, c.in[c.reqLen:])]
	c.reqLen = 0
	c.req = loopReq{}
	lp.flush(c)
}

// flush writes c.pend; false when the connection closed or the rest waits
// for the socket to take it (an EPOLLOUT edge).
func (lp *evLoop) flush(c *clientConn) bool {
	for c.sent < len(c.pend) {
		n, err := rawWrite(c.fd, c.pend[c.sent:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return false
		}
		if err != nil {
			lp.closeClient(c)
			return false
		}
		c.sent += n
	}
	c.pend, c.sent = lp.trim(c.pend), 0
	if c.closeAfter || (c.hup && len(c.in) == 0 && !c.unread) {
		lp.closeClient(c)
		return false
	}
	if len(c.in) == 0 && !c.unread {
		lp.setDeadline(c, lp.now.Add(lp.g.cfg.IdleTimeout))
	} else {
		c.reading = true // a pipelined request, from now
		lp.setDeadline(c, lp.now.Add(lp.g.cfg.ReadHeaderTimeout))
	}
	return true
}

func (lp *evLoop) closeClient(c *clientConn) {
	if c.closed {
		return
	}
	if c.up != nil {
		lp.closeUp(c.up)
		c.up = nil
	}
	if c.st != nil {
		st := c.st
		c.st = nil
		lp.g.finish(st)
		releaseState(st)
	}
	lp.drop(c)
}

// detach takes c out of the loop, its descriptor still open.
func (lp *evLoop) detach(c *clientConn) {
	c.closed = true
	lp.forget(c.fd)
	lp.tq.remove(&c.timer)
	lp.open--
}

// drop detaches c, closes it and gives its connection slot back.
func (lp *evLoop) drop(c *clientConn) {
	lp.detach(c)
	if err := unix.Close(c.fd); err != nil {
		lp.g.log.WithError(err).Debug("gateway loop: closing a client connection")
	}
	c.ln.lim.Release(c.ip)
}

func (lp *evLoop) closeUp(u *upConn) {
	if lp.conns[u.fd].up != u {
		return
	}
	lp.forget(u.fd)
	lp.tq.remove(&u.timer)
	if u.c == nil {
		us := lp.idle[u.b]
		for i, x := range us {
			if x == u {
				lp.idle[u.b] = append(us[:i], us[i+1:]...)
				break
			}
		}
		if len(lp.idle[u.b]) == 0 {
			delete(lp.idle, u.b)
		}
	}
	if err := unix.Close(u.fd); err != nil {
		lp.g.log.WithError(err).Debug("gateway loop: closing a backend connection")
	}
}

// clientTimeout: an idle kept-alive connection closes quietly; one whose
// request header did not arrive in time gets 408, as from fasthttp.
func (lp *evLoop) clientTimeout(c *clientConn) {
	if c.st != nil || len(c.pend) > 0 {
		return
	}
	if len(c.in) == 0 {
		lp.closeClient(c)
		return
	}
	c.ctx.Error("Request timeout", fasthttp.StatusRequestTimeout) // fasthttp's own answer
	c.closeAfter = true
	c.reqLen = len(c.in)
	lp.writeAnswer(c, &c.ctx.Response, c.ctx.Response.Body(), false)
}

// upTimeout: no connection within DialTimeout is a connect failure; no
// answer within ResponseHeaderTimeout is 504.
func (lp *evLoop) upTimeout(u *upConn) {
	c, b := u.c, u.b
	connected := u.connected
	lp.closeUp(u)
	if c == nil || c.st == nil {
		return
	}
	c.up = nil
	if !connected {
		lp.connectFailed(c, b, dialError(unix.ETIMEDOUT))
		return
	}
	if u.want >= 0 {
		// The head was the answer; a short body that stops coming is cut
		// off, as the goroutine path's readInline does.
		lp.cutOff(c, errResponseHeaderTimeout)
		return
	}
	c.st.served = b
	lp.failRequest(c, errResponseHeaderTimeout)
}

// Buffers for long answers. A connection's buffer that a long answer grew
// does not stay with it (thousands of idle connections must not each keep
// 64 KiB): trim gives it to the loop, which keeps a few (maxBig) for the
// next long answer, so long answers do not allocate their buffers anew
// each time. bigBuf holds the longest inline answer: its head, its body
// and one read's overshoot.
const (
	smallBuf = 32 << 10 // what a connection's buffer may keep
	bigBuf   = inlineBody + 2*backendReadBuffer
	maxBig   = 16
)

// room returns b with space for n more bytes, from the loop's big
// buffers when b is too small for a long answer that fits one.
func (lp *evLoop) room(b []byte, n int) []byte {
	if need := len(b) + n; cap(b) >= need || need <= smallBuf || need > bigBuf {
		return b // append grows it as needed, as anywhere
	}
	var nb []byte
	if k := len(lp.big); k > 0 {
		nb, lp.big = lp.big[k-1][:len(b)], lp.big[:k-1]
	} else {
		nb = make([]byte, len(b), bigBuf)
	}
	copy(nb, b) // b, smaller than need, is never a kept big buffer
	return nb
}

// trim empties a connection's buffer for reuse, or takes it from the
// connection when a long answer grew it.
func (lp *evLoop) trim(b []byte) []byte {
	if cap(b) <= smallBuf {
		return b[:0]
	}
	if cap(b) == bigBuf && len(lp.big) < maxBig {
		lp.big = append(lp.big, b[:0])
	}
	return nil
}
