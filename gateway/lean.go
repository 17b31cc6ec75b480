package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// The lean path sends GET and HEAD requests without a body over the
// gateway's own keep-alive connections, written and read on the handler's
// goroutine. http.Transport hands every request to two more goroutines per
// connection (writeLoop, readLoop); on small responses those hand-offs cost
// more CPU than the proxying itself (bench/RESULTS.md, ## gateway).
// Everything else (bodies, upgrades, other methods) goes through
// http.Transport. Only safe methods take this path, so a request that meets
// a kept-alive connection the backend has meanwhile closed can be resent on
// a fresh one.

// Socket deadlines are wall-clock by nature, so the lean path reads the
// real time for them, as http.Transport does internally; logic (ejection,
// windows) stays on the injected clock.
var wallNow = time.Now

// leanIdleTimeout bounds how long a connection waits in the pool; many
// backends close idle connections after a few seconds to a minute.
const leanIdleTimeout = 30 * time.Second

func leanEligible(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		req.Body == nil && req.Header.Get("Upgrade") == "" && len(req.TransferEncoding) == 0
}

type backendConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// connPool holds one backend's idle connections, most recent first out.
type connPool struct {
	mu     sync.Mutex
	idle   []*backendConn
	max    int
	closed bool
}

func (p *connPool) get() *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if wallNow().Sub(c.idleSince) < leanIdleTimeout {
			return c
		}
		c.Close()
	}
	return nil
}

func (p *connPool) put(c *backendConn) {
	c.idleSince = wallNow()
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

// leanRoundTrip sends req to b. A dial failure comes back as the dialer's
// *net.OpError, so passive health and retries treat it like
// http.Transport's.
func (g *Gateway) leanRoundTrip(req *http.Request, b *backendState) (*http.Response, error) {
	ctx := req.Context()
	for {
		pc, reused := b.conns.get(), true
		if pc == nil {
			reused = false
			conn, err := g.dialer.DialContext(ctx, "tcp", b.addr)
			if err != nil {
				return nil, err
			}
			pc = &backendConn{Conn: conn, br: bufio.NewReaderSize(conn, 4096), bw: bufio.NewWriterSize(conn, 4096)}
		}
		resp, err := g.leanExchange(ctx, req, pc, b.conns)
		if err == nil {
			return resp, nil
		}
		pc.Close()
		if isStale(err) && ctx.Err() == nil {
			if reused {
				continue // the backend closed it while idle; a fresh one is safe for GET and HEAD
			}
			// A new connection dropped without an answer: the backend is
			// going away. nginx's proxy_next_upstream "error" does the same.
			return nil, fmt.Errorf("%w: %w", errBackendDropped, err)
		}
		return nil, err
	}
}

// errBackendDropped marks a new connection that the backend closed or
// reset before answering; retries and passive health treat it like a
// refused connection.
var errBackendDropped = errors.New("gateway: backend dropped the connection before answering")

// aLongTimeAgo is a deadline in the past, to wake a blocked read now.
var aLongTimeAgo = time.Unix(1, 0)

func (g *Gateway) leanExchange(ctx context.Context, req *http.Request, pc *backendConn, pool *connPool) (*http.Response, error) {
	// A client that goes away wakes any read or write on the connection.
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		if !stop() && ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	pc.SetDeadline(wallNow().Add(g.cfg.ResponseHeaderTimeout))
	if err := req.Write(pc.bw); err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				err = errResponseHeaderTimeout
			}
			return fail(err)
		}
		// 1xx other than 101 precede the real answer; 101 cannot come
		// since upgrades never take this path.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close()
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("gateway: backend switched protocols without being asked"))
	}
	// The body streams without a deadline, like http.Transport's.
	pc.SetDeadline(time.Time{})
	lb := &leanBody{ReadCloser: resp.Body, pc: pc, pool: pool, stop: stop, keep: !resp.Close}
	if resp.Body == http.NoBody {
		lb.release(true)
		return resp, nil
	}
	resp.Body = lb
	return resp, nil
}

// errResponseHeaderTimeout is a timeout, so the proxy answers 504.
var errResponseHeaderTimeout = &timeoutError{"gateway: timeout awaiting response headers"}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// isStale recognises a kept-alive connection that the backend closed while
// it was idle: the write fails, or the read ends before a status line
// (http.ReadResponse reports that as io.ErrUnexpectedEOF). Resending is
// only done for GET and HEAD, so a backend that did see the request and
// then died is asked again, which those methods allow.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// leanBody gives the connection back to the pool once the body has been
// read to its end, and closes it when the body is abandoned midway.
type leanBody struct {
	io.ReadCloser
	pc   *backendConn
	pool *connPool
	stop func() bool
	keep bool
	done bool
}

func (b *leanBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.release(true)
	} else if err != nil {
		b.release(false)
	}
	return n, err
}

func (b *leanBody) Close() error {
	if !b.done {
		b.release(false)
	}
	return nil
}

func (b *leanBody) release(ok bool) {
	b.done = true
	if b.stop() && ok && b.keep {
		b.pool.put(b.pc)
		return
	}
	b.pc.Close()
}
