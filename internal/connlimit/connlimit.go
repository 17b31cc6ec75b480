package connlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Reason says why a connection was turned away.
type Reason string

// Reasons, used as metric label values.
const (
	Total Reason = "max_conns"        // the listener holds Max connections
	PerIP Reason = "max_conns_per_ip" // this client address holds MaxPerIP
)

// Config sets the caps; zero values mean no cap.
type Config struct {
	Max      int
	MaxPerIP int
	// Refusal, when set, is written to a turned-away connection before it
	// is closed, so a client learns why (an HTTP 503 or 429).
	Refusal func(Reason) []byte
	// OnRefuse is called once per turned-away connection (metrics).
	OnRefuse func(Reason)
	// Log gets a warning when accept starts failing for want of
	// descriptors, and when it recovers. Default: discarded.
	Log *logrus.Entry
}

// Backoff bounds for accept errors, as net/http's own Serve uses.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
	// refusalWrite bounds writing a refusal: Accept is one goroutine for
	// the whole listener, so a client that does not read cannot hold it.
	refusalWrite = 100 * time.Millisecond
)

// Listener is a net.Listener with the caps of its Config.
type Listener struct {
	net.Listener
	cfg     Config
	done    chan struct{}
	closeMu sync.Once

	mu    sync.Mutex
	open  int
	perIP map[netip.Addr]int
	// changed (on mu) wakes WaitOpen when open moves; a Broadcast with
	// nobody waiting is an atomic load.
	changed *sync.Cond

	refused, accepted atomic.Uint64
}

// New wraps ln.
func New(ln net.Listener, cfg Config) *Listener {
	if cfg.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		cfg.Log = logrus.NewEntry(l)
	}
	l := &Listener{Listener: ln, cfg: cfg, done: make(chan struct{}), perIP: map[netip.Addr]int{}}
	l.changed = sync.NewCond(&l.mu)
	return l
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Open is the number of connections handed out and not yet closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// WaitOpen waits until ok holds for the number of open connections, or
// ctx ends (an error, even if ok holds by then); it returns the number it
// last saw. A slot comes back when the
// server closes a connection, which its client may notice first, so a
// caller that counts on the slots waits here rather than polling Open.
func (l *Listener) WaitOpen(ctx context.Context, ok func(open int) bool) (int, error) {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.changed.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for !ok(l.open) {
		if err := ctx.Err(); err != nil {
			return l.open, err
		}
		l.changed.Wait()
		if err := ctx.Err(); err != nil {
			// Woken by the context's end: a count reached only now came
			// without the wake-up that should have said so.
			return l.open, err
		}
	}
	return l.open, nil
}

// Accepted is the number of connections handed out so far.
func (l *Listener) Accepted() uint64 { return l.accepted.Load() }

// Refused is the number of connections turned away so far.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Close closes the listener and ends a back-off wait in Accept.
func (l *Listener) Close() error {
	l.closeMu.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !OutOfDescriptors(err) {
				return nil, err
			}
			if delay == 0 {
				l.cfg.Log.WithError(err).Warn("accepting connections fails for want of file descriptors; backing off (raise the open-files limit, or lower the connection caps)")
			}
			delay = Backoff(delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
				continue
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			}
		}
		if delay != 0 {
			delay = 0
			l.cfg.Log.Info("accepting connections again")
		}
		ip := addrOf(c.RemoteAddr())
		if why, ok := l.Admit(ip); !ok {
			l.refuse(c, why)
			continue
		}
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

// Admit takes a slot for a connection from ip, and counts it as accepted
// or refused (OnRefuse too). Accept uses it, and so can a server that
// accepts on the socket itself (the gateway's event loops). ok: the slot
// goes back with Release when the connection closes. Not ok: the caller
// writes Refusal(why), if any, and closes the connection.
func (l *Listener) Admit(ip netip.Addr) (Reason, bool) {
	why, ok := l.admit(ip)
	if !ok {
		l.refused.Add(1)
		if l.cfg.OnRefuse != nil {
			l.cfg.OnRefuse(why)
		}
		return why, false
	}
	l.accepted.Add(1)
	return "", true
}

// Release gives back a slot Admit took.
func (l *Listener) Release(ip netip.Addr) { l.release(ip) }

// Refusal is the answer for a connection turned away for why; nil when
// the Config has none.
func (l *Listener) Refusal(why Reason) []byte {
	if l.cfg.Refusal == nil {
		return nil
	}
	return l.cfg.Refusal(why)
}

func (l *Listener) admit(ip netip.Addr) (Reason, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Max > 0 && l.open >= l.cfg.Max {
		return Total, false
	}
	if l.cfg.MaxPerIP > 0 && ip.IsValid() && l.perIP[ip] >= l.cfg.MaxPerIP {
		return PerIP, false
	}
	l.open++
	l.changed.Broadcast()
	if ip.IsValid() && l.cfg.MaxPerIP > 0 {
		l.perIP[ip]++
	}
	return "", true
}

func (l *Listener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	l.changed.Broadcast()
	if ip.IsValid() && l.cfg.MaxPerIP > 0 {
		if l.perIP[ip]--; l.perIP[ip] <= 0 {
			delete(l.perIP, ip)
		}
	}
}

// refuse answers and closes a connection Admit turned away.
func (l *Listener) refuse(c net.Conn, why Reason) {
	if l.cfg.Refusal != nil {
		// A fresh socket's send buffer takes a short answer without
		// waiting; the deadline is for a peer that shrank its window to 0.
		// Neither error matters: the connection is closed either way, and
		// the refusal is counted.
		_ = c.SetWriteDeadline(time.Now().Add(refusalWrite))
		_, _ = c.Write(l.cfg.Refusal(why))
	}
	if err := c.Close(); err != nil {
		l.cfg.Log.WithError(err).Debug("closing a refused connection")
	}
}

// Backoff is the next wait after an accept that failed for want of
// descriptors: minBackoff first (prev 0), then doubling up to maxBackoff.
func Backoff(prev time.Duration) time.Duration {
	if prev == 0 {
		return minBackoff
	}
	return min(2*prev, maxBackoff)
}

// OutOfDescriptors reports the accept errors that pass once connections
// close; anything else ends Accept as before.
func OutOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// conn gives its slot back once, on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	ip   netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// SyscallConn keeps the socket reachable through the wrapper (the gateway
// peeks at it to notice a client that left).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connlimit: the connection has no file descriptor")
	}
	return sc.SyscallConn()
}

// CloseWrite half-closes, for tunnels that pass a peer's end of stream on.
func (c *conn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return errors.New("connlimit: the connection cannot half-close")
	}
	return cw.CloseWrite()
}

// ReadFrom keeps the socket's own ReadFrom reachable through the wrapper:
// net/http hands a response body to the connection's ReadFrom when it has
// one (the API's group tree, a net.Buffers of kept pieces, then goes out
// as writev instead of a write per piece; a file as sendfile).
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
