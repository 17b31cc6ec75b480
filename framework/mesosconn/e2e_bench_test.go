package mesosconn

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
	"github.com/flotilla-sched/flotilla/store"
)

// BenchmarkE2ESimulated: PutApp to all RUNNING through the real connection
// and localmesos with simulated agents. FLOTILLA_BENCH_E2E=agents,apps,perApp
// sets the size (default 200,10,1000; the is 1000,100,1000) and
// FLOTILLA_BENCH_CODEC the wire codec (protobuf, the default, or json).
func BenchmarkE2ESimulated(b *testing.B) {
	b.Run("no records", func(b *testing.B) { benchE2ESimulated(b, nil) })
	b.Run("records", func(b *testing.B) { benchE2ESimulated(b, store.NewMemory(nil, 0)) })
}

// BenchmarkE2EManyApps: the same 20,000 tasks as 20 apps × 1,000 and as
// 2,000 apps × 10, so that what a step costs per app (rather than per
// task) shows as the gap between the two tasks/s figures. 10,000 apps
// once launched at ~140 tasks/s where 100 apps did ~16,000 (issue 21);
// the scheduler's step now visits only the apps it has work for
// (framework/due.go).
func BenchmarkE2EManyApps(b *testing.B) {
	for _, shape := range []struct{ apps, perApp int }{{20, 1000}, {2000, 10}} {
		b.Run(fmt.Sprintf("%dx%d", shape.apps, shape.perApp), func(b *testing.B) {
			benchE2E(b, nil, 200, shape.apps*shape.perApp, "tasks/s", func(s *framework.Scheduler) {
				putBenchApps(s, shape.apps, shape.perApp)
			})
		})
	}
}

func putBenchApps(s *framework.Scheduler, apps, perApp int) {
	for a := 0; a < apps; a++ {
		s.PutApp(appspec.App{ID: fmt.Sprintf("/bench/app%d", a), Version: "v1", Instances: perApp, CPUs: 0.01, Mem: 1, Cmd: "sleep 1000"})
	}
}

func e2eBenchSize() (agents, apps, perApp int) {
	agents, apps, perApp = 200, 10, 1000
	if v := os.Getenv("FLOTILLA_BENCH_E2E"); v != "" {
		fmt.Sscanf(v, "%d,%d,%d", &agents, &apps, &perApp)
	}
	return agents, apps, perApp
}

func benchE2ESimulated(b *testing.B, tasks framework.TaskStore) {
	agents, apps, perApp := e2eBenchSize()
	benchE2E(b, tasks, agents, apps*perApp, "tasks/s", func(s *framework.Scheduler) { putBenchApps(s, apps, perApp) })
}

// BenchmarkE2EPods is BenchmarkE2ESimulated for pods: FLOTILLA_BENCH_E2E's
// agents, apps × perApp pod instances of 3 containers each, each instance
// one LAUNCH_GROUP, timed until every instance runs (all 3 containers
// RUNNING). Reported as instances/s; containers/s is 3×.
func BenchmarkE2EPods(b *testing.B) {
	agents, pods, perPod := e2eBenchSize()
	benchE2E(b, nil, agents, pods*perPod, "instances/s", func(s *framework.Scheduler) {
		for i := 0; i < pods; i++ {
			p, err := appspec.DecodePod(strings.NewReader(fmt.Sprintf(`{"id": "/bench/pod%d",
				"containers": [
					{"name": "app", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.01, "mem": 1}},
					{"name": "proxy", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.01, "mem": 1}},
					{"name": "logs", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.01, "mem": 1}}],
				"executorResources": {"cpus": 0.01, "mem": 32, "disk": 1},
				"scaling": {"kind": "fixed", "instances": %d}}`, i, perPod)))
			if err != nil {
				b.Fatal(err)
			}
			p.Version = "v1"
			if err := p.Validate(); err != nil {
				b.Fatal(err)
			}
			s.PutApp(*p.App())
		}
	})
}

// benchE2E runs put's apps (or pods) on a fresh localmesos of simulated
// agents through the real connection, timed until want tasks (pod
// instances) run and every update is acknowledged, and reports them per
// second under unit.
func benchE2E(b *testing.B, tasks framework.TaskStore, agents, want int, unit string, put func(s *framework.Scheduler)) {
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
		s := framework.New(framework.Config{Log: logging.Component(logging.Discard(), "bench"), ReconcileSettle: -1, Tasks: tasks})
		ctx, cancel := context.WithCancel(context.Background())
		in := make(chan framework.Input, 1024)
		done := make(chan struct{}, 2)
		go func() { _ = conn.Run(ctx, in); done <- struct{}{} }()
		go func() { _ = s.Run(ctx, in, conn.Driver()); done <- struct{}{} }()
		for !s.Snapshot().Connected {
			time.Sleep(time.Millisecond)
		}
		// Count RUNNING from the event bus: polling Snapshot() would sort
		// every task under the scheduler's lock and slow the loop measured.
		sub := s.Subscribe(1 << 20)
		var ru0 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		b.StartTimer()
		start := time.Now()
		put(s)
		seen := map[string]bool{}
		deadline := time.After(5 * time.Minute)
		for len(seen) < want {
			select {
			case ev := <-sub.C:
				if ev.Type == framework.EventLagged {
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
		atRunning := time.Since(start)
		unackedAtRunning, _ := m.UnacknowledgedUpdates()
		// And until the scheduler has written every task record and
		// answered every update (Sync), and the master holds no
		// unacknowledged update, as localmesos's BenchmarkLaunch100k waits
		// for its framework's acknowledgements: both are timed to the same
		// end, with no work of the launch left for later.
		sctx, scancel := context.WithTimeout(ctx, 5*time.Minute)
		err = s.Sync(sctx)
		scancel()
		if err != nil {
			b.Fatal(err)
		}
		// Sync waited for every acknowledgement Flotilla sent, and the
		// master applies one before it answers it; an update the master
		// still holds is one Flotilla never acknowledged.
		if pending, _ := m.UnacknowledgedUpdates(); pending != 0 {
			b.Fatalf("%d updates unacknowledged after every task ran and the scheduler synced", pending)
		}
		el := time.Since(start)
		b.StopTimer()
		var ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		b.ReportMetric(float64(want)/el.Seconds(), unit)
		b.ReportMetric(float64(want)/atRunning.Seconds(), unit+"@running")
		b.ReportMetric(float64(unackedAtRunning), "unacked@running")
		// CPU of the whole process (master, agents and framework) per
		// task, as localmesos's BenchmarkLaunch100k reports it: less
		// moved by the machine's other load than tasks/s.
		b.ReportMetric(float64(cpu.Microseconds())/float64(want), "cpu-µs/"+strings.TrimSuffix(unit, "/s"))
		cancel()
		<-done
		<-done
		det.Close()
		m.Close()
	}
}
