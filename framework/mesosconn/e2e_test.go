package mesosconn

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/testbed"
	"github.com/flotilla-sched/flotilla/localmesos"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// e2eIDs is an in-memory FrameworkIDStore.
type e2eIDs struct {
	mu sync.Mutex
	id string
}

func (s *e2eIDs) FrameworkID(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, nil
}

func (s *e2eIDs) SetFrameworkID(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id = id
	return nil
}

// e2e is a Scheduler driven by the real connection (Conn and its Driver)
// against a localmesos master over HTTP, on the wall clock.
type e2e struct {
	t *testing.T
	m *localmesos.Master
	s *framework.Scheduler
}

func startE2E(t *testing.T, lcfg localmesos.Config, mod func(*framework.Config)) *e2e {
	t.Helper()
	m := coreStartMaster(t, lcfg)
	s, stop := startFlotilla(t, m, &e2eIDs{}, mod)
	t.Cleanup(func() {
		// Remove every app first so Docker containers do not outlive the test.
		for _, a := range s.Snapshot().Apps {
			_ = s.RemoveApp(a.ID)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(s.Snapshot().Tasks) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		stop()
	})
	return &e2e{t: t, m: m, s: s}
}

func coreStartMaster(t *testing.T, lcfg localmesos.Config) *localmesos.Master {
	t.Helper()
	if lcfg.Log == nil {
		lcfg.Log = logging.Discard()
	}
	m, err := localmesos.Start(context.Background(), lcfg)
	if err != nil {
		t.Fatalf("start localmesos: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startFlotilla runs a Scheduler fed by a Conn to m, as one Flotilla
// process would; stop ends both like a crash (no TEARDOWN).
func startFlotilla(t *testing.T, m *localmesos.Master, ids *e2eIDs, mod func(*framework.Config)) (*framework.Scheduler, func()) {
	t.Helper()
	det, err := NewDetector(DetectorConfig{Master: m.SchedulerURL()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := NewConn(ConnConfig{Detector: det, FrameworkIDs: ids, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return runFlotilla(t, conn, det, mod)
}

// runFlotilla runs a Scheduler fed by conn until the returned stop.
func runFlotilla(t *testing.T, conn *Conn, det Detector, mod func(*framework.Config)) (*framework.Scheduler, func()) {
	t.Helper()
	cfg := framework.Config{
		Clock: clock.Real{}, Rand: rand.New(rand.NewSource(time.Now().UnixNano())),
		Log:             logging.Component(logging.Discard(), "framework"),
		ReconcileSettle: 100 * time.Millisecond, DeclineRefuseWaiting: time.Second,
		KillGracePeriod: time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	s := framework.New(cfg)
	in := make(chan framework.Input, 64)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = conn.Run(ctx, in) }()
	go func() { defer wg.Done(); _ = s.Run(ctx, in, conn.Driver()) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			det.Close()
		})
	}
	t.Cleanup(stop)
	return s, stop
}

// waitFor polls the snapshot until ok or the timeout, failing with what
// was last seen.
func (e *e2e) waitFor(what string, timeout time.Duration, ok func(*framework.Snapshot) bool) *framework.Snapshot {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		snap := e.s.Snapshot()
		if ok(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s; tasks %s; queue %+v", timeout, what, describeTasks(snap.Tasks), snap.Queue)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describeTasks(ts []framework.Task) string {
	var b strings.Builder
	for _, t := range ts {
		h := "?"
		if t.Healthy != nil {
			h = fmt.Sprint(*t.Healthy)
		}
		fmt.Fprintf(&b, "[%s %s healthy=%s killing=%v %s] ", t.ID, t.State, h, t.Killing, t.Message)
	}
	return b.String()
}

// healthyIDs returns the ids of an app's healthy tasks not being killed.
func healthyIDs(snap *framework.Snapshot, appID string) []string {
	var ids []string
	for _, t := range snap.TasksOf(appID) {
		if t.IsHealthy() && t.Healthy != nil && !t.Killing {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

func exactlyHealthy(appID string, n int) func(*framework.Snapshot) bool {
	return func(s *framework.Snapshot) bool {
		return len(healthyIDs(s, appID)) == n && len(s.TasksOf(appID)) == n
	}
}

func TestE2EDocker(t *testing.T) {
	t.Parallel()
	testbed.DockerSocket(t)
	e := startE2E(t, localmesos.Config{
		Agents: 2,
		Executor: func(string) (executor.Executor, error) {
			return executor.NewDocker(executor.DockerConfig{})
		},
	}, nil)
	app := appspec.App{
		ID: "/e2e/web", Version: "v1", Instances: 3, CPUs: 0.1, Mem: 32,
		Container:       &appspec.Container{Type: "DOCKER", Docker: &appspec.Docker{Image: testbed.Image, Network: "HOST"}},
		PortDefinitions: []appspec.PortDefinition{{Port: 0, Name: "http"}},
		HealthChecks: []appspec.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/health", PortIndex: new(int),
			GracePeriodSeconds: 10, IntervalSeconds: 0.5, TimeoutSeconds: 2, MaxConsecutiveFailures: 2}},
		BackoffSeconds: 1, BackoffFactor: 1.15, MaxLaunchDelaySeconds: 5,
	}
	e.s.PutApp(app)
	snap := e.waitFor("3 healthy tasks", 40*time.Second, exactlyHealthy(app.ID, 3))

	// Each task serves on its PORT0 and knows its MESOS_TASK_ID: the
	// TaskInfo's env reached the container.
	for _, task := range snap.TasksOf(app.ID) {
		body := httpBody(t, fmt.Sprintf("http://127.0.0.1:%d/", task.Ports[0]))
		if !strings.HasPrefix(body, task.ID+" ") {
			t.Errorf("task %s on port %d answered %q", task.ID, task.Ports[0], body)
		}
	}

	if err := e.s.Scale(app.ID, 4); err != nil {
		t.Fatal(err)
	}
	e.waitFor("4 healthy tasks after scale-up", 30*time.Second, exactlyHealthy(app.ID, 4))
	if err := e.s.Scale(app.ID, 2); err != nil {
		t.Fatal(err)
	}
	snap = e.waitFor("2 tasks after scale-down", 30*time.Second, exactlyHealthy(app.ID, 2))

	// Kill one: it is replaced.
	before := healthyIDs(snap, app.ID)
	if err := e.s.KillTasks(app.ID, before[:1]); err != nil {
		t.Fatal(err)
	}
	snap = e.waitFor("a replacement for the killed task", 30*time.Second, func(s *framework.Snapshot) bool {
		ids := healthyIDs(s, app.ID)
		return exactlyHealthy(app.ID, 2)(s) && !slices.Contains(ids, before[0]) && slices.Contains(ids, before[1])
	})

	// A task whose health check fails is killed by its executor and replaced.
	sick := snap.TasksOf(app.ID)[0]
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/health?healthy=false", sick.Ports[0]), "text/plain", nil)
	if err != nil {
		t.Fatalf("fail the health of %s: %v", sick.ID, err)
	}
	resp.Body.Close()
	e.waitFor("the unhealthy task replaced", 30*time.Second, func(s *framework.Snapshot) bool {
		return exactlyHealthy(app.ID, 2)(s) && !slices.Contains(healthyIDs(s, app.ID), sick.ID)
	})
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}

// TestE2ESimulated runs the same life cycle on simulated executors (no
// Docker): many instances, UNIQUE hostname, scale, kill, agent loss.
func TestE2ESimulated(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	sims := map[string]*executor.Simulated{}
	e := startE2E(t, localmesos.Config{
		// Three hosts, as on a cluster (all of 127/8 is this machine).
		AgentSpecs: []localmesos.AgentSpec{{Hostname: "127.0.0.1"}, {Hostname: "127.0.0.2"}, {Hostname: "127.0.0.3"}},
		NoSandbox:  true, NoAgentHTTP: true,
		Executor: func(agentID string) (executor.Executor, error) {
			s := executor.NewSimulated(clock.Real{})
			mu.Lock()
			sims[agentID] = s
			mu.Unlock()
			return s, nil
		},
	}, nil)
	web := appspec.App{ID: "/sim/web", Version: "v1", Instances: 30, CPUs: 0.01, Mem: 1,
		Cmd: "sleep 1000", PortDefinitions: []appspec.PortDefinition{{}},
		UnreachableStrategy: appspec.UnreachableStrategy{InactiveAfterSeconds: 0, ExpungeAfterSeconds: 60}}
	uniq := appspec.App{ID: "/sim/uniq", Version: "v1", Instances: 4, CPUs: 0.01, Mem: 1,
		Cmd: "sleep 1000", Constraints: [][]string{{"hostname", "UNIQUE"}}}
	e.s.PutApp(web)
	e.s.PutApp(uniq)
	running := func(appID string, n int) func(*framework.Snapshot) bool {
		return func(s *framework.Snapshot) bool {
			c := 0
			for _, t := range s.TasksOf(appID) {
				if t.State == mesos.TASK_RUNNING && !t.Killing {
					c++
				}
			}
			return c == n
		}
	}
	// UNIQUE hostname on 3 hosts: 3 instances run, the fourth waits with
	// the reason.
	snap := e.waitFor("30 web and 3 uniq running", 20*time.Second, func(s *framework.Snapshot) bool {
		return running(web.ID, 30)(s) && running(uniq.ID, 3)(s)
	})
	var q *framework.QueueEntry
	for i := range snap.Queue {
		if snap.Queue[i].AppID == uniq.ID {
			q = &snap.Queue[i]
		}
	}
	if q == nil || q.Count != 1 || len(q.LastRejection.Reasons) == 0 {
		t.Errorf("queue %+v: want 1 uniq instance waiting with rejection reasons", snap.Queue)
	} else {
		t.Logf("uniq: 3 running, 1 waiting: %+v", q.LastRejection.Reasons)
	}

	if err := e.s.Scale(web.ID, 10); err != nil {
		t.Fatal(err)
	}
	e.waitFor("web scaled to 10", 20*time.Second, func(s *framework.Snapshot) bool {
		return running(web.ID, 10)(s) && len(s.TasksOf(web.ID)) == 10
	})

	// An agent becomes unreachable: its web tasks are replaced at once
	// (inactiveAfterSeconds 0).
	agents := e.m.Agents()
	victim := agents[0].ID
	lost := 0
	for _, t := range e.s.Snapshot().TasksOf(web.ID) {
		if t.AgentID == victim {
			lost++
		}
	}
	unreachableAt := time.Now()
	if err := e.m.SetAgentReachable(victim, false); err != nil {
		t.Fatal(err)
	}
	e.waitFor("replacements for unreachable tasks", 20*time.Second, func(s *framework.Snapshot) bool {
		reachable, unreachable := 0, 0
		for _, t := range s.TasksOf(web.ID) {
			switch {
			case t.State == mesos.TASK_UNREACHABLE:
				unreachable++
			case t.State == mesos.TASK_RUNNING && t.AgentID != victim && !t.Killing:
				reachable++
			}
		}
		return reachable == 10 && unreachable == lost
	})
	t.Logf("agent unreachable (inactiveAfterSeconds 0): %d tasks replaced in %v", lost, time.Since(unreachableAt).Round(time.Millisecond))
	// It comes back: the surplus is killed, 10 remain.
	if err := e.m.SetAgentReachable(victim, true); err != nil {
		t.Fatal(err)
	}
	e.waitFor("surplus killed after the agent returned", 20*time.Second, func(s *framework.Snapshot) bool {
		return running(web.ID, 10)(s) && len(s.TasksOf(web.ID)) == 10
	})

	// An agent is removed for good: its tasks are gone and replaced on the
	// other agents at once.
	gone := agents[1].ID
	removedAt := time.Now()
	if err := e.m.RemoveAgent(gone); err != nil {
		t.Fatal(err)
	}
	e.waitFor("replacements for the removed agent's tasks", 20*time.Second, func(s *framework.Snapshot) bool {
		n := 0
		for _, t := range s.TasksOf(web.ID) {
			if t.AgentID == gone {
				return false
			}
			if t.State == mesos.TASK_RUNNING && !t.Killing {
				n++
			}
		}
		return n == 10
	})
	t.Logf("agent removed: tasks replaced in %v", time.Since(removedAt).Round(time.Millisecond))
}

// TestE2ERestart: a Flotilla process dies while its tasks run; a new one
// (empty memory, same framework id from the store, same apps) re-subscribes,
// adopts every task through reconciliation, and launches or kills none.
func TestE2ERestart(t *testing.T) {
	t.Parallel()
	m := coreStartMaster(t, localmesos.Config{
		Agents: 2, NoSandbox: true, NoAgentHTTP: true,
		Executor: func(string) (executor.Executor, error) { return executor.NewSimulated(clock.Real{}), nil },
	})
	ids := &e2eIDs{}
	app := appspec.App{ID: "/restart/web", Version: "v1", Instances: 12, CPUs: 0.01, Mem: 1, Cmd: "sleep 1000",
		PortDefinitions: []appspec.PortDefinition{{}}}
	first, stop := startFlotilla(t, m, ids, nil)
	first.PutApp(app)
	e1 := &e2e{t: t, m: m, s: first}
	before := e1.waitFor("12 running", 20*time.Second, func(s *framework.Snapshot) bool {
		n := 0
		for _, t := range s.TasksOf(app.ID) {
			if t.State == mesos.TASK_RUNNING {
				n++
			}
		}
		return n == 12
	})
	stop()

	second, _ := startFlotilla(t, m, ids, func(c *framework.Config) { c.ReconcileSettle = 500 * time.Millisecond })
	events := second.Subscribe(1000)
	second.PutApp(app)
	e2 := &e2e{t: t, m: m, s: second}
	e2.waitFor("12 adopted", 20*time.Second, func(s *framework.Snapshot) bool {
		return len(s.TasksOf(app.ID)) == 12 && s.Connected
	})
	// Past the settle time, with nothing left to launch, the scheduler
	// suppresses offers: every decision after the hold has been made.
	after := e2.waitFor("settled and suppressed", 20*time.Second, func(s *framework.Snapshot) bool {
		return s.Settled && s.Suppressed
	})
	var want, got []string
	for _, t := range before.TasksOf(app.ID) {
		want = append(want, t.ID)
	}
	for _, t := range after.TasksOf(app.ID) {
		got = append(got, t.ID)
		if !t.Adopted || t.State != mesos.TASK_RUNNING || t.Killing {
			t2 := t
			e2.t.Errorf("task %+v: want adopted, running, not killed", t2)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("after restart tasks %v, want the same %v", got, want)
	}
	for len(events.C) > 0 {
		if e := <-events.C; e.Type == framework.EventTask && e.Task.State == mesos.TASK_STAGING {
			t.Errorf("restarted scheduler launched %s", e.Task.ID)
		}
	}
}

// TestE2ERollingUpgrade rolls an app over the real wire (localmesos,
// simulated executor) and checks the bounds from the event stream: the
// scheduler's own rolling tests (framework/rolling_test.go) check the
// decisions on a Recorder; this one checks them through Mesos.
func TestE2ERollingUpgrade(t *testing.T) {
	t.Parallel()
	e := startE2E(t, localmesos.Config{
		Agents: 2, NoSandbox: true, NoAgentHTTP: true,
		Executor: func(string) (executor.Executor, error) { return executor.NewSimulated(clock.Real{}), nil },
	}, nil)
	app := appspec.App{ID: "/roll/web", Version: "v1", Instances: 6, CPUs: 0.01, Mem: 1, Cmd: "sleep 1000",
		PortDefinitions: []appspec.PortDefinition{{}},
		UpgradeStrategy: appspec.UpgradeStrategy{MinimumHealthCapacity: 0.5, MaximumOverCapacity: 0}}
	e.s.PutApp(app)
	e.waitFor("v1 deployed", 20*time.Second, func(s *framework.Snapshot) bool {
		st, _ := s.StatusOf(app.ID)
		return st.Done
	})
	sub := e.s.Subscribe(100000)
	defer sub.Close()
	tasks := map[string]framework.Task{}
	for _, tk := range e.s.Snapshot().TasksOf(app.ID) {
		tasks[tk.ID] = tk
	}
	app.Cmd, app.Version = "sleep 2000", "v2"
	e.s.PutApp(app)
	minRunning, maxTotal, events := 1<<30, 0, 0
	var last framework.AppStatus
	deadline := time.After(20 * time.Second)
	for !last.Done || last.Version != "v2" {
		select {
		case ev := <-sub.C:
			events++
			switch ev.Type {
			case framework.EventLagged:
				t.Fatal("watcher lagged")
			case framework.EventTask:
				if ev.Task.AppID == app.ID {
					tasks[ev.Task.ID] = *ev.Task
				}
			case framework.EventTaskRemoved:
				delete(tasks, ev.Task.ID)
			case framework.EventDeployment:
				if ev.Status != nil && ev.Status.AppID == app.ID {
					last = *ev.Status
				}
			}
			running := 0
			for _, tk := range tasks {
				if tk.State == mesos.TASK_RUNNING && !tk.Killing {
					running++
				}
			}
			minRunning, maxTotal = min(minRunning, running), max(maxTotal, len(tasks))
		case <-deadline:
			t.Fatalf("roll not done after 20 s: last deployment event %+v, %d tasks", last, len(tasks))
		}
	}
	t.Logf("during the roll: fewest running %d, most tasks %d, %d events", minRunning, maxTotal, events)
	if minRunning < 3 {
		t.Errorf("fewest running during the roll %d, want at least 3", minRunning)
	}
	if maxTotal > 6 {
		t.Errorf("most tasks during the roll %d, want at most 6", maxTotal)
	}
}
