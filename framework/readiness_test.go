package framework

import (
	"errors"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

func readyApp(version string, n int) appspec.App {
	a := testApp("/web", n)
	a.Version = version
	a.PortDefinitions = []appspec.PortDefinition{{Name: "http-api"}}
	a.ReadinessChecks = []appspec.ReadinessCheck{{Protocol: "HTTP", Path: "/ready", PortName: "http-api",
		IntervalSeconds: 1, TimeoutSeconds: 0.5, HTTPStatusCodesForReady: []int{200}}}
	a.UpgradeStrategy = appspec.UpgradeStrategy{MinimumHealthCapacity: 1, MaximumOverCapacity: 1}
	return a
}

func appStatus(t *testing.T, h *harness, id string) AppStatus {
	t.Helper()
	for _, st := range h.s.Snapshot().Status {
		if st.AppID == id {
			return st
		}
	}
	t.Fatalf("no status for %s", id)
	return AppStatus{}
}

// A task of an app with a readiness check starts not ready; running is not
// enough for the deployment (Done) nor for a roll to kill an old task; the
// readiness result is.
func TestReadinessGatesDeploymentAndRoll(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.subscribe()
	h.s.PutApp(readyApp("v1", 1))
	h.sync()
	launched := launchedIDs(h.offer("h1"))
	if len(launched) != 1 {
		t.Fatalf("launched %v", launched)
	}
	h.update(launched[0], mesos.TASK_RUNNING)
	tk := h.tasks("/web")[0]
	if tk.Ready == nil || *tk.Ready || tk.IsReady() {
		t.Fatalf("a running task before its readiness check: Ready %v", tk.Ready)
	}
	if st := appStatus(t, h, "/web"); st.Done || st.Healthy != 0 {
		t.Fatalf("status %+v before readiness: want not done, 0 healthy", st)
	}
	if err := h.s.SetReadiness(launched[0], true); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if st := appStatus(t, h, "/web"); !st.Done || st.Healthy != 1 {
		t.Fatalf("status %+v after readiness: want done", st)
	}

	// v2 rolls in with minimumHealthCapacity 1: the v1 task is killed only
	// once the v2 task is ready, not when it runs.
	h.s.PutApp(readyApp("v2", 1))
	h.sync()
	next := launchedIDs(h.offer("h2"))
	if len(next) != 1 {
		t.Fatalf("v2 launched %v", next)
	}
	h.rec.Take()
	h.update(next[0], mesos.TASK_RUNNING)
	if n := countCalls(h.rec.Take(), CallKill); n != 0 {
		t.Fatalf("%d kills while the new task is not ready", n)
	}
	if err := h.s.SetReadiness(next[0], true); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.step(0)
	if n := countCalls(h.rec.Take(), CallKill); n != 1 {
		t.Fatalf("%d kills once the new task is ready, want 1 (the v1 task)", n)
	}
	if err := h.s.SetReadiness("no-such-task", true); !errors.Is(err, ErrUnknownTask) {
		t.Fatalf("unknown task: %v", err)
	}
}

// Tasks of apps without a readiness check have no Ready and count as ready.
func TestNoReadinessCheckMeansReady(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.subscribe()
	h.s.PutApp(testApp("/plain", 1))
	h.sync()
	ids := launchedIDs(h.offer("h1"))
	h.update(ids[0], mesos.TASK_RUNNING)
	tk := h.tasks("/plain")[0]
	if tk.Ready != nil || !tk.IsReady() {
		t.Fatalf("Ready %v for an app without a check", tk.Ready)
	}
	if st := appStatus(t, h, "/plain"); !st.Done {
		t.Fatalf("status %+v", st)
	}
}
