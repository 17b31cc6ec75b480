package executor

import (
	"context"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// BenchmarkSimulatedStats is the cost of one task's /monitor/statistics
// entry on a simulated agent holding 100 tasks.
func BenchmarkSimulatedStats(b *testing.B) {
	s := NewSimulated(clock.Real{})
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		ti := taskInfo(fmt.Sprintf("t%d", i), 0.1, 32)
		if err := s.Launch(ctx, Task{Info: ti}, func(string, Status) {}); err != nil {
			b.Fatal(err)
		}
		_ = s.SetUsage(ti.TaskID.Value, 0.05, 10<<20)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Stats(ctx, fmt.Sprintf("t%d", i%100)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessLaunchToEnd is one `sh -c true` task from Launch to its
// terminal status.
func BenchmarkProcessLaunchToEnd(b *testing.B) {
	p := NewProcess(ProcessConfig{Log: logging.Discard()})
	defer p.Close()
	dir := b.TempDir()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		done := make(chan struct{})
		info := taskInfo(fmt.Sprintf("p%d", i), 0.1, 32)
		info.Command = shellCmd("true")
		err := p.Launch(ctx, Task{Info: info, Sandbox: dir}, func(_ string, s Status) {
			if isTerminal(s.State) {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		<-done
	}
}

// BenchmarkDockerLaunchToRunning is one testapp container from Launch to
// TASK_RUNNING (create + start), then killed outside the timing.
func BenchmarkDockerLaunchToRunning(b *testing.B) {
	sock := testbed.DockerSocket(b)
	d, err := NewDocker(DockerConfig{Log: logging.Discard(), Host: "unix://" + sock})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		info := taskInfo(fmt.Sprintf("d%d", i), 0.1, 32)
		info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(),
			Docker: &mesos.ContainerInfo_DockerInfo{Image: busybox}}
		info.Command = shellCmd("sleep 1000")
		done := make(chan struct{})
		err := d.Launch(ctx, Task{Info: info, Sandbox: b.TempDir()}, func(_ string, s Status) {
			if isTerminal(s.State) {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Kill(ctx, info.TaskID.Value, 0); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatal("container not killed")
		}
		b.StartTimer()
	}
}
