package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// Mapping is one forwarded port: HostPort on the forwarder's address to
// ContainerPort on 127.0.0.1 inside the namespace.
type Mapping struct {
	HostPort      int
	ContainerPort int
	// Protocol is "tcp" or "udp".
	Protocol string
}

func (m Mapping) String() string {
	return fmt.Sprintf("%d/%s->%d", m.HostPort, m.Protocol, m.ContainerPort)
}

// Config tunes a Forwarder. The zero value is usable.
type Config struct {
	// Clock expires idle UDP flows; default the wall clock.
	Clock clock.Clock
	// UDPIdle is how long a UDP flow lives without a datagram either way;
	// default 90 s (Docker's userland proxy).
	UDPIdle time.Duration
	// DialTimeout bounds the connection to the container per accepted TCP
	// connection; default 10 s.
	DialTimeout time.Duration
	// Log receives what the forwarder cannot report otherwise (a failed
	// dial, a dropped datagram); default discards.
	Log *logrus.Entry
}

// Forwarder forwards a set of mappings. Listen binds them all; Serve starts
// forwarding; Close stops everything.
type Forwarder struct {
	host string
	cfg  Config
	log  *logrus.Entry
	tcp  []*tcpListener
	udp  []*udpProxy

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	serving bool
	conns   map[*net.TCPConn]struct{}
}

type tcpListener struct {
	ln *net.TCPListener
	m  Mapping
}

// Listen binds every mapping on host (an IP address or a name that
// resolves to one). Nothing is forwarded until Serve. If one port cannot be
// bound, those already bound are closed and the error names the port.
func Listen(host string, mappings []Mapping, cfg Config) (*Forwarder, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.UDPIdle <= 0 {
		cfg.UDPIdle = 90 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logging.Discard())
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{host: host, cfg: cfg, log: cfg.Log, ctx: ctx, cancel: cancel, conns: map[*net.TCPConn]struct{}{}}
	for _, m := range mappings {
		addr := net.JoinHostPort(host, strconv.Itoa(m.HostPort))
		var err error
		switch strings.ToLower(m.Protocol) {
		case "tcp", "":
			var ln net.Listener
			ln, err = net.Listen("tcp4", addr)
			if err == nil {
				f.tcp = append(f.tcp, &tcpListener{ln: ln.(*net.TCPListener), m: m})
			}
		case "udp":
			var pc net.PacketConn
			pc, err = net.ListenPacket("udp4", addr)
			if err == nil {
				f.udp = append(f.udp, newUDPProxy(f, pc.(*net.UDPConn), m))
			}
		default:
			err = fmt.Errorf("protocol %q is neither tcp nor udp", m.Protocol)
		}
		if err != nil {
			if cerr := f.Close(); cerr != nil {
				f.log.WithError(cerr).Warn("closing the ports bound before the failure")
			}
			return nil, fmt.Errorf("portfwd: cannot bind host port %d/%s on %s: %w", m.HostPort, strings.ToLower(m.Protocol), host, err)
		}
	}
	return f, nil
}

// Addrs gives the bound addresses, TCP first ("tcp 127.0.0.1:31000").
func (f *Forwarder) Addrs() []string {
	var out []string
	for _, t := range f.tcp {
		out = append(out, "tcp "+t.ln.Addr().String())
	}
	for _, u := range f.udp {
		out = append(out, "udp "+u.ln.LocalAddr().String())
	}
	return out
}

// Serve starts forwarding into ns, which must stay open until Close has
// returned. It returns at once; a second call does nothing.
func (f *Forwarder) Serve(ns *NetNS) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.serving {
		return
	}
	f.serving = true
	for _, t := range f.tcp {
		f.wg.Add(1)
		go f.acceptLoop(t, ns)
	}
	for _, u := range f.udp {
		u.start(ns)
	}
}

// Close closes every listener, connection and UDP flow and waits for the
// forwarder's goroutines to end. The ports can be bound again once it
// returns.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	f.cancel()
	var errs []error
	for _, t := range f.tcp {
		if err := t.ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("portfwd: close %s: %w", t.m, err))
		}
	}
	for _, u := range f.udp {
		if err := u.close(); err != nil {
			errs = append(errs, err)
		}
	}
	for c := range conns {
		// The peers are going away with the task; what they had in flight
		// is lost either way.
		_ = c.Close()
	}
	f.wg.Wait()
	return errors.Join(errs...)
}

func (f *Forwarder) track(cs ...*net.TCPConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *Forwarder) untrack(cs ...*net.TCPConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

func (f *Forwarder) acceptLoop(t *tcpListener, ns *NetNS) {
	defer f.wg.Done()
	log := f.log.WithField("mapping", t.m.String())
	var backoff time.Duration
	for {
		c, err := t.ln.AcceptTCP()
		if err != nil {
			if f.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off instead of
			// spinning, as net/http's server does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.WithError(err).WithField("retry_in", backoff).Warn("accept failed")
			tm := f.cfg.Clock.NewTimer(backoff)
			select {
			case <-tm.C():
			case <-f.ctx.Done():
				tm.Stop()
				return
			}
			continue
		}
		backoff = 0
		f.wg.Add(1)
		go f.serveTCP(c, t.m, ns, log)
	}
}

// serveTCP carries one connection: the client's bytes to the container on
// a second goroutine, the container's back on this one. Each direction
// half-closes its destination on EOF; an error in either closes both.
func (f *Forwarder) serveTCP(c *net.TCPConn, m Mapping, ns *NetNS, log *logrus.Entry) {
	defer f.wg.Done()
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
	up, err := ns.DialTCP(ctx, m.ContainerPort)
	cancel()
	if err != nil {
		// As Docker's proxy does: the client sees its connection closed.
		log.WithError(err).WithField("client", c.RemoteAddr().String()).Info("cannot reach the container; client connection closed")
		_ = c.Close()
		return
	}
	if !f.track(c, up) {
		_ = c.Close()
		_ = up.Close()
		return
	}
	defer f.untrack(c, up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(up, c)
	}()
	pipe(c, up)
	<-done
	// Both directions have ended; close errors change nothing for anyone.
	_ = c.Close()
	_ = up.Close()
}

// pipe copies src to dst (splice on Linux) and half-closes dst at EOF; on
// an error both sides are closed so the other direction ends too.
func pipe(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if err := dst.CloseWrite(); err != nil {
		_ = dst.Close()
		_ = src.Close()
	}
}
