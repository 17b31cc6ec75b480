package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
)

// The service-port tests put the external listener on ::1 and the internal
// one on 127.0.0.1, so "bound on the external host" and "on the internal
// host" are two different addresses a client can try.

// tcpEcho is a plain TCP backend: it greets with its task ID and a newline,
// echoes what it reads, and half-closes when the client has.
type tcpEcho struct {
	Backend
	accepted atomic.Int64
}

func startTCPEcho(t *testing.T, task string) *tcpEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := &tcpEcho{Backend: backendOf(t, task, ln.Addr().String())}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			go func() {
				defer c.Close()
				if _, err := io.WriteString(c, task+"\n"); err != nil {
					return
				}
				if _, err := io.Copy(c, c); err != nil {
					return
				}
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return e
}

// freePort returns a port free on both 127.0.0.1 and ::1 just now.
func freePort(t *testing.T) uint32 {
	t.Helper()
	for range 50 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		a.Close()
		if err == nil {
			b.Close()
			return uint32(port)
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return 0
}

func newServiceGateway(t *testing.T, cfg Config) *testGW {
	t.Helper()
	if cfg.ExternalAddr == "" {
		cfg.ExternalAddr = "[::1]:0"
	}
	g := newTestGateway(t, cfg)
	g.front(t, Internal) // starts it
	return g
}

// echoThrough connects to host:port, reads the greeting, sends msg,
// half-closes, and returns the greeting (the backend's task) and what came
// back after it.
func echoThrough(host string, port uint32, msg string) (task, echoed string, err error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10)), 5*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	task, err = br.ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("greeting: %w", err)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return "", "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", "", err
	}
	rest, err := io.ReadAll(br)
	return strings.TrimSuffix(task, "\n"), string(rest), err
}

func tcpApp(id string, port uint32, external bool, opts Options, bs ...Backend) App {
	e := appspec.Exposure{Mode: appspec.ExposureInternal}
	if external {
		e.Mode = appspec.ExposureExternal
	}
	return App{ID: id, DNSName: strings.TrimPrefix(id, "/") + ".flotilla.mesos", Exposure: e, Backends: bs, Options: opts,
		Services: []Service{{Index: 0, Port: port, Mode: appspec.ModeTCP, External: external, Options: opts, Backends: bs}}}
}

func TestTCPServicePortInternalThenExternal(t *testing.T) {
	t.Parallel()
	g := newServiceGateway(t, Config{})
	be := startTCPEcho(t, "db.1")
	port := freePort(t)
	g.Update([]App{tcpApp("/db", port, false, Options{}, be.Backend)})

	task, got, err := echoThrough("127.0.0.1", port, "hello")
	if err != nil || task != "db.1" || got != "hello" {
		t.Fatalf("internal host: task %q echo %q err %v; want db.1 hello", task, got, err)
	}
	if _, _, err := echoThrough("::1", port, "x"); err == nil {
		t.Fatal("an internal app's service port answered on the external listener's host")
	}

	g.Update([]App{tcpApp("/db", port, true, Options{}, be.Backend)})
	waitFor(t, "the service port on ::1 once the app is external", func() bool {
		task, got, err := echoThrough("::1", port, "hi")
		return err == nil && task == "db.1" && got == "hi"
	})
	if v, _ := metric(t, g.reg, "flotilla_gateway_service_connections_total", map[string]string{"port": strconv.Itoa(int(port)), "app": "/db", "result": "ok"}); v < 2 {
		t.Fatalf("service connections ok = %v; want ≥ 2", v)
	}
}

// Half-close: the client's end of stream reaches the backend as a FIN, and
// the backend's answer after it still reaches the client.
func TestTCPHalfCloseAndLongStream(t *testing.T) {
	t.Parallel()
	g := newServiceGateway(t, Config{})
	be := startTCPEcho(t, "s.1")
	port := freePort(t)
	g.Update([]App{tcpApp("/s", port, false, Options{}, be.Backend)})
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	task, got, err := echoThrough("127.0.0.1", port, big)
	if err != nil || task != "s.1" || got != big {
		t.Fatalf("task %q, %d bytes back (want %d), err %v", task, len(got), len(big), err)
	}
	waitFor(t, "bytes counted in both directions", func() bool {
		in, _ := metric(t, g.reg, "flotilla_gateway_service_bytes_total", map[string]string{"port": strconv.Itoa(int(port)), "direction": "in"})
		out, _ := metric(t, g.reg, "flotilla_gateway_service_bytes_total", map[string]string{"port": strconv.Itoa(int(port)), "direction": "out"})
		return in == float64(len(big)) && out == float64(len(big)+len("s.1\n"))
	})
}

func TestTCPBalanceAndPassiveHealth(t *testing.T) {
	t.Parallel()
	a, b := startTCPEcho(t, "t.a"), startTCPEcho(t, "t.b")
	dead := refusingBackend(t, "t.dead")
	cases := []struct {
		name  string
		opts  Options
		check func(t *testing.T, seen map[string]int)
	}{
		{"roundrobin", Options{Balance: appspec.BalanceRoundRobin}, func(t *testing.T, seen map[string]int) {
			// The ejected backend's turn passes to the next one, so the
			// split is uneven, but both take turns.
			if seen["t.a"] < 4 || seen["t.b"] < 4 {
				t.Fatalf("round robin spread %v; want both at least 4 of 12", seen)
			}
		}},
		{"leastconn", Options{Balance: appspec.BalanceLeastConn}, func(t *testing.T, seen map[string]int) {
			if seen["t.a"] == 0 || seen["t.b"] == 0 {
				t.Fatalf("least conn spread %v; want both used (ties rotate)", seen)
			}
		}},
		{"source", Options{Balance: appspec.BalanceSource}, func(t *testing.T, seen map[string]int) {
			if len(seen) != 1 {
				t.Fatalf("source balancing spread one client over %v; want one backend", seen)
			}
		}},
		{"sticky", Options{Sticky: true}, func(t *testing.T, seen map[string]int) {
			if len(seen) != 1 {
				t.Fatalf("sticky TCP spread one client over %v; want one backend", seen)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newServiceGateway(t, Config{})
			port := freePort(t)
			g.Update([]App{tcpApp("/bal", port, false, tc.opts, a.Backend, dead, b.Backend)})
			seen := map[string]int{}
			for i := range 12 {
				task, got, err := echoThrough("127.0.0.1", port, "m")
				if err != nil || got != "m" {
					t.Fatalf("connection %d: task %q echo %q err %v (a refusing backend must be skipped, not felt)", i, task, got, err)
				}
				seen[task]++
			}
			tc.check(t, seen)
			if tc.opts.Balance != appspec.BalanceSource && !tc.opts.Sticky {
				if v, _ := metric(t, g.reg, "flotilla_gateway_backend_ejections_total", map[string]string{"app": "/bal"}); v != 1 {
					t.Fatalf("ejections = %v; want 1 (the refusing backend, once, then left out)", v)
				}
			}
		})
	}
}

func TestServicePortHTTPMode(t *testing.T) {
	t.Parallel()
	g := newServiceGateway(t, Config{})
	web1, web2 := startBackend(t, "web.1", nil), startBackend(t, "web.2", nil)
	port := freePort(t)
	opts := Options{Sticky: true, UseHSTS: true}
	bs := []Backend{web1.Backend, web2.Backend}
	g.Update([]App{{ID: "/web", DNSName: "web.flotilla.mesos", Exposure: appspec.Exposure{Mode: appspec.ExposureInternal}, Backends: bs, Options: opts,
		Services: []Service{{Index: 0, Port: port, Mode: appspec.ModeHTTP, Options: opts, Backends: bs}}}})
	url := fmt.Sprintf("http://127.0.0.1:%d/x", port)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != hstsValue {
		t.Fatalf("status %d, HSTS %q; want 200 and %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"), hstsValue)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == stickyCookie {
			cookie = ck
		}
	}
	if cookie == nil {
		t.Fatalf("no %s cookie from a sticky app: %v", stickyCookie, resp.Header)
	}
	first := ""
	for i := range 6 {
		req, _ := http.NewRequest("GET", url, nil)
		req.AddCookie(cookie)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		task := decodeEcho(t, string(b)).Task
		if i == 0 {
			first = task
		} else if task != first {
			t.Fatalf("sticky request %d went to %s after %s", i, task, first)
		}
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, Config{})
	web := startBackend(t, "web.1", nil)
	g.Update([]App{{ID: "/web", DNSName: "web.flotilla.mesos", Exposure: ext([]string{"shop.example.com"}),
		Backends: []Backend{web.Backend}, Options: Options{RedirectToHTTPS: true}}})
	front := g.front(t, External)
	c := *front.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("GET", front.URL+"/a?b=c", nil)
	req.Host = "shop.example.com"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://shop.example.com/a?b=c" {
		t.Fatalf("status %d Location %q; want 301 https://shop.example.com/a?b=c", resp.StatusCode, resp.Header.Get("Location"))
	}
	if web.hits.Load() != 0 {
		t.Fatal("a redirected request reached the backend")
	}
}

// A per-app certificate (HAPROXY_{n}_SSL_CERT, one PEM with key) makes the
// service port TLS.
func TestServicePortTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	cert, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pem := t.TempDir() + "/app.pem"
	if err := os.WriteFile(pem, append(cert, key...), 0o600); err != nil {
		t.Fatal(err)
	}
	g := newServiceGateway(t, Config{})
	be := startTCPEcho(t, "tls.1")
	port := freePort(t)
	app := tcpApp("/tls", port, false, Options{}, be.Backend)
	app.Services[0].CertFile = pem
	g.Update([]App{app})
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: "shop.example.com"})
	if err != nil {
		t.Fatalf("TLS to the service port: %v", err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "tls.1\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
}

// Listeners open and close as apps come and go while a client keeps
// requesting another app, which sees no error at all.
func TestServiceListenersFollowApps(t *testing.T) {
	t.Parallel()
	g := newServiceGateway(t, Config{})
	web := startBackend(t, "web.1", nil)
	be := startTCPEcho(t, "db.1")
	webApp := App{ID: "/web", DNSName: "web.flotilla.mesos", Backends: []Backend{web.Backend}}
	intFront := g.front(t, Internal)
	g.Update([]App{webApp})

	ctx, cancel := context.WithCancel(context.Background())
	var requests, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := *intFront.Client()
		c.Timeout = 10 * time.Second
		for ctx.Err() == nil {
			req, _ := http.NewRequest("GET", intFront.URL+"/", nil)
			req.Host = "web.flotilla.mesos"
			resp, err := c.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			requests.Add(1)
			if err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		}
	}()
	ports := []uint32{freePort(t), freePort(t), freePort(t)}
	for round := range 10 {
		apps := []App{webApp}
		for i, p := range ports {
			if (round+i)%2 == 0 {
				apps = append(apps, tcpApp(fmt.Sprintf("/db%d", i), p, false, Options{}, be.Backend))
			}
		}
		g.Update(apps)
		for i, p := range ports {
			open := (round+i)%2 == 0
			_, _, err := echoThrough("127.0.0.1", p, "x")
			if open && err != nil {
				t.Fatalf("round %d: service port %d of an app present: %v", round, p, err)
			}
			if !open && err == nil {
				t.Fatalf("round %d: service port %d still answers after its app left", round, p)
			}
		}
	}
	waitFor(t, "some requests to the other app", func() bool { return requests.Load() >= 20 })
	cancel()
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests to the other app failed while listeners changed; first: %v", n, requests.Load(), firstErr.Load())
	}
}

// A port that cannot be bound is logged and counted, never fatal, and
// bound once it is free, on the next retry.
func TestServicePortBindRetry(t *testing.T) {
	t.Parallel()
	g := newServiceGateway(t, Config{BindRetry: time.Minute})
	be := startTCPEcho(t, "db.1")
	other := startTCPEcho(t, "other.1")
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(blocker.Addr().(*net.TCPAddr).Port)
	free := freePort(t)
	g.Update([]App{tcpApp("/db", port, false, Options{}, be.Backend), tcpApp("/other", free, false, Options{}, other.Backend)})
	if v, _ := metric(t, g.reg, "flotilla_gateway_service_bind_errors_total", map[string]string{"port": strconv.Itoa(int(port)), "app": "/db"}); v != 1 {
		t.Fatalf("bind errors = %v; want 1", v)
	}
	if task, _, err := echoThrough("127.0.0.1", free, "x"); err != nil || task != "other.1" {
		t.Fatalf("another app's service port: %q %v; one failed bind must not stop the rest", task, err)
	}
	blocker.Close()
	// The retry runs on the gateway clock's ticker.
	waitFor(t, "the retry ticker", func() bool { return g.clock.Waiters() > 0 })
	g.clock.Step(time.Minute)
	waitFor(t, "the service port bound on retry", func() bool {
		task, _, err := echoThrough("127.0.0.1", port, "x")
		return err == nil && task == "db.1"
	})
}

// An empty address opens no listener; the other one still serves.
func TestEmptyAddressOpensNoListener(t *testing.T) {
	t.Parallel()
	g, err := New(Config{InternalAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if a := g.Addr(External); a != nil {
		t.Fatalf("external listener bound on %v with an empty address", a)
	}
	if a := g.Addr(Internal); a == nil {
		t.Fatal("internal listener not bound")
	}
	if n := len(g.servers); n != 1 {
		t.Fatalf("%d listeners serving; want 1 (the internal one)", n)
	}
	if _, err := New(Config{}); err != nil {
		t.Fatalf("a gateway with no listener at all is valid (it serves nothing): %v", err)
	}
}

// Two listeners on one IP bind each service port once; a wildcard covers
// the other host.
func TestServiceHostsShareIP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ext, in string
		want    []string
	}{
		{"127.0.0.1:8000", "127.0.0.1:8001", []string{"127.0.0.1/external"}},
		{"[::1]:8000", "127.0.0.1:8001", []string{"127.0.0.1/internal", "::1/external"}},
		{"0.0.0.0:80", "127.0.0.1:8001", []string{"0.0.0.0/external"}},
		{"", "127.0.0.1:8001", []string{"127.0.0.1/internal"}},
		{"127.0.0.1:8000", "", []string{"127.0.0.1/external"}},
	}
	for _, tc := range cases {
		g := &Gateway{cfg: Config{ExternalAddr: tc.ext, InternalAddr: tc.in}}
		var got []string
		for _, h := range g.serviceHosts(true) {
			got = append(got, h.host+"/"+h.l.String())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("external %q internal %q: hosts %v; want %v", tc.ext, tc.in, got, tc.want)
		}
	}
}
