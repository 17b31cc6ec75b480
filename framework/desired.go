package framework

import (
	"fmt"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

// ---- desired state (API side) ----

func (c *core) putApp(now time.Time, app *appspec.App) {
	as := c.apps[app.ID]
	if as == nil {
		c.nextSeq++
		as = &appState{id: app.ID, seq: c.nextSeq, tasks: map[string]*taskState{}}
		c.apps[app.ID] = as
		c.appList = append(c.appList, as)
		c.appSetChanged(as)
	}
	if as.app == nil || as.app.Version != app.Version {
		// A new version starts with a clean backoff, as Marathon does.
		as.failures, as.delay, as.backoffUntil, as.resetAt = 0, 0, time.Time{}, time.Time{}
		as.reason = ""
	}
	as.app = app
	as.constraints, as.constraintsErr = parseConstraints(app.Constraints)
	c.retally(as)
	c.markDirty(as)
	c.setWake(as)
	c.gen++
	c.pub(Event{Type: EventApp, At: now, App: app})
}

// retally recomputes an app's counts: a new version or health check set
// changes every task's contribution.
func (c *core) retally(as *appState) {
	as.counts = taskCounts{}
	for _, ts := range as.tasks {
		as.counts = as.counts.add(countsOf(as.app, ts.t), 1)
	}
	c.markStatus(as)
}

// setTask replaces a task's published value and keeps its app's counts
// in step. While a roll is on (old tasks left), any change of counts
// re-decides the app: a new task turning healthy lets an old one go.
func (c *core) setTask(as *appState, ts *taskState, t Task) {
	if as != nil {
		before, after := countsOf(as.app, ts.t), countsOf(as.app, t)
		if before != after {
			as.counts = as.counts.add(before, -1).add(after, 1)
			c.markStatus(as)
			if as.counts.old > 0 || before.old > 0 {
				c.markDirty(as)
			}
		}
	}
	if c.cfg.Tasks != nil && recordChanged(ts.t, t) && !isTerminal(t.State) {
		// Terminal states need no put: removeTask deletes the record.
		c.recOps = append(c.recOps, recordOp{rec: recordOf(t)})
	}
	ts.t = t
	c.touch(t.AppID)
}

// recordAdded persists a task the scheduler just launched or adopted.
func (c *core) recordAdded(ts *taskState) {
	if c.cfg.Tasks != nil {
		c.recOps = append(c.recOps, recordOp{rec: recordOf(ts.t)})
	}
}

func parseConstraints(cs [][]string) ([]offers.Constraint, error) {
	out, err := offers.ParseConstraints(cs)
	if err != nil {
		return nil, fmt.Errorf("framework: app not launched: %w", err)
	}
	return out, nil
}

func (c *core) removeApp(now time.Time, id string) error {
	as := c.apps[id]
	if as == nil || as.app == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, id)
	}
	last := as.app
	as.app = nil
	// A deleted app's volumes go with it, as in Marathon.
	c.wipeApp(id)
	c.retally(as)
	c.markDirty(as)
	c.gen++
	c.pub(Event{Type: EventAppRemoved, At: now, App: last})
	c.dropAppIfDone(as)
	return nil
}

func (c *core) dropAppIfDone(as *appState) {
	if as.app == nil && len(as.tasks) == 0 {
		delete(c.apps, as.id)
		as.gone, c.appsGone = true, true
		c.setWake(as)
		c.appSetChanged(as)
	}
}

func (c *core) scale(now time.Time, id string, n int) error {
	as := c.apps[id]
	if as == nil || as.app == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, id)
	}
	if n < 0 {
		return fmt.Errorf("framework: scale %q to %d: instances must not be negative", id, n)
	}
	a := cloneApp(as.app)
	a.Instances = n
	as.app = a
	c.markStatus(as)
	c.markDirty(as)
	c.gen++
	c.pub(Event{Type: EventApp, At: now, App: a})
	return nil
}

// setHoldUnknown: see holdUnknown. Ending the hold reconciles at once, so
// that the tasks kept meanwhile are judged (adopted or killed) now rather
// than at the next periodic round.
func (c *core) setHoldUnknown(now time.Time, hold bool) {
	if c.holdUnknown == hold {
		return
	}
	c.holdUnknown = hold
	if !hold {
		clear(c.held)
		if c.connected {
			c.recon.nextImplicit = now
		}
	}
	c.gen++
}

// setReady records a readiness check result. Only a change matters: it
// may let a roll go on (countsHealthy) and discovery publish the task.
func (c *core) setReady(now time.Time, taskID string, ready bool) error {
	ts := c.tasks[taskID]
	if ts == nil {
		return fmt.Errorf("%w %q", ErrUnknownTask, taskID)
	}
	if ts.t.Ready == nil || *ts.t.Ready == ready || !ts.t.Active() {
		return nil
	}
	t := ts.t
	t.Ready = &ready
	c.setTask(c.apps[t.AppID], ts, t)
	c.gen++
	c.pub(Event{Type: EventTask, At: now, Task: taskPtr(t)})
	return nil
}

// killTasks marks tasks to kill; instances ≥ 0 also sets the app's
// instances (KillAndScale), < 0 lets them be replaced.
func (c *core) killTasks(now time.Time, appID string, ids []string, instances int) error {
	as := c.apps[appID]
	if as == nil || as.app == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, appID)
	}
	for _, id := range ids {
		if as.tasks[id] == nil {
			return fmt.Errorf("%w %q of app %q", ErrUnknownTask, id, appID)
		}
	}
	for _, id := range ids {
		c.killWanted[id] = true
	}
	if instances >= 0 && instances != as.app.Instances {
		a := cloneApp(as.app)
		a.Instances = instances
		as.app = a
		c.markStatus(as)
		c.pub(Event{Type: EventApp, At: now, App: a})
	}
	c.markDirty(as)
	c.gen++
	return nil
}

func (c *core) resetDelay(now time.Time, appID string) error {
	as := c.apps[appID]
	if as == nil || as.app == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, appID)
	}
	if as.failures > 0 || !as.backoffUntil.IsZero() {
		c.log.WithField("app", appID).Info("launch backoff reset on request")
	}
	as.failures, as.delay, as.backoffUntil, as.resetAt = 0, 0, time.Time{}, time.Time{}
	c.markStatus(as)
	c.markDirty(as)
	c.setWake(as)
	c.gen++
	return nil
}
