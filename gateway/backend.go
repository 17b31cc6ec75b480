package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The backend side: the gateway's own keep-alive connections, written and
// read on the goroutine that serves the request, with fasthttp's header
// writer and parser. fasthttp.HostClient would do the pooling too, but it
// retries and times out by its own rules; this way a refused connection,
// a stale kept-alive one and a slow answer each get the gateway's meaning
// (ejection, a transparent resend, 504), and a body is streamed or copied
// as the gateway decides.

const (
	// backendReadBuffer is also the largest response header accepted.
	backendReadBuffer  = 16 << 10
	backendWriteBuffer = 4 << 10
	// idleConnTimeout bounds how long a connection waits in the pool; many
	// backends close idle connections after a few seconds to a minute.
	idleConnTimeout = 30 * time.Second
	// inlineBody is the largest response body copied whole before the
	// response goes out: one write instead of a stream of small ones.
	// Longer bodies, and bodies of unknown length, stream.
	inlineBody = 64 << 10
	// watchAfter is how long the gateway waits on a backend before it
	// starts watching whether the client is still there (watch.go).
	watchAfter = 100 * time.Millisecond
)

type backendConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

func newBackendConn(c net.Conn) *backendConn {
	return &backendConn{Conn: c, br: bufio.NewReaderSize(c, backendReadBuffer), bw: bufio.NewWriterSize(c, backendWriteBuffer)}
}

// connPool holds one backend's idle connections, most recent first out.
type connPool struct {
	mu     sync.Mutex
	idle   []*backendConn
	max    int
	closed bool
}

// get returns an idle connection, or nil. now is wall-clock time.
func (p *connPool) get(now time.Time) *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.idleSince) < idleConnTimeout {
			return c
		}
		c.Close()
	}
	return nil
}

func (p *connPool) put(c *backendConn, now time.Time) {
	c.idleSince = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.max {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// close drops the idle connections; connections in use are closed when
// they come back.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// errBackendDropped marks a new connection that the backend closed or
// reset before answering; retries and passive health treat it like a
// refused connection.
var errBackendDropped = errors.New("gateway: backend dropped the connection before answering")

// errResponseHeaderTimeout is a timeout, so the client gets 504.
var errResponseHeaderTimeout = &timeoutError{"gateway: timeout awaiting response headers"}

// errClientGone means the client closed its connection while the gateway
// waited on the backend; the answer is 499 and nobody reads it.
var errClientGone = errors.New("gateway: client went away")

var errUnaskedSwitch = errors.New("gateway: backend switched protocols without being asked")

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// isTimeout is errors.As for a Timeout method, without the allocation
// errors.As costs: it runs at the end of every streamed body.
func isTimeout(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case interface{ Timeout() bool }:
		if e.Timeout() {
			return true
		}
	}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		return isTimeout(e.Unwrap())
	case interface{ Unwrap() []error }:
		for _, u := range e.Unwrap() {
			if isTimeout(u) {
				return true
			}
		}
	}
	return false
}

// isStale recognises a kept-alive connection that the backend closed while
// it was idle: the write fails, or the read ends before a status line.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchange sends the request to b and reads the response head into
// ctx.Response; on success st.bc holds the connection the body (if any)
// comes on. A kept-alive connection the backend closed while idle is
// replaced transparently for requests that may be sent twice (resend);
// other requests first check that the connection is still open. A dial
// failure comes back as the dialer's *net.OpError, which isConnectFailure
// recognises.
func (g *Gateway) exchange(st *reqState, b *backendState, resend, body bool) error {
	for {
		bc, reused := b.conns.get(st.wall), true
		if bc != nil && !resend && !connAlive(bc.Conn) {
			bc.Close()
			continue
		}
		if bc == nil {
			c, err := g.dialer.Dial("tcp", b.addr)
			if err != nil {
				return err
			}
			bc, reused = newBackendConn(c), false
		}
		// Deadlines count from the request's arrival, which fasthttp has
		// read the clock for; a later attempt, or one that had to dial,
		// reads it again.
		now := st.wall
		if st.sent || !reused {
			now = time.Now()
		}
		st.sent = true
		st.bc = bc
		err := g.roundTrip(st, bc, body, now)
		if err == nil {
			return nil
		}
		st.bc = nil
		bc.Close()
		if isStale(err) && !st.watch.isGone() {
			if reused && resend {
				continue
			}
			if !reused {
				// A new connection dropped without an answer: the backend
				// is going away. nginx's proxy_next_upstream "error" does
				// the same.
				return fmt.Errorf("%w: %w", errBackendDropped, err)
			}
		}
		return err
	}
}

// roundTrip writes the request and reads the response head, skipping
// interim (1xx) answers other than 101. Waiting for the head has a
// deadline; writing a body has none, as with http.Transport.
func (g *Gateway) roundTrip(st *reqState, bc *backendConn, body bool, now time.Time) error {
	req := &st.ctx.Request
	h := &req.Header
	if len(h.Host()) == 0 {
		// HTTP/1.0 without Host; HTTP/1.1 backends insist on one.
		h.SetHost(bc.RemoteAddr().String())
	}
	deadline := now.Add(g.cfg.ResponseHeaderTimeout)
	if !body {
		// The first stretch of the wait is short, so that only a slow
		// backend starts the client watch. Writing the head needs no
		// deadline: a connection the backend reads, or has closed, takes a
		// few KiB without blocking (write deadlines are never set).
		bc.SetReadDeadline(earlier(deadline, now.Add(watchAfter)))
		if err := h.Write(bc.bw); err != nil {
			return err
		}
	} else {
		if err := h.Write(bc.bw); err != nil {
			return err
		}
		if err := writeRequestBody(bc.bw, req, h.ContentLength(), &st.tmp); err != nil {
			return err
		}
		now = time.Now()
		deadline = now.Add(g.cfg.ResponseHeaderTimeout)
		bc.SetReadDeadline(earlier(deadline, now.Add(watchAfter)))
	}
	if err := bc.bw.Flush(); err != nil {
		return err
	}
	st.deadline = deadline
	resp := &st.ctx.Response
	for interim := 0; ; interim++ {
		if err := st.await(func() error { return resp.Header.Read(bc.br) }); err != nil {
			return err
		}
		code := resp.Header.StatusCode()
		if code >= 200 {
			return nil
		}
		if code == fasthttp.StatusSwitchingProtocols {
			if len(st.upgrade) == 0 {
				return errUnaskedSwitch
			}
			return nil
		}
		// 100 Continue, 103 Early Hints: the real answer follows. They are
		// not passed on (fasthttp has no way to send an interim response).
		if interim >= 100 {
			return errors.New("gateway: too many interim responses")
		}
	}
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// await runs read, which waits on st.bc, until it succeeds or fails for a
// reason other than the short deadline that wakes it to start the client
// watch. It ends with errClientGone if the client has gone, and with
// errResponseHeaderTimeout at st.deadline.
func (st *reqState) await(read func() error) error {
	for {
		err := read()
		if err == nil || !isTimeout(err) {
			return err
		}
		if st.watch.isGone() {
			return errClientGone
		}
		if !time.Now().Before(st.deadline) {
			return errResponseHeaderTimeout
		}
		st.watch.start(st.ctx, st.bc)
		if !st.watch.extend(st.bc, st.deadline) {
			return errClientGone
		}
	}
}

// writeRequestBody streams the client's body to the backend, framed as the
// client framed it: a Content-Length, or chunks.
func writeRequestBody(w *bufio.Writer, req *fasthttp.Request, length int, buf *[]byte) error {
	r := req.BodyStream()
	if r == nil {
		_, err := w.Write(req.Body())
		return err
	}
	if length >= 0 {
		n, err := io.CopyN(w, r, int64(length))
		if err == io.EOF && n < int64(length) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if cap(*buf) < 32<<10 {
		*buf = make([]byte, 32<<10)
	}
	b := (*buf)[:cap(*buf)]
	for {
		n, err := r.Read(b)
		if n > 0 {
			fmt.Fprintf(w, "%x\r\n", n)
			w.Write(b[:n])
			if _, werr := w.WriteString("\r\n"); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			_, err = w.WriteString("0\r\n\r\n")
			return err
		}
		if err != nil {
			return err
		}
	}
}

// readInline copies a short body (st.length bytes) into the response, so
// the backend connection is free before the client is answered.
func (st *reqState) readInline() error {
	resp := &st.ctx.Response
	resp.ResetBody()
	br := st.bc.br
	for left := st.length; left > 0; {
		if br.Buffered() == 0 {
			if err := st.await(func() error { _, err := br.Peek(1); return err }); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		n := min(br.Buffered(), left)
		p, _ := br.Peek(n)
		resp.AppendBody(p)
		br.Discard(n)
		left -= n
	}
	return nil
}

// Body framings of a response.
const (
	framedLength     = iota // Content-Length
	framedChunked           // Transfer-Encoding: chunked
	framedUntilClose        // neither: the body ends with the connection
)

// bodyReader reads one response body off a backend connection and undoes
// its framing, handing out what the connection's read buffer holds so the
// body can be written on without another copy. Trailers of a chunked body
// go into trailer, which fasthttp writes after the last chunk to the
// client. A timeout consumes nothing and is not final: the caller may wait
// again.
type bodyReader struct {
	br       *bufio.Reader
	framing  int
	left     int64 // of the Content-Length, or of the current chunk
	inChunk  bool  // a chunk's data has been read and its CRLF not yet
	trailing bool  // the last chunk has been seen, its trailers not yet
	trailer  *fasthttp.ResponseHeader
	err      error // final: io.EOF once the body has ended
}

func (r *bodyReader) reset(br *bufio.Reader, length int, trailer *fasthttp.ResponseHeader) {
	*r = bodyReader{br: br, trailer: trailer}
	switch {
	case length >= 0:
		r.framing, r.left = framedLength, int64(length)
	case length == -1:
		r.framing = framedChunked
	default:
		r.framing = framedUntilClose
	}
}

// next returns the next bytes of the body, and io.EOF at its end. What the
// connection's read buffer holds is returned in place (inBuffer: consume
// what was used); when it holds nothing, a read of more than it could hold
// goes straight into spare instead, as bufio.Reader does, and the bytes
// count as consumed.
func (r *bodyReader) next(spare []byte) (p []byte, inBuffer bool, err error) {
	if r.err != nil {
		return nil, false, r.err
	}
	if r.left == 0 {
		switch r.framing {
		case framedLength:
			r.err = io.EOF
			return nil, false, io.EOF
		case framedChunked:
			if err := r.nextChunk(); err != nil {
				return nil, false, r.fail(err)
			}
		}
	}
	want := len(spare)
	if r.framing != framedUntilClose && int64(want) > r.left {
		want = int(r.left)
	}
	if r.br.Buffered() == 0 && want > r.br.Size() {
		n, err := r.br.Read(spare[:want])
		r.left -= int64(n)
		if n > 0 {
			return spare[:n], false, nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, false, r.fail(err)
	}
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, false, r.fail(err)
		}
	}
	n := r.br.Buffered()
	if r.framing != framedUntilClose && int64(n) > r.left {
		n = int(r.left)
	}
	p, _ = r.br.Peek(n)
	return p, true, nil
}

func (r *bodyReader) consume(n int) {
	r.br.Discard(n)
	r.left -= int64(n)
}

// fail records a final error (a timeout is not one). The end of the
// connection ends a body only when nothing else frames it.
func (r *bodyReader) fail(err error) error {
	switch {
	case err == errBodyEnd:
		err = io.EOF
	case err == io.EOF && r.framing != framedUntilClose:
		err = io.ErrUnexpectedEOF
	}
	if !isTimeout(err) {
		r.err = err
	}
	return err
}

// errBodyEnd is nextChunk's io.EOF: the body, not the connection, ended.
var errBodyEnd = errors.New("end of chunked body")

// nextChunk moves past the chunk just read to the next one's data, or to
// the end of the body (errBodyEnd) after the trailers. Each step consumes
// its bytes only once it has all of them.
func (r *bodyReader) nextChunk() error {
	if r.inChunk {
		if err := readCRLF(r.br); err != nil {
			return err
		}
		r.inChunk = false
	}
	if !r.trailing {
		size, err := readChunkSize(r.br)
		if err != nil {
			return err
		}
		if size > 0 {
			r.left, r.inChunk = size, true
			return nil
		}
		r.trailing = true
	}
	if err := r.trailer.ReadTrailer(r.br); err != nil {
		return err
	}
	return errBodyEnd
}

var errBadChunk = errors.New("gateway: malformed chunked body from backend")

// readChunkSize reads a chunk-size line, extensions ignored.
func readChunkSize(br *bufio.Reader) (int64, error) {
	var line []byte
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line = b[:i+1]
			break
		}
		if br.Buffered() == br.Size() {
			return 0, errBadChunk
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return 0, err
		}
	}
	var size int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			if digits == 0 || (c != ';' && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
				return 0, errBadChunk
			}
			br.Discard(len(line))
			return size, nil
		}
		if digits++; digits > 15 {
			return 0, errBadChunk
		}
		size = size<<4 | int64(d)
	}
	return 0, errBadChunk
}

func readCRLF(br *bufio.Reader) error {
	b, err := br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errBadChunk
	}
	br.Discard(2)
	return nil
}
