package connlimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, cfg)
	t.Cleanup(func() { l.Close() })
	return l
}

// dialFrom connects from a given loopback address (all of 127/8 is local).
func dialFrom(t *testing.T, src string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedWith reads what a turned-away connection was told before EOF.
func refusedWith(t *testing.T, c net.Conn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the refusal: %v (got %q)", err, b)
	}
	return string(b)
}

func TestCaps(t *testing.T) {
	t.Parallel()
	refusedBy := make(chan Reason, 10)
	l := listen(t, Config{Max: 3, MaxPerIP: 2,
		Refusal:  func(r Reason) []byte { return []byte("no: " + string(r)) },
		OnRefuse: func(r Reason) { refusedBy <- r }})
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	next := func() net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	a1 := dialFrom(t, "127.0.0.2", l.Addr())
	dialFrom(t, "127.0.0.2", l.Addr())
	s1, _ := next(), next()
	if got := refusedWith(t, dialFrom(t, "127.0.0.2", l.Addr())); got != "no: max_conns_per_ip" {
		t.Fatalf("third from one address: %q", got)
	}
	dialFrom(t, "127.0.0.3", l.Addr())
	next()
	if got := refusedWith(t, dialFrom(t, "127.0.0.4", l.Addr())); got != "no: max_conns" {
		t.Fatalf("fourth in all: %q", got)
	}
	if l.Open() != 3 || l.Refused() != 2 || l.Accepted() != 3 {
		t.Fatalf("open %d refused %d accepted %d, want 3, 2 and 3", l.Open(), l.Refused(), l.Accepted())
	}
	// A slot comes back on Close (once, however often Close is called).
	a1.Close()
	s1.Close()
	s1.Close()
	if l.Open() != 2 {
		t.Fatalf("open %d after a close, want 2", l.Open())
	}
	dialFrom(t, "127.0.0.2", l.Addr())
	next()
	if r1, r2 := <-refusedBy, <-refusedBy; r1 != PerIP || r2 != Total {
		t.Fatalf("OnRefuse got %v, %v", r1, r2)
	}
}

// fakeListener fails Accept with err n times, then gives a connection.
type fakeListener struct {
	net.Listener
	err   error
	n     int
	calls atomic.Int32
	conn  net.Conn
	// third, when set, is closed by the third Accept.
	third chan struct{}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	n := f.calls.Add(1)
	if n == 3 && f.third != nil {
		close(f.third)
	}
	if int(n) <= f.n {
		return nil, f.err
	}
	return f.conn, nil
}

func (f *fakeListener) Close() error { return nil }

func TestOutOfDescriptorsBacksOff(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: &syscallErr{syscall.EMFILE}}
	f := &fakeListener{err: emfile, n: 4, conn: a}
	l := New(f, Config{})
	c, err := l.Accept()
	if err != nil || c == nil {
		t.Fatalf("Accept after EMFILE: %v", err)
	}
	// Exactly one call per back-off step, not a busy loop.
	if got := f.calls.Load(); got != 5 {
		t.Fatalf("%d accept calls, want 5", got)
	}

	// Close ends a back-off wait.
	f2 := &fakeListener{err: emfile, n: 1 << 30, third: make(chan struct{})}
	l2 := New(f2, Config{})
	done := make(chan error, 1)
	go func() { _, err := l2.Accept(); done <- err }()
	select {
	case <-f2.third: // backing off between failed accepts now
	case <-time.After(time.Minute):
		t.Fatalf("%d accept calls in a minute, want 3 before Close", f2.calls.Load())
	}
	l2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}

	// Other errors end Accept as before.
	other := errors.New("boom")
	if _, err := New(&fakeListener{err: other, n: 1}, Config{}).Accept(); err != other {
		t.Fatalf("Accept with a permanent error: %v", err)
	}
}

// syscallErr wraps an errno as os.SyscallError does.
type syscallErr struct{ errno syscall.Errno }

func (e *syscallErr) Error() string { return "accept4: " + e.errno.Error() }
func (e *syscallErr) Unwrap() error { return e.errno }

// TestReadFromReachesTheSocket: an accepted connection has ReadFrom (so
// net/http's response uses it), and what it is given arrives whole and in
// order, a net.Buffers as a file would.
func TestReadFromReachesTheSocket(t *testing.T) {
	l := listen(t, Config{})
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client := dialFrom(t, "127.0.0.1", l.Addr())
	c := <-accepted
	if c == nil {
		t.Fatal("no connection accepted")
	}
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatalf("the accepted %T has no ReadFrom", c)
	}
	var want []byte
	bufs := net.Buffers{}
	for i := 0; i < 300; i++ {
		b := []byte(strings.Repeat(string(rune('a'+i%26)), 1+i*37))
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := rf.ReadFrom(&bufs)
		if err == nil && n != int64(len(want)) {
			err = fmt.Errorf("ReadFrom wrote %d bytes, want %d", n, len(want))
		}
		errc <- errors.Join(err, c.Close())
	}()
	if err := client.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d; they differ", len(got), len(want))
	}
}

// WaitOpen returns once the count it waits for is reached, however late
// the server's side gives a slot back, and says the count it saw when its
// context ends first.
func TestWaitOpen(t *testing.T) {
	t.Parallel()
	l := listen(t, Config{})
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	dialFrom(t, "127.0.0.2", l.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := l.WaitOpen(ctx, func(n int) bool { return n == 1 }); err != nil || n != 1 {
		t.Fatalf("waiting for the accepted connection: %d, %v", n, err)
	}
	s := <-accepted
	go s.Close() // the slot comes back on another goroutine
	if n, err := l.WaitOpen(ctx, func(n int) bool { return n == 0 }); err != nil || n != 0 {
		t.Fatalf("waiting for the slot to come back: %d, %v", n, err)
	}
	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if n, err := l.WaitOpen(short, func(n int) bool { return n == 5 }); !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("an ended context: %d, %v; want 0 and context.Canceled", n, err)
	}
}

// Admit and Release count a connection accepted elsewhere (the gateway's
// event loops accept on the socket themselves) against the same caps, and
// a refusal is counted and has its answer.
func TestAdmitRelease(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var refusedFor []Reason
	l := New(ln, Config{Max: 3, MaxPerIP: 2,
		Refusal:  func(r Reason) []byte { return []byte("no: " + string(r)) },
		OnRefuse: func(r Reason) { refusedFor = append(refusedFor, r) }})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i, tc := range []struct {
		ip   netip.Addr
		ok   bool
		why  Reason
		open int
	}{{a, true, "", 1}, {a, true, "", 2}, {a, false, PerIP, 2}, {b, true, "", 3}, {b, false, Total, 3}} {
		why, ok := l.Admit(tc.ip)
		if ok != tc.ok || why != tc.why || l.Open() != tc.open {
			t.Fatalf("admit %d (%v): %v %q, %d open; want %v %q, %d", i, tc.ip, ok, why, l.Open(), tc.ok, tc.why, tc.open)
		}
	}
	if l.Accepted() != 3 || l.Refused() != 2 || len(refusedFor) != 2 || string(l.Refusal(PerIP)) != "no: max_conns_per_ip" {
		t.Fatalf("accepted %d refused %d (%v), refusal %q", l.Accepted(), l.Refused(), refusedFor, l.Refusal(PerIP))
	}
	l.Release(a)
	if why, ok := l.Admit(a); !ok || l.Open() != 3 {
		t.Fatalf("after a release: %v %q, %d open", ok, why, l.Open())
	}
}
