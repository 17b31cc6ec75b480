package executor

import (
	"context"
	"fmt"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Simulated runs no process at all: a task is an entry in a map whose usage
// is whatever the test set. It exists so that a benchmark can drive 100,000
// tasks through the master without 100,000 goroutines or timers; everything
// it does happens inside the calling goroutine.
type Simulated struct {
	clock clock.Clock

	mu    sync.Mutex
	tasks map[string]*simTask
}

type simTask struct {
	report    Report
	cpusLimit float64
	memLimit  uint64

	// cpuSecs is the CPU time accrued up to since; cpuFraction keeps
	// accruing from since onwards so Stats needs no ticker.
	cpuSecs     float64
	cpuFraction float64
	since       time.Time
	rss         uint64
	healthy     *bool
}

var _ Executor = (*Simulated)(nil)

// NewSimulated returns an executor whose tasks run instantly and forever
// (until killed or ended with Exit), with usage set by SetUsage.
func NewSimulated(c clock.Clock) *Simulated {
	return &Simulated{clock: c, tasks: make(map[string]*simTask)}
}

// Launch reports TASK_STARTING then TASK_RUNNING before returning.
func (s *Simulated) Launch(ctx context.Context, t Task, report Report) error {
	id, err := launchCheck(ctx, "simulated", &t, report)
	if err != nil {
		return err
	}
	if needsNamespace(&t.Info) {
		return refuseNamespaced("simulated", id, &t.Info, report)
	}
	if t.Group.networked() {
		return refuseGroupNetwork("simulated", t.Info.TaskID.Value, report)
	}
	cpus, mem := taskLimits(t.Info)
	st := &simTask{report: report, cpusLimit: cpus, memLimit: mem, since: s.clock.Now()}
	s.mu.Lock()
	if _, dup := s.tasks[id]; dup {
		s.mu.Unlock()
		return fmt.Errorf("executor: simulated launch %s: task already running", id)
	}
	s.tasks[id] = st
	s.mu.Unlock()
	report(id, Status{State: mesos.TASK_STARTING})
	report(id, Status{State: mesos.TASK_RUNNING})
	return nil
}

// Kill ends the task at once whatever the grace and reports TASK_KILLED.
func (s *Simulated) Kill(ctx context.Context, taskID string, grace time.Duration) error {
	st, err := s.remove(taskID)
	if err != nil {
		return fmt.Errorf("executor: simulated kill: %w", err)
	}
	st.report(taskID, Status{State: mesos.TASK_KILLED})
	return nil
}

// Exit ends a running task as if it had exited by itself with the given
// terminal state (TASK_FINISHED, TASK_FAILED …) and message, so that tests
// of the layers above can make tasks die.
func (s *Simulated) Exit(taskID string, state mesos.TaskState, message string) error {
	if !isTerminal(state) {
		return fmt.Errorf("executor: simulated exit %s: %s is not a terminal state", taskID, state)
	}
	st, err := s.remove(taskID)
	if err != nil {
		return fmt.Errorf("executor: simulated exit: %w", err)
	}
	st.report(taskID, Status{State: state, Message: message})
	return nil
}

// SetHealthy reports a health check result for the task the way a real
// health checker does: a TASK_RUNNING update only when healthiness changes
// (or on the first result).
func (s *Simulated) SetHealthy(taskID string, healthy bool) error {
	s.mu.Lock()
	st, ok := s.tasks[taskID]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("executor: simulated set healthy: unknown task %q", taskID)
	}
	changed := st.healthy == nil || *st.healthy != healthy
	h := healthy
	st.healthy = &h
	report := st.report
	s.mu.Unlock()
	if changed {
		report(taskID, healthStatus(healthy))
	}
	return nil
}

// SetUsage sets the task's CPU use (in cores, so 0.5 is half a core) and
// resident memory from now on; CPU time accrued so far is kept.
func (s *Simulated) SetUsage(taskID string, cpuFraction float64, memRSSBytes uint64) error {
	if cpuFraction < 0 {
		return fmt.Errorf("executor: simulated set usage %s: negative cpu fraction %v", taskID, cpuFraction)
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tasks[taskID]
	if !ok {
		return fmt.Errorf("executor: simulated set usage: unknown task %q", taskID)
	}
	st.accrue(now)
	st.cpuFraction = cpuFraction
	st.rss = memRSSBytes
	return nil
}

func (st *simTask) accrue(now time.Time) {
	if d := now.Sub(st.since); d > 0 {
		st.cpuSecs += st.cpuFraction * d.Seconds()
		st.since = now
	}
}

// Stats reports the synthetic usage; cpus_user_time_secs grows with the
// clock at the rate set by SetUsage.
func (s *Simulated) Stats(ctx context.Context, taskID string) (*mesos.ResourceStatistics, error) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tasks[taskID]
	if !ok {
		return nil, fmt.Errorf("executor: simulated stats: unknown task %q", taskID)
	}
	st.accrue(now)
	user, sys, rss := st.cpuSecs, 0.0, st.rss
	rs := &mesos.ResourceStatistics{
		Timestamp:          unixSeconds(now),
		CPUsUserTimeSecs:   &user,
		CPUsSystemTimeSecs: &sys,
		MemRSSBytes:        &rss,
	}
	setLimits(rs, st.cpusLimit, st.memLimit)
	return rs, nil
}

// Close forgets every task without reporting.
func (s *Simulated) Close() error {
	s.mu.Lock()
	s.tasks = make(map[string]*simTask)
	s.mu.Unlock()
	return nil
}

// Len is the number of tasks running.
func (s *Simulated) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)
}

func (s *Simulated) remove(taskID string) (*simTask, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tasks[taskID]
	if !ok {
		return nil, fmt.Errorf("unknown task %q", taskID)
	}
	delete(s.tasks, taskID)
	return st, nil
}
