package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/valyala/fasthttp"
)

// HTTP/2 on both listeners. fasthttp speaks HTTP/1.1 only, so an HTTP/2
// connection is handed to net/http's HTTP/2 server, whose handler
// turns each stream into a fasthttp.RequestCtx and runs the very same
// routing and proxying as an HTTP/1.1 request (serve): one route table,
// one set of exposure rules and X-Forwarded-* rewrites, one backend pool.
//
// A connection is recognised on fasthttp's own first read of it
// (sniffConn): on TLS by the protocol ALPN chose, on a plain listener by
// its first bytes, the HTTP/2 preface (h2c with prior knowledge). No peek
// and no goroutine per accepted connection; after that first read an
// HTTP/1.1 connection costs one comparison per read. h2c by
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
	if tc, ok := c.Conn.(*tls.Conn); ok {
		// On TLS, ALPN decides, and nothing need be read: the HTTP/2
		// server gets the connection as it is.
		if err := tc.Handshake(); err != nil {
			c.state.Store(sniffedHTTP1) // fasthttp reports it
			return 0, err
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			c.state.Store(sniffedHTTP1)
			return c.Conn.Read(p)
		}
		c.state.Store(sniffedHTTP2)
		c.h2.ln.push(tc)
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
	c.h2.ln.push(&prefacedConn{Conn: c.Conn, pre: bytes.Clone(p[:n])})
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

// h2Server serves the HTTP/2 connections of one listener: net/http's
// server (its HTTP/2 side only) on a listener fed by sniffConn.
type h2Server struct {
	g   *Gateway
	l   Listener
	srv *http.Server
	ln  *chanListener
	log fasthttp.Logger
}

// h2ConnKey is where ConnContext leaves a stream's connection, for its
// addresses.
type h2ConnKey struct{}

func (g *Gateway) newH2Server(l Listener) *h2Server {
	s := &h2Server{g: g, l: l, ln: newChanListener(), log: fasthttpLogger{g.log.WithField("listener", l.String())}}
	var p http.Protocols
	p.SetHTTP2(true)            // on TLS, by ALPN
	p.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	s.srv = &http.Server{
		Handler:   s,
		Protocols: &p,
		// The preface (h2c) must come within the header time, as an
		// HTTP/1.1 request's header must.
		ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
		IdleTimeout:       g.cfg.IdleTimeout,
		MaxHeaderBytes:    g.cfg.MaxHeaderBytes,
		// nginx's http2_max_concurrent_streams: each stream holds a
		// goroutine and a request's buffers.
		HTTP2:       &http.HTTP2Config{MaxConcurrentStreams: 128},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, h2ConnKey{}, c) },
		ErrorLog:    stdlog.New(debugWriter{g.log.WithField("listener", l.String())}, "", 0),
	}
	return s
}

// start serves the connections handed over, until shutdown.
func (s *h2Server) start() {
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && err != http.ErrServerClosed {
			s.g.log.WithError(err).WithField("listener", s.l.String()).Error("gateway HTTP/2 server stopped")
		}
	}()
}

// shutdown sends GOAWAY on every HTTP/2 connection and waits for their
// streams to end, or for ctx.
func (s *h2Server) shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// chanListener is the HTTP/2 server's listener: its connections are the
// ones sniffConn hands over.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close() // shutting down
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// debugWriter sends net/http's log lines (TLS and protocol errors of
// clients) to the debug log, as fasthttpLogger does.
type debugWriter struct{ e *logrus.Entry }

func (w debugWriter) Write(p []byte) (int, error) {
	w.e.Debug(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// prefacedConn gives back bytes already read from the connection before
// the rest of it: the preface fasthttp consumed (HTTP/2), or what an event
// loop had read before handing the connection over (loop_linux.go).
type prefacedConn struct {
	net.Conn
	pre []byte
}

// SyscallConn keeps the socket reachable (the client watch peeks at it).
func (c *prefacedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("gateway: the connection has no file descriptor")
	}
	return sc.SyscallConn()
}

func (c *prefacedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
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

func (s *h2Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := s.g
	if r.Method == http.MethodConnect {
		// Extended CONNECT (WebSockets over HTTP/2) is not offered, and a
		// plain CONNECT has no route.
		http.Error(w, "flotilla gateway: CONNECT is not supported over HTTP/2", http.StatusMethodNotAllowed)
		return
	}
	hr := h2Requests.Get().(*h2Request)
	st := &hr.plain
	if r.TLS != nil {
		st = &hr.secure.h2Stream
	}
	st.w, st.f, st.done = w, w.(http.Flusher), r.Context().Done()
	if c, ok := r.Context().Value(h2ConnKey{}).(net.Conn); ok {
		st.laddr, st.raddr = c.LocalAddr(), c.RemoteAddr()
	} else {
		st.laddr, st.raddr = nil, nil // fasthttp reads them as 0.0.0.0:0
	}
	st.drain()
	ctx := &hr.ctx
	if r.TLS != nil {
		hr.secure.state = r.TLS
		ctx.Init2(&hr.secure, s.log, false)
	} else {
		ctx.Init2(&hr.plain, s.log, false)
	}
	if err := hr.readRequest(r, g.cfg.MaxHeaderBytes); err != nil {
		h2Release(hr)
		http.Error(w, "flotilla gateway: bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	g.serve(s.l, ctx)
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
