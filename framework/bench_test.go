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
