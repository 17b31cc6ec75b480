package autoscale

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// fakeWorld is the scheduler as the Runner sees it, and the Scaler that
// changes it: a scale takes effect (and its deployment finishes) at once.
type fakeWorld struct {
	mu      sync.Mutex
	app     appspec.App
	perTask float64 // what the source reports for every task; <0: nothing
	fail    error   // the next Scale's error
	scales  []int
}

func (w *fakeWorld) Snapshot() *framework.Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	app := w.app
	snap := &framework.Snapshot{Apps: []*appspec.App{&app}}
	for i := range app.Instances {
		// Ids of Flotilla's scheme, sorted, as the scheduler's snapshots
		// have them (Snapshot.TasksOf finds an app's tasks by prefix).
		id := fmt.Sprintf("%s.instance-%08d._app.1", framework.TaskIDPrefix(app.ID), i)
		snap.Tasks = append(snap.Tasks, framework.Task{ID: id, AppID: app.ID, State: mesos.TASK_RUNNING})
	}
	snap.Status = []framework.AppStatus{{AppID: app.ID, Instances: app.Instances, Done: true}}
	return snap
}

func (w *fakeWorld) Scale(_ context.Context, appID string, n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.fail; err != nil {
		w.fail = nil
		return err
	}
	w.app.Instances = n
	w.scales = append(w.scales, n)
	return nil
}

func (w *fakeWorld) Sample(_ context.Context, _ *appspec.App, tasks []framework.Task) (Sample, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.perTask < 0 {
		return Sample{}, errors.New("autoscale: test: agents unreachable")
	}
	s := Sample{Values: make(map[string]float64)}
	for _, t := range tasks {
		s.Values[t.ID] = w.perTask
	}
	return s, nil
}

func (w *fakeWorld) set(f func(w *fakeWorld)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

func TestRunner(t *testing.T) {
	t.Parallel()
	const interval = 15 * time.Second
	w := &fakeWorld{perTask: 0.5, app: appspec.App{ID: "/web", Instances: 2, Autoscale: &appspec.Autoscale{
		Min: 1, Max: 10, Metric: appspec.AutoscaleCPU, Target: 0.5, IntervalSeconds: 15, ScaleDownWindowSeconds: 60}}}
	clk := clock.NewFake(t0)
	decisions := make(chan Decision, 1)
	r, err := NewRunner(RunnerConfig{
		Clock: clk, Snapshot: w.Snapshot, Scaler: w, Tick: interval,
		Sources:    map[string]Source{appspec.AutoscaleCPU: w},
		OnDecision: func(d Decision) { decisions <- d },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	}()
	for clk.Waiters() == 0 {
		runtime.Gosched()
	}
	// next steps the clock to the next evaluation and returns its decision.
	next := func() Decision {
		t.Helper()
		clk.Step(interval)
		select {
		case d := <-decisions:
			return d
		case <-time.After(10 * time.Second): // a hang guard, not a timing
			t.Fatal("no decision")
			return Decision{}
		}
	}
	steps := []struct {
		name    string
		set     func(w *fakeWorld)
		current int
		desired int
		rule    string
		scaled  bool
	}{
		{"at target", nil, 2, 2, RuleTolerance, false},
		{"load doubles: up at once", func(w *fakeWorld) { w.perTask = 1.0 }, 2, 4, "", true},
		{"settled", func(w *fakeWorld) { w.perTask = 0.5 }, 4, 4, RuleTolerance, false},
		{"load drops: window holds", func(w *fakeWorld) { w.perTask = 0.25 }, 4, 4, RuleDownWindow, false},
		{"window holds 2", nil, 4, 4, RuleDownWindow, false},
		{"window holds 3", nil, 4, 4, RuleDownWindow, false},
		{"window holds 4", nil, 4, 4, RuleDownWindow, false},
		{"window over: down", nil, 4, 2, "", true},
		{"settled at 2", func(w *fakeWorld) { w.perTask = 0.5 }, 2, 2, RuleTolerance, false},
		{"agents gone: last sample still fresh", func(w *fakeWorld) { w.perTask = -1 }, 2, 2, RuleTolerance, false},
		{"agents gone: sample 2 intervals old", nil, 2, 2, RuleTolerance, false},
		{"agents gone: stale", nil, 2, 2, RuleStale, false},
		{"load back, scale fails", func(w *fakeWorld) { w.perTask = 1.0; w.fail = errors.New("api: conflict") }, 2, 4, "", false},
		{"retried", nil, 2, 4, "", true},
	}
	for _, s := range steps {
		if s.set != nil {
			w.set(s.set)
		}
		d := next()
		if d.Current != s.current || d.Desired != s.desired || d.Rule != s.rule || d.Scaled != s.scaled {
			t.Fatalf("%s: got current %d desired %d rule %q scaled %v (%s %s), want %d %d %q %v",
				s.name, d.Current, d.Desired, d.Rule, d.Scaled, d.Reason, d.Error, s.current, s.desired, s.rule, s.scaled)
		}
	}
	w.set(func(w *fakeWorld) {
		if fmt.Sprint(w.scales) != "[4 2 4]" {
			t.Errorf("scales %v, want [4 2 4]", w.scales)
		}
	})
	log := r.Log("web")
	var rules []string
	for _, d := range log {
		rules = append(rules, fmt.Sprintf("%d>%d %s x%d", d.Current, d.Desired, d.Rule, d.Repeat+1))
	}
	// Repeats of the same hold fold into one entry.
	want := "[2>2 tolerance x1 2>4  x1 4>4 tolerance x1 4>4 scale-down window x4 4>2  x1 2>2 tolerance x3 2>2 stale metrics x1 2>4  x1 2>4  x1]"
	if got := fmt.Sprint(rules); got != want {
		t.Errorf("log\n%s\nwant\n%s", got, want)
	}
	if log[len(log)-2].Error == "" {
		t.Error("failed scale not logged with its error")
	}
}

func TestRingBounded(t *testing.T) {
	t.Parallel()
	r := newRing(3)
	for i := range 5 {
		r.add(Decision{Current: i, Desired: i + 1, Scaled: true})
	}
	got := r.list()
	if len(got) != 3 || got[0].Current != 2 || got[2].Current != 4 {
		t.Fatalf("ring kept %+v", got)
	}
}

func TestNewRunnerNeedsItsParts(t *testing.T) {
	t.Parallel()
	w := &fakeWorld{}
	tests := []struct {
		name string
		cfg  RunnerConfig
	}{
		{"no clock", RunnerConfig{Snapshot: w.Snapshot, Scaler: w}},
		{"no snapshot", RunnerConfig{Clock: clock.Real{}, Scaler: w}},
		{"no scaler", RunnerConfig{Clock: clock.Real{}, Snapshot: w.Snapshot}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewRunner(tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestRunnerOnlyLeads(t *testing.T) {
	t.Parallel()
	w := &fakeWorld{perTask: 5, app: appspec.App{ID: "/web", Instances: 2, Autoscale: &appspec.Autoscale{
		Min: 1, Max: 10, Metric: appspec.AutoscaleCPU, Target: 0.5}}}
	leading := false
	r, err := NewRunner(RunnerConfig{Clock: clock.NewFake(t0), Snapshot: w.Snapshot, Scaler: w,
		Sources: map[string]Source{appspec.AutoscaleCPU: w}, Leading: func() bool { return leading }})
	if err != nil {
		t.Fatal(err)
	}
	r.evaluate(context.Background())
	if len(w.scales) != 0 || len(r.Log("/web")) != 0 {
		t.Fatalf("a follower evaluated: scales %v log %v", w.scales, r.Log("/web"))
	}
	leading = true
	r.evaluate(context.Background())
	if fmt.Sprint(w.scales) != "[10]" {
		t.Fatalf("the leader scaled %v, want [10]", w.scales)
	}
}
