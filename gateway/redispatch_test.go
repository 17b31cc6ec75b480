package gateway

import (
	"bytes"
	"testing"
	"time"
)

// TestRouteWait: a request that finds every backend of its app refusing
// (a follower's routes trailing the leader's kills) waits for the next
// route table and is served by the backends in it; without new routes it
// gets the 503 after RouteWait; a request with a body is not held (it
// cannot be sent again), and an app with no backends answers at once.
func TestRouteWait(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	dead := []Backend{refusingBackend(t, "web.1"), refusingBackend(t, "web.2")}
	g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: dead}})
	front := g.front(t, External)
	type answer struct {
		status int
		body   string
	}
	ask := func(method string, body []byte) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			var status int
			var b string
			if body != nil {
				status, b = do(t, front, method, "shop.example.com", "/", bytes.NewReader(body))
			} else {
				status, b = do(t, front, method, "shop.example.com", "/", nil)
			}
			ch <- answer{status, b}
		}()
		return ch
	}
	waits := int64(0)
	waiting := func(what string) {
		t.Helper()
		waits++
		waitFor(t, what, func() bool { return g.routeWaits.Load() == waits })
	}

	// New routes arrive while the request waits: the replacement serves it.
	got := ask("GET", nil)
	waiting("the GET to wait for newer routes")
	// An update that brings nothing to try (another app changed) does
	// not end the wait.
	other := startBackend(t, "other.1", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: dead},
		{ID: "/other", DNSName: "other.marathon.mesos", Backends: []Backend{other.Backend}}})
	select {
	case a := <-got:
		t.Fatalf("answered %d %q after an update that left only the refusing backends", a.status, a.body)
	case <-time.After(50 * time.Millisecond):
	}
	live := startBackend(t, "web.3", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: append(dead, live.Backend)}})
	select {
	case a := <-got:
		if a.status != 200 || decodeEcho(t, a.body).Task != "web.3" {
			t.Fatalf("after new routes: %d %q; want 200 from web.3", a.status, a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting request was not answered after the routes changed")
	}

	// No newer routes: 503 once RouteWait has passed on the gateway clock.
	g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: dead}})
	got = ask("GET", nil)
	waiting("the second GET to wait")
	select {
	case a := <-got:
		t.Fatalf("answered %d before RouteWait passed", a.status)
	case <-time.After(50 * time.Millisecond):
	}
	// The wait's timer is on the gateway clock: step it until the answer.
	go func() {
		for i := 0; i < 100 && len(got) == 0; i++ {
			g.clock.Step(DefaultRouteWait)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	select {
	case a := <-got:
		if a.status != 503 {
			t.Fatalf("after RouteWait without new routes: %d %q; want 503", a.status, a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request still waits after RouteWait")
	}

	// A POST with a body is not sent again: 502 at once, no wait.
	now := func(what string, ch <-chan answer, want ...int) {
		t.Helper()
		select {
		case a := <-ch:
			for _, w := range want {
				if a.status == w {
					return
				}
			}
			t.Fatalf("%s: %d %q; want one of %v", what, a.status, a.body, want)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer without the gateway clock moving (it waits for routes)", what)
		}
	}
	now("POST with every backend refusing", ask("POST", []byte("x")), 502, 503)

	// An app without backends: 503 at once.
	g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"})}})
	now("app with no backends", ask("GET", nil), 503)
}
