package executor

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// recorder collects statuses per task so tests can wait for a state.
type recorder struct {
	mu   sync.Mutex
	got  map[string][]Status
	cond chan struct{}
}

func newRecorder() *recorder {
	return &recorder{got: make(map[string][]Status), cond: make(chan struct{})}
}

func (r *recorder) report(taskID string, s Status) {
	r.mu.Lock()
	r.got[taskID] = append(r.got[taskID], s)
	close(r.cond)
	r.cond = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) statuses(taskID string) []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Status(nil), r.got[taskID]...)
}

// waitFor blocks until a status matching ok arrives for the task, and
// returns it.
func (r *recorder) waitFor(t *testing.T, taskID string, timeout time.Duration, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		for _, s := range r.got[taskID] {
			if ok(s) {
				r.mu.Unlock()
				return s
			}
		}
		c := r.cond
		r.mu.Unlock()
		select {
		case <-c:
		case <-deadline:
			t.Fatalf("task %s: no %s within %v; got %s", taskID, what, timeout, fmtStatuses(r.statuses(taskID)))
			return Status{}
		}
	}
}

func (r *recorder) waitTerminal(t *testing.T, taskID string, timeout time.Duration) Status {
	t.Helper()
	return r.waitFor(t, taskID, timeout, "terminal state", func(s Status) bool { return isTerminal(s.State) })
}

func fmtStatuses(ss []Status) string {
	out := "["
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s.State.String()
		if s.Healthy != nil {
			if *s.Healthy {
				out += "(healthy)"
			} else {
				out += "(unhealthy)"
			}
		}
		if s.Message != "" {
			out += " " + s.Message
		}
	}
	return out + "]"
}

func states(ss []Status) []mesos.TaskState {
	var out []mesos.TaskState
	for _, s := range ss {
		out = append(out, s.State)
	}
	return out
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func taskInfo(id string, cpus, memMB float64) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name:      id,
		TaskID:    mesos.TaskID{Value: id},
		AgentID:   mesos.AgentID{Value: "A1-S0"},
		Resources: []mesos.Resource{scalar("cpus", cpus), scalar("mem", memMB)},
	}
}

func strPtr(s string) *string { return &s }
func boolPtr(b bool) *bool    { return &b }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
