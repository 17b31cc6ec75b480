package autoscale

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

type schedScaler struct{ s *framework.Scheduler }

func (s schedScaler) Scale(_ context.Context, appID string, n int) error { return s.s.Scale(appID, n) }

// TestRunnerOnLocalMesos closes the loop: the simulated executor's CPU
// counters, read through the agents' /monitor/statistics, drive the
// Runner, which scales a real Scheduler on localmesos. The runner and the
// executors share a fake clock; the scheduler runs on the wall clock, so
// the test waits (without timing anything) for each deployment.
func TestRunnerOnLocalMesos(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	const interval = 15 * time.Second
	app := appspec.App{ID: "/burn", Version: "v1", Instances: 2, CPUs: 0.5, Mem: 64,
		Autoscale: &appspec.Autoscale{Min: 1, Max: 8, Metric: appspec.AutoscaleCPU, Target: 0.5,
			IntervalSeconds: 15, ScaleDownWindowSeconds: 45}}
	c.running(t, app)
	cpu, err := NewAgentSource(appspec.AutoscaleCPU, c.agentURL, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	decisions := make(chan Decision, 1)
	r, err := NewRunner(RunnerConfig{
		Clock: c.clock, Snapshot: c.s.Snapshot, Scaler: schedScaler{c.s}, Tick: interval,
		Sources:    map[string]Source{appspec.AutoscaleCPU: cpu},
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
	for c.clock.Waiters() == 0 {
		runtime.Gosched()
	}

	// demand is the app's total CPU use in cores, spread evenly over its
	// running tasks before every evaluation, as a load balancer would.
	evaluate := func(demand float64) Decision {
		t.Helper()
		snap := c.s.Snapshot()
		var ready []framework.Task
		for _, task := range snap.TasksOf(app.ID) {
			if task.IsHealthy() && !task.Killing {
				ready = append(ready, task)
			}
		}
		for _, task := range ready {
			_ = c.execs[task.AgentID].SetUsage(task.ID, demand/float64(len(ready)), 0)
		}
		c.clock.Step(interval)
		select {
		case d := <-decisions:
			return d
		case <-time.After(10 * time.Second): // a hang guard, not a timing
			t.Fatal("no decision")
			return Decision{}
		}
	}
	// settle waits for the scheduler to finish a deployment, so that the
	// next evaluation sees it done.
	settle := func(n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			st, _ := c.s.Snapshot().StatusOf(app.ID)
			if st.Done && st.Instances == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("deployment to %d not done: %+v", n, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// run evaluates at a steady demand until the app is scaled, and
	// returns after how many evaluations.
	run := func(demand float64, limit int) (Decision, int) {
		t.Helper()
		for i := 1; i <= limit; i++ {
			d := evaluate(demand)
			if d.Scaled {
				settle(d.Desired)
				return d, i
			}
		}
		t.Fatalf("no scale within %d evaluations at demand %v; log %+v", limit, demand, r.Log(app.ID))
		return Decision{}, 0
	}

	// Two evaluations at the target: a rate needs two samples.
	for range 2 {
		if d := evaluate(0.5); d.Scaled {
			t.Fatalf("scaled at target: %+v", d)
		}
	}
	// Load step: 2 cores of demand on 2 × 0.5 cores is 2.0 utilisation
	// against 0.5, so 8 tasks (the max).
	d, n := run(2.0, 5)
	if d.Desired != 8 || n != 1 {
		t.Fatalf("load step: scaled to %d after %d evaluations, want 8 after 1 (%s)", d.Desired, n, d.Reason)
	}
	// Load gone: back to the min only after the 45 s window, and never
	// while the new tasks' rates are still partial.
	d, n = run(0.2, 20)
	if d.Desired != 1 || n < 4 {
		t.Fatalf("load drop: scaled to %d after %d evaluations, want 1 after at least 4 (%s)", d.Desired, n, d.Reason)
	}
	for _, d := range r.Log(app.ID) {
		t.Logf("%s %d→%d metric %.2f rule %q ×%d: %s", d.At.Format("15:04:05"), d.Current, d.Desired, d.Metric, d.Rule, d.Repeat+1, d.Reason)
	}
}
