package abuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RaiseNoFile raises the open-files limit to at least n: the soft limit,
// and the hard one when the process may (root). Thousands of connections
// on both ends of loopback need a descriptor each.
func RaiseNoFile(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("abuse: getrlimit: %w", err)
	}
	if rl.Cur >= n {
		return nil
	}
	rl.Cur = n
	if rl.Max < n {
		rl.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("abuse: raise the open-files limit to %d: %w", n, err)
	}
	return nil
}

// Dialer connects from a given loopback source address.
func Dialer(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 30 * time.Second, Control: bindNoPort}
}

// Idle is a set of connections that never send a byte.
type Idle struct {
	mu    sync.Mutex
	conns []net.Conn
}

// OpenIdle dials n connections from src to addr and keeps them. A dial
// the server's backlog cannot take at once is retried by the kernel, so
// this takes as long as the server takes to accept (or refuse) them.
func OpenIdle(ctx context.Context, src, addr string, n int) (*Idle, error) {
	const parallel = 64
	d := Dialer(src)
	idle := &Idle{conns: make([]net.Conn, 0, n)}
	var wg sync.WaitGroup
	errc := make(chan error, parallel)
	next := make(chan struct{})
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					errc <- err
					return
				}
				idle.mu.Lock()
				idle.conns = append(idle.conns, c)
				idle.mu.Unlock()
			}
		}()
	}
	var err error
feed:
	for range n {
		select {
		case next <- struct{}{}:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if err != nil {
		return idle, fmt.Errorf("abuse: dial idle connection %d of %d: %w", idle.Len()+1, n, errors.Join(err, idle.Close()))
	}
	return idle, nil
}

// Len is how many connections were opened.
func (i *Idle) Len() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.conns)
}

// Close closes them all.
func (i *Idle) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	var errs []error
	for _, c := range i.conns {
		// A reset, not a close: 10,000 sockets left in TIME_WAIT would
		// hold their ports for a minute, against the next run.
		if tc, ok := c.(*net.TCPConn); ok {
			if err := tc.SetLinger(0); err != nil {
				errs = append(errs, err)
			}
		}
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	i.conns = nil
	return errors.Join(errs...)
}

// SlowHeader sends header one byte every interval from src, and then,
// having nothing more to send, waits. It returns once the server has
// closed the connection (nil) or ctx ends (its error), with the bytes sent.
func SlowHeader(ctx context.Context, src, addr string, header []byte, every time.Duration) (int, error) {
	c, err := Dialer(src).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("abuse: dial: %w", err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		var b [512]byte
		for {
			// Whatever the server answers (408, or nothing) the end is EOF
			// or a reset.
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	sent := 0
	for {
		select {
		case <-closed:
			return sent, nil
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-t.C:
			if sent == len(header) {
				continue
			}
			if _, err := c.Write(header[sent : sent+1]); err != nil {
				<-closed
				return sent, nil
			}
			sent++
		}
	}
}

// Latencies collects request durations; safe for concurrent use.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Quantile returns the q-quantile (0.99 for p99) by nearest rank; 0 when
// nothing was recorded.
func (l *Latencies) Quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Len is how many were recorded.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Press puts the abuse of the tests in place against addr: n idle
// connections from 127.0.0.2 (closed at cleanup), and a client from
// 127.0.0.3 that sends a request header a byte a second; its result (nil
// once the server cut it) arrives on the channel. serverHolds says the
// server will hold all n, so this process needs descriptors for both ends;
// without enough the test is skipped.
func Press(ctx context.Context, t testing.TB, addr string, n int, serverHolds bool) <-chan error {
	t.Helper()
	need := uint64(n + 1000)
	if serverHolds {
		need += uint64(n)
	}
	if err := RaiseNoFile(need); err != nil {
		t.Skipf("cannot hold %d connections: %v", n, err)
	}
	idle, err := OpenIdle(ctx, "127.0.0.2", addr, n)
	t.Cleanup(func() {
		if err := idle.Close(); err != nil {
			t.Logf("closing idle connections: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		hdr := "GET / HTTP/1.1\r\nHost: slow.example.com\r\nX-Slow: " + strings.Repeat("a", 100) + "\r\n\r\n"
		_, err := SlowHeader(ctx, "127.0.0.3", addr, []byte(hdr), time.Second)
		done <- err
	}()
	return done
}

// NormalClient is a well-behaved HTTP client from 127.0.0.1.
func NormalClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: Dialer("127.0.0.1").DialContext, MaxIdleConnsPerHost: 4}}
}

// Get sends one request with the normal client and reads the answer
// whole; it returns the status and how long it took.
func Get(c *http.Client, url, host string) (int, time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	if host != "" {
		req.Host = host
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	if cerr := res.Body.Close(); err == nil {
		err = cerr
	}
	return res.StatusCode, time.Since(start), err
}

// Exchange sends req as raw bytes from src and returns what came back
// before the server closed (or reset: a server that closes with part of
// the request unread resets the connection, and what arrived first is its
// answer) or 30 seconds passed.
func Exchange(src, addr, req string) (string, error) {
	c, err := Dialer(src).Dial("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("abuse: dial: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, req); err != nil {
		return "", fmt.Errorf("abuse: write: %w", err)
	}
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		err = nil
	}
	return string(b), err
}

// Hold opens n connections from src that send nothing, closed at cleanup.
func Hold(t testing.TB, src, addr string, n int) {
	t.Helper()
	idle, err := OpenIdle(context.Background(), src, addr, n)
	t.Cleanup(func() {
		if err := idle.Close(); err != nil {
			t.Logf("closing held connections: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Target is a listener under abuse, as a benchmark sees it.
type Target struct {
	Addr string // host:port the abuse goes to
	URL  string // what the normal client asks for
	Host string // its Host header; "" for the URL's
	// Seen counts connections accepted or refused so far; Held and Refused
	// are reported with the latencies.
	Seen    func() int
	Held    func() int
	Refused func() int
}

// Bench presses on t with idle connections and a slow-header client
// (Press), waits until the listener has seen them all, then times one
// normal request per iteration and reports the median and the 99th
// percentile in milliseconds, and the connections held and refused.
func Bench(b *testing.B, t Target, idle int, serverHolds bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	Press(ctx, b, t.Addr, idle, serverHolds)
	for deadline := time.Now().Add(time.Minute); t.Seen() < idle; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("the listener saw %d of %d idle connections in a minute", t.Seen(), idle)
		}
	}
	c := NormalClient()
	var lat Latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code, d, err := Get(c, t.URL, t.Host)
		if err != nil || code != http.StatusOK {
			b.Fatalf("normal request %d: %d %v", i, code, err)
		}
		lat.Add(d)
	}
	b.StopTimer()
	b.ReportMetric(float64(lat.Quantile(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat.Quantile(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(t.Held()), "held-conns")
	b.ReportMetric(float64(t.Refused()), "refused-conns")
}
