package gateway

import (
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/valyala/fasthttp"
)

// newServer builds the server of listener l, or of a service port with l's
// rules; h nil routes by host and path.
func (g *Gateway) newServer(l Listener, h fasthttp.RequestHandler) *fasthttp.Server {
	if h == nil {
		h = func(ctx *fasthttp.RequestCtx) { g.serve(l, ctx) }
	}
	return &fasthttp.Server{
		Handler: h,
		// The request header must arrive within this; the handler lifts it
		// before reading a body, which has no deadline, as with net/http's
		// ReadHeaderTimeout.
		ReadTimeout:    g.cfg.ReadHeaderTimeout,
		IdleTimeout:    g.cfg.IdleTimeout,
		ReadBufferSize: g.cfg.MaxHeaderBytes,
		// Bodies stream to the backend instead of being read whole, and a
		// multipart body is passed on, not parsed.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           1 << 62,
		// Responses are the backend's: no Server or Content-Type of our own.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{g.log.WithField("listener", l.String())},
	}
}

// fasthttpLogger sends the server's connection errors to the debug log, as
// net/http's ErrorLog was.
type fasthttpLogger struct{ e *logrus.Entry }

func (l fasthttpLogger) Printf(format string, args ...any) { l.e.Debugf(format, args...) }

// reqState follows one request from the handler to the end of its response,
// which for a streamed body is after the handler has returned. It is
// recycled, so the common request allocates nothing.
type reqState struct {
	g        *Gateway
	ctx      *fasthttp.RequestCtx
	listener Listener
	pool     *pool
	start    time.Time // gateway clock
	// wall is fasthttp's reading of the wall clock for this request, the
	// base of socket deadlines (the gateway clock times logic only).
	wall     time.Time
	deadline time.Time // for the response head (and a short body)
	sent     bool      // a request has gone to a backend: later ones read the clock
	// held is the backend whose in-flight count this request holds until
	// its response is over; served is who answered, for metrics.
	held, served *backendState
	status       int
	upgraded     bool
	// streaming: the response body is read from bc while fasthttp writes
	// it out; Close, not the handler, ends the request then. hijacked: a
	// pipe on the hijacked client connection (tunnel, sendUntilClose) ends
	// it.
	streaming, hijacked bool
	// reading: the streamed body has been asked for; unbounded: it is
	// waited for without a deadline, the client watched.
	reading, unbounded bool
	// bc is the backend connection this request uses, if any; keep says
	// whether it may go back to its pool once the body has been read.
	bc     *backendConn
	keep   bool
	length int // of an inline body
	body   bodyReader
	watch  watch
	// scratch, reused across requests
	upgrade, xff, tmp []byte
}

var states = sync.Pool{New: func() any { return &reqState{watch: watch{done: make(chan struct{}, 1)}} }}

func (g *Gateway) acquireState(ctx *fasthttp.RequestCtx, l Listener, p *pool) *reqState {
	st := states.Get().(*reqState)
	st.g, st.ctx, st.listener, st.pool = g, ctx, l, p
	st.wall = ctx.Time()
	return st
}

func releaseState(st *reqState) {
	st.g, st.ctx, st.pool = nil, nil, nil
	st.held, st.served, st.bc = nil, nil, nil
	st.status, st.upgraded, st.streaming, st.hijacked, st.reading, st.unbounded, st.keep, st.sent = 0, false, false, false, false, false, false, false
	st.upgrade = st.upgrade[:0]
	st.watch.reset()
	states.Put(st)
}

// notFoundBody is the one answer for every request without a route. It
// names nothing from the request, so an internal app's host on the external
// listener is indistinguishable from a host that does not exist.
const notFoundBody = "flotilla gateway: no route for this host and path\n"

// noViewBody answers every request before the gateway's first routes: it
// has not learnt the apps yet (a replica or edge node just started), which
// is not the same as an app that does not exist.
const noViewBody = "flotilla gateway: no view of the apps yet; try another gateway\n"

func notFound(ctx *fasthttp.RequestCtx) {
	plainAnswer(ctx, fasthttp.StatusNotFound, notFoundBody)
}

func plainAnswer(ctx *fasthttp.RequestCtx, status int, body string) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	resp.Header.Set("X-Content-Type-Options", "nosniff")
	resp.SetBodyString(body)
}

// handoffHandler serves the connections listener l's event loops hand
// over: a request whose answer a loop began is resumed, the others are
// served as always. Only these servers pay for the check.
func (g *Gateway) handoffHandler(l Listener) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if p := pendingOf(ctx); p != nil {
			g.resume(ctx, p)
			return
		}
		g.serve(l, ctx)
	}
}

func (g *Gateway) serve(l Listener, ctx *fasthttp.RequestCtx) {
	// One load: the table and pools stay this request's even if Update
	// swaps them while it runs.
	snap := g.cur.Load()
	ar := snap.table.match(l, requestHost(b2s(ctx.Request.Header.Host())), b2s(ctx.Path()))
	if ar == nil {
		g.unrouted[l].Inc()
		if !snap.routed {
			plainAnswer(ctx, fasthttp.StatusServiceUnavailable, noViewBody)
			ctx.Response.Header.Set("Retry-After", "1")
			return
		}
		notFound(ctx)
		return
	}
	g.serveRoute(l, ctx, ar, snap.pools[ar.key])
}

// serveRoute proxies a request that has found its route, on listener l or
// on a service port (serviceHTTP).
func (g *Gateway) serveRoute(l Listener, ctx *fasthttp.RequestCtx, ar *appRoute, p *pool) {
	if p.opts.RedirectToHTTPS && !ctx.IsTLS() {
		redirectToHTTPS(ctx)
		return
	}
	st := g.acquireState(ctx, l, p)
	st.pool.app.inFlight.Inc()
	defer func() { g.handlerDone(st, ar.id, recover()) }()
	st.start = g.clock.Now()
	g.proxy(st)
}

// handlerDone ends a request when its handler returns (rec: the panic it
// ended with, answered 500), unless its answer streams or its connection
// was hijacked: those end it themselves.
func (g *Gateway) handlerDone(st *reqState, app string, rec any) {
	if rec != nil {
		g.log.WithFields(logrus.Fields{"app": app, "panic": fmt.Sprint(rec), "stack": string(debug.Stack())}).Error("gateway handler panicked")
		st.status = fasthttp.StatusInternalServerError
		// A streamed body is dropped with the response, which ends the
		// request (Close) and recycles st.
		owned := !st.streaming
		st.hijacked = false
		st.ctx.Hijack(nil)
		plainAnswer(st.ctx, fasthttp.StatusInternalServerError, "flotilla gateway: internal error\n")
		if owned {
			g.finish(st)
			releaseState(st)
		}
		return
	}
	if !st.streaming && !st.hijacked {
		g.finish(st)
		releaseState(st)
	}
}

// proxy picks a backend for each attempt. A connection that cannot be made
// ejects that backend, and an idempotent request without a body goes to
// another one.
func (g *Gateway) proxy(st *reqState) {
	ctx := st.ctx
	h := &ctx.Request.Header
	length := h.ContentLength() // -1 chunked, -2 none
	body := length > 0 || length == -1
	m := h.Method()
	get, head := string(m) == fasthttp.MethodGet, string(m) == fasthttp.MethodHead
	// Sent again after a connect failure: the backend never saw it.
	retryable := !body && (get || head || string(m) == fasthttp.MethodOptions || string(m) == fasthttp.MethodPut || string(m) == fasthttp.MethodDelete)
	// Sent again when a kept-alive connection turns out closed, which the
	// backend may have done after reading it: only what is safe to repeat,
	// as http.Transport does.
	resend := !body && (get || head || string(m) == fasthttp.MethodOptions || string(m) == fasthttp.MethodTrace)
	http10 := !h.IsHTTP11()
	st.rewriteRequest(scanRequestHeaders(h.RawHeaders()))
	if body {
		// Lift the header deadline: an upload takes what it takes.
		ctx.SetReadDeadline(time.Time{})
	}
	ctx.Response.SkipBody = head

	var triedBuf [DefaultMaxAttempts]*backendState
	tried := triedBuf[:0]
	now := st.start
	awaited := false // newer routes were waited for once (redispatch.go)
	for attempt := 0; ; attempt++ {
		if attempt > 0 || awaited {
			now = g.clock.Now()
		}
		b := st.pick(g.cfg.Balance, now.UnixNano(), tried)
		if b == nil {
			if retryable && !awaited && !st.watch.isGone() && g.awaitRoutes(st) {
				awaited, attempt = true, -1
				continue
			}
			g.fail(st, errNoHealthyBackend)
			return
		}
		b.inFlight.Add(1)
		err := g.exchange(st, b, resend, body)
		if err == nil {
			st.held, st.served = b, b
			g.respond(st, head, http10)
			return
		}
		b.inFlight.Add(-1)
		if !isConnectFailure(err) {
			st.served = b // it saw the request, so the answer counts as its own
			g.fail(st, err)
			return
		}
		g.eject(st.pool.app, b, now.UnixNano(), err)
		tried = append(tried, b)
		if !retryable || st.watch.isGone() {
			g.fail(st, err)
			return
		}
		if attempt+1 >= g.cfg.MaxAttempts {
			if awaited || !g.awaitRoutes(st) {
				g.fail(st, err)
				return
			}
			awaited, attempt = true, -1
		}
	}
}

// pick chooses this request's backend: the one its sticky cookie names,
// if any is in rotation, else by the pool's balancing.
func (st *reqState) pick(def string, now int64, tried []*backendState) *backendState {
	p := st.pool
	if p.opts.Sticky {
		if c := st.ctx.Request.Header.Cookie(stickyCookie); len(c) > 0 {
			if b := p.byCookie(c, now, tried); b != nil {
				return b
			}
		}
	}
	policy := p.policy(def)
	var hash uint64
	if policy == Source {
		hash = fnv64a(st.ctx.RemoteIP())
	}
	return p.pick(policy, now, tried, hash)
}

// redirectToHTTPS answers HAPROXY_{n}_REDIRECT_TO_HTTPS: the same URL over
// https, 301 as marathon-lb's "redirect scheme https".
func redirectToHTTPS(ctx *fasthttp.RequestCtx) {
	host := requestHost(b2s(ctx.Request.Header.Host()))
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	ctx.Response.Reset()
	ctx.Response.Header.Set("Location", "https://"+host+string(ctx.RequestURI()))
	ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
}

// hstsValue is marathon-lb's Strict-Transport-Security (about six months).
const hstsValue = "max-age=15768000"

// respond passes on the response whose head exchange has read: a short
// body is copied now, a long one streams after the handler returns, and a
// 101 turns the connection into a tunnel.
func (g *Gateway) respond(st *reqState, head, http10 bool) {
	resp := &st.ctx.Response
	st.status = resp.StatusCode()
	st.keep = !resp.Header.ConnectionClose()
	switching := st.status == fasthttp.StatusSwitchingProtocols
	st.answerHeaders(switching)
	if switching {
		g.tunnel(st)
		return
	}
	length := resp.Header.ContentLength()
	switch {
	case head || st.status == fasthttp.StatusNoContent || st.status == fasthttp.StatusNotModified:
		// No body, whatever the header says.
	case length >= 0 && length <= inlineBody:
		st.length = length
		if err := st.readInline(); err != nil {
			// The head was already the backend's answer; cut the client off
			// rather than make up another one, as net/http's proxy does.
			st.keep = false
			if err != errClientGone {
				g.logBackendError(st, err)
			}
			st.ctx.HijackSetNoResponse(true)
			st.ctx.Hijack(func(net.Conn) {})
			return
		}
	default:
		st.body.reset(st.bc.br, length, &resp.Header)
		st.keep = st.keep && length != -2
		if length < 0 && http10 {
			// fasthttp would chunk it, which HTTP/1.0 cannot read.
			g.sendUntilClose(st)
			return
		}
		st.streaming = true
		resp.ImmediateHeaderFlush = true
		if length < 0 {
			length = -1 // chunked to the client
		}
		resp.SetBodyStream(st, length)
		return
	}
	g.releaseConn(st, true)
}

// answerHeaders makes the backend's response head the client's: its
// hop-by-hop headers dropped, and the port's HSTS and sticky cookie added.
func (st *reqState) answerHeaders(switching bool) {
	h := &st.ctx.Response.Header
	st.tmp = stripResponseHeaders(h, st.tmp, switching)
	if o := &st.pool.opts; o.UseHSTS || o.Sticky {
		if o.UseHSTS {
			h.Set("Strict-Transport-Security", hstsValue)
		}
		if o.Sticky && string(st.ctx.Request.Header.Cookie(stickyCookie)) != st.served.cookie {
			h.Add("Set-Cookie", stickyCookie+"="+st.served.cookie+"; Path=/")
		}
	}
}

// Read, WriteTo and Close make reqState the streamed body fasthttp writes
// to the client. WriteTo is what fasthttp uses: it writes what the backend
// connection's read buffer holds in place, and reads larger stretches
// straight into a pooled buffer, so a streamed body costs no allocation
// and few system calls.
func (st *reqState) Read(p []byte) (int, error) {
	b, inBuffer, err := st.nextBody(p)
	if err != nil {
		return 0, err
	}
	if !inBuffer {
		return len(b), nil // read into p
	}
	n := copy(p, b)
	st.body.consume(n)
	return n, nil
}

func (st *reqState) WriteTo(w io.Writer) (int64, error) {
	if st.streaming && st.body.framing == framedLength {
		// w would keep what does not fill its buffer until more comes,
		// however long the backend takes to send it. fasthttp has flushed
		// the head (ImmediateHeaderFlush) and writes nothing more until
		// this returns, so the body goes to the connection itself and
		// every piece leaves at once. (Chunks need no such care: fasthttp
		// flushes each one.)
		w = st.ctx.Conn()
	}
	spare := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(spare)
	var total int64
	for {
		b, inBuffer, err := st.nextBody(*spare)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := w.Write(b)
		if inBuffer {
			st.body.consume(n)
		}
		total += int64(n)
		if err != nil {
			st.body.err = err
			st.g.releaseConn(st, false)
			return total, err
		}
	}
}

func (st *reqState) SupportsBodyWriteTo() bool { return true }

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// nextBody returns the next bytes of the streamed body (bodyReader.next).
// The body is waited for as long as the backend takes, but as with the
// head, the first stretch is short, and only a body still coming after it
// starts the client watch. At the end (io.EOF) or on an error the backend
// connection is let go.
func (st *reqState) nextBody(spare []byte) ([]byte, bool, error) {
	if !st.reading {
		st.reading = true
		if !st.watch.extend(st.bc, time.Now().Add(watchAfter)) {
			st.body.err = errClientGone
		}
	}
	for {
		b, inBuffer, err := st.body.next(spare)
		if err == nil {
			return b, inBuffer, nil
		}
		if isTimeout(err) && !st.watch.isGone() && !st.unbounded {
			st.unbounded = true
			st.watch.start(st.ctx, st.bc)
			if st.watch.extend(st.bc, time.Time{}) {
				continue
			}
		}
		if err != io.EOF && st.watch.isGone() {
			err = errClientGone
		}
		st.body.err = err
		st.g.releaseConn(st, err == io.EOF)
		return nil, false, err
	}
}

// Close ends a streamed request, read to the end or not.
func (st *reqState) Close() error {
	st.g.finish(st)
	releaseState(st)
	return nil
}

// releaseConn gives the backend connection back, or closes it when it
// cannot be used again (ok false, the backend said close, bytes left over).
func (g *Gateway) releaseConn(st *reqState, ok bool) {
	bc := st.bc
	if bc == nil {
		return
	}
	st.bc = nil
	st.watch.stop()
	if ok && st.keep && bc.br.Buffered() == 0 {
		wall := st.wall
		if st.streaming {
			wall = time.Now()
		}
		st.held.conns.put(bc, wall)
		return
	}
	bc.Close()
}

func (g *Gateway) finish(st *reqState) {
	st.watch.stop()
	if st.bc != nil {
		st.bc.Close()
		st.bc = nil
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
		d := now.Sub(st.start)
		a.duration.Observe(d.Seconds())
		a.latency.add(now.Unix(), d)
	}
}

// fail answers when no backend response came back. Its bodies name the app
// so that whoever sees them knows where to look.
func (g *Gateway) fail(st *reqState, err error) {
	app := st.pool.app.id
	var status int
	var msg string
	switch {
	case err == errNoHealthyBackend:
		status, msg = fasthttp.StatusServiceUnavailable, "flotilla gateway: app "+app+" has no healthy backend\n"
	case err == errClientGone:
		status = 499 // nobody is listening any more
	case isTimeout(err):
		status, msg = fasthttp.StatusGatewayTimeout, "flotilla gateway: app "+app+": backend did not answer in time\n"
	default:
		status, msg = fasthttp.StatusBadGateway, "flotilla gateway: app "+app+": backend failed\n"
	}
	st.status = status
	if status == 499 {
		st.ctx.SetConnectionClose()
		return
	}
	g.logBackendError(st, err)
	plainAnswer(st.ctx, status, msg)
	if status == fasthttp.StatusServiceUnavailable {
		st.ctx.Response.Header.Set("Retry-After", "1")
	}
}

func (g *Gateway) logBackendError(st *reqState, err error) {
	fields := logrus.Fields{"app": st.pool.app.id, "status": st.status}
	if st.served != nil {
		fields["task"] = st.served.TaskID
	}
	g.log.WithFields(fields).WithError(err).Warn("proxy error")
}
