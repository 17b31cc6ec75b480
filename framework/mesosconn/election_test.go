package mesosconn

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// haProxy stands between a replica and ZooKeeper so a test can partition
// them: Cut closes every connection and refuses new ones until Restore.
type haProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	silent bool
	conns  map[net.Conn]struct{}
}

func newHAProxy(t testing.TB, target string) *haProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &haProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

func (p *haProxy) Addr() string { return p.ln.Addr().String() }

func (p *haProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst, dropping the bytes while the proxy is silent.
func (p *haProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			silent := p.silent
			p.mu.Unlock()
			if !silent {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Silence partitions without a sound: connections stay open, bytes are
// dropped both ways, so each side notices only by its own timeouts.
func (p *haProxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = true
}

// Cut partitions: every proxied connection is closed and new ones refused.
func (p *haProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Restore ends a partition; silenced connections stay useless, so they
// are closed for the client to reconnect.
func (p *haProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.silent {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]struct{}{}
	}
	p.cut, p.silent = false, false
}

// haCandidate is one Election running with a lead func that records its
// terms.
type haCandidate struct {
	name string
	e    *Election
	stop func()

	mu    sync.Mutex
	terms []haTerm
	began chan struct{} // one value per term start
	ended chan struct{} // one value per term end
}

type haTerm struct{ start, end time.Time }

func haStartCandidate(t *testing.T, name string, servers []string, path string, mod func(*ElectionConfig)) *haCandidate {
	t.Helper()
	cfg := ElectionConfig{
		Servers: servers, Path: path, Address: "http://" + name + ":8080", ID: name,
		SessionTimeout: 4 * time.Second, Logger: haLog(t, "election-"+name),
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewElection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &haCandidate{name: name, e: e, began: make(chan struct{}, 16), ended: make(chan struct{}, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Run(ctx, c.lead); err != nil {
			t.Errorf("%s: Run returned %v", name, err)
		}
	}()
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("%s: Run did not return within 15s of cancel", name)
			}
		})
	}
	t.Cleanup(c.stop)
	return c
}

// haWaitWatching waits until standby c watches pred's znode.
func haWaitWatching(t *testing.T, c, pred *haCandidate) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pred.e.mu.Lock()
		want := ""
		if pred.e.cur != nil {
			want = pred.e.cur.node
		}
		pred.e.mu.Unlock()
		got := c.e.watching.Load()
		if want != "" && got != nil && *got == want {
			return
		}
		if time.Now().After(deadline) {
			seen := "nothing"
			if got != nil {
				seen = *got
			}
			t.Fatalf("%s does not watch %s's znode %q after 10 s; it watches %s", c.name, pred.name, want, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *haCandidate) lead(ctx context.Context) {
	c.mu.Lock()
	c.terms = append(c.terms, haTerm{start: time.Now()})
	c.mu.Unlock()
	c.began <- struct{}{}
	<-ctx.Done()
	c.mu.Lock()
	c.terms[len(c.terms)-1].end = time.Now()
	c.mu.Unlock()
	c.ended <- struct{}{}
}

func (c *haCandidate) lastTerm() haTerm {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.terms) == 0 {
		return haTerm{}
	}
	return c.terms[len(c.terms)-1]
}

func haWait(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}

func haLeaderAddress(t *testing.T, c *haCandidate) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := c.e.LeaderAddress(ctx)
	if err != nil {
		t.Fatalf("%s: LeaderAddress: %v", c.name, err)
	}
	return addr
}

// The first candidate leads, the others know its address; when it leaves,
// its successor (and only it) leads.
func TestElectionLeaderAndSuccession(t *testing.T) {
	t.Parallel()
	servers, root, _ := haZK(t)
	path := root + "/leader"
	a := haStartCandidate(t, "a", servers, path, nil)
	haWait(t, a.began, 10*time.Second, "a elected")
	// One at a time, so that b's znode precedes c's: b and c have joined
	// once they can answer LeaderAddress.
	var b, c *haCandidate
	for _, name := range []string{"b", "c"} {
		s := haStartCandidate(t, name, servers, path, nil)
		if name == "b" {
			b = s
		} else {
			c = s
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			addr, err := s.e.LeaderAddress(ctx)
			cancel()
			if err == nil {
				if addr != "http://a:8080" {
					t.Fatalf("%s sees leader %q, want http://a:8080", s.name, addr)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: LeaderAddress: %v", s.name, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !a.e.IsLeader() || b.e.IsLeader() || c.e.IsLeader() {
		t.Fatalf("leaders a=%v b=%v c=%v, want only a", a.e.IsLeader(), b.e.IsLeader(), c.e.IsLeader())
	}
	// b joined before c, so b is a's successor. c must stay put.
	haWaitWatching(t, c, b)
	a.stop()
	haWait(t, b.began, 10*time.Second, "b elected after a left")
	if c.e.IsLeader() {
		t.Fatal("c leads too")
	}
	select {
	case <-c.began:
		t.Fatal("c was elected")
	case <-time.After(200 * time.Millisecond):
	}
	if got := haLeaderAddress(t, c); got != "http://b:8080" {
		t.Fatalf("c sees leader %q, want http://b:8080", got)
	}
	if !a.lastTerm().end.Before(b.lastTerm().start) {
		t.Fatalf("terms overlap: a ended %v, b began %v", a.lastTerm().end, b.lastTerm().start)
	}
}

func TestElectionAbdicate(t *testing.T) {
	t.Parallel()
	servers, root, _ := haZK(t)
	path := root + "/leader"
	a := haStartCandidate(t, "a", servers, path, nil)
	haWait(t, a.began, 10*time.Second, "a elected")
	b := haStartCandidate(t, "b", servers, path, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := b.e.LeaderAddress(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never joined: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.e.Abdicate(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("standby Abdicate: %v, want ErrNotLeader", err)
	}
	if err := a.e.Abdicate(ctx); err != nil {
		t.Fatalf("leader Abdicate: %v", err)
	}
	if a.e.IsLeader() {
		t.Fatal("a still leads after Abdicate returned")
	}
	haWait(t, a.ended, time.Second, "a's term ended")
	haWait(t, b.began, 10*time.Second, "b elected after a abdicated")
	// a joined again behind b, and leads again when b abdicates.
	deadline = time.Now().Add(10 * time.Second)
	for haLeaderAddressOrEmpty(a) != "http://b:8080" {
		if time.Now().After(deadline) {
			t.Fatal("a never saw b lead")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.e.Abdicate(ctx); err != nil {
		t.Fatalf("b Abdicate: %v", err)
	}
	haWait(t, a.began, 10*time.Second, "a elected again")
}

func haLeaderAddressOrEmpty(c *haCandidate) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr, _ := c.e.LeaderAddress(ctx)
	return addr
}

// A leader cut off from ZooKeeper stops leading. By default it fences
// itself FenceAfter into the disconnection, before the server expires its
// session, so its term ends before the standby's begins. With a FenceAfter
// longer than the partition it only learns of the expiry when it reaches
// ZooKeeper again (StateExpired) and fences then; Mesos's own failover
// fencing covers that gap. Either way it rejoins as a standby.
func TestElectionSessionLossFences(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		fenceAfter time.Duration
		silent     bool // drop bytes instead of closing connections
		// beforeTakeover: a's term must end before b's begins.
		beforeTakeover bool
	}{
		{"connection closed: disconnect timer fences before expiry", 0, false, true},
		{"silent partition: disconnect timer fences before expiry", 0, true, true},
		{"expiry seen on reconnect fences", time.Hour, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			servers, root, _ := haZK(t)
			path := root + "/leader"
			proxy := newHAProxy(t, servers[0])
			a := haStartCandidate(t, "a", []string{proxy.Addr()}, path, func(c *ElectionConfig) { c.FenceAfter = tc.fenceAfter })
			haWait(t, a.began, 10*time.Second, "a elected")
			b := haStartCandidate(t, "b", servers, path, nil)
			haWaitWatching(t, b, a) // b joins behind a

			if tc.silent {
				proxy.Silence()
			} else {
				proxy.Cut()
			}
			if tc.beforeTakeover {
				haWait(t, a.ended, 10*time.Second, "a fenced")
				if a.e.IsLeader() {
					t.Fatal("a fenced but IsLeader")
				}
			}
			haWait(t, b.began, 20*time.Second, "b elected after a's session expired")
			if !tc.beforeTakeover {
				// Leading on, cut off: its kills are held (replica.go).
				deadline := time.Now().Add(10 * time.Second)
				for !a.e.SessionDisconnected() {
					if time.Now().After(deadline) {
						t.Fatalf("a cut from ZooKeeper for 10 s, still leading (%v), but SessionDisconnected is false", a.e.IsLeader())
					}
					time.Sleep(20 * time.Millisecond)
				}
				select {
				case <-a.ended:
					t.Fatal("a fenced while partitioned with a one-hour FenceAfter; what told it?")
				default:
				}
			}
			proxy.Restore()
			if !tc.beforeTakeover {
				haWait(t, a.ended, 20*time.Second, "a fenced on reconnecting")
			}
			if fenced, elected := a.lastTerm().end, b.lastTerm().start; tc.beforeTakeover && !fenced.Before(elected) {
				t.Fatalf("a fenced at %v, after b was elected at %v", fenced, elected)
			}
			deadline := time.Now().Add(20 * time.Second)
			for haLeaderAddressOrEmpty(a) != "http://b:8080" {
				if time.Now().After(deadline) {
					t.Fatal("a did not rejoin as a standby of b")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if a.e.IsLeader() || !b.e.IsLeader() {
				t.Fatalf("after rejoin a leads=%v b leads=%v, want only b", a.e.IsLeader(), b.e.IsLeader())
			}
			if a.e.SessionDisconnected() {
				t.Fatal("a rejoined with a new session but SessionDisconnected is still true")
			}
			a.mu.Lock()
			n := len(a.terms)
			a.mu.Unlock()
			if n != 1 {
				t.Fatalf("a had %d terms, want 1", n)
			}
		})
	}
}

func TestSortedCandidates(t *testing.T) {
	t.Parallel()
	got := sortedCandidates([]string{
		"_c_0f-member_0000000012", "_c_aa-member_0000000003", "other", "_c_bb-member_x", "member_0000000007",
	})
	want := []string{"_c_aa-member_0000000003", "member_0000000007", "_c_0f-member_0000000012"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestNewElectionRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  ElectionConfig
	}{
		{"no servers", ElectionConfig{Path: "/flotilla/leader"}},
		{"relative path", ElectionConfig{Servers: []string{"127.0.0.1:2181"}, Path: "flotilla/leader"}},
		{"trailing slash", ElectionConfig{Servers: []string{"127.0.0.1:2181"}, Path: "/flotilla/leader/"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewElection(tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
