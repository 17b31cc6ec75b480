package framework

import (
	"errors"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

// A task with an HTTP check (run by package health, reported through
// ReportHealth) and a MESOS_TCP one (status updates): each check keeps its
// own record with real times and counts; the task is healthy only while
// both are alive; failures are published, and KillUnhealthy kills and
// replaces the task with an event.
func TestTaskHealthCombinesChecks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	sub := h.s.Subscribe(1024)
	defer sub.Close()
	app := testApp("/web", 1)
	app.HealthChecks = []appspec.HealthCheck{{Protocol: "HTTP", Path: "/health", PortIndex: ptrTo(0)}, {Protocol: "MESOS_TCP", PortIndex: ptrTo(0)}}
	h.s.PutApp(app)
	h.subscribe()
	id := launchedIDs(h.offer("h1"))[0]
	h.update(id, mesos.TASK_RUNNING)
	task := func() Task { return h.tasks("/web")[0] }
	if tk := task(); tk.Healthy != nil || len(tk.Checks) != 2 {
		t.Fatalf("before any result: healthy %v, %d check records; want nil and 2", tk.Healthy, len(tk.Checks))
	}

	t1 := h.clk.Now()
	if err := h.s.ReportHealth(id, 0, CheckResult{}.Update(true, "", t1)); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if tk := task(); tk.Healthy != nil {
		t.Fatalf("one check of two passed: healthy %v, want not known yet", *tk.Healthy)
	}
	h.step(time.Second)
	healthy := func(b bool) func(*mesos.TaskStatus) {
		return func(st *mesos.TaskStatus) { st.Healthy = &b; st.Message = nil }
	}
	h.update(id, mesos.TASK_RUNNING, healthy(true))
	tk := task()
	if tk.Healthy == nil || !*tk.Healthy || !tk.Checks[1].Alive() || tk.Checks[1].FirstSuccess != t1.Add(time.Second) {
		t.Fatalf("both checks passed: healthy %v, checks %+v", tk.Healthy, tk.Checks)
	}
	if st, _ := h.s.Snapshot().StatusOf("/web"); st.Healthy != 1 {
		t.Fatalf("app status counts %d healthy, want 1", st.Healthy)
	}

	// The HTTP check fails: the task is unhealthy although Mesos's check
	// passes, and the failure is published.
	h.step(time.Second)
	fail := CheckResult{}.Update(true, "", t1).Update(false, "503 Service Unavailable", h.clk.Now())
	if err := h.s.ReportHealth(id, 0, fail); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if tk := task(); tk.Healthy == nil || *tk.Healthy || tk.Checks[0].ConsecutiveFailures != 1 || tk.Checks[0].LastFailureCause != "503 Service Unavailable" {
		t.Fatalf("after an HTTP failure: healthy %v, checks %+v", tk.Healthy, tk.Checks)
	}
	if st, _ := h.s.Snapshot().StatusOf("/web"); st.Healthy != 0 {
		t.Fatalf("app status counts %d healthy, want 0", st.Healthy)
	}
	// A Mesos failure counts on its own record.
	h.update(id, mesos.TASK_RUNNING, func(st *mesos.TaskStatus) { f := false; st.Healthy = &f; st.Message = ptrTo("connection refused") })
	if tk := task(); tk.Checks[1].ConsecutiveFailures != 1 || tk.Checks[1].LastFailureCause != "connection refused" {
		t.Fatalf("Mesos check record %+v, want 1 failure with the status message", tk.Checks[1])
	}

	if err := h.s.KillUnhealthy(id, 0); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if err := h.s.KillUnhealthy(id, 0); err != nil {
		t.Fatalf("a second kill of the same task: %v", err)
	}
	if err := h.s.KillUnhealthy("nope", 0); !errors.Is(err, ErrUnknownTask) {
		t.Fatalf("kill of an unknown task: %v, want ErrUnknownTask", err)
	}
	if tk := task(); !tk.Killing {
		t.Fatal("the unhealthy task is not being killed")
	}
	h.update(id, mesos.TASK_KILLED)
	if ids := launchedIDs(h.offer("h1")); len(ids) != 1 {
		t.Fatalf("launched %v after the unhealthy kill, want a replacement", ids)
	}

	var failed []int
	kills := 0
	for len(sub.C) > 0 {
		ev := <-sub.C
		switch ev.Type {
		case EventHealthCheckFailed:
			failed = append(failed, ev.Check)
			if ev.Task == nil || ev.Task.ID != id || ev.App == nil || ev.App.HealthChecks[ev.Check].Protocol == "" {
				t.Errorf("failure event %+v lacks its task or app", ev)
			}
		case EventUnhealthyKill:
			kills++
			if ev.Task.ID != id || ev.Check != 0 {
				t.Errorf("kill event %+v", ev)
			}
		}
	}
	if len(failed) != 2 || failed[0] != 0 || failed[1] != 1 || kills != 1 {
		t.Fatalf("failure events for checks %v and %d kill events; want [0 1] and 1", failed, kills)
	}
}
