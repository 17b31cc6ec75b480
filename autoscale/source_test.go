package autoscale

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/framework/mesosconn"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

const page = `# HELP testapp_queue_depth Jobs waiting.
# TYPE testapp_queue_depth gauge
testapp_queue_depth{queue="a"} 3
testapp_queue_depth{queue="b"} 5
# TYPE testapp_requests_total counter
testapp_requests_total 42
`

func promApp(name string, labels map[string]string, portIndex int) *appspec.App {
	return &appspec.App{ID: "/q", Autoscale: &appspec.Autoscale{Metric: appspec.AutoscalePrometheus, Target: 4,
		Prometheus: &appspec.PromMetric{Name: name, Labels: labels, PortIndex: portIndex, Path: "/metrics"}}}
}

func serverTask(t *testing.T, id string, h http.Handler) framework.Task {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.ParseUint(port, 10, 64)
	return framework.Task{ID: id, AppID: "/q", Host: host, Ports: []uint64{1, p}}
}

func TestPromSource(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, page)
	})
	broken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusInternalServerError) })
	tests := []struct {
		name    string
		app     *appspec.App
		tasks   []framework.Task
		want    map[string]float64
		wantErr error
	}{
		{"labels select a series", promApp("testapp_queue_depth", map[string]string{"queue": "b"}, 1),
			[]framework.Task{serverTask(t, "t1", ok)}, map[string]float64{"t1": 5}, nil},
		{"no labels sum the series", promApp("testapp_queue_depth", nil, 1),
			[]framework.Task{serverTask(t, "t1", ok), serverTask(t, "t2", ok)}, map[string]float64{"t1": 8, "t2": 8}, nil},
		{"counter read as is", promApp("testapp_requests_total", nil, 1),
			[]framework.Task{serverTask(t, "t1", ok)}, map[string]float64{"t1": 42}, nil},
		{"unknown metric", promApp("nope", nil, 1),
			[]framework.Task{serverTask(t, "t1", ok)}, map[string]float64{}, ErrNoSeries},
		{"unmatched label", promApp("testapp_queue_depth", map[string]string{"queue": "z"}, 1),
			[]framework.Task{serverTask(t, "t1", ok)}, map[string]float64{}, ErrNoSeries},
		{"missing port", promApp("testapp_queue_depth", nil, 2),
			[]framework.Task{serverTask(t, "t1", ok)}, map[string]float64{}, ErrNoPort},
		{"one broken task leaves the others", promApp("testapp_queue_depth", nil, 1),
			[]framework.Task{serverTask(t, "t1", ok), serverTask(t, "t2", broken)}, map[string]float64{"t1": 8}, nil},
	}
	src := NewPromSource(nil, time.Second)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := src.Sample(context.Background(), tc.app, tc.tasks)
			if len(tc.want) < len(tc.tasks) && err == nil {
				t.Error("a task went unmeasured without an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if len(s.Values) != len(tc.want) {
				t.Fatalf("values %v, want %v", s.Values, tc.want)
			}
			for id, v := range tc.want {
				if s.Values[id] != v {
					t.Errorf("task %s: %v, want %v", id, s.Values[id], v)
				}
			}
		})
	}
}

func TestPromSourceHonoursDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	task := serverTask(t, "t1", slow)
	defer close(release)
	_, err := NewPromSource(nil, 50*time.Millisecond).Sample(context.Background(), promApp("x", nil, 1), []framework.Task{task})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a deadline", err)
	}
}

type fakeRates map[string]map[string]float64

func (f fakeRates) RequestRate(appID string) map[string]float64 { return f[appID] }

func TestRPSSource(t *testing.T) {
	t.Parallel()
	src := RPSSource{Rates: fakeRates{"/web": {"a": 10, "b": 30, "gone": 99}}}
	s, err := src.Sample(context.Background(), &appspec.App{ID: "/web"}, []framework.Task{{ID: "a"}, {ID: "b"}, {ID: "new"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Values) != 2 || s.Values["a"] != 10 || s.Values["b"] != 30 {
		t.Fatalf("values %v", s.Values)
	}
}

type memIDs struct {
	mu sync.Mutex
	id string
}

func (m *memIDs) FrameworkID(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id, nil
}

func (m *memIDs) SetFrameworkID(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.id = id
	return nil
}

// cluster is a localmesos master whose simulated executors run on a fake
// clock, so CPU counters advance exactly as the test steps them, and a
// Scheduler that launches an app on it.
type cluster struct {
	m     *localmesos.Master
	s     *framework.Scheduler
	clock *clock.Fake
	execs map[string]*executor.Simulated // by agent id
}

func startCluster(t *testing.T, agents int) *cluster {
	t.Helper()
	c := &cluster{clock: clock.NewFake(t0), execs: make(map[string]*executor.Simulated)}
	var mu sync.Mutex
	m, err := localmesos.Start(context.Background(), localmesos.Config{
		Agents: agents, NoSandbox: true, Log: logging.Discard(),
		Executor: func(agentID string) (executor.Executor, error) {
			e := executor.NewSimulated(c.clock)
			mu.Lock()
			c.execs[agentID] = e
			mu.Unlock()
			return e, nil
		},
	})
	if err != nil {
		t.Fatalf("start localmesos: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	c.m = m
	det, err := mesosconn.NewDetector(mesosconn.DetectorConfig{Master: m.SchedulerURL()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mesosconn.NewConn(mesosconn.ConnConfig{Detector: det, FrameworkIDs: &memIDs{}, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.s = framework.New(framework.Config{
		Clock: clock.Real{}, Rand: rand.New(rand.NewSource(1)),
		Log:             logging.Component(logging.Discard(), "framework"),
		ReconcileSettle: 100 * time.Millisecond, DeclineRefuseWaiting: time.Second, KillGracePeriod: time.Second,
	})
	in := make(chan framework.Input, 64)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = conn.Run(ctx, in) }()
	go func() { defer wg.Done(); _ = c.s.Run(ctx, in, conn.Driver()) }()
	t.Cleanup(func() { cancel(); wg.Wait(); det.Close() })
	return c
}

func (c *cluster) agentURL(id string) (string, bool) {
	for _, a := range c.m.Agents() {
		if a.ID == id && a.URL != "" {
			return a.URL, true
		}
	}
	return "", false
}

// running launches app and waits (on the wall clock: the scheduler and
// master run on it) until all its instances run.
func (c *cluster) running(t *testing.T, app appspec.App) []framework.Task {
	t.Helper()
	c.s.PutApp(app)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ts []framework.Task
		for _, task := range c.s.Snapshot().TasksOf(app.ID) {
			if task.IsHealthy() {
				ts = append(ts, task)
			}
		}
		if len(ts) == app.Instances {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d tasks running", len(ts), app.Instances)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentSourceAgainstLocalMesos(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	app := appspec.App{ID: "/web", Version: "v1", Instances: 4, CPUs: 0.5, Mem: 128,
		Autoscale: &appspec.Autoscale{Min: 1, Max: 10, Metric: appspec.AutoscaleCPU, Target: 0.5}}
	tasks := c.running(t, app)
	want := make(map[string][2]float64) // cpu, mem utilisation
	for i, task := range tasks {
		cpu := 0.1 * float64(i+1)     // cores
		rss := uint64(16*(i+1)) << 20 // bytes
		if err := c.execs[task.AgentID].SetUsage(task.ID, cpu, rss); err != nil {
			t.Fatal(err)
		}
		want[task.ID] = [2]float64{cpu / app.CPUs, float64(rss) / (app.Mem * (1 << 20))}
	}
	cpuSrc, err := NewAgentSource(appspec.AutoscaleCPU, c.agentURL, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	memSrc, err := NewAgentSource(appspec.AutoscaleMem, c.agentURL, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	first, err := cpuSrc.Sample(ctx, &app, tasks)
	if err != nil || len(first.Values) != 0 {
		t.Fatalf("first cpu sample gave %v, %v; a rate needs two", first.Values, err)
	}
	c.clock.Step(10 * time.Second)
	cpu, err := cpuSrc.Sample(ctx, &app, tasks)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := memSrc.Sample(ctx, &app, tasks)
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		if got, ok := cpu.Values[id]; !ok || math.Abs(got-w[0]) > 1e-6 {
			t.Errorf("task %s cpu %v (present %v), want %v", id, got, ok, w[0])
		}
		if got, ok := mem.Values[id]; !ok || math.Abs(got-w[1]) > 1e-6 {
			t.Errorf("task %s mem %v (present %v), want %v", id, got, ok, w[1])
		}
	}

	// A task on an unknown agent is missing, with ErrNoAgent; the others
	// still count.
	stray := tasks[0]
	stray.ID, stray.AgentID = "stray", "no-such-agent"
	c.clock.Step(10 * time.Second)
	got, err := cpuSrc.Sample(ctx, &app, append(tasks, stray))
	if !errors.Is(err, ErrNoAgent) {
		t.Errorf("error %v, want ErrNoAgent", err)
	}
	if len(got.Values) != len(tasks) {
		t.Errorf("values %v, want the %d known tasks", got.Values, len(tasks))
	}
}

func TestNewAgentSourceRejectsKind(t *testing.T) {
	t.Parallel()
	if _, err := NewAgentSource(appspec.AutoscaleRPS, func(string) (string, bool) { return "", false }, nil, 0); err == nil {
		t.Fatal("rps accepted as an agent source kind")
	}
}

// TestAgentSourcePods: a pod instance's cpu and mem are its executor's
// entry in the agents' statistics (Mesos's default executor reports its
// containers together), read under the instance's id.
func TestAgentSourcePods(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1)
	p, err := appspec.DecodePod(strings.NewReader(`{"id": "/pod", "scaling": {"kind": "fixed", "instances": 2},
		"containers": [
			{"name": "app", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.5, "mem": 64}},
			{"name": "side", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.5, "mem": 64}}],
		"autoscale": {"min": 1, "max": 4, "metric": "cpu", "target": 0.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	p.Version = "v1"
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	app := *p.App()
	if app.Autoscale == nil || app.Autoscale.Metric != appspec.AutoscaleCPU {
		t.Fatalf("the pod's autoscale block did not reach its app: %+v", app.Autoscale)
	}
	insts := c.running(t, app)
	for _, in := range insts {
		// Both containers busy with 0.25 of a core: half the instance's 1 cpu.
		for _, ct := range []string{".app", ".side"} {
			if err := c.execs[in.AgentID].SetUsage(in.ID+ct, 0.25, 32<<20); err != nil {
				t.Fatal(err)
			}
		}
	}
	cpuSrc, err := NewAgentSource(appspec.AutoscaleCPU, c.agentURL, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cpuSrc.Sample(ctx, &app, insts); err != nil {
		t.Fatal(err)
	}
	c.clock.Step(10 * time.Second)
	got, err := cpuSrc.Sample(ctx, &app, insts)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		if v, ok := got.Values[in.ID]; !ok || math.Abs(v-0.5) > 1e-6 {
			t.Errorf("instance %s cpu %v (present %v), want 0.5 of its containers' limits", in.ID, v, ok)
		}
	}
}
