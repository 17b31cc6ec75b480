package framework

import (
	"fmt"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
)

// CheckResult is one health check's record for one task: Marathon's
// Health (core/health/Health.scala). A task's checks run in two places —
// the one Mesos check beside the task (its results arrive as status
// updates), the HTTP/HTTPS/TCP checks in the leader (package health) —
// and the scheduler keeps both kinds here, so that Task.Healthy, which
// rolling upgrades, discovery and the API read, is decided in one place.
type CheckResult struct {
	ConsecutiveFailures int
	FirstSuccess        time.Time
	LastSuccess         time.Time
	LastFailure         time.Time
	LastFailureCause    string
}

// Reported says whether the check has a result yet (a success, or a
// failure that counted: failures in the grace period do not).
func (r CheckResult) Reported() bool { return !r.LastSuccess.IsZero() || !r.LastFailure.IsZero() }

// Alive is Marathon's: the last result was a success.
func (r CheckResult) Alive() bool {
	return !r.LastSuccess.IsZero() && (r.LastFailure.IsZero() || r.LastSuccess.After(r.LastFailure))
}

// Update records one result at time at, as Marathon's Health.update: a
// success resets the failure count, a failure adds to it.
func (r CheckResult) Update(ok bool, cause string, at time.Time) CheckResult {
	if ok {
		if r.FirstSuccess.IsZero() {
			r.FirstSuccess = at
		}
		r.LastSuccess = at
		r.ConsecutiveFailures = 0
		return r
	}
	r.LastFailure = at
	r.LastFailureCause = cause
	r.ConsecutiveFailures++
	return r
}

// combinedHealth is a task's health from its checks: false as soon as one
// reported check is not alive, true once every check reported alive, nil
// (not known yet) in between.
func combinedHealth(checks []CheckResult) *bool {
	all := true
	for _, r := range checks {
		if !r.Reported() {
			all = false
			continue
		}
		if !r.Alive() {
			f := false
			return &f
		}
	}
	if !all {
		return nil
	}
	t := true
	return &t
}

// healthChecks makes sure t carries one CheckResult per health check of
// its app version. It is set at launch; a task adopted or restored gets
// it from the app when the versions match (the checks of another version
// are not known here: such a task keeps Mesos's word alone). False when
// the task has no per-check record.
func (ts *taskState) healthChecks(app *appspec.App, t *Task) bool {
	if len(t.Checks) > 0 {
		return true
	}
	if app == nil || app.Version != t.AppVersion || len(app.HealthChecks) == 0 {
		return false
	}
	t.Checks = make([]CheckResult, len(app.HealthChecks))
	ts.mesosCheck = app.MesosHealthCheck()
	return true
}

// mesosHealth records a status update's healthy field on t (a copy being
// built). It returns the index of the check whose failure this was, or -1.
func (c *core) mesosHealth(as *appState, ts *taskState, t *Task, healthy bool, cause string, now time.Time) int {
	var app *appspec.App
	if as != nil {
		app = as.app
	}
	if !ts.healthChecks(app, t) || ts.mesosCheck < 0 || ts.mesosCheck >= len(t.Checks) {
		t.Healthy = &healthy // no per-check record: Mesos's word is the task's health
		return -1
	}
	i := ts.mesosCheck
	t.Checks = slices.Clone(t.Checks) // published Tasks are never written
	t.Checks[i] = t.Checks[i].Update(healthy, cause, now)
	t.Healthy = combinedHealth(t.Checks)
	if healthy {
		return -1
	}
	return i
}

// setCheck records the result of a check the leader ran (package health).
// A new failure is published as EventHealthCheckFailed after the task.
func (c *core) setCheck(now time.Time, taskID string, check int, r CheckResult) error {
	ts := c.tasks[taskID]
	if ts == nil {
		return fmt.Errorf("%w %q", ErrUnknownTask, taskID)
	}
	if !ts.t.Active() {
		return nil
	}
	as := c.apps[ts.t.AppID]
	t := ts.t
	var app *appspec.App
	if as != nil {
		app = as.app
	}
	if !ts.healthChecks(app, &t) || check < 0 || check >= len(t.Checks) {
		return fmt.Errorf("framework: task %q has no health check %d", taskID, check)
	}
	prev := t.Checks[check]
	if prev == r {
		return nil
	}
	prevHealthy := t.IsHealthy()
	t.Checks = slices.Clone(t.Checks)
	t.Checks[check] = r
	t.Healthy = combinedHealth(t.Checks)
	c.setTask(as, ts, t)
	if as != nil {
		c.healthChanged(now, as, ts, prevHealthy)
	}
	c.gen++
	c.pub(Event{Type: EventTask, At: now, Task: taskPtr(t)})
	if r.LastFailure.After(prev.LastFailure) {
		c.pub(Event{Type: EventHealthCheckFailed, At: now, Task: taskPtr(t), App: app, Check: check})
	}
	return nil
}

// killUnhealthy kills a task whose check failed more than its
// maxConsecutiveFailures allow, so that it is replaced, and publishes
// EventUnhealthyKill (Marathon's unhealthy_instance_kill_event).
func (c *core) killUnhealthy(now time.Time, taskID string, check int) error {
	ts := c.tasks[taskID]
	if ts == nil {
		return fmt.Errorf("%w %q", ErrUnknownTask, taskID)
	}
	if ts.t.Killing || c.killWanted[taskID] || !ts.t.Active() {
		return nil
	}
	if err := c.killTasks(now, ts.t.AppID, []string{taskID}, -1); err != nil {
		return err
	}
	as := c.apps[ts.t.AppID]
	c.log.WithFields(logrus.Fields{"app": ts.t.AppID, "task": taskID, "check": check}).
		Warn("killing a task that failed its health check too many times; it is replaced")
	c.pub(Event{Type: EventUnhealthyKill, At: now, Task: taskPtr(ts.t), App: as.app, Check: check})
	return nil
}

// ReportHealth records the result of health check number check (an index
// into the app's healthChecks) of a task, as the leader's checker (package
// health) keeps it. Task.Healthy is recomputed from all the task's checks.
// Unknown task ids fail with ErrUnknownTask.
func (s *Scheduler) ReportHealth(taskID string, check int, r CheckResult) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.setCheck(now, taskID, check, r) })
	s.wake()
	return err
}

// KillUnhealthy kills a task that failed health check number check too
// many times in a row; it is replaced like any killed task. Killing a task
// already being killed does nothing.
func (s *Scheduler) KillUnhealthy(taskID string, check int) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.killUnhealthy(now, taskID, check) })
	s.wake()
	return err
}
