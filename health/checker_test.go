package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// fakeScheduler is the smallest Scheduler for the Checker's loop: it
// keeps what it is told.
type fakeScheduler struct {
	mu      sync.Mutex
	snap    *framework.Snapshot
	results map[int]framework.CheckResult
	kills   []int
}

func (f *fakeScheduler) Snapshot() *framework.Snapshot { return f.snap }
func (f *fakeScheduler) ReportHealth(_ string, check int, r framework.CheckResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[check] = r
	return nil
}
func (f *fakeScheduler) KillUnhealthy(_ string, check int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills = append(f.kills, check)
	return nil
}
func (f *fakeScheduler) state() (map[int]framework.CheckResult, []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[int]framework.CheckResult{}
	for k, v := range f.results {
		m[k] = v
	}
	return m, append([]int(nil), f.kills...)
}

// Against a real HTTP server and a real TCP listener, on the fake clock:
// both checks pass, then the HTTP server answers 503 and the listener
// closes; each failure is reported with its cause; the HTTP check
// (maxConsecutiveFailures 0) never asks for a kill, the TCP one (2) does
// at its third failure, once, and then the task is no longer probed.
func TestCheckerProbes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/health" {
			t.Errorf("probe of %s", r.URL.Path)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	httpPort, _ := strconv.Atoi(u.Port())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tcpPort := ln.Addr().(*net.TCPAddr).Port

	app := &appspec.App{ID: "/web", Version: "v1", PortDefinitions: []appspec.PortDefinition{{}, {}},
		HealthChecks: []appspec.HealthCheck{
			{Protocol: "HTTP", Path: "/health", PortIndex: ptr(0), IntervalSeconds: 1, TimeoutSeconds: 1, MaxConsecutiveFailures: 0},
			{Protocol: "TCP", PortIndex: ptr(1), IntervalSeconds: 1, TimeoutSeconds: 1, MaxConsecutiveFailures: 2},
		}}
	clk := clock.NewFake(t0)
	tk := runningTask("web.1")
	tk.Ports = []uint64{uint64(httpPort), uint64(tcpPort)}
	fs := &fakeScheduler{snap: &framework.Snapshot{Apps: []*appspec.App{app}, Tasks: []framework.Task{tk}}, results: map[int]framework.CheckResult{}}
	events := make(chan framework.Event)
	c, err := New(Config{Scheduler: fs, Clock: clk, Log: logging.Component(logging.Discard(), "health"), Tick: 10 * time.Millisecond,
		Events: func(int) (<-chan framework.Event, func()) { return events, func() {} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	step := func(what string, until func(map[int]framework.CheckResult, []int) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, k := fs.state()
			if until(r, k) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; results %+v, kills %v", what, r, k)
			}
			clk.Step(100 * time.Millisecond)
			time.Sleep(2 * time.Millisecond)
		}
	}
	step("both checks to pass", func(r map[int]framework.CheckResult, _ []int) bool { return r[0].Alive() && r[1].Alive() })

	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	ln.Close()
	step("both checks to fail", func(r map[int]framework.CheckResult, _ []int) bool {
		return r[0].ConsecutiveFailures >= 1 && r[1].ConsecutiveFailures >= 1
	})
	r, _ := fs.state()
	if r[0].LastFailureCause != "503 Service Unavailable" || r[1].LastFailureCause == "" || r[1].Alive() {
		t.Fatalf("failures %+v: want the HTTP status line and the TCP dial error as causes", r)
	}
	step("the kill at the third TCP failure", func(r map[int]framework.CheckResult, k []int) bool { return len(k) > 0 })
	r, k := fs.state()
	if len(k) != 1 || k[0] != 1 || r[1].ConsecutiveFailures != 3 || r[0].ConsecutiveFailures < 2 {
		t.Fatalf("kills %v with results %+v: want one kill, for the TCP check at its third failure, none for HTTP (0 never kills)", k, r)
	}
	clk.Step(10 * time.Second)
	time.Sleep(50 * time.Millisecond)
	if r2, k2 := fs.state(); len(k2) != 1 || r2[0] != r[0] || r2[1] != r[1] {
		t.Fatalf("after the kill: kills %v, results %+v; want no more probes of the task", k2, r2)
	}
}
