package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
)

// HTTP/2 on both listeners. fasthttp speaks HTTP/1.1 only, so an HTTP/2
// connection is handed to golang.org/x/net/http2's server, whose handler
// turns each stream into a fasthttp.RequestCtx and runs the very same
// routing and proxying as an HTTP/1.1 request (serve): one route table,
// one set of exposure rules and X-Forwarded-* rewrites, one backend pool.
//
// A connection is recognised by its first bytes, the HTTP/2 preface, on
// fasthttp's own first read of it (sniffConn): no peek and no goroutine
// per accepted connection, and after that first read an HTTP/1.1
// connection costs one comparison per read. That covers h2c with prior
// knowledge on a plain listener and h2 negotiated by ALPN on the TLS one
// (the client sends the same preface once the handshake is done). h2c by
// Upgrade (RFC 7540's "Upgrade: h2c", dropped by RFC 9113) is not
// offered: such a request is passed on to the backend like any other
// Upgrade.

// h2Preface is the client connection preface (RFC 9113, 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffListener wraps each accepted connection in a sniffConn.
type sniffListener struct {
	net.Listener
	h2 *h2Server
}

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &sniffConn{Conn: c, h2: l.h2}
	if tc, ok := c.(*tls.Conn); ok {
		return &sniffTLSConn{sniffConn: sc, tc: tc}, nil
	}
	return sc, nil
}

// Where a sniffConn stands.
const (
	sniffing = iota
	sniffedHTTP1
	sniffedHTTP2 // handed to the HTTP/2 server, which owns it now
)

// sniffConn is a client connection as fasthttp sees it. Its first read
// decides: an HTTP/2 preface hands the connection to the HTTP/2 server
// and tells fasthttp it has ended (io.EOF, and Close does nothing), so
// fasthttp forgets it and its shutdown does not cut HTTP/2 streams;
// anything else is HTTP/1.x and read through.
type sniffConn struct {
	net.Conn
	h2    *h2Server
	state atomic.Int32
}

func (c *sniffConn) Read(p []byte) (int, error) {
	switch c.state.Load() {
	case sniffedHTTP1:
		return c.Conn.Read(p)
	case sniffedHTTP2:
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	// A preface split over reads is read whole before deciding.
	for err == nil && n < len(h2Preface) && n < len(p) && string(p[:n]) == h2Preface[:n] {
		var m int
		m, err = c.Conn.Read(p[n:])
		n += m
	}
	if n < len(h2Preface) || string(p[:len(h2Preface)]) != h2Preface {
		c.state.Store(sniffedHTTP1)
		return n, err
	}
	c.state.Store(sniffedHTTP2)
	var state *tls.ConnectionState
	if tc, ok := c.Conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		state = &cs
	}
	go c.h2.serve(&prefacedConn{Conn: c.Conn, pre: bytes.Clone(p[:n])}, state)
	return 0, io.EOF
}

func (c *sniffConn) Close() error {
	if c.state.Load() == sniffedHTTP2 {
		return nil
	}
	return c.Conn.Close()
}

// netConn is the connection below, for the client watch's socket.
func (c *sniffConn) netConn() net.Conn { return c.Conn }

// sniffTLSConn is a sniffConn on the TLS listener: fasthttp's IsTLS and
// TLSConnectionState recognise it by these two methods.
type sniffTLSConn struct {
	*sniffConn
	tc *tls.Conn
}

func (c *sniffTLSConn) Handshake() error                     { return c.tc.Handshake() }
func (c *sniffTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// h2Server serves the HTTP/2 connections of one listener.
type h2Server struct {
	g    *Gateway
	l    Listener
	base *http.Server // carries limits and graceful shutdown to srv
	srv  *http2.Server
	log  fasthttp.Logger

	mu      sync.Mutex
	conns   int           // being served
	closing bool          // shutdown has begun: no new connections
	idle    chan struct{} // closed when conns drops to 0, if shutdown waits
}

func (g *Gateway) newH2Server(l Listener) *h2Server {
	s := &h2Server{g: g, l: l, srv: &http2.Server{
		IdleTimeout: g.cfg.IdleTimeout,
		// nginx's http2_max_concurrent_streams: each stream holds a
		// goroutine and a request's buffers.
		MaxConcurrentStreams: 128,
	},
		log: fasthttpLogger{g.log.WithField("listener", l.String())}}
	s.base = &http.Server{
		MaxHeaderBytes: g.cfg.MaxHeaderBytes,
		IdleTimeout:    g.cfg.IdleTimeout,
		ErrorLog:       nil,
	}
	// Registers srv's GOAWAY with base.Shutdown; it cannot fail for a
	// server without a TLS config of its own.
	if err := http2.ConfigureServer(s.base, s.srv); err != nil {
		g.log.WithError(err).Error("HTTP/2 server not configured")
	}
	return s
}

// serve serves one HTTP/2 connection until it ends; state is its TLS
// state, nil for h2c.
func (s *h2Server) serve(c net.Conn, state *tls.ConnectionState) {
	if !s.enter() {
		c.Close() // shutting down
		return
	}
	defer s.leave()
	// fasthttp's header deadline no longer applies: HTTP/2 has its own
	// idle timeout.
	c.SetDeadline(time.Time{})
	h := &h2Handler{s: s, laddr: c.LocalAddr(), raddr: c.RemoteAddr(), tls: state}
	if state != nil {
		c = &prefacedTLSConn{prefacedConn: c.(*prefacedConn), state: state}
	}
	s.srv.ServeConn(c, &http2.ServeConnOpts{BaseConfig: s.base, Handler: h})
}

// shutdown sends GOAWAY on every HTTP/2 connection and waits for them to
// end (their streams done) or for ctx.
func (s *h2Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.base.Shutdown(ctx)
	s.mu.Lock()
	if s.conns == 0 {
		s.mu.Unlock()
		return err
	}
	s.idle = make(chan struct{})
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return err
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
}

func (s *h2Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns++
	return true
}

func (s *h2Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns--; s.conns == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// prefacedConn gives back the preface bytes fasthttp already consumed
// before the rest of the connection.
type prefacedConn struct {
	net.Conn
	pre []byte
}

func (c *prefacedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// prefacedTLSConn lets the HTTP/2 server see the TLS state (it refuses
// weak TLS, and fills Request.TLS).
type prefacedTLSConn struct {
	*prefacedConn
	state *tls.ConnectionState
}

func (c *prefacedTLSConn) ConnectionState() tls.ConnectionState { return *c.state }

// h2Handler serves the streams of one HTTP/2 connection.
type h2Handler struct {
	s            *h2Server
	laddr, raddr net.Addr
	tls          *tls.ConnectionState // nil on a plain connection
}

// h2Request is one stream's fasthttp request context and what it takes to
// fill it, recycled across streams.
type h2Request struct {
	ctx    fasthttp.RequestCtx
	plain  h2Stream
	secure h2TLSStream
	head   []byte
	rd     bytes.Reader
	br     *bufio.Reader
}

var h2Requests = sync.Pool{New: func() any {
	r := &h2Request{}
	r.plain.wake = make(chan struct{}, 1)
	r.secure.wake = r.plain.wake
	return r
}}

func (h *h2Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.s.g
	if r.Method == http.MethodConnect {
		// Extended CONNECT (WebSockets over HTTP/2) is not offered, and a
		// plain CONNECT has no route.
		http.Error(w, "flotilla gateway: CONNECT is not supported over HTTP/2", http.StatusMethodNotAllowed)
		return
	}
	hr := h2Requests.Get().(*h2Request)
	st := &hr.plain
	if h.tls != nil {
		st = &hr.secure.h2Stream
	}
	st.w, st.f, st.done = w, w.(http.Flusher), r.Context().Done()
	st.laddr, st.raddr = h.laddr, h.raddr
	st.drain()
	ctx := &hr.ctx
	if h.tls != nil {
		hr.secure.state = h.tls
		ctx.Init2(&hr.secure, h.s.log, false)
	} else {
		ctx.Init2(&hr.plain, h.s.log, false)
	}
	if err := hr.readRequest(r, g.cfg.MaxHeaderBytes); err != nil {
		h2Release(hr)
		http.Error(w, "flotilla gateway: bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	g.serve(h.s.l, ctx)
	resp := &ctx.Response
	if ctx.Hijacked() || resp.ConnectionClose() {
		// The backend's answer broke off after its head, or the client is
		// gone: reset the stream rather than make up an end.
		resp.CloseBodyStream()
		h2Release(hr)
		panic(http.ErrAbortHandler)
	}
	err := writeH2Response(w, st, resp, r.Method == http.MethodHead)
	resp.CloseBodyStream() // ends a streamed request (reqState.Close)
	h2Release(hr)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
}

func h2Release(hr *h2Request) {
	ctx := &hr.ctx
	ctx.Hijack(nil)
	ctx.HijackSetNoResponse(false)
	ctx.ResetUserValues()
	ctx.Request.Reset()
	ctx.Response.Reset()
	hr.plain.w, hr.plain.f, hr.plain.done = nil, nil, nil
	hr.secure.w, hr.secure.f, hr.secure.done, hr.secure.state = nil, nil, nil, nil
	hr.rd.Reset(nil)
	h2Requests.Put(hr)
}

// readRequest fills hr.ctx.Request from r. The header block is written
// out as HTTP/1.1 and parsed by fasthttp, so that the request is exactly
// what an HTTP/1.1 client would have sent (raw headers for the rewrites,
// fasthttp's path normalisation for routing). The HTTP/2 server has
// already refused what HTTP/1.1 could not carry (CR, LF or NUL in a field,
// connection-specific fields, a header list over MaxHeaderBytes).
func (hr *h2Request) readRequest(r *http.Request, maxHeader int) error {
	b := append(hr.head[:0], r.Method...)
	b = append(b, ' ')
	b = append(b, r.RequestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for k, vs := range r.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	switch {
	case r.ContentLength > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.ContentLength, 10)
		b = append(b, "\r\n"...)
	case r.ContentLength < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	hr.head = b
	hr.rd.Reset(b)
	if hr.br == nil || hr.br.Size() < len(b) {
		hr.br = bufio.NewReaderSize(&hr.rd, max(len(b), maxHeader+4<<10))
	} else {
		hr.br.Reset(&hr.rd)
	}
	req := &hr.ctx.Request
	if err := req.Header.Read(hr.br); err != nil {
		return err
	}
	if r.ContentLength != 0 {
		req.SetBodyStream(r.Body, int(r.ContentLength))
	}
	return nil
}

// writeH2Response sends what serve left in resp: the status, the
// headers, and a body that is either whole or streamed (reqState).
func writeH2Response(w http.ResponseWriter, st *h2Stream, resp *fasthttp.Response, head bool) error {
	h := w.Header()
	for k, v := range resp.Header.All() {
		switch string(k) {
		case fasthttp.HeaderContentLength, fasthttp.HeaderTrailer, fasthttp.HeaderConnection, fasthttp.HeaderTransferEncoding:
			continue
		}
		h.Add(string(k), string(v))
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // the backend's answer had none: no sniffing
	}
	stream := resp.BodyStream()
	var body []byte
	switch {
	case head:
		if n := resp.Header.ContentLength(); n >= 0 {
			h.Set("Content-Length", strconv.Itoa(n))
		}
	case stream != nil:
		if n := resp.Header.ContentLength(); n >= 0 {
			h.Set("Content-Length", strconv.Itoa(n))
		}
	default:
		body = resp.Body()
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(resp.StatusCode())
	if head {
		return nil
	}
	if stream == nil {
		_, err := w.Write(body)
		return err
	}
	// The head leaves now, as ImmediateHeaderFlush does on HTTP/1.1, and
	// each piece of the body as it comes (h2Stream.Write flushes).
	st.f.Flush()
	_, err := io.Copy(st, stream) // reqState.WriteTo
	return err
}

// h2Stream stands in for the client connection in an HTTP/2 stream's
// RequestCtx: addresses come from the real connection, writes go to the
// stream (flushed: they are pieces of a streamed body), and the client
// watch (watch.go) waits on the stream's context instead of a socket.
type h2Stream struct {
	w            http.ResponseWriter
	f            http.Flusher
	done         <-chan struct{}
	laddr, raddr net.Addr
	wake         chan struct{} // a read deadline in the past ends waitClosed
}

var errStreamRead = errors.New("gateway: an HTTP/2 stream is not read as a connection")

func (s *h2Stream) Read([]byte) (int, error) { return 0, errStreamRead }

func (s *h2Stream) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err == nil {
		s.f.Flush()
	}
	return n, err
}

func (s *h2Stream) Close() error                     { return nil }
func (s *h2Stream) LocalAddr() net.Addr              { return s.laddr }
func (s *h2Stream) RemoteAddr() net.Addr             { return s.raddr }
func (s *h2Stream) SetDeadline(time.Time) error      { return nil }
func (s *h2Stream) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline wakes waitClosed for a deadline in the past, which is
// how watch.stop ends a watch; a zero one clears a wake-up not taken.
func (s *h2Stream) SetReadDeadline(t time.Time) error {
	switch {
	case t.IsZero():
		s.drain()
	case t.Before(time.Now()):
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *h2Stream) drain() {
	select {
	case <-s.wake:
	default:
	}
}

// waitClosed is watch's waitClosed for a stream: true once the client has
// reset the stream or closed the connection, false when woken.
func (s *h2Stream) waitClosed() bool {
	select {
	case <-s.done:
		return true
	case <-s.wake:
		return false
	}
}

// h2TLSStream is an h2Stream on the TLS listener: fasthttp's IsTLS
// recognises it by these two methods (X-Forwarded-Proto: https, the
// HTTPS redirect).
type h2TLSStream struct {
	h2Stream
	state *tls.ConnectionState
}

func (s *h2TLSStream) Handshake() error                     { return nil }
func (s *h2TLSStream) ConnectionState() tls.ConnectionState { return *s.state }
