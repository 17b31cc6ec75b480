package framework

import (
	"math"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

// AppStatus is an app's progress towards its desired state: how many
// tasks of the target version run and pass their checks, and how many of
// other versions are left. The API's deployment manager reads Done rather
// than guessing from task lists; it is published as EventDeployment
// whenever it changes, and is in every Snapshot.
type AppStatus struct {
	AppID string
	// Version is the target version: the app's current one.
	Version   string
	Instances int
	// Tasks counts active tasks of the target version that are not being
	// killed; Running those in TASK_RUNNING; Healthy those that count as
	// healthy for a deployment (see countsHealthy).
	Tasks   int
	Running int
	Healthy int
	// OldTasks counts tasks of other versions not yet terminal, those being
	// killed included: a rolling upgrade is over when it reaches zero.
	OldTasks int
	// Killing counts target-version tasks being killed (scale down, kill
	// requests, staging timeouts) and not yet terminal.
	Killing int
	// Done: exactly Instances tasks of the target version, all healthy, and
	// nothing else left running.
	Done bool
}

// taskCounts is one task's contribution to its app's AppStatus; the core
// keeps per-app sums up to date on every task change, so that status costs
// nothing on the 10,000 updates/s path.
type taskCounts struct {
	tasks, running, healthy, old, killing int
}

func (a taskCounts) add(b taskCounts, sign int) taskCounts {
	return taskCounts{
		tasks: a.tasks + sign*b.tasks, running: a.running + sign*b.running, healthy: a.healthy + sign*b.healthy,
		old: a.old + sign*b.old, killing: a.killing + sign*b.killing,
	}
}

func countsOf(app *appspec.App, t Task) taskCounts {
	if app == nil || !t.Active() {
		return taskCounts{}
	}
	switch {
	case t.AppVersion != app.Version:
		return taskCounts{old: 1}
	case t.Killing:
		return taskCounts{killing: 1}
	}
	c := taskCounts{tasks: 1}
	if t.State == mesos.TASK_RUNNING {
		c.running = 1
	}
	if countsHealthy(app, t) {
		c.healthy = 1
	}
	return c
}

// countsHealthy says whether a task counts towards an upgrade's healthy
// capacity. A task of the target version of a health-checked app must have
// passed a check: running alone would let a roll kill old tasks for new ones
// that never became healthy. A task of another version counts when it runs
// and did not fail its checks (Task.IsHealthy): its version's checks are not
// known here, and if the new version added checks, old tasks that never had
// any must still count or a roll with minimumHealthCapacity 1 would never
// kill one. A task of the target version must also be ready when the app
// has a readiness check (Marathon: a deployment waits for readiness).
func countsHealthy(app *appspec.App, t Task) bool {
	if t.State != mesos.TASK_RUNNING {
		return false
	}
	if t.AppVersion != app.Version {
		return t.IsHealthy()
	}
	if !t.IsReady() {
		return false
	}
	if t.Healthy != nil {
		return *t.Healthy
	}
	return len(app.HealthChecks) == 0
}

func statusOf(as *appState) AppStatus {
	c := as.counts
	st := AppStatus{AppID: as.id, Version: as.app.Version, Instances: as.app.Instances,
		Tasks: c.tasks, Running: c.running, Healthy: c.healthy, OldTasks: c.old, Killing: c.killing}
	n := max(as.app.Instances, 0)
	st.Done = c.old == 0 && c.killing == 0 && c.tasks == n && c.healthy == n
	return st
}

// upgradeBounds are a rolling upgrade's limits for n instances, as
// Marathon computes them: at least ceil(n × minimumHealthCapacity) healthy
// tasks of any version, at most n + floor(n × maximumOverCapacity) tasks in
// all. When the two meet (minimumHealthCapacity 1, maximumOverCapacity 0)
// nothing could ever be replaced, so Marathon allows one task over
// capacity, and so does Flotilla.
func upgradeBounds(app *appspec.App) (minHealthy, maxTotal int) {
	n := max(app.Instances, 0)
	// The epsilon keeps 0.7 × 10 from becoming 8 (7.000000000000001).
	const eps = 1e-9
	m := min(max(app.UpgradeStrategy.MinimumHealthCapacity, 0), 1)
	o := max(app.UpgradeStrategy.MaximumOverCapacity, 0)
	minHealthy = int(math.Ceil(float64(n)*m - eps))
	maxTotal = n + int(math.Floor(float64(n)*o+eps))
	if n > 0 && minHealthy >= maxTotal {
		if app.IsResident() {
			// A resident app's new task can only take over an old one's
			// reservation: Marathon kills one below the minimum rather
			// than start an extra instance (computeRestartStrategy).
			return maxTotal - 1, maxTotal
		}
		maxTotal = minHealthy + 1
	}
	return minHealthy, maxTotal
}
