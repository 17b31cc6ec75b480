package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

const (
	webID   = "/prod/shop/web"
	webDNS  = "web-shop-prod.flotilla.mesos"
	adminID = "/ops/admin"
)

func TestListenerSeparation(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	web := startBackend(t, "web.1", nil)
	admin := startBackend(t, "admin.1", nil)
	g.Update([]App{
		{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: []Backend{web.Backend}},
		{ID: adminID, DNSName: "admin-ops.flotilla.mesos", Exposure: internal([]string{"admin.example.com"}), Backends: []Backend{admin.Backend}},
	})
	extFront := g.front(t, External)
	intFront := g.front(t, Internal)

	cases := []struct {
		name     string
		external bool
		host     string
		want     int
		wantTask string
	}{
		{"external app by vhost on external", true, "shop.example.com", 200, "web.1"},
		{"external app by vhost on internal", false, "shop.example.com", 200, "web.1"},
		{"external app by dns name on internal", false, webDNS, 200, "web.1"},
		{"external app by dns name not on external", true, webDNS, 404, ""},
		{"internal app by vhost on internal", false, "admin.example.com", 200, "admin.1"},
		{"internal app by dns name on internal", false, "admin-ops.flotilla.mesos", 200, "admin.1"},
		{"internal app by vhost not on external", true, "admin.example.com", 404, ""},
		{"internal app by dns name not on external", true, "admin-ops.flotilla.mesos", 404, ""},
		{"unknown host on external", true, "nope.example.com", 404, ""},
		{"unknown host on internal", false, "nope.example.com", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			front := intFront
			if tc.external {
				front = extFront
			}
			status, body := do(t, front, "GET", tc.host, "/", nil)
			if status != tc.want {
				t.Fatalf("status %d, body %q; want %d", status, body, tc.want)
			}
			if tc.wantTask != "" {
				if e := decodeEcho(t, body); e.Task != tc.wantTask {
					t.Fatalf("answered by %q; want %q", e.Task, tc.wantTask)
				}
			}
		})
	}
}

// Path prefixes match the normalised path, so dot segments cannot walk
// from one app's prefix into another's; the backend gets the path as sent.
func TestRoutesMatchNormalisedPath(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	a := startBackend(t, "a.1", nil)
	b := startBackend(t, "b.1", nil)
	g.Update([]App{
		{ID: "/a", DNSName: "a.flotilla.mesos", Exposure: ext([]string{"shop.example.com"}, "/a"), Backends: []Backend{a.Backend}},
		{ID: "/b", DNSName: "b.flotilla.mesos", Exposure: ext([]string{"shop.example.com"}, "/b"), Backends: []Backend{b.Backend}},
	})
	front := g.front(t, External)
	for _, tc := range []struct{ path, task string }{
		{"/a/x", "a.1"},
		{"/a/../b/x", "b.1"},
		{"/b/./../a//x", "a.1"},
	} {
		got := raw(t, hostOf(front), "GET "+tc.path+" HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if e := decodeEcho(t, string(body)); resp.StatusCode != 200 || e.Task != tc.task || e.Path != tc.path {
			t.Fatalf("%s: %d, backend %q saw %q; want %q to see it as sent", tc.path, resp.StatusCode, e.Task, e.Path, tc.task)
		}
	}
}

// An internal app must be indistinguishable from nothing on the external
// listener: compare whole responses byte for byte (only Date may differ).
func TestExternal404IsIdenticalForInternalApps(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	admin := startBackend(t, "admin.1", nil)
	g.Update([]App{{ID: adminID, DNSName: "admin-ops.flotilla.mesos", Exposure: internal([]string{"admin.example.com"}, "/x"), Backends: []Backend{admin.Backend}}})
	front := g.front(t, External)
	addr := hostOf(front)

	reqFor := func(host, path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: t\r\nConnection: close\r\n\r\n"
	}
	want := stripDate(raw(t, addr, reqFor("nope.example.com", "/x")))
	if !strings.HasPrefix(want, "HTTP/1.1 404 ") || !strings.HasSuffix(want, notFoundBody) {
		t.Fatalf("unknown host answered %q", want)
	}
	for _, tc := range []struct{ name, host, path string }{
		{"vhost", "admin.example.com", "/x"},
		{"dns name", "admin-ops.flotilla.mesos", "/x"},
		{"vhost other path", "admin.example.com", "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := stripDate(raw(t, addr, reqFor(tc.host, tc.path))); got != want {
				t.Fatalf("internal app on the external listener answered\n%q\nwant the unknown host's\n%q", got, want)
			}
		})
	}
	if admin.hits.Load() != 0 {
		t.Fatalf("internal backend got %d requests from the external listener", admin.hits.Load())
	}
}

func TestLoadIsShared(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{RoundRobin, LeastConn} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, Config{Balance: policy})
			var bs []*testBackend
			var backends []Backend
			for i := 1; i <= 3; i++ {
				b := startBackend(t, fmt.Sprintf("web.%d", i), nil)
				bs = append(bs, b)
				backends = append(backends, b.Backend)
			}
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: backends}})
			front := g.front(t, Internal)
			const workers, each = 6, 50
			var wg sync.WaitGroup
			errc := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						req, _ := http.NewRequest("GET", front.URL+"/", nil)
						req.Host = webDNS
						resp, err := front.Client().Do(req)
						if err != nil {
							errc <- err
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							errc <- fmt.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			// Round robin: each backend within ±10% of a third (it is
			// exact, but the bound is what the test promises). Least-conn
			// follows the backends' timing, so it only promises each at
			// least half of a fair share.
			total := int64(workers * each)
			lo, hi := total/3*9/10, total/3*11/10
			if policy == LeastConn {
				lo, hi = total/6, total
			}
			rates := g.RequestRate(webID)
			for _, b := range bs {
				n := b.hits.Load()
				if n < lo || n > hi {
					t.Errorf("%s got %d of %d requests; want %d to %d", b.TaskID, n, total, lo, hi)
				}
				// Everything happened within the fake clock's first
				// second, so the rate equals the count.
				if rates[b.TaskID] != float64(n) {
					t.Errorf("RequestRate[%s] = %v; want %d", b.TaskID, rates[b.TaskID], n)
				}
			}
		})
	}
}

// With least-conn a backend busy with a slow request gets no more until it
// is done; round robin would send it every other request.
func TestLeastConnAvoidsBusyBackend(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{Balance: LeastConn})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "slow")
	})
	fast := startBackend(t, "fast", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{slow.Backend, fast.Backend}}})
	front := g.front(t, Internal)

	done := make(chan string, 1)
	go func() {
		_, body := do(t, front, "GET", webDNS, "/", nil)
		done <- body
	}()
	<-entered // the first pick is the first backend
	for i := 0; i < 10; i++ {
		if status, body := do(t, front, "GET", webDNS, "/", nil); status != 200 || decodeEcho(t, body).Task != "fast" {
			t.Fatalf("request %d: %d %q; want the idle backend", i, status, body)
		}
	}
	close(release)
	if body := <-done; body != "slow" {
		t.Fatalf("slow request answered %q", body)
	}
}

func TestRefusingBackendIsEjectedAndGETsRetried(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{EjectFor: 10 * time.Second})
	dead := refusingBackend(t, "web.dead")
	a := startBackend(t, "web.a", nil)
	b := startBackend(t, "web.b", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{dead, a.Backend, b.Backend}}})
	front := g.front(t, Internal)

	run := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if status, body := do(t, front, "GET", webDNS, "/", nil); status != 200 {
				t.Fatalf("GET %d: %d %q; want every GET answered", i, status, body)
			}
		}
	}
	ejections := func() float64 {
		v, _ := metric(t, g.reg, "flotilla_gateway_backend_ejections_total", map[string]string{"app": webID})
		return v
	}
	run(30)
	if e := ejections(); e != 1 {
		t.Fatalf("ejections = %v; want 1 (ejected once, then left alone)", e)
	}
	if a.hits.Load()+b.hits.Load() != 30 {
		t.Fatalf("live backends got %d+%d requests; want 30", a.hits.Load(), b.hits.Load())
	}
	// Still ejected just before the period ends.
	g.clock.Step(9 * time.Second)
	run(6)
	if e := ejections(); e != 1 {
		t.Fatalf("ejections = %v before the period ended; want 1", e)
	}
	// After it, the backend is tried again, fails again, and the GET is
	// still answered.
	g.clock.Step(2 * time.Second)
	run(6)
	if e := ejections(); e != 2 {
		t.Fatalf("ejections = %v after the period; want 2", e)
	}
}

func TestRetryOnlyIdempotentWithoutBody(t *testing.T) {
	t.Parallel()
	cases := []struct {
		method string
		body   string
		want   int
	}{
		{"GET", "", 200},
		{"HEAD", "", 200},
		{"OPTIONS", "", 200},
		{"DELETE", "", 200},
		{"PUT", "", 200},
		{"PUT", "data", 502},
		{"POST", "", 502},
		{"POST", "data", 502},
		{"PATCH", "", 502},
	}
	for _, tc := range cases {
		t.Run(tc.method+"/"+tc.body, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, Config{})
			good := startBackend(t, "web.good", nil)
			// Round robin starts at the first backend: the refusing one.
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{refusingBackend(t, "web.dead"), good.Backend}}})
			front := g.front(t, Internal)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			status, resp := do(t, front, tc.method, webDNS, "/", body)
			if status != tc.want {
				t.Fatalf("status %d %q; want %d", status, resp, tc.want)
			}
			if tc.want == 502 && resp != "flotilla gateway: app /prod/shop/web: backend failed\n" {
				t.Fatalf("502 body %q", resp)
			}
			// The refusing backend is ejected either way, so the next
			// request of any kind goes to the good one.
			if status, _ := do(t, front, tc.method, webDNS, "/", nil); status != 200 {
				t.Fatalf("second request: %d; want 200 from the remaining backend", status)
			}
		})
	}
}

func TestNoHealthyBackend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		backends func(t *testing.T) []Backend
	}{
		{"no backends", func(*testing.T) []Backend { return nil }},
		{"all refuse", func(t *testing.T) []Backend {
			return []Backend{refusingBackend(t, "web.1"), refusingBackend(t, "web.2")}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Without waiting for newer routes (TestRouteWait: with it).
			g := newTestGateway(t, Config{RouteWait: -1})
			g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: tc.backends(t)}})
			for _, l := range []Listener{External, Internal} {
				front := g.front(t, l)
				for i := 0; i < 2; i++ {
					status, body := do(t, front, "GET", "shop.example.com", "/", nil)
					if status != 503 || body != "flotilla gateway: app /prod/shop/web has no healthy backend\n" {
						t.Fatalf("request %d: %d %q; want 503 naming the app", i, status, body)
					}
				}
			}
			if v, _ := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"app": webID, "task": "", "code": "5xx"}); v != 4 {
				t.Fatalf("5xx without a task = %v; want 4", v)
			}
		})
	}
}

// A request holds the table it started with: removing its backend (or the
// whole app) while it runs must not break it.
func TestInFlightRequestSurvivesUpdate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		next func(other Backend) []App
	}{
		{"backend replaced", func(other Backend) []App {
			return []App{{ID: webID, DNSName: webDNS, Backends: []Backend{other}}}
		}},
		{"app removed", func(Backend) []App { return nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, Config{})
			release := make(chan struct{})
			entered := make(chan struct{})
			slow := startBackend(t, "web.slow", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Task", "web.slow")
				w.WriteHeader(200)
				io.WriteString(w, "first half ")
				w.(http.Flusher).Flush()
				close(entered)
				select {
				case <-release:
				case <-time.After(10 * time.Second):
				}
				io.WriteString(w, "second half")
			})
			other := startBackend(t, "web.other", nil)
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{slow.Backend}}})
			front := g.front(t, Internal)

			type result struct {
				status int
				body   string
			}
			done := make(chan result, 1)
			go func() {
				s, b := do(t, front, "GET", webDNS, "/", nil)
				done <- result{s, b}
			}()
			<-entered
			g.Update(tc.next(other.Backend))
			// New requests already see the new table.
			status, body := do(t, front, "GET", webDNS, "/", nil)
			if tc.name == "app removed" && status != 404 {
				t.Fatalf("new request after removal: %d", status)
			}
			if tc.name == "backend replaced" && (status != 200 || decodeEcho(t, body).Task != "web.other") {
				t.Fatalf("new request after replacement: %d %q", status, body)
			}
			close(release)
			r := <-done
			if r.status != 200 || r.body != "first half second half" {
				t.Fatalf("in-flight request got %d %q", r.status, r.body)
			}
			waitFor(t, "in-flight gauge back to 0", func() bool {
				v, _ := metric(t, g.reg, "flotilla_gateway_in_flight_requests", map[string]string{"app": webID})
				return v == 0
			})
		})
	}
}

// A failed app keeps nothing from the previous table.
func TestUpdateDropsFailedAppEntirely(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	web := startBackend(t, "web.1", nil)
	db := startBackend(t, "db.1", nil)
	good := App{ID: "/db", DNSName: "db.flotilla.mesos", Backends: []Backend{db.Backend}}
	webApp := App{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: []Backend{web.Backend}}
	g.Update([]App{webApp, good})
	front := g.front(t, Internal)
	if status, _ := do(t, front, "GET", webDNS, "/", nil); status != 200 {
		t.Fatalf("before: %d", status)
	}
	webApp.Exposure.VHosts = []string{"not a host"}
	g.Update([]App{webApp, good})
	for _, host := range []string{webDNS, "shop.example.com"} {
		if status, body := do(t, front, "GET", host, "/", nil); status != 404 {
			t.Fatalf("%s after its app failed: %d %q; want 404", host, status, body)
		}
	}
	if status, _ := do(t, front, "GET", "db.flotilla.mesos", "/", nil); status != 200 {
		t.Fatalf("the good app after another failed: %d", status)
	}
	if p := g.Problems(); len(p) != 1 || !strings.Contains(p[0].Error(), webID) {
		t.Fatalf("problems = %v", p)
	}
	if v, _ := metric(t, g.reg, "flotilla_gateway_skipped_items", nil); v != 1 {
		t.Fatalf("skipped gauge = %v", v)
	}
	// Metric series of the vanished app go with it.
	if _, ok := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"app": webID}); ok {
		t.Fatal("requests series of a removed app still exported")
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	web := startBackend(t, "web.1", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: []Backend{web.Backend}}})
	cases := []struct {
		name      string
		external  bool
		host      string
		clientXFF string
		wantXFF   string
	}{
		{"external sets", true, "shop.example.com", "", "127.0.0.1"},
		{"external ignores a forged chain", true, "shop.example.com:8000", "6.6.6.6", "127.0.0.1"},
		{"internal sets", false, webDNS, "", "127.0.0.1"},
		{"internal appends to the chain", false, webDNS, "203.0.113.9", "203.0.113.9, 127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := Internal
			if tc.external {
				l = External
			}
			front := g.front(t, l)
			req, _ := http.NewRequest("GET", front.URL+"/p?q=1", nil)
			req.Host = tc.host
			if tc.clientXFF != "" {
				req.Header.Set("X-Forwarded-For", tc.clientXFF)
			}
			req.Header.Set("X-Forwarded-Proto", "https") // forged: the client spoke http
			resp, err := front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			e := decodeEcho(t, string(b))
			want := echo{Task: "web.1", Host: tc.host, Path: "/p", XFF: tc.wantXFF, XFHost: tc.host, XFProto: "http"}
			if e != want {
				t.Fatalf("backend saw %+v\nwant %+v", e, want)
			}
		})
	}
}

// WebSocket goes through as a raw Upgrade handshake followed by bytes in
// both directions.
func TestWebSocketPassThrough(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	ws := startBackend(t, "ws.1", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		// A greeting in the same write as the 101: the gateway has read it
		// along with the head and must pass it on.
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nwelcome\n")
		brw.Flush()
		// Echo lines, upper-cased, so the test sees the backend answered.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString(strings.ToUpper(line))
			brw.Flush()
		}
	})
	g.Update([]App{{ID: "/ws", DNSName: "ws.flotilla.mesos", Exposure: ext([]string{"ws.example.com"}), Backends: []Backend{ws.Backend}}})
	front := g.front(t, External)

	conn, err := net.DialTimeout("tcp", hostOf(front), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake answered %s %v", resp.Status, resp.Header)
	}
	if got, err := br.ReadString('\n'); err != nil || got != "welcome\n" {
		t.Fatalf("greeting = %q, %v", got, err)
	}
	for _, msg := range []string{"hello\n", "second frame\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != strings.ToUpper(msg) {
			t.Fatalf("echo of %q = %q, %v", msg, got, err)
		}
	}
	conn.Close()
	waitFor(t, "upgraded request finished", func() bool {
		v, _ := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"app": "/ws", "task": "ws.1", "code": "1xx"})
		return v == 1
	})
	if n, _ := metric(t, g.reg, "flotilla_gateway_request_duration_seconds", map[string]string{"app": "/ws"}); n != 0 {
		t.Fatalf("a WebSocket session was observed as latency (%v samples)", n)
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	t.Parallel()
	// GET may be resent on a fresh connection, DELETE may not: both must
	// time out.
	for _, method := range []string{"GET", "DELETE"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, Config{ResponseHeaderTimeout: 100 * time.Millisecond})
			release := make(chan struct{})
			defer close(release)
			stuck := startBackend(t, "web.stuck", func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{stuck.Backend}}})
			front := g.front(t, Internal)
			status, body := do(t, front, method, webDNS, "/", nil)
			if status != 504 || body != "flotilla gateway: app /prod/shop/web: backend did not answer in time\n" {
				t.Fatalf("%d %q; want 504", status, body)
			}
			// A slow answer is not a refused connection: no ejection.
			if v, _ := metric(t, g.reg, "flotilla_gateway_backend_ejections_total", map[string]string{"app": webID}); v != 0 {
				t.Fatalf("ejections = %v", v)
			}
		})
	}
}

// A panic in the handler is recovered at its edge, logged with its stack,
// and answered 500; the gauges stay right.
func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	logger, hook := logtest.NewNullLogger()
	pc := &panicClock{Fake: clock.NewFake(epoch)}
	g := newTestGateway(t, Config{Log: logger.WithField("component", "gateway"), Clock: pc})
	web := startBackend(t, "web.1", nil)
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{web.Backend}}})
	front := g.front(t, Internal)
	pc.armed.Store(true) // the handler's first reading of the clock panics
	status, _ := do(t, front, "GET", webDNS, "/", nil)
	if status != 500 {
		t.Fatalf("status %d; want 500", status)
	}
	var found *logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Message == "gateway handler panicked" {
			found = e
		}
	}
	where := "gateway.(*Gateway).serve" // the handler, where the clock was read
	if loopMode {
		where = "gateway.(*evLoop).startRequest"
	}
	if found == nil || !strings.Contains(fmt.Sprint(found.Data["stack"]), where) || found.Data["panic"] != "boom" {
		t.Fatalf("panic log entry = %+v", found)
	}
	if v, _ := metric(t, g.reg, "flotilla_gateway_in_flight_requests", map[string]string{"app": webID}); v != 0 {
		t.Fatalf("in-flight = %v after a panic", v)
	}
	if v, _ := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"app": webID, "task": "", "code": "5xx"}); v != 1 {
		t.Fatalf("5xx without a task = %v after a panic; want 1", v)
	}
	// The gateway goes on serving.
	if status, body := do(t, front, "GET", webDNS, "/", nil); status != 200 || decodeEcho(t, body).Task != "web.1" {
		t.Fatalf("after the panic: %d %q", status, body)
	}
}

// panicClock panics once, when armed.
type panicClock struct {
	*clock.Fake
	armed atomic.Bool
}

func (c *panicClock) Now() time.Time {
	if c.armed.CompareAndSwap(true, false) {
		panic("boom")
	}
	return c.Fake.Now()
}

// A backend that dies mid-body makes the proxy abort the response; the
// request is still accounted for.
func TestAbortedResponseIsAccounted(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	liar := startBackend(t, "web.liar", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		io.WriteString(w, "short")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	g.Update([]App{{ID: webID, DNSName: webDNS, Backends: []Backend{liar.Backend}}})
	front := g.front(t, Internal)
	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Host = webDNS
	resp, err := front.Client().Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	// Depending on buffering the client sees a cut body or no response at
	// all; either way it must not see a complete one.
	if err == nil {
		t.Fatal("client read a complete response from a backend that died mid-body")
	}
	waitFor(t, "request accounted", func() bool {
		n, _ := metric(t, g.reg, "flotilla_gateway_requests_total", map[string]string{"app": webID, "task": "web.liar", "code": "2xx"})
		v, _ := metric(t, g.reg, "flotilla_gateway_in_flight_requests", map[string]string{"app": webID})
		return n == 1 && v == 0
	})
}

// Before its first routes a gateway knows nothing (a replica or edge node
// that has not followed a view yet): it answers 503 with Retry-After, so
// that a load balancer tries another gateway, not a 404 saying the app
// does not exist. After the first Update, even an empty one, an unknown
// host is a 404.
func TestNoViewYetIs503(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	front := g.front(t, Internal)
	req := "GET / HTTP/1.1\r\nHost: web-shop.flotilla.mesos\r\nConnection: close\r\n\r\n"
	got := string(raw(t, hostOf(front), req))
	if !strings.HasPrefix(got, "HTTP/1.1 503 ") || !strings.Contains(got, "Retry-After: 1") || !strings.HasSuffix(got, noViewBody) {
		t.Fatalf("before any routes: %q", got)
	}
	g.Update(nil)
	if got := string(raw(t, hostOf(front), req)); !strings.HasPrefix(got, "HTTP/1.1 404 ") {
		t.Fatalf("after an empty update: %q", got)
	}
}
