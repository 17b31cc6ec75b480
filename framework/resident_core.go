package framework

import (
	"fmt"
	"slices"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
	"github.com/flotilla-sched/flotilla/store"
)

// ---- resident instances: the core's state (see resident.go) ----

// reservation is one resident instance's reservation and volumes on one
// agent, as this scheduler knows it.
type reservation struct {
	id      string // instance id; the label marathon_task_id
	appID   string
	agentID string
	host    string
	// last is the instance's last task id: its record is the
	// reservation's (stateReserved while no task runs), and the next task
	// counts its incarnation on.
	last string
	// confirmed: Mesos made the reservation (its task started, or an
	// offer held it). A task ending before that may have been refused
	// with its RESERVE, so the instance is given up; should the
	// reservation exist after all, it is torn down as an orphan.
	confirmed bool
	// wipe: destroy the volumes and unreserve at the next offer of the
	// agent, once no task runs on it (app deleted, task wiped).
	wipe bool
}

// busy says whether a task of the reservation is active.
func (c *core) busy(r *reservation) bool {
	ts := c.tasks[r.last]
	return ts != nil && ts.t.Active()
}

// freeReservations counts an app's reservations that wait to relaunch
// their instance: free ones (waiting for their agent's offer) and those
// whose task is being killed (free once it ended). Placement must not
// make these instances anew: a task being replaced (killed, restarted,
// rolled) still holds its reservation until Mesos says it ended, and an
// offer arriving meanwhile would otherwise start a new instance with an
// empty volume.
func (c *core) freeReservations(appID string) int {
	n := 0
	for _, r := range c.resv {
		if r.appID != appID || r.wipe {
			continue
		}
		if ts := c.tasks[r.last]; ts == nil || !ts.t.Active() || ts.t.Killing {
			n++
		}
	}
	return n
}

// residentOffers uses the labelled reservations in offers (planOffer):
// relaunches free instances their apps want back and tears down wiped
// and orphaned ones. It returns the offers it put operations on, which
// must not be declined. Called only once launches are allowed.
func (c *core) residentOffers(now time.Time, mos []mesos.Offer, p *plan, byOffer map[string]int) map[string]bool {
	if len(c.resv) == 0 && !c.anyLabelled(mos) {
		return nil
	}
	known := make(map[string]reservationView, len(c.resv))
	for id, r := range c.resv {
		known[id] = reservationView{appID: r.appID, busy: c.busy(r), wipe: r.wipe}
	}
	wants := map[string]int{}
	for _, r := range c.resv {
		if as := c.apps[r.appID]; as != nil && as.app != nil && !now.Before(as.backoffUntil) {
			wants[r.appID] = as.need
		}
	}
	used := map[string]bool{}
	for i := range mos {
		o := &mos[i]
		for _, a := range planOffer(o, known, wants, !c.holdUnknown) {
			r := c.resv[a.instance]
			if r != nil {
				r.confirmed = true
			}
			l := p.launchFor(o.ID.Value, byOffer)
			used[o.ID.Value] = true
			if a.teardown {
				c.log.WithFields(logrus.Fields{"instance": a.instance, "agent": o.AgentID.Value, "known": r != nil}).Info("destroying a resident instance's volumes and unreserving its resources")
				l.resident = append(l.resident, residentOps{ops: teardownOps(a.held)})
				if r != nil {
					c.dropReservation(r)
				}
				delete(known, a.instance)
				continue
			}
			c.relaunch(now, r, o, a.held, l)
		}
	}
	return used
}

// anyLabelled: some offer holds a labelled reservation of this framework
// (an orphan, when no reservation is known).
func (c *core) anyLabelled(mos []mesos.Offer) bool {
	for i := range mos {
		if len(offerReservations(&mos[i])) > 0 {
			return true
		}
	}
	return false
}

// relaunch launches an instance's next task on its reserved resources.
func (c *core) relaunch(now time.Time, r *reservation, o *mesos.Offer, held []mesos.Resource, l *launchOp) {
	as := c.apps[r.appID]
	_, n, _ := splitTaskID(r.last)
	id := taskIDOf(r.id, n+1)
	if as.tmplFor != as.app {
		as.tmpl, as.tmplFor = newTaskTmpl(as.app), as.app
	}
	ports := reservedPorts(as.app, held)
	c.recordGone(r)
	r.last, r.host = id, o.Hostname
	c.startTask(now, as, id, o.AgentID.Value, o.Hostname, ports)
	ti := buildTaskInfo(as.app, launchSpec{TaskID: id, AgentID: o.AgentID.Value, Host: o.Hostname,
		Ports: ports, Resources: held, KillGrace: c.killGrace(as.app), Tmpl: as.tmpl})
	c.log.WithFields(logrus.Fields{"task": id, "agent": o.AgentID.Value}).Info("relaunching a resident instance on its reservation")
	l.tasks = append(l.tasks, ti)
	l.apps = append(l.apps, as.app)
}

// startTask adds a task the scheduler is about to launch and publishes it.
func (c *core) startTask(now time.Time, as *appState, id, agent, host string, ports []uint64) *taskState {
	ts := &taskState{t: Task{
		ID: id, AppID: as.id, AppVersion: as.app.Version, AgentID: agent, Host: host,
		Ports: ports, State: mesos.TASK_STAGING, StagedAt: now,
	}, attrs: c.agents[agent].attrs}
	if len(as.app.ReadinessChecks) > 0 {
		ts.t.Ready = new(bool)
	}
	ts.healthChecks(as.app, &ts.t)
	c.addTask(as, ts)
	c.recordAdded(ts)
	as.need--
	as.rejection = offers.Summary{}
	c.pub(Event{Type: EventTask, At: now, Task: taskPtr(ts.t)})
	return ts
}

// reserveNew makes a new instance's reservation for a placement of a
// resident app: the RESERVE and CREATE that go before its LAUNCH, and the
// task's resources.
func (c *core) reserveNew(as *appState, instance string, pl offers.Placement, frameworkID string) (newReservation, *reservation) {
	nr := planReservation(as.app, pl.Resources, c.cfg.Role, c.cfg.Principal, reservationLabels(frameworkID, instance), instance)
	r := &reservation{id: instance, appID: as.id, agentID: pl.AgentID, host: pl.Hostname, last: taskIDOf(instance, 1)}
	c.resv[instance] = r
	return nr, r
}

// dropReservation forgets a reservation and its record.
func (c *core) dropReservation(r *reservation) {
	delete(c.resv, r.id)
	if !c.busy(r) {
		c.recordGone(r)
	}
	if as := c.apps[r.appID]; as != nil {
		c.markDirty(as)
	}
	c.gen++
}

// recordGone deletes the kept record of a reservation's last task.
func (c *core) recordGone(r *reservation) {
	if c.cfg.Tasks != nil && r.last != "" && c.tasks[r.last] == nil {
		c.recOps = append(c.recOps, recordOp{rec: store.TaskRecord{TaskID: r.last, AppID: r.appID}, del: true})
	}
}

// residentTaskEnded follows the end of a task: its instance's reservation
// waits for the next launch (its record kept as stateReserved, returned
// true), or is given up when Mesos never confirmed it.
func (c *core) residentTaskEnded(t Task) (keep bool) {
	if len(c.resv) == 0 {
		return false
	}
	inst, _, ok := splitTaskID(t.ID)
	r := c.resv[inst]
	if !ok || r == nil || r.last != t.ID {
		return false
	}
	if as := c.apps[r.appID]; as != nil {
		c.markDirty(as)
	}
	if !r.confirmed {
		c.log.WithFields(logrus.Fields{"instance": r.id, "state": t.State.String()}).Warn("a resident instance's first task ended before its reservation was confirmed; giving the reservation up")
		delete(c.resv, r.id)
		return false
	}
	// A wiped instance's record goes now: should this leader not live to
	// tear the reservation down, the next takes it for an orphan.
	return !r.wipe
}

// reservedRecord is the record a reservation keeps while no task runs.
func reservedRecord(r *reservation, t Task) store.TaskRecord {
	rec := recordOf(t)
	rec.State = stateReserved
	rec.AgentID, rec.Host = r.agentID, r.host
	return rec
}

// residentStarted confirms a reservation once its task started: Mesos
// applied the RESERVE and CREATE that came with the LAUNCH.
func (c *core) residentStarted(taskID string, state mesos.TaskState) {
	if len(c.resv) == 0 || (state != mesos.TASK_STARTING && state != mesos.TASK_RUNNING) {
		return
	}
	if inst, _, ok := splitTaskID(taskID); ok {
		if r := c.resv[inst]; r != nil {
			r.confirmed = true
		}
	}
}

// wipeApp marks every reservation of an app to be torn down.
func (c *core) wipeApp(appID string) {
	for _, r := range c.resv {
		if r.appID == appID {
			c.markWipe(r)
		}
	}
}

// markWipe marks a reservation to be torn down. Its record goes at once
// (or when its task ends: residentTaskEnded): the teardown waits for an
// offer of the agent, which may come only after a failover, and a new
// leader must then take the reservation for an orphan, not for a
// suspended instance to relaunch.
func (c *core) markWipe(r *reservation) {
	r.wipe = true
	if !c.busy(r) {
		c.recordGone(r)
	}
}

// adoptReservation records the reservation of a task of a resident app
// that this scheduler learnt of without its record (adopted, restored).
func (c *core) adoptReservation(ts *taskState, confirmed bool) {
	as := c.apps[ts.t.AppID]
	if as == nil || as.app == nil || !as.app.IsResident() {
		return
	}
	inst, _, ok := splitTaskID(ts.t.ID)
	if !ok {
		return
	}
	if r := c.resv[inst]; r != nil {
		_, have, _ := splitTaskID(r.last)
		if _, n, _ := splitTaskID(ts.t.ID); n > have {
			r.last = ts.t.ID
		}
		return
	}
	c.resv[inst] = &reservation{id: inst, appID: ts.t.AppID, agentID: ts.t.AgentID, host: ts.t.Host, last: ts.t.ID, confirmed: confirmed}
}

// mustInstance is the instance id of a task id known to be of an app.
func mustInstance(taskID string) string {
	inst, _, _ := splitTaskID(taskID)
	return inst
}

// restoreReservation takes back a reservation from its kept record;
// false when the record is stale (its app gone or no longer resident).
// While the stored apps are not all read, the record is kept unused.
func (c *core) restoreReservation(as *appState, r store.TaskRecord) bool {
	if (as == nil || as.app == nil) && c.holdUnknown {
		return true
	}
	inst, _, ok := splitTaskID(r.TaskID)
	if !ok || as == nil || as.app == nil || !as.app.IsResident() {
		c.log.WithFields(logrus.Fields{"task": r.TaskID, "app": r.AppID}).Info("dropping the record of a reservation no app claims; its resources are freed when offered")
		return false
	}
	if c.resv[inst] == nil {
		c.resv[inst] = &reservation{id: inst, appID: r.AppID, agentID: r.AgentID, host: r.Host, last: r.TaskID, confirmed: true}
		c.markDirty(as)
	}
	return true
}

// teardownsDue counts reservations waiting for an offer to be destroyed
// and unreserved: offers must not be suppressed while there are any.
func (c *core) teardownsDue() int {
	n := 0
	for _, r := range c.resv {
		if r.wipe && !c.busy(r) {
			n++
		}
	}
	return n
}

// wipeTasks marks the reservations of the instances of taskIDs (tasks of
// appID, or the last task of a suspended instance) to be torn down.
func (c *core) wipeTasks(appID string, taskIDs []string) error {
	as := c.apps[appID]
	if as == nil || as.app == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, appID)
	}
	var marks []*reservation
	for _, id := range taskIDs {
		inst, _, ok := splitTaskID(id)
		r := c.resv[inst]
		switch {
		case ok && r != nil && r.appID == appID && (r.last == id || as.tasks[id] != nil):
			marks = append(marks, r)
		case as.tasks[id] != nil:
			// A task without a reservation: wiping it is killing it.
		default:
			return fmt.Errorf("%w %q of app %q", ErrUnknownTask, id, appID)
		}
	}
	for _, r := range marks {
		if !r.wipe {
			c.log.WithFields(logrus.Fields{"instance": r.id, "agent": r.agentID}).Info("wiping a resident instance: its volumes are destroyed once its task ended")
		}
		c.markWipe(r)
	}
	c.markDirty(as)
	c.gen++
	return nil
}

// Suspended is a resident instance without a task: its reservation and
// volumes wait on its agent (Marathon's reserved instance, shown among
// an app's tasks without a state; scaling up relaunches it, wiping its
// last task id gives it up).
type Suspended struct {
	TaskID  string // the instance's last task id
	AppID   string
	AgentID string
	Host    string
}

// SuspendedOf lists an app's suspended instances, sorted by task id.
func (s *Scheduler) SuspendedOf(appID string) []Suspended {
	appID = appspec.CanonicalID(appID)
	var out []Suspended
	s.locked(func(c *core, _ time.Time) {
		for _, r := range c.resv {
			if r.appID == appID && !r.wipe && !c.busy(r) {
				out = append(out, Suspended{TaskID: r.last, AppID: r.appID, AgentID: r.agentID, Host: r.host})
			}
		}
	})
	slices.SortFunc(out, func(a, b Suspended) int { return strings.Compare(a.TaskID, b.TaskID) })
	return out
}
