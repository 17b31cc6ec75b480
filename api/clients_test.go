package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flotilla-sched/flotilla/deploy"
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

// seen is how many connections the listener accepted or refused.
func seen(s *Server) int {
	cl := s.conns.Load()
	return int(cl.Accepted() + cl.Refused())
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
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.ClientLimits = ClientLimits{ReadHeaderTimeout: 3 * time.Second}
	})
	addr := serveLimited(t, e.srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	slow := abuse.Press(ctx, t, addr, 10000, false)

	perIP := DefaultClientLimits().MaxConnsPerIP
	// Some of those held may be cut at the header timeout meanwhile, and
	// others accepted in their place.
	e.eventually("the idle connections held or refused", func() bool { return seen(e.srv) >= 10000 })
	if value(e.srv.met.connsRefused.WithLabelValues("max_conns_per_ip")) == 0 {
		t.Fatal("no connection was refused for the per-address cap")
	}
	c := abuse.NormalClient()
	for i := range 200 {
		path := []string{"/v2/apps", "/v2/tasks", "/ping", "/v2/info"}[i%4]
		if code, _, err := abuse.Get(c, "http://"+addr+path, ""); err != nil || code != http.StatusOK {
			t.Fatalf("normal request %d (%s): %d %v", i, path, code, err)
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
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.ClientLimits = ClientLimits{MaxEventStreams: 2, MaxHeaderBytes: 1 << 10, BodyTimeout: time.Second, MaxConns: 6}
	})
	addr := serveLimited(t, e.srv)
	c := abuse.NormalClient()
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
		got, err := abuse.Exchange("127.0.0.1", addr, "POST /v2/apps HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\":")
		if !strings.HasPrefix(got, "HTTP/1.1 408") {
			t.Fatalf("got %q (%v), want a 408", got, err)
		}
	})

	t.Run("connections over the cap get 503 at once", func(t *testing.T) {
		waitOpen := func(what string, ok func(n int) bool) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if n, err := e.srv.conns.Load().WaitOpen(ctx, ok); err != nil {
				t.Fatalf("after 15 s the API holds %d connections, want %s", n, what)
			}
		}
		// The two streams hold two of the 6 slots; the normal client's
		// kept-alive connection (the third stream's 503) may hold one more.
		// The 408's connection gives its slot back just after the client
		// saw it close: until then a held connection could be refused in
		// its place, and the slot freed after would take the one below.
		waitOpen("at most 3 (the 408's connection given back)", func(n int) bool { return n <= 3 })
		abuse.Hold(t, "127.0.0.4", addr, 4)
		// The server accepts the held connections on its own time.
		waitOpen("6, the cap", func(n int) bool { return n == 6 })
		got, err := abuse.Exchange("127.0.0.5", addr, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 503") || !strings.Contains(got, "--api-max-conns") {
			t.Fatalf("got %q (%v), want a 503 naming --api-max-conns", got, err)
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
// has, and a header timeout long enough that none is cut meanwhile; both
// ends in one process, so 9,500 with a hard open-files limit of 20,000);
// "per-ip-cap" is the defaults.
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
			e := newEnv(b, func(c *Config, _ *framework.Config, _ *deploy.Config) { c.ClientLimits = bc.limits })
			addr := serveLimited(b, e.srv)
			abuse.Bench(b, abuse.Target{Addr: addr, URL: "http://" + addr + "/v2/apps",
				Seen: func() int { return seen(e.srv) }, Held: func() int { return int(e.srv.openConns()) },
				Refused: func() int { return int(e.srv.conns.Load().Refused()) }}, bc.idle, bc.limits.MaxConnsPerIP < 0)
		})
	}
}
