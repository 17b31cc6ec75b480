package framework

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
	"github.com/flotilla-sched/flotilla/store"
)

// BenchmarkDecision measures the scheduler's decision step end to end on
// a Recorder: one OFFERS event of 1,000 offers against 10,000 waiting
// instances (10 apps × 1,000), all placed, TaskInfos built, ACCEPT calls
// recorded. Reported as tasks/s.
func BenchmarkDecision(b *testing.B) {
	const agents, apps, perApp = 1000, 10, 1000
	mos := make([]mesos.Offer, agents)
	for i := range mos {
		mos[i] = TestOffer(fmt.Sprintf("o%d", i), fmt.Sprintf("a%d", i), fmt.Sprintf("h%d", i), 32, 65536, 31000, 32000, map[string]string{"rack": fmt.Sprintf("r%d", i%10)})
	}
	var placed int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		clk := clock.NewFake(coreT0)
		s := New(Config{Clock: clk, Rand: rand.New(rand.NewSource(1)), Log: logging.Component(logging.Discard(), "bench"), ReconcileSettle: -1})
		for a := 0; a < apps; a++ {
			app := testApp(fmt.Sprintf("/bench/app%d", a), perApp)
			app.CPUs, app.Mem = 0.1, 32
			s.PutApp(app)
		}
		rec := &Recorder{}
		in := make(chan Input)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, in, rec) }()
		in <- SubscribedInput("fw")
		b.StartTimer()
		in <- OffersInput(mos...)
		for s.Sync(ctx) == ErrNotRunning {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		placed += len(rec.Launched())
		cancel()
		<-done
		b.StartTimer()
	}
	if placed != b.N*apps*perApp {
		b.Fatalf("placed %d tasks over %d runs, want %d per run", placed, b.N, apps*perApp)
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkE2ESimulated launches 10,000 instances (10 apps) through the
// real connection onto a localmesos master with 200 agents running the
// simulated executor, timed until every task is RUNNING in the snapshot.
// Run it alone: go test -run '^$' -bench E2ESimulated -benchtime 1x ./framework/
// The "records" case also writes task records to an in-memory store, to
// show the persister keeps off the launch path.
// BenchmarkE2ESimulated: PutApp to all RUNNING through the real connection
// and localmesos with simulated agents. FLOTILLA_BENCH_E2E=agents,apps,perApp
// sets the size (default 200,10,1000; the is 1000,100,1000) and
// FLOTILLA_BENCH_CODEC the wire codec (json, the default, or protobuf).
func BenchmarkE2ESimulated(b *testing.B) {
	b.Run("no records", func(b *testing.B) { benchE2ESimulated(b, nil) })
	b.Run("records", func(b *testing.B) { benchE2ESimulated(b, store.NewMemory(nil, 0)) })
}

func e2eBenchSize() (agents, apps, perApp int) {
	agents, apps, perApp = 200, 10, 1000
	if v := os.Getenv("FLOTILLA_BENCH_E2E"); v != "" {
		fmt.Sscanf(v, "%d,%d,%d", &agents, &apps, &perApp)
	}
	return agents, apps, perApp
}

func benchE2ESimulated(b *testing.B, tasks TaskStore) {
	agents, apps, perApp := e2eBenchSize()
	benchE2E(b, tasks, agents, apps*perApp, "tasks/s", func(s *Scheduler) {
		for a := 0; a < apps; a++ {
			app := testApp(fmt.Sprintf("/bench/app%d", a), perApp)
			app.CPUs, app.Mem, app.Container = 0.01, 1, nil
			app.Cmd = "sleep 1000"
			s.PutApp(app)
		}
	})
}

// benchE2E runs put's apps (or pods) on a fresh localmesos of simulated
// agents through the real connection, timed until want tasks (pod
// instances) run, and reports them per second under unit.
func benchE2E(b *testing.B, tasks TaskStore, agents, want int, unit string, put func(s *Scheduler)) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m, err := localmesos.Start(context.Background(), localmesos.Config{
			Agents: agents, NoSandbox: true, NoAgentHTTP: true, SamePorts: true,
			Resources: localmesos.Resources{CPUs: 64, Mem: 1 << 20, Disk: 1 << 20, Ports: []localmesos.PortRange{{Begin: 31000, End: 32000}}},
			Executor:  func(string) (executor.Executor, error) { return executor.NewSimulated(clock.Real{}), nil },
			Log:       logging.Discard(),
		})
		if err != nil {
			b.Fatal(err)
		}
		det, _ := NewDetector(DetectorConfig{Master: m.SchedulerURL()})
		conn, err := NewConn(ConnConfig{Detector: det, FrameworkIDs: &e2eIDs{}, Codec: os.Getenv("FLOTILLA_BENCH_CODEC")})
		if err != nil {
			b.Fatal(err)
		}
		s := New(Config{Log: logging.Component(logging.Discard(), "bench"), ReconcileSettle: -1, Tasks: tasks})
		ctx, cancel := context.WithCancel(context.Background())
		in := make(chan Input, 1024)
		done := make(chan struct{}, 2)
		go func() { _ = conn.Run(ctx, in); done <- struct{}{} }()
		go func() { _ = s.Run(ctx, in, conn.Driver()); done <- struct{}{} }()
		for !s.Snapshot().Connected {
			time.Sleep(time.Millisecond)
		}
		// Count RUNNING from the event bus: polling Snapshot() would sort
		// every task under the scheduler's lock and slow the loop measured.
		sub := s.Subscribe(1 << 20)
		b.StartTimer()
		start := time.Now()
		put(s)
		seen := map[string]bool{}
		deadline := time.After(5 * time.Minute)
		for len(seen) < want {
			select {
			case ev := <-sub.C:
				if ev.Type == EventLagged {
					b.Fatal("benchmark subscriber lagged; raise its buffer")
				}
				if ev.Task != nil && ev.Task.State == mesos.TASK_RUNNING {
					seen[ev.Task.ID] = true
				}
			case <-deadline:
				b.Fatalf("only %d of %d running after 5 min", len(seen), want)
			}
		}
		sub.Close()
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(want)/el.Seconds(), unit)
		cancel()
		<-done
		<-done
		det.Close()
		m.Close()
	}
}

// BenchmarkUpdates measures the loop on the status update path: 10,000
// tasks launched, then TASK_STARTING and TASK_RUNNING for each (uuid,
// so acknowledged), timed until the loop has taken the last update.
// With records, a memory TaskStore is written meanwhile; the persister
// must keep that cost off the loop. Reported as updates/s.
func BenchmarkUpdates(b *testing.B) {
	b.Run("no records", func(b *testing.B) { benchUpdates(b, func() TaskStore { return nil }, 10, 1000) })
	b.Run("records", func(b *testing.B) { benchUpdates(b, func() TaskStore { return store.NewMemory(nil, 0) }, 10, 1000) })
	// Many small apps: what a step costs per app it does not touch.
	b.Run("10000 apps", func(b *testing.B) { benchUpdates(b, func() TaskStore { return nil }, manyApps, 1) })
}

func benchUpdates(b *testing.B, tasks func() TaskStore, apps, perApp int) {
	const agents = 1000
	mos := make([]mesos.Offer, agents)
	for i := range mos {
		mos[i] = TestOffer(fmt.Sprintf("o%d", i), fmt.Sprintf("a%d", i), fmt.Sprintf("h%d", i), 32, 65536, 31000, 32000, nil)
	}
	var updates int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := New(Config{Clock: clock.NewFake(coreT0), Rand: rand.New(rand.NewSource(1)), Log: logging.Component(logging.Discard(), "bench"),
			ReconcileSettle: -1, Tasks: tasks()})
		for a := 0; a < apps; a++ {
			app := testApp(fmt.Sprintf("/bench/app%d", a), perApp)
			app.CPUs, app.Mem = 0.1, 32
			s.PutApp(app)
		}
		rec := &Recorder{}
		in := make(chan Input)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, in, rec) }()
		in <- SubscribedInput("fw")
		in <- OffersInput(mos...)
		for s.Sync(ctx) == ErrNotRunning {
			time.Sleep(time.Millisecond)
		}
		launched := rec.Launched()
		b.StartTimer()
		for _, state := range []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING} {
			for _, ti := range launched {
				in <- UpdateInput(TestStatus(ti.TaskID.Value, ti.AgentID.Value, state, true))
				updates++
			}
		}
		b.StopTimer()
		_ = s.Sync(ctx)
		cancel()
		<-done
		b.StartTimer()
	}
	b.ReportMetric(float64(updates)/b.Elapsed().Seconds(), "updates/s")
}

// manyApps is the app count of BenchmarkUpdates/10000_apps
// (FLOTILLA_BENCH_APPS overrides it for quicker profiling).
var manyApps = func() int {
	if n, err := strconv.Atoi(os.Getenv("FLOTILLA_BENCH_APPS")); err == nil && n > 0 {
		return n
	}
	return 10000
}()
