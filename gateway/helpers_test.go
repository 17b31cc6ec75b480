package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

var epoch = time.Unix(1_800_000_000, 0)

type testGW struct {
	*Gateway
	clock *clock.Fake
	reg   *prometheus.Registry

	startOnce sync.Once
	fronts    [2]*front
}

// loopMode runs every test's gateway on the event loops
// (FLOTILLA_GATEWAY_EVENT_LOOP=1): the loops must pass what the goroutine
// path passes.
var loopMode = os.Getenv("FLOTILLA_GATEWAY_EVENT_LOOP") == "1"

// newTestGateway builds a gateway on a fake clock with its own registry;
// its listeners go on free loopback ports when a test first asks for one.
func newTestGateway(t testing.TB, cfg Config) *testGW {
	t.Helper()
	fc := clock.NewFake(epoch)
	reg := prometheus.NewRegistry()
	if cfg.Clock == nil {
		cfg.Clock = fc
	}
	cfg.Registerer = reg
	if cfg.Log == nil {
		cfg.Log = logging.Component(logging.Discard(), "gateway")
	}
	if cfg.ExternalAddr == "" {
		cfg.ExternalAddr = "127.0.0.1:0"
	}
	if cfg.InternalAddr == "" {
		cfg.InternalAddr = "127.0.0.1:0"
	}
	if loopMode {
		cfg.EventLoop = true
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &testGW{Gateway: g, clock: fc, reg: reg}
}

// front is one of the gateway's listeners as a client sees it.
type front struct {
	URL    string // http://127.0.0.1:port
	client *http.Client
}

func (f *front) Client() *http.Client { return f.client }

// front starts the gateway's listeners (once) and returns listener l.
func (g *testGW) front(t *testing.T, l Listener) *front {
	t.Helper()
	var err error
	g.startOnce.Do(func() {
		if err = g.Start(); err != nil {
			return
		}
		for _, l := range []Listener{External, Internal} {
			tr := &http.Transport{DisableCompression: true}
			g.fronts[l] = &front{URL: "http://" + g.Addr(l).String(), client: &http.Client{Transport: tr}}
			t.Cleanup(tr.CloseIdleConnections)
		}
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if g.fronts[l] == nil {
		t.Fatal("the gateway did not start")
	}
	return g.fronts[l]
}

// echo is what the default test backend answers: who it is and what it saw.
type echo struct {
	Task, Host, Path, XFF, XFHost, XFProto string
}

type testBackend struct {
	Backend
	srv  *httptest.Server
	hits atomic.Int64
}

// startBackend runs an httptest backend; h nil answers with an echo.
func startBackend(t testing.TB, task string, h http.HandlerFunc) *testBackend {
	t.Helper()
	tb := &testBackend{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(echo{
				Task: task, Host: r.Host, Path: r.URL.Path,
				XFF: r.Header.Get("X-Forwarded-For"), XFHost: r.Header.Get("X-Forwarded-Host"), XFProto: r.Header.Get("X-Forwarded-Proto"),
			})
		}
	}
	tb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tb.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(tb.srv.Close)
	tb.Backend = backendOf(t, task, tb.srv.Listener.Addr().String())
	return tb
}

func backendOf(t testing.TB, task, addr string) Backend {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return Backend{TaskID: task, Host: host, Port: uint32(p)}
}

// refusingBackend is an address on loopback where nothing listens.
func refusingBackend(t *testing.T, task string) Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return backendOf(t, task, addr)
}

// do sends one request with the given Host and returns status and body.
func do(t *testing.T, front *front, method, host, path string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, front.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	c := *front.Client() // a copy: the client is shared by parallel tests
	c.Timeout = 10 * time.Second
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s%s: read body: %v", method, host, path, err)
	}
	return resp.StatusCode, string(b)
}

func decodeEcho(t *testing.T, body string) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return e
}

// raw sends a request as bytes and returns the whole response as bytes.
func raw(t *testing.T, addr, req string) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read raw response: %v", err)
	}
	return b
}

func hostOf(f *front) string { return strings.TrimPrefix(f.URL, "http://") }

// metric returns the value of the series of name whose labels include
// want, and whether it exists.
func metric(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stripDate(b []byte) string {
	var keep []string
	for _, l := range strings.Split(string(b), "\r\n") {
		if !strings.HasPrefix(l, "Date: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\r\n")
}
