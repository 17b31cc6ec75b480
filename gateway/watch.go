package gateway

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// watch notices a client that closes its connection while the gateway
// waits on a backend, so the backend request is dropped and counted as
// 499 instead of running on for nobody. net/http did this with a read in
// the background of every request; fasthttp does not, and a goroutine per
// request would cost more than the proxying. So the wait starts with a
// short deadline (watchAfter): an answer that comes sooner, as almost all
// do, costs nothing, and only a slow one, or a body that streams, starts a
// goroutine that peeks at the client's socket (watch_linux.go) without
// consuming anything a pipelining client sent.
//
// All methods but isGone run on the request's goroutine; the watching
// goroutine only marks the client gone and wakes the backend read.
type watch struct {
	mu      sync.Mutex
	gone    atomic.Bool
	running bool
	client  net.Conn
	bc      *backendConn // woken when the client goes
	done    chan struct{}
}

// aLongTimeAgo is a deadline in the past, to wake a blocked read now.
var aLongTimeAgo = time.Unix(1, 0)

func (w *watch) isGone() bool { return w.gone.Load() }

// start watches ctx's client on behalf of a read on bc, unless it is
// watched already or cannot be (no raw socket).
func (w *watch) start(ctx *fasthttp.RequestCtx, bc *backendConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bc = bc
	if w.running || w.gone.Load() {
		return
	}
	c := ctx.Conn()
	if sc, ok := c.(interface{ netConn() net.Conn }); ok {
		c = sc.netConn() // sniffConn (h2.go)
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	var closed func() bool
	if s, ok := c.(*h2Stream); ok {
		closed = s.waitClosed // an HTTP/2 stream (h2.go), not a socket
	} else if s, ok := c.(*h2TLSStream); ok {
		closed = s.waitClosed
	} else if rc := rawConn(c); rc != nil {
		closed = func() bool { return waitClosed(rc) }
	} else {
		return
	}
	// The listener's header deadline must not end the watch.
	c.SetReadDeadline(time.Time{})
	w.running, w.client = true, c
	go func() {
		if closed() {
			w.mu.Lock()
			w.gone.Store(true)
			if w.bc != nil {
				w.bc.SetReadDeadline(aLongTimeAgo)
			}
			w.mu.Unlock()
		}
		w.done <- struct{}{}
	}()
}

// extend sets bc's read deadline (zero for none) unless the client is
// gone, in which case the read must not start.
func (w *watch) extend(bc *backendConn, deadline time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gone.Load() {
		return false
	}
	bc.SetReadDeadline(deadline)
	return true
}

// stop ends the watch before the backend connection is let go or the
// client connection is read again.
func (w *watch) stop() {
	w.mu.Lock()
	running, c := w.running, w.client
	w.running, w.client, w.bc = false, nil, nil
	w.mu.Unlock()
	if !running {
		return
	}
	c.SetReadDeadline(aLongTimeAgo)
	<-w.done
	c.SetReadDeadline(time.Time{})
}

func (w *watch) reset() {
	w.stop()
	w.gone.Store(false)
}
