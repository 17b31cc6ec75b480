package framework

import (
	"fmt"
	"slices"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

// rollWatch rebuilds the app's tasks from the event stream alone, as the
// API or DNS would, and checks a roll's bounds after every event: the
// minimum is asserted from what subscribers saw, not from the core's own
// counters.
type rollWatch struct {
	t      *testing.T
	sub    *Subscription
	app    string
	hc     bool
	tasks  map[string]Task
	status []AppStatus

	minHealthy, maxTotal int // lowest healthy and highest total seen
	// launchedBesideOld: a task of target was launched while a task of
	// another version was active and not yet being killed.
	target            string
	launchedBesideOld bool
}

func newRollWatch(t *testing.T, h *harness, app string, hc bool) *rollWatch {
	return watchRoll(t, h.s, app, hc)
}

func watchRoll(t *testing.T, s *Scheduler, app string, hc bool) *rollWatch {
	w := &rollWatch{t: t, sub: s.Subscribe(100000), app: app, hc: hc, tasks: map[string]Task{}, minHealthy: 1 << 30}
	t.Cleanup(w.sub.Close)
	for _, tk := range s.Snapshot().TasksOf(app) {
		w.tasks[tk.ID] = tk
	}
	return w
}

func (w *rollWatch) healthy(t Task) bool {
	if t.Killing || t.State != mesos.TASK_RUNNING {
		return false
	}
	if w.hc {
		return t.Healthy != nil && *t.Healthy
	}
	return true
}

// drain applies every event published so far (the harness has synced).
func (w *rollWatch) drain() {
	for {
		select {
		case e := <-w.sub.C:
			switch e.Type {
			case EventLagged:
				w.t.Fatal("watcher lagged")
			case EventTask:
				if e.Task.AppID != w.app {
					continue
				}
				if _, known := w.tasks[e.Task.ID]; !known && e.Task.AppVersion == w.target {
					for _, o := range w.tasks {
						if o.AppVersion != w.target && !o.Killing {
							w.launchedBesideOld = true
						}
					}
				}
				w.tasks[e.Task.ID] = *e.Task
			case EventTaskRemoved:
				delete(w.tasks, e.Task.ID)
			case EventDeployment:
				if e.Status.AppID == w.app {
					w.status = append(w.status, *e.Status)
				}
				continue
			default:
				continue
			}
			n := 0
			for _, tk := range w.tasks {
				if w.healthy(tk) {
					n++
				}
			}
			w.minHealthy = min(w.minHealthy, n)
			w.maxTotal = max(w.maxTotal, len(w.tasks))
		default:
			return
		}
	}
}

// rollStep does one thing a cluster would do next and reports whether
// there was anything: a staging task starts, a started task reports its
// health check (healthy says how, per version; nil: it never reports),
// waiting instances get an offer, or a killed task dies. Offers come
// before deaths so that a roll reaches its maximum total.
func (h *harness) rollStep(app string, hc bool, healthy func(version string) *bool) bool {
	h.t.Helper()
	snap := h.s.Snapshot()
	ts := snap.TasksOf(app)
	for _, tk := range ts {
		if tk.State == mesos.TASK_STAGING && !tk.Killing {
			h.update(tk.ID, mesos.TASK_RUNNING)
			return true
		}
	}
	if hc {
		for _, tk := range ts {
			if tk.State == mesos.TASK_RUNNING && tk.Healthy == nil && !tk.Killing {
				if hl := healthy(tk.AppVersion); hl != nil {
					h.update(tk.ID, mesos.TASK_RUNNING, func(st *mesos.TaskStatus) { st.Healthy = hl })
					return true
				}
			}
		}
	}
	for _, q := range snap.Queue {
		if q.AppID == app && q.Count > 0 {
			h.offer("h1", "h2")
			return true
		}
	}
	for _, tk := range ts {
		if tk.Killing {
			h.update(tk.ID, mesos.TASK_KILLED)
			return true
		}
	}
	return false
}

func boolPtr(b bool) *bool { return &b }

// startRolled runs n healthy tasks of version v1 and returns the harness.
func startRolled(t *testing.T, app appspec.App) *harness {
	t.Helper()
	h := newHarness(t, nil)
	h.s.PutApp(app)
	h.subscribe()
	for i := 0; i < 100 && h.rollStep(app.ID, len(app.HealthChecks) > 0, func(string) *bool { return boolPtr(true) }); i++ {
		h.step(time.Second) // distinct StagedAt, so killSelection has an order
	}
	if st, _ := h.s.Snapshot().StatusOf(app.ID); !st.Done || st.Healthy != app.Instances {
		t.Fatalf("v1 not deployed: %+v", st)
	}
	h.rec.Take()
	return h
}

func rollApp(n int, m, o float64, hc bool) appspec.App {
	app := testApp("/web", n)
	app.UpgradeStrategy = appspec.UpgradeStrategy{MinimumHealthCapacity: m, MaximumOverCapacity: o}
	if hc {
		app.HealthChecks = []appspec.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/health"}}
	}
	return app
}

func TestRollingUpgradeBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		n         int
		m, o      float64
		hc        bool
		minHealth int // never fewer healthy during the roll
		maxTotal  int // never more tasks in all
		// killFirst: every old task is being killed before a new one starts.
		killFirst bool
	}{
		{name: "half capacity, no surge", n: 4, m: 0.5, o: 0, hc: true, minHealth: 2, maxTotal: 4},
		{name: "half capacity, full surge", n: 4, m: 0.5, o: 1, hc: true, minHealth: 2, maxTotal: 8},
		{name: "half capacity without health checks", n: 4, m: 0.5, o: 0, minHealth: 2, maxTotal: 4},
		{name: "full capacity, half surge", n: 4, m: 1, o: 0.5, hc: true, minHealth: 4, maxTotal: 6},
		{name: "full capacity, no surge: one over", n: 4, m: 1, o: 0, hc: true, minHealth: 4, maxTotal: 5},
		{name: "single instance restart", n: 1, m: 1, o: 0, hc: true, minHealth: 1, maxTotal: 2},
		{name: "zero capacity: kill all then start", n: 4, m: 0, o: 0, hc: true, minHealth: 0, maxTotal: 4, killFirst: true},
		{name: "odd count rounds the minimum up", n: 5, m: 0.5, o: 0, hc: true, minHealth: 3, maxTotal: 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := rollApp(tc.n, tc.m, tc.o, tc.hc)
			h := startRolled(t, app)
			w := newRollWatch(t, h, app.ID, tc.hc)
			// A restart: the same spec under a new version rolls the same way.
			app.Version = "v2"
			w.target = "v2"
			h.s.PutApp(app)
			h.sync()
			w.drain()
			steps := 0
			for ; steps < 200 && h.rollStep(app.ID, tc.hc, func(string) *bool { return boolPtr(true) }); steps++ {
				w.drain()
			}
			w.drain()
			if w.minHealthy != tc.minHealth {
				// Equal, not just ≥: a roll that never dips to the minimum
				// has not used the room it was given.
				t.Errorf("fewest healthy during the roll %d, want %d", w.minHealthy, tc.minHealth)
			}
			if w.maxTotal != tc.maxTotal {
				t.Errorf("most tasks during the roll %d, want %d", w.maxTotal, tc.maxTotal)
			}
			if w.launchedBesideOld == tc.killFirst {
				t.Errorf("new tasks launched beside old ones: %v, want %v", w.launchedBesideOld, !tc.killFirst)
			}
			st, _ := h.s.Snapshot().StatusOf(app.ID)
			want := AppStatus{AppID: app.ID, Version: "v2", Instances: tc.n, Tasks: tc.n, Running: tc.n, Healthy: tc.n, Done: true}
			if st != want {
				t.Errorf("final status %+v, want %+v (after %d steps)", st, want, steps)
			}
			if len(w.status) == 0 || w.status[len(w.status)-1] != want {
				t.Fatalf("last deployment event %+v, want %+v", w.status, want)
			}
			for _, s := range w.status[:len(w.status)-1] {
				if s.Done {
					t.Errorf("deployment event says done before the end: %+v", s)
				}
			}
			for _, tk := range h.tasks(app.ID) {
				if tk.AppVersion != "v2" {
					t.Errorf("task %s of version %s left", tk.ID, tk.AppVersion)
				}
			}
		})
	}
}

// TestRollingKillSelection: old tasks go healthy ones last and, among
// those, in killSelection order.
func TestRollingKillSelection(t *testing.T) {
	t.Parallel()
	for _, sel := range []string{"YOUNGEST_FIRST", "OLDEST_FIRST"} {
		t.Run(sel, func(t *testing.T) {
			t.Parallel()
			app := rollApp(3, 1, 0, true)
			app.KillSelection = sel
			// One at a time so each v1 task has its own StagedAt.
			app.Instances = 1
			h := startRolled(t, app)
			for n := 2; n <= 3; n++ {
				h.s.Scale(app.ID, n)
				h.step(time.Second)
				for i := 0; i < 10 && h.rollStep(app.ID, true, func(string) *bool { return boolPtr(true) }); i++ {
					h.step(time.Second)
				}
			}
			v1 := h.tasks(app.ID)
			slices.SortFunc(v1, func(a, b Task) int { return a.StagedAt.Compare(b.StagedAt) })
			var wantOrder []string
			for _, tk := range v1 {
				wantOrder = append(wantOrder, tk.ID)
			}
			if sel == "YOUNGEST_FIRST" {
				slices.Reverse(wantOrder)
			}
			app.Instances = 3
			app.Version = "v2"
			h.s.PutApp(app)
			h.sync()
			h.rec.Take()
			var killed []string
			for i := 0; i < 100 && h.rollStep(app.ID, true, func(string) *bool { return boolPtr(true) }); i++ {
				for _, id := range h.rec.Killed() {
					if !slices.Contains(killed, id) {
						killed = append(killed, id)
					}
				}
				h.rec.Take()
			}
			if !slices.Equal(killed, wantOrder) {
				t.Errorf("old tasks killed in order %v, want %v", killed, wantOrder)
			}
		})
	}
}

// TestRollingStallsOnUnhealthyVersion: a version that never passes its
// health check takes the room the strategy gives and no more; the old
// tasks are kept at the minimum, whatever time passes, for the API to roll
// back on its deadline.
func TestRollingStallsOnUnhealthyVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		report *bool // what v2's health check says; nil: never answers
	}{
		{name: "failing check", report: boolPtr(false)},
		{name: "check never answers", report: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := rollApp(4, 0.5, 0, true)
			h := startRolled(t, app)
			w := newRollWatch(t, h, app.ID, true)
			app.Version = "v2"
			w.target = "v2"
			h.s.PutApp(app)
			h.sync()
			health := func(v string) *bool {
				if v == "v2" {
					return tc.report
				}
				return boolPtr(true)
			}
			for i := 0; i < 50; i++ {
				if !h.rollStep(app.ID, true, health) {
					h.step(time.Minute) // nothing to do: time passes
				}
				w.drain()
			}
			if w.minHealthy != 2 {
				t.Errorf("fewest healthy %d, want 2", w.minHealthy)
			}
			st, _ := h.s.Snapshot().StatusOf(app.ID)
			want := AppStatus{AppID: app.ID, Version: "v2", Instances: 4, Tasks: 2, Running: 2, Healthy: 0, OldTasks: 2}
			if st != want {
				t.Errorf("stalled status %+v, want %+v", st, want)
			}
			if calls := h.offer("h3"); len(launchedIDs(calls)) != 0 {
				t.Errorf("stalled roll launched %v", launchedIDs(calls))
			}
			// The API rolls back: v1 again, under a new version as it would be.
			app.Version = "v3-rollback-of-v1"
			w.target = app.Version
			h.s.PutApp(app)
			h.sync()
			for i := 0; i < 100 && h.rollStep(app.ID, true, func(string) *bool { return boolPtr(true) }); i++ {
				w.drain()
			}
			w.drain()
			if w.minHealthy != 2 {
				t.Errorf("fewest healthy through the rollback %d, want 2", w.minHealthy)
			}
			if st, _ := h.s.Snapshot().StatusOf(app.ID); !st.Done || st.Version != app.Version {
				t.Errorf("rollback status %+v, want done at %s", st, app.Version)
			}
		})
	}
}

// TestRollingInterruptedByNewerVersion: v3 arrives while v1 → v2 is half
// way; tasks of v1 and v2 are both old, the unhealthy v2 ones go first,
// and the bounds hold across both rolls.
func TestRollingInterruptedByNewerVersion(t *testing.T) {
	t.Parallel()
	app := rollApp(4, 0.5, 0.5, true)
	h := startRolled(t, app)
	w := newRollWatch(t, h, app.ID, true)
	app.Version = "v2"
	w.target = "v2"
	h.s.PutApp(app)
	h.sync()
	// Launch v2 and make one of them healthy, leave the others staging.
	h.offer("h1")
	var v2 []string
	for _, tk := range h.tasks(app.ID) {
		if tk.AppVersion == "v2" {
			v2 = append(v2, tk.ID)
		}
	}
	if len(v2) < 2 {
		t.Fatalf("v2 launched %d tasks, want at least 2", len(v2))
	}
	slices.Sort(v2)
	h.update(v2[0], mesos.TASK_RUNNING, func(st *mesos.TaskStatus) { st.Healthy = boolPtr(true) })
	w.drain()
	h.rec.Take()

	app.Version = "v3"
	w.target = "v3"
	h.s.PutApp(app)
	h.sync()
	w.drain()
	killed := h.rec.Killed()
	for _, id := range v2[1:] {
		if !slices.Contains(killed, id) {
			t.Errorf("staging v2 task %s not killed at once (killed %v)", id, killed)
		}
	}
	for i := 0; i < 200 && h.rollStep(app.ID, true, func(string) *bool { return boolPtr(true) }); i++ {
		w.drain()
	}
	w.drain()
	if w.minHealthy < 2 {
		t.Errorf("fewest healthy %d, want at least 2", w.minHealthy)
	}
	if w.maxTotal > 6 {
		t.Errorf("most tasks %d, want at most 6", w.maxTotal)
	}
	st, _ := h.s.Snapshot().StatusOf(app.ID)
	if !st.Done || st.Version != "v3" || st.Healthy != 4 {
		t.Errorf("final status %+v, want 4 healthy v3 and done", st)
	}
	for _, tk := range h.tasks(app.ID) {
		if tk.AppVersion != "v3" {
			t.Errorf("task %s of version %s left", tk.ID, tk.AppVersion)
		}
	}
}

func TestUpgradeBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		n              int
		m, o           float64
		minH, maxTotal int
	}{
		{4, 0.5, 0, 2, 4},
		{4, 1, 1, 4, 8},
		{4, 1, 0, 4, 5}, // Marathon's one over capacity
		{0, 1, 0, 0, 0},
		{10, 0.7, 0.3, 7, 13},
		{3, 0.5, 0.5, 2, 4},
		{4, 0, 0, 0, 4},
		{4, 1.5, -1, 4, 5}, // out of range values clamp
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("n%d_m%g_o%g", tc.n, tc.m, tc.o), func(t *testing.T) {
			app := appspec.App{Instances: tc.n, UpgradeStrategy: appspec.UpgradeStrategy{MinimumHealthCapacity: tc.m, MaximumOverCapacity: tc.o}}
			if minH, maxT := upgradeBounds(&app); minH != tc.minH || maxT != tc.maxTotal {
				t.Errorf("bounds %d, %d; want %d, %d", minH, maxT, tc.minH, tc.maxTotal)
			}
		})
	}
}
