package store

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// silentProxy stands between the store and ZooKeeper. While silent it
// accepts connections and never answers them, as a ZooKeeper server does
// for a moment while it starts after a restart; otherwise it forwards.
type silentProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	silent bool
	held   int // connections accepted while silent
	conns  map[net.Conn]bool
}

func newSilentProxy(t *testing.T, target string) *silentProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silentProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *silentProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[c] = true
		silent := p.silent
		if silent {
			p.held++
		}
		p.mu.Unlock()
		if silent {
			go func() { _, _ = io.Copy(io.Discard, c) }() // read, never answer
			continue
		}
		go p.forward(c)
	}
}

func (p *silentProxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[s] = true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	_, _ = io.Copy(c, s)
	c.Close()
}

func (p *silentProxy) setSilent(v bool) {
	p.mu.Lock()
	p.silent = v
	p.mu.Unlock()
}

func (p *silentProxy) heldConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// cut closes every connection, as a server that dies does.
func (p *silentProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// TestZKStoreRecoversFromSilentServer: after ZooKeeper restarts, a client
// that reconnects while the server accepts but does not yet answer must
// try again within the session timeout, as the Java client does (connect
// timeout = session timeout / servers). Upstream go-zookeeper waited 10 ×
// recvTimeout (6.7 × the session timeout) in StateConnected: in make
// chaos the new leader's store reads failed for 58 s after a ZooKeeper
// restart. See third_party/go-zookeeper-zk/FLOTILLA-PATCH.md.
func TestZKStoreRecoversFromSilentServer(t *testing.T) {
	env := newZKEnv(t)
	proxy := newSilentProxy(t, env.addr)
	const session = 4 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := NewZK(ctx, ZKConfig{Servers: []string{proxy.ln.Addr().String()}, Root: env.root, SessionTimeout: session, OpTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetFrameworkID(ctx, "fw-1"); err != nil {
		t.Fatal(err)
	}

	// The server dies; the client reconnects into a server that is silent.
	proxy.setSilent(true)
	proxy.cut()
	deadline := time.Now().Add(30 * time.Second)
	for proxy.heldConns() == 0 || s.z.conn.State() != zk.StateConnected {
		if time.Now().After(deadline) {
			t.Fatalf("the client never reconnected into the silent server: %d held connections, client state %s", proxy.heldConns(), s.z.conn.State())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The server answers again. Without the bound the client keeps waiting
	// on the silent connection for 26.7 s (10 × recvTimeout of a 4 s
	// session); with it, it gives up after 4 s and reconnects.
	proxy.setSilent(false)
	healed := time.Now()
	const bound = 15 * time.Second // generous: the expected time is about session + 1 s
	for {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		id, err := s.FrameworkID(rctx)
		rcancel()
		if err == nil {
			if id != "fw-1" {
				t.Fatalf("framework id after the reconnect = %q, want fw-1", id)
			}
			t.Logf("reads came back %v after the server answered again", time.Since(healed).Round(time.Millisecond))
			return
		}
		if time.Since(healed) > bound {
			t.Fatalf("store reads still failing %v after the server answered again (client state %s, %d silent connections held): %v",
				time.Since(healed).Round(time.Millisecond), s.z.conn.State(), proxy.heldConns(), err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval when a call fails fast
	}
}
