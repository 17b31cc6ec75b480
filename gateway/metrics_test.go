package gateway

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// RequestRate is per instance, over the sliding window of the injected
// clock; a new instance is averaged over its own age.
func TestRequestRateWindow(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{Window: 10 * time.Second})
	a := startBackend(t, "web.a", nil)
	b := startBackend(t, "web.b", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{a.Backend, b.Backend}}})
	front := g.front(t, Internal)
	get := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if status, _ := do(t, front, "GET", webDNS, "/", nil); status != 200 {
				t.Fatalf("status %d", status)
			}
		}
	}
	check := func(step string, want map[string]float64) {
		t.Helper()
		got := g.RequestRate(webID)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: RequestRate = %v; want %v", step, got, want)
		}
	}

	get(20) // 10 each at t=0
	check("first second", map[string]float64{"web.a": 10, "web.b": 10})
	g.clock.Step(4 * time.Second)
	check("5 s old", map[string]float64{"web.a": 2, "web.b": 2})
	get(20) // 10 more each at t=4
	g.clock.Step(5 * time.Second)
	check("full window", map[string]float64{"web.a": 2, "web.b": 2})
	g.clock.Step(1 * time.Second) // t=10: the t=0 second left the window
	check("first second gone", map[string]float64{"web.a": 1, "web.b": 1})
	g.clock.Step(10 * time.Second)
	check("idle window", map[string]float64{"web.a": 0, "web.b": 0})

	// A backend added now is young: its rate uses its own age.
	c := startBackend(t, "web.c", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{a.Backend, b.Backend, c.Backend}}})
	get(30)
	g.clock.Step(time.Second)
	check("young backend", map[string]float64{"web.a": 1, "web.b": 1, "web.c": 5})

	if got := g.RequestRate("/nope"); len(got) != 0 {
		t.Fatalf("unknown app rate = %v", got)
	}
	if _, ok := g.Latency("/nope"); ok {
		t.Fatal("Latency of an unknown app is ok")
	}
	l, ok := g.Latency(webID)
	if !ok || l.Count != 30 { // only the last 30 requests are in the window
		t.Fatalf("Latency = %v, %v; want 30 samples", l, ok)
	}
}

func TestLatencyWindowPercentiles(t *testing.T) {
	t.Parallel()
	w := newLatencyWindow(10)
	// 90 fast requests at t=100, 9 slower at t=101, 1 very slow at t=102.
	for i := 0; i < 90; i++ {
		w.add(100, time.Millisecond)
	}
	for i := 0; i < 9; i++ {
		w.add(101, 20*time.Millisecond)
	}
	w.add(102, 2*time.Second)

	within := func(got, want time.Duration) bool { return got >= want && got <= want*12/10 }
	cases := []struct {
		name          string
		now           int64
		count         uint64
		p50, p90, p99 time.Duration
	}{
		{"all", 102, 100, time.Millisecond, time.Millisecond, 20 * time.Millisecond},
		{"first second gone", 110, 10, 20 * time.Millisecond, 20 * time.Millisecond, 2 * time.Second},
		{"empty", 200, 0, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := w.latency(tc.now)
			if l.Count != tc.count {
				t.Fatalf("count %d; want %d", l.Count, tc.count)
			}
			if tc.count == 0 {
				if l.P50 != 0 || l.P99 != 0 {
					t.Fatalf("empty window gave %v", l)
				}
				return
			}
			if !within(l.P50, tc.p50) || !within(l.P90, tc.p90) || !within(l.P99, tc.p99) {
				t.Fatalf("got %v; want p50 %v p90 %v p99 %v (each up to 20%% above)", l, tc.p50, tc.p90, tc.p99)
			}
		})
	}
}

func TestMetricsFollowBackends(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	a := startBackend(t, "web.a", nil)
	b := startBackend(t, "web.b", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{a.Backend, b.Backend}}})
	front := g.front(t, Internal)
	for i := 0; i < 4; i++ {
		do(t, front, "GET", webDNS, "/", nil)
	}
	do(t, front, "GET", "nope", "/", nil)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"flotilla_gateway_requests_total", map[string]string{"app": webID, "task": "web.a", "code": "2xx"}, 2},
		{"flotilla_gateway_requests_total", map[string]string{"app": webID, "task": "web.b", "code": "2xx"}, 2},
		{"flotilla_gateway_request_duration_seconds", map[string]string{"app": webID}, 4},
		{"flotilla_gateway_in_flight_requests", map[string]string{"app": webID}, 0},
		{"flotilla_gateway_unrouted_requests_total", map[string]string{"listener": "internal"}, 1},
		{"flotilla_gateway_route_updates_total", nil, 1},
	} {
		if v, ok := metric(t, g.reg, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (exists %v); want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	// web.b leaves: its series go, web.a's stay.
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{a.Backend}}})
	if _, ok := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"task": "web.b"}); ok {
		t.Error("series of a removed backend still exported")
	}
	if v, _ := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"task": "web.a", "code": "2xx"}); v != 2 {
		t.Errorf("web.a requests = %v after an update; want 2", v)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  Config
	}{
		{"bad external addr", Config{ExternalAddr: "8000"}},
		{"bad internal addr", Config{InternalAddr: "localhost"}},
		{"cert without key", Config{TLSCertFile: "/tmp/x.pem"}},
		{"missing cert files", Config{TLSCertFile: "/nonexistent/c.pem", TLSKeyFile: "/nonexistent/k.pem"}},
		{"bad balance", Config{Balance: "random"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tc.cfg); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("New = %v; want ErrBadConfig", err)
			}
		})
	}
}
