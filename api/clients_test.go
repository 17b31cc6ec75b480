package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/abuse"
)

// serveLimited serves e's API as cmd/flotilla does: HTTPServer on
// Listener, with the client limits.
func serveLimited(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	done := make(chan error, 1)
	go func() { done <- hs.Serve(srv.Listener(ln)) }()
	t.Cleanup(func() {
		if err := hs.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// value reads one counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err) // a counter always writes
	}
	return m.GetCounter().GetValue()
}

// normalClient is a well-behaved client from 127.0.0.1.
func normalClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: abuse.Dialer("127.0.0.1").DialContext, MaxIdleConnsPerHost: 4}}
}

// abuseAPI opens n idle connections from one address and a slow-header
// client from another; it returns when both are in place.
func abuseAPI(ctx context.Context, t testing.TB, addr string, n int, serverHolds bool) (slowDone <-chan error) {
	t.Helper()
	need := uint64(n + 1000)
	if serverHolds {
		need += uint64(n)
	}
	if err := abuse.RaiseNoFile(need); err != nil {
		t.Skipf("cannot hold %d connections: %v", n, err)
	}
	idle, err := abuse.OpenIdle(ctx, "127.0.0.2", addr, n)
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
		_, err := abuse.SlowHeader(ctx, "127.0.0.3", addr, []byte("GET /v2/apps HTTP/1.1\r\nHost: x\r\nX-Slow: "+strings.Repeat("a", 100)+"\r\n\r\n"), time.Second)
		done <- err
	}()
	return done
}

// A client with 10,000 idle connections and one that sends its header a
// byte a second do not starve a normal client; the idle ones beyond the
// per-address cap are refused at once, and the slow one is cut at the
// header timeout. Latency is not asserted (BenchmarkNormalClientUnderAbuse
// measures it).
func TestSlowAndAbusiveClients(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections")
	}
	e := newEnv(t, func(c *Config, _ *framework.Config) {
		c.ClientLimits = ClientLimits{ReadHeaderTimeout: 3 * time.Second}
	})
	addr := serveLimited(t, e.srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	slow := abuseAPI(ctx, t, addr, 10000, false)

	perIP := DefaultClientLimits().MaxConnsPerIP
	e.eventually("the idle connections held up to the per-address cap, the rest refused", func() bool {
		return value(e.srv.met.connsRefused.WithLabelValues("max_conns_per_ip")) >= float64(10000-perIP)
	})
	c := normalClient()
	for i := range 200 {
		path := []string{"/v2/apps", "/v2/tasks", "/ping", "/v2/info"}[i%4]
		res, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("normal request %d (%s): %v", i, path, err)
		}
		if _, err := io.Copy(io.Discard, res.Body); err != nil {
			t.Fatalf("normal request %d: read: %v", i, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("normal request %d (%s): %d", i, path, res.StatusCode)
		}
	}
	select {
	case err := <-slow:
		if err != nil {
			t.Fatalf("slow-header client: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the slow-header client was never cut off")
	}
	if got := e.srv.openConns(); got > float64(perIP+8) {
		t.Errorf("%v connections open, want at most the per-address cap %d and the normal client's", got, perIP)
	}
}

func TestClientLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *framework.Config) {
		c.ClientLimits = ClientLimits{MaxEventStreams: 2, MaxHeaderBytes: 1 << 10, BodyTimeout: time.Second, MaxConns: 6}
	})
	addr := serveLimited(t, e.srv)
	c := normalClient()
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	t.Run("oversized header is 431", func(t *testing.T) {
		// net/http allows 4 KiB of slack over MaxHeaderBytes.
		if res := get("/ping", "X-Big", strings.Repeat("a", 8<<10)); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", res.StatusCode)
		}
	})

	t.Run("event streams over the cap get 503", func(t *testing.T) {
		for i := range 2 {
			if res := get("/v2/events"); res.StatusCode != http.StatusOK {
				t.Fatalf("stream %d: %d", i, res.StatusCode)
			}
		}
		res := get("/v2/events")
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "--api-max-event-streams") || res.Header.Get("Retry-After") == "" {
			t.Fatalf("third stream: %d %s", res.StatusCode, b)
		}
		if got := value(e.srv.met.sseRefused); got != 1 {
			t.Errorf("flotilla_api_event_streams_refused_total %v", got)
		}
	})

	t.Run("a body that stalls is answered 408", func(t *testing.T) {
		conn, err := abuse.Dialer("127.0.0.1").Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "POST /v2/apps HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\":"); err != nil {
			t.Fatal(err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(conn)
		if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
			t.Fatalf("got %q (%v), want a 408", b, err)
		}
	})

	t.Run("connections over the cap get 503 at once", func(t *testing.T) {
		// The two streams and the normal client hold some of the 6 slots.
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for len(conns) < 6 {
			c, err := abuse.Dialer("127.0.0.4").Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		last := conns[len(conns)-1]
		if err := last.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(last)
		if !strings.HasPrefix(string(b), "HTTP/1.1 503") || !strings.Contains(string(b), "--api-max-conns") {
			t.Fatalf("got %q (%v), want a 503 naming --api-max-conns", b, err)
		}
	})
}

// BenchmarkNormalClientUnderAbuse reports the normal client's latency
// while 10,000 idle connections and a slow-header client press on the API
// (bench/RESULTS.md, "Slow and abusive clients"):
//
//	go test -run '^$' -bench NormalClientUnderAbuse -benchtime 2000x ./api/
//
// "held" keeps every idle connection (no caps, as a server behind a proxy
// has, and a header timeout long enough that none is cut meanwhile; both ends in one process, so as many as the open-files limit lets
// it, 9,500 of 10,000 with a hard limit of 20,000); "per-ip-cap" is the
// defaults.
func BenchmarkNormalClientUnderAbuse(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits ClientLimits
		idle   int
	}{
		{"per-ip-cap", ClientLimits{}, 10000},
		{"held", ClientLimits{MaxConns: -1, MaxConnsPerIP: -1, ReadHeaderTimeout: 10 * time.Minute}, 9500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, func(c *Config, _ *framework.Config) { c.ClientLimits = bc.limits })
			addr := serveLimited(b, e.srv)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			refused := e.srv.met.connsRefused.WithLabelValues("max_conns_per_ip")
			abuseAPI(ctx, b, addr, bc.idle, bc.limits.MaxConnsPerIP < 0)
			// Counted as they are refused, or held: the held ones of the
			// capped case may be cut at the header timeout meanwhile.
			e.eventually("the idle connections held or refused", func() bool {
				if bc.limits.MaxConnsPerIP < 0 {
					return e.srv.openConns() >= float64(bc.idle)
				}
				return value(refused) >= float64(bc.idle-e.srv.cfg.ClientLimits.MaxConnsPerIP)
			})
			c := normalClient()
			var lat abuse.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				res, err := c.Get("http://" + addr + "/v2/apps")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, res.Body); err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
				lat.Add(time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(float64(lat.Quantile(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat.Quantile(0.99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(e.srv.openConns(), "held-conns")
			b.ReportMetric(value(refused), "refused-conns")
		})
	}
}
