package readiness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

func checkedApp(health bool) *appspec.App {
	a := &appspec.App{ID: "/web", Version: "v1",
		PortDefinitions: []appspec.PortDefinition{{Name: "http-api"}},
		ReadinessChecks: []appspec.ReadinessCheck{{Protocol: "HTTP", Path: "/ready", PortName: "http-api",
			IntervalSeconds: 5, TimeoutSeconds: 1, HTTPStatusCodesForReady: []int{200}}}}
	if health {
		a.HealthChecks = []appspec.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/health"}}
	}
	return a
}

func waitingTask(state mesos.TaskState) framework.Task {
	return framework.Task{ID: "web.1", AppID: "/web", AppVersion: "v1", Host: "127.0.0.1", Ports: []uint64{31000},
		State: state, Ready: new(bool)}
}

// The tracker probes a waiting task as soon as it runs, then every
// intervalSeconds until it is ready, and forgets it then.
func TestTrackerSchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTracker()
	tr.Event(framework.Event{Type: framework.EventApp, App: checkedApp(false)}, t0)
	tr.task(waitingTask(mesos.TASK_STAGING), t0)
	if ps := tr.due(t0, 64); len(ps) != 0 {
		t.Fatalf("probed a staging task: %v", ps)
	}
	tr.task(waitingTask(mesos.TASK_RUNNING), t0)
	ps := tr.due(t0, 64)
	if len(ps) != 1 || ps[0].url != "http://127.0.0.1:31000/ready" || ps[0].timeout != time.Second {
		t.Fatalf("first probe %+v, want one to http://127.0.0.1:31000/ready with a 1s timeout", ps)
	}
	if ps := tr.due(t0, 64); len(ps) != 0 {
		t.Fatal("a second probe while the first is in flight")
	}
	tr.done("web.1", false, t0.Add(time.Second))
	if ps := tr.due(t0.Add(5900*time.Millisecond), 64); len(ps) != 0 {
		t.Fatal("probed again before the interval passed")
	}
	if ps := tr.due(t0.Add(6*time.Second), 64); len(ps) != 1 {
		t.Fatal("no probe after the interval")
	}
	if !tr.done("web.1", true, t0.Add(6*time.Second)) {
		t.Fatal("a ready result for a waiting task does not matter")
	}
	if ps := tr.due(t0.Add(time.Hour), 64); len(ps) != 0 || len(tr.tasks) != 0 {
		t.Fatal("a ready task is still followed")
	}
}

// No more than max probes run at once; the rest wait for a free slot.
func TestTrackerBoundsProbesInFlight(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTracker()
	tr.Event(framework.Event{Type: framework.EventApp, App: checkedApp(false)}, t0)
	for i := range 5 {
		tk := waitingTask(mesos.TASK_RUNNING)
		tk.ID = "web." + strconv.Itoa(i)
		tr.task(tk, t0)
	}
	first := tr.due(t0, 2)
	if len(first) != 2 {
		t.Fatalf("%d probes with a bound of 2", len(first))
	}
	if ps := tr.due(t0, 2); len(ps) != 0 {
		t.Fatalf("%d more probes while 2 are in flight", len(ps))
	}
	tr.done(first[0].taskID, true, t0)
	if ps := tr.due(t0, 2); len(ps) != 1 {
		t.Fatalf("%d probes after one slot freed, want 1", len(ps))
	}
	// A task removed while probed frees its slot too.
	tr.Event(framework.Event{Type: framework.EventTaskRemoved, Task: &framework.Task{ID: first[1].taskID}}, t0)
	if ps := tr.due(t0, 2); len(ps) != 1 {
		t.Fatalf("%d probes after a probed task went away, want 1", len(ps))
	}
}

// A health-checked task is probed only once healthy; a task being killed,
// or of an app without the check, never.
func TestTrackerEligibility(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTracker()
	tr.Event(framework.Event{Type: framework.EventApp, App: checkedApp(true)}, t0)
	tk := waitingTask(mesos.TASK_RUNNING)
	tr.task(tk, t0)
	if ps := tr.due(t0, 64); len(ps) != 0 {
		t.Fatal("probed before the health check passed")
	}
	healthy := true
	tk.Healthy = &healthy
	tr.task(tk, t0)
	if ps := tr.due(t0, 64); len(ps) != 1 {
		t.Fatal("not probed once healthy")
	}
	tk.Killing = true
	tr.task(tk, t0)
	if len(tr.tasks) != 0 {
		t.Fatal("a task being killed is still followed")
	}
	tr.task(framework.Task{ID: "other.1", AppID: "/other", State: mesos.TASK_RUNNING}, t0)
	if len(tr.tasks) != 0 {
		t.Fatal("a task without a readiness check is followed")
	}
}

// fakeScheduler is the smallest Scheduler for the Checker's loop.
type fakeScheduler struct {
	mu    sync.Mutex
	snap  *framework.Snapshot
	ready map[string]bool
}

func (f *fakeScheduler) Snapshot() *framework.Snapshot { return f.snap }
func (f *fakeScheduler) SetReadiness(id string, ready bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready[id] = ready
	return nil
}

func (f *fakeScheduler) isReady(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready[id]
}

// Against a real HTTP server on the fake clock: 503 is not ready, the
// next probe waits an interval, 200 is ready and reported.
func TestCheckerProbes(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusServiceUnavailable
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		if r.URL.Path != "/ready" {
			t.Errorf("probe of %s", r.URL.Path)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	tk := waitingTask(mesos.TASK_RUNNING)
	tk.Ports = []uint64{uint64(port)}
	fs := &fakeScheduler{snap: &framework.Snapshot{Apps: []*appspec.App{checkedApp(false)}, Tasks: []framework.Task{tk}}, ready: map[string]bool{}}
	clk := clock.NewFake(time.Unix(1000, 0))
	events := make(chan framework.Event)
	c, err := New(Config{Scheduler: fs, Clock: clk, Log: logging.Component(logging.Discard(), "readiness"), Tick: 10 * time.Millisecond,
		Events: func(int) (<-chan framework.Event, func()) { return events, func() {} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	hitsNow := func() int { mu.Lock(); defer mu.Unlock(); return hits }
	step := func(d time.Duration, until func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !until() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			clk.Step(d)
			time.Sleep(2 * time.Millisecond)
		}
	}
	step(10*time.Millisecond, func() bool { return hitsNow() == 1 }, "the first probe")
	// Not ready: the next probe comes only after intervalSeconds (5 s).
	clk.Step(4 * time.Second)
	time.Sleep(50 * time.Millisecond)
	if hitsNow() != 1 || fs.isReady("web.1") {
		t.Fatalf("hits %d, ready %v: probed again within the interval or took 503 as ready", hitsNow(), fs.isReady("web.1"))
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	step(100*time.Millisecond, func() bool { return fs.isReady("web.1") }, "the task to be reported ready")
}
