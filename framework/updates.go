package framework

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
)

// ---- status updates and the task lifecycle ----

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_STAGING, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_UNREACHABLE:
		return false
	}
	return true
}

// isAppFailure says whether a terminal state the scheduler did not ask
// for is the app's fault and so grows its launch backoff. Lost, gone and
// dropped tasks are the cluster's doing.
func isAppFailure(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FAILED, mesos.TASK_ERROR, mesos.TASK_FINISHED, mesos.TASK_KILLED:
		return true
	}
	return false
}

func (c *core) handleUpdate(now time.Time, st mesos.TaskStatus, p *plan) {
	id := st.TaskID.Value
	agent := st.GetAgentID().GetValue()
	state := st.GetState()
	// Built only when something is logged: this runs for every update.
	log := func() *logrus.Entry { return c.log.WithFields(logrus.Fields{"task": id, "state": state.String()}) }
	// Only updates that carry a uuid come from an agent and wait for an
	// acknowledgement; the master's own (reconciliation, invalid offers)
	// have none and must not be acknowledged.
	if len(st.UUID) > 0 {
		if agent == "" {
			log().Warn("update with a uuid but no agent id cannot be acknowledged")
		} else {
			p.acks = append(p.acks, ackOp{agentID: agent, taskID: id, uuid: st.UUID})
		}
	}
	delete(c.recon.pending, id)
	if len(c.recon.pending) == 0 {
		c.recon.next = time.Time{}
	}
	if !c.podUpdate(now, &st, p) {
		return
	}
	id, state = st.TaskID.Value, st.GetState() // a pod instance's, for a container's update

	ts, adopted := c.updatedTask(now, id, agent, state, p)
	if ts == nil {
		return
	}
	c.residentStarted(id, state)
	as := c.apps[ts.t.AppID]
	t := ts.t // copy: published Tasks are never written
	prevState, prevHealthy := t.State, t.IsHealthy()
	t.State = state
	if agent != "" {
		t.AgentID = agent
	}
	t.Message = st.GetMessage()
	if st.Reason != nil {
		t.Reason = st.GetReason().String()
	} else {
		t.Reason = ""
	}
	failedCheck := -1
	if st.Healthy != nil {
		failedCheck = c.mesosHealth(as, ts, &t, st.GetHealthy(), st.GetMessage(), now)
	}
	if state == mesos.TASK_RUNNING && t.StartedAt.IsZero() {
		t.StartedAt = now
	}
	wasUnreachable := !t.UnreachableSince.IsZero()
	if state == mesos.TASK_UNREACHABLE {
		if !wasUnreachable {
			t.UnreachableSince = now
			if st.UnreachableTime != nil {
				// The master knows when the agent became unreachable; the
				// strategy's clock runs from there.
				if u := time.Unix(0, st.UnreachableTime.GetNanoseconds()); u.Before(now) {
					t.UnreachableSince = u
				}
			}
		}
	} else {
		t.UnreachableSince = time.Time{}
	}
	c.setTask(as, ts, t)
	if u := !t.UnreachableSince.IsZero(); u != wasUnreachable {
		if u {
			if len(c.unreachable) == 0 {
				c.nextUnreachRecon = now.Add(c.cfg.UnreachableReconcile)
			}
			c.unreachable[id] = ts
			c.armUnreach(as, ts)
		} else {
			delete(c.unreachable, id)
		}
		c.markDirty(as)
	}
	c.healthChanged(now, as, ts, prevHealthy)
	c.gen++
	if isTerminal(state) {
		if !t.Killing && as.app != nil {
			lf := log().WithFields(logrus.Fields{"app": t.AppID, "message": t.Message, "reason": t.Reason})
			if isAppFailure(state) {
				c.fail(now, as)
				lf.WithField("delay", as.delay).Warn("task failed; replacing it after backoff")
			} else {
				lf.Warn("task lost; replacing it")
			}
		}
		c.removeTask(now, ts)
		return
	}
	if adopted || state != prevState || st.Healthy != nil {
		c.pub(Event{Type: EventTask, At: now, Task: taskPtr(t)})
	}
	if failedCheck >= 0 {
		c.pub(Event{Type: EventHealthCheckFailed, At: now, Task: taskPtr(t), App: as.app, Check: failedCheck})
	}
}

// updatedTask is the task an update is about: the one this scheduler
// knows, or a task of a known app that a previous leader launched, adopted
// now (adopted true). It is nil when the update needs nothing more: a
// terminal state of an unknown task, a task kept while the stored apps are
// not all read, or one nobody asked for (then killed).
func (c *core) updatedTask(now time.Time, id, agent string, state mesos.TaskState, p *plan) (ts *taskState, adopted bool) {
	if ts := c.tasks[id]; ts != nil {
		return ts, false
	}
	log := func() *logrus.Entry { return c.log.WithFields(logrus.Fields{"task": id, "state": state.String()}) }
	if isTerminal(state) {
		return nil, false
	}
	appID, ok := AppIDFromTaskID(id)
	as := c.apps[appID]
	if (!ok || as == nil || as.app == nil) && c.holdUnknown {
		if !c.held[id] {
			c.held[id] = true
			log().WithFields(logrus.Fields{"agent": agent, "app": appID}).Warn("keeping a task of an app this leader does not know: the stored apps were not all read")
		}
		return nil, false
	}
	if !ok || as == nil || as.app == nil {
		log().WithField("agent", agent).Warn("killing a task nobody asked for")
		p.kills = append(p.kills, killOp{taskID: id, agentID: agent, policy: c.killPolicy()})
		return nil, false
	}
	// A task of a known app that this scheduler did not launch: a
	// previous leader did. Adopt it; the next decision kills it if it
	// is surplus.
	ts = &taskState{t: Task{
		ID: id, AppID: appID, AppVersion: as.app.Version, AgentID: agent,
		Host: c.agents[agent].host, State: state, StagedAt: now, Adopted: true,
	}, attrs: c.agents[agent].attrs}
	log().WithField("app", appID).Info("adopting a running task")
	c.addTask(as, ts)
	c.recordAdded(ts)
	c.adoptReservation(ts, true)
	return ts, true
}

// healthChanged follows a change of ts's health (IsHealthy, before it was
// prevHealthy): the launch backoff may be reset once it stays healthy.
func (c *core) healthChanged(now time.Time, as *appState, ts *taskState, prevHealthy bool) {
	h := ts.t.IsHealthy()
	if h == prevHealthy {
		return
	}
	if h {
		ts.healthySince = now
		if as.failures > 0 {
			at := now.Add(c.cfg.BackoffResetAfter)
			if as.resetAt.IsZero() || at.Before(as.resetAt) {
				as.resetAt = at
				c.setWake(as)
			}
		}
	} else {
		ts.healthySince = time.Time{}
	}
	// Health alone changes no count, so the app is not re-decided
	// (kill order reads health only when a count change made a
	// surplus), unless a roll is on: an old task's health is part of
	// its healthy minimum.
	if as.counts.old > 0 {
		c.markDirty(as)
	}
}

func taskPtr(t Task) *Task { return &t }

// fail records an app failure: backoffSeconds × backoffFactor^(n-1),
// capped by the app's maxLaunchDelaySeconds and the global cap.
func (c *core) fail(now time.Time, as *appState) {
	as.failures++
	as.delay = backoffDelay(as.app, as.failures, c.cfg.MaxLaunchDelay)
	as.backoffUntil = now.Add(as.delay)
	c.markDirty(as)
	c.setWake(as)
}

// backoffDelay is the launch delay after n consecutive failures. Zero or
// nonsensical app values (an App that skipped appspec's defaults) fall
// back to Marathon's defaults: 1 s, ×1.15, at most 300 s.
func backoffDelay(app *appspec.App, n int, globalCap time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	base, factor, maxS := app.BackoffSeconds, app.BackoffFactor, app.MaxLaunchDelaySeconds
	if base <= 0 {
		base = 1
	}
	if factor < 1 {
		factor = 1.15
	}
	if maxS <= 0 {
		maxS = 300
	}
	d := base
	for i := 1; i < n && d < maxS; i++ {
		d *= factor
	}
	d = min(d, maxS)
	out := time.Duration(d * float64(time.Second))
	if globalCap > 0 && out > globalCap {
		out = globalCap
	}
	return out
}

func (c *core) addTask(as *appState, ts *taskState) {
	c.tasks[ts.t.ID] = ts
	as.tasks[ts.t.ID] = ts
	if ts.t.Host == "" {
		c.hostless[ts.t.ID] = ts
	}
	c.touch(ts.t.AppID)
	as.counts = as.counts.add(countsOf(as.app, ts.t), 1)
	c.markStatus(as)
	c.markDirty(as)
	c.placedValid = false
	c.gen++
}

func (c *core) removeTask(now time.Time, ts *taskState) {
	id := ts.t.ID
	delete(c.tasks, id)
	delete(c.pods, id)
	delete(c.killing, id)
	delete(c.unreachable, id)
	delete(c.hostless, id)
	delete(c.killWanted, id)
	delete(c.recon.pending, id)
	c.placedValid = false
	c.gen++
	c.touch(ts.t.AppID)
	if as := c.apps[ts.t.AppID]; as != nil {
		delete(as.tasks, id)
		as.counts = as.counts.add(countsOf(as.app, ts.t), -1)
		c.markStatus(as)
		c.markDirty(as)
		c.dropAppIfDone(as)
	}
	keep := c.residentTaskEnded(ts.t)
	if c.cfg.Tasks != nil {
		if keep {
			c.recOps = append(c.recOps, recordOp{rec: reservedRecord(c.resv[mustInstance(id)], ts.t)})
		} else {
			c.recOps = append(c.recOps, recordOp{rec: recordOf(ts.t), del: true})
		}
	}
	c.pub(Event{Type: EventTaskRemoved, At: now, Task: taskPtr(ts.t)})
}

func (c *core) armUnreach(as *appState, ts *taskState) {
	for _, at := range unreachDeadlines(as.app, ts.t.UnreachableSince) {
		if c.nextUnreach.IsZero() || at.Before(c.nextUnreach) {
			c.nextUnreach = at
		}
	}
}

func unreachDeadlines(app *appspec.App, since time.Time) []time.Time {
	if app == nil || app.UnreachableStrategy.Disabled {
		return nil
	}
	us := app.UnreachableStrategy
	return []time.Time{since.Add(secs(us.InactiveAfterSeconds)), since.Add(secs(us.ExpungeAfterSeconds))}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (c *core) killPolicy() *mesos.KillPolicy {
	if c.cfg.KillGracePeriod > 0 {
		return killPolicy(c.cfg.KillGracePeriod)
	}
	return nil
}

// killGrace is an app's grace period between SIGTERM and SIGKILL: its
// taskKillGracePeriodSeconds, else the scheduler's KillGracePeriod.
func (c *core) killGrace(app *appspec.App) time.Duration {
	if app != nil && app.TaskKillGracePeriodSeconds != nil {
		return secs(*app.TaskKillGracePeriodSeconds)
	}
	return c.cfg.KillGracePeriod
}

// killPolicyOf is the kill policy for a task of appID (the scheduler's
// when the app is unknown).
func (c *core) killPolicyOf(appID string) *mesos.KillPolicy {
	if as := c.apps[appID]; as != nil && as.app != nil {
		if g := c.killGrace(as.app); g > 0 {
			return killPolicy(g)
		}
		return nil
	}
	return c.killPolicy()
}
