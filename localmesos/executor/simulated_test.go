package executor

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

func TestSimulatedLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name  string
		end   func(s *Simulated, id string) error
		want  []mesos.TaskState
		wantM string
	}{
		{"kill", func(s *Simulated, id string) error { return s.Kill(ctx, id, time.Second) },
			[]mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED}, ""},
		{"exit finished", func(s *Simulated, id string) error { return s.Exit(id, mesos.TASK_FINISHED, "") },
			[]mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED}, ""},
		{"exit failed", func(s *Simulated, id string) error { return s.Exit(id, mesos.TASK_FAILED, "boom") },
			[]mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED}, "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewSimulated(clock.NewFake(time.Unix(1000, 0)))
			rec := newRecorder()
			if err := s.Launch(ctx, Task{Info: taskInfo("t1", 1, 64)}, rec.report); err != nil {
				t.Fatal(err)
			}
			if err := tc.end(s, "t1"); err != nil {
				t.Fatal(err)
			}
			got := rec.statuses("t1")
			if !reflect.DeepEqual(states(got), tc.want) {
				t.Fatalf("states = %v, want %v", states(got), tc.want)
			}
			if m := got[len(got)-1].Message; m != tc.wantM {
				t.Errorf("message = %q, want %q", m, tc.wantM)
			}
			if err := s.Kill(ctx, "t1", 0); err == nil {
				t.Error("second kill of an ended task: want error")
			}
			if _, err := s.Stats(ctx, "t1"); err == nil {
				t.Error("stats of an ended task: want error")
			}
		})
	}
}

func TestSimulatedRejects(t *testing.T) {
	t.Parallel()
	s := NewSimulated(clock.Real{})
	rec := newRecorder()
	ctx := context.Background()
	if err := s.Launch(ctx, Task{Info: taskInfo("", 1, 1)}, rec.report); err == nil {
		t.Error("empty task id: want error")
	}
	if err := s.Launch(ctx, Task{Info: taskInfo("a", 1, 1)}, rec.report); err != nil {
		t.Fatal(err)
	}
	if err := s.Launch(ctx, Task{Info: taskInfo("a", 1, 1)}, rec.report); err == nil {
		t.Error("duplicate task id: want error")
	}
	if err := s.Exit("a", mesos.TASK_RUNNING, ""); err == nil {
		t.Error("exit with non-terminal state: want error")
	}
	if err := s.SetUsage("nope", 1, 1); err == nil {
		t.Error("usage of unknown task: want error")
	}
	if err := s.SetUsage("a", -1, 1); err == nil {
		t.Error("negative cpu: want error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Launch(cctx, Task{Info: taskInfo("b", 1, 1)}, rec.report); err == nil {
		t.Error("cancelled context: want error")
	}
}

func TestSimulatedStatsAdvanceWithClock(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(time.Unix(1000, 0))
	s := NewSimulated(c)
	ctx := context.Background()
	if err := s.Launch(ctx, Task{Info: taskInfo("t", 2, 128)}, newRecorder().report); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		step     time.Duration
		cpu      float64 // set after the step
		rss      uint64
		wantUser float64
	}{
		{0, 0.5, 100 << 20, 0},
		{10 * time.Second, 0.5, 100 << 20, 5},
		{4 * time.Second, 1.5, 200 << 20, 7},
		{2 * time.Second, 0, 200 << 20, 10},
		{100 * time.Second, 0, 200 << 20, 10},
	}
	for i, st := range steps {
		c.Step(st.step)
		rs, err := s.Stats(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(rs.GetCPUsUserTimeSecs()-st.wantUser) > 1e-9 {
			t.Errorf("step %d: cpus_user_time_secs = %v, want %v", i, rs.GetCPUsUserTimeSecs(), st.wantUser)
		}
		if rs.GetCPUsLimit() != 2 || rs.GetMemLimitBytes() != 128<<20 {
			t.Errorf("step %d: limits = %v cpus %v bytes, want 2 and %d", i, rs.GetCPUsLimit(), rs.GetMemLimitBytes(), 128<<20)
		}
		if want := float64(c.Now().UnixNano()) / 1e9; rs.Timestamp != want {
			t.Errorf("step %d: timestamp = %v, want %v", i, rs.Timestamp, want)
		}
		if err := s.SetUsage("t", st.cpu, st.rss); err != nil {
			t.Fatal(err)
		}
		rs, _ = s.Stats(ctx, "t")
		if rs.GetMemRSSBytes() != st.rss {
			t.Errorf("step %d: rss = %d, want %d", i, rs.GetMemRSSBytes(), st.rss)
		}
	}
}

func TestSimulatedHealthOnlyOnChange(t *testing.T) {
	t.Parallel()
	s := NewSimulated(clock.Real{})
	rec := newRecorder()
	if err := s.Launch(context.Background(), Task{Info: taskInfo("h", 1, 1)}, rec.report); err != nil {
		t.Fatal(err)
	}
	for _, h := range []bool{true, true, false, false, true} {
		if err := s.SetHealthy("h", h); err != nil {
			t.Fatal(err)
		}
	}
	var got []bool
	for _, st := range rec.statuses("h")[2:] {
		if st.State != mesos.TASK_RUNNING || st.Reason == nil || *st.Reason != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED || st.Healthy == nil {
			t.Fatalf("health update has wrong shape: %+v", st)
		}
		got = append(got, *st.Healthy)
	}
	if want := []bool{true, false, true}; !reflect.DeepEqual(got, want) {
		t.Fatalf("health updates = %v, want %v", got, want)
	}
}

// BenchmarkSimulatedLaunchKill measures one launch (STARTING, RUNNING) and
// one kill across 1,000 executors, as the 1,000-agent benchmark drives it.
func BenchmarkSimulatedLaunchKill(b *testing.B) {
	c := clock.Real{}
	execs := make([]*Simulated, 1000)
	for i := range execs {
		execs[i] = NewSimulated(c)
	}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("task-%d", i)
	}
	info := taskInfo("x", 0.1, 32)
	report := func(string, Status) {}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ti := info
		ti.TaskID = mesos.TaskID{Value: ids[i]}
		e := execs[i%len(execs)]
		if err := e.Launch(ctx, Task{Info: ti}, report); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		if err := execs[i%len(execs)].Kill(ctx, ids[i], 0); err != nil {
			b.Fatal(err)
		}
	}
}
