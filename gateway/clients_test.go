package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/abuse"
)

const shopHost = "shop.example.com"

// abusedGateway is a gateway with one external app on a live backend.
func abusedGateway(t testing.TB, cfg Config) (*testGW, string) {
	t.Helper()
	g := newTestGateway(t, cfg)
	b := startBackend(t, "web.1", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{shopHost}), Backends: []Backend{b.Backend}}})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	return g, g.Addr(External).String()
}

// seen is how many connections the external listener accepted or refused.
func seen(g *testGW) int {
	cl := g.conns[External].Load()
	return int(cl.Accepted() + cl.Refused())
}

func refusedPerIP(t testing.TB, g *testGW) float64 {
	v, _ := metric(t, g.reg, "flotilla_gateway_connections_refused_total", map[string]string{"listener": "external", "reason": "max_conns_per_ip"})
	return v
}

// 10,000 idle connections from one address and a header sent a byte a
// second do not starve a normal client of the external listener; latency
// is not asserted (BenchmarkNormalClientUnderAbuse measures it).
func TestSlowAndAbusiveClients(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections")
	}
	g, addr := abusedGateway(t, Config{ReadHeaderTimeout: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	slow := abuse.Press(ctx, t, addr, 10000, false)
	// Some of those held may be cut at the header timeout meanwhile, and
	// others accepted in their place.
	waitFor(t, "the idle connections held or refused", func() bool { return seen(g) >= 10000 })
	if refusedPerIP(t, g) == 0 {
		t.Fatal("no connection was refused for the per-address cap")
	}
	c := abuse.NormalClient()
	for i := range 200 {
		if code, _, err := abuse.Get(c, "http://"+addr+"/", shopHost); err != nil || code != 200 {
			t.Fatalf("normal request %d: %d %v", i, code, err)
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
	if open, _ := metric(t, g.reg, "flotilla_gateway_open_connections", map[string]string{"listener": "external"}); open > DefaultMaxConnsPerIP+8 {
		t.Errorf("%v connections open, want at most the per-address cap %d and the normal client's", open, DefaultMaxConnsPerIP)
	}
}

func TestClientLimits(t *testing.T) {
	t.Parallel()
	g, addr := abusedGateway(t, Config{MaxHeaderBytes: 2 << 10, MaxConns: 3})

	t.Run("oversized header is 431", func(t *testing.T) {
		got, err := abuse.Exchange("127.0.0.1", addr, "GET / HTTP/1.1\r\nHost: "+shopHost+"\r\nX-Big: "+strings.Repeat("a", 4<<10)+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 431") {
			t.Fatalf("got %q (%v)", got, err)
		}
	})

	t.Run("connections over the cap get 503 at once", func(t *testing.T) {
		// The 431's connection counts until the gateway has closed it; held
		// beside it, the third of these would be the one refused.
		waitFor(t, "the previous subtest's connection closed", func() bool { return g.OpenConns(External) == 0 })
		abuse.Hold(t, "127.0.0.4", addr, 3)
		waitFor(t, "three connections held", func() bool { return g.OpenConns(External) == 3 })
		got, err := abuse.Exchange("127.0.0.5", addr, "GET / HTTP/1.1\r\nHost: "+shopHost+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 503") || !strings.Contains(got, "--gateway-max-conns") {
			t.Fatalf("got %q (%v)", got, err)
		}
		if v, _ := metric(t, g.reg, "flotilla_gateway_connections_refused_total", map[string]string{"listener": "external", "reason": "max_conns"}); v != 1 {
			t.Errorf("refused max_conns = %v, want 1", v)
		}
		if v, _ := metric(t, g.reg, "flotilla_gateway_open_connections", map[string]string{"listener": "external"}); v != 3 {
			t.Errorf("open connections = %v, want 3", v)
		}
	})
}

// BenchmarkNormalClientUnderAbuse reports the normal client's latency
// through the external listener while 10,000 idle connections and a
// slow-header client press on it (bench/RESULTS.md, "Slow and abusive
// clients"):
//
//	go test -run '^$' -bench NormalClientUnderAbuse -benchtime 2000x ./gateway/
//
// "per-ip-cap" is the defaults; "held" keeps every idle connection (no
// caps and a header timeout long enough that none is cut meanwhile; both
// ends in one process, so 9,500 with a hard open-files limit of 20,000).
func BenchmarkNormalClientUnderAbuse(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
		idle int
	}{
		{"per-ip-cap", Config{}, 10000},
		{"held", Config{MaxConns: -1, MaxConnsPerIP: -1, ReadHeaderTimeout: 10 * time.Minute}, 9500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g, addr := abusedGateway(b, bc.cfg)
			abuse.Bench(b, abuse.Target{Addr: addr, URL: "http://" + addr + "/", Host: shopHost,
				Seen: func() int { return seen(g) }, Held: func() int { return g.OpenConns(External) },
				Refused: func() int { return int(g.conns[External].Load().Refused()) }}, bc.idle, bc.cfg.MaxConnsPerIP < 0)
		})
	}
}
