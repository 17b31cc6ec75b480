package framework

import (
	"fmt"
	"maps"
	"math/rand"
	"net"
	"slices"
	"sort"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

// core is all scheduler state. Task state is written only by Run's
// goroutine; the desired state (apps, kill requests) also by the API
// methods. Both hold Scheduler.mu, which exists so Snapshot and the API
// can get in between two steps of the loop, never during one.
type core struct {
	cfg  Config
	log  *logrus.Entry
	rand *rand.Rand
	pub  func(Event)

	apps map[string]*appState
	// appList holds the same states for the per-step scans: walking a
	// slice costs a fraction of walking a map, and a step walks every app
	// a few times. Removed states are marked gone and compacted away at the
	// start of the next step, so removal during a scan is safe.
	appList  []*appState
	appsGone bool
	tasks    map[string]*taskState
	// pods are the containers of each pod instance in tasks (pods.go).
	pods       map[string]*podInstance
	killWanted map[string]bool // desired: tasks the API asked to kill
	// holdUnknown: the desired state was not read completely (a store
	// item this version cannot decode, or the store unreachable), so a
	// task of an app the scheduler does not know may belong to an app it
	// could not read. Such tasks are kept running, neither killed nor
	// adopted, until the owner of the desired state says it is complete.
	holdUnknown bool
	held        map[string]bool // unknown tasks kept, logged once each
	agents      map[string]agentInfo
	// largest is the most of each resource one offer has held this term,
	// so the queue can say an app needs more than any agent has offered.
	largest offers.Capacity

	// Sets kept so that time-driven work scans only what is due.
	killing     map[string]*taskState
	unreachable map[string]*taskState
	nextKill    time.Time // earliest kill retry; zero: none
	nextUnreach time.Time // earliest inactive/expunge deadline; zero: none
	// nextUnreachRecon is when unreachable tasks are next reconciled
	// explicitly: Mesos need not tell when an agent comes back, and
	// waiting for the periodic implicit round (Marathon's #5506) would
	// leave a surplus running for minutes.
	nextUnreachRecon time.Time

	connected      bool
	suppressed     bool
	prevLaunchable int
	lastRevive     time.Time
	reviveAt       time.Time // a throttled revive is due then
	settleUntil    time.Time

	recon reconState

	placed      []offers.Placed // cache for offers.Place; nil = rebuild
	placedValid bool

	// recOps are task record writes decided since the last plan; the
	// loop hands them to the persister. Nil Config.Tasks: never filled.
	recOps []recordOp

	gen     uint64 // bumped on every visible change
	snapGen uint64
	snap    *Snapshot
	parts   snapParts // snapshot.go: what the next snapshot reuses
}

type agentInfo struct {
	host  string
	attrs map[string]string
	url   string // the agent's HTTP endpoint from its offers ("" if none)
}

type reconState struct {
	pending      map[string]string // task id → agent id awaiting an answer
	delay        time.Duration
	next         time.Time // next explicit retry; zero: none
	nextImplicit time.Time
}

type appState struct {
	gone  bool // removed from apps; dropped from appList at the next step
	id    string
	app   *appspec.App // nil once removed; the state lives on until its tasks are gone
	tasks map[string]*taskState

	failures     int
	delay        time.Duration
	backoffUntil time.Time
	resetAt      time.Time // a healthy task may reset the backoff then
	rejection    offers.Summary
	reason       string

	constraints    []offers.Constraint
	constraintsErr error
	tmpl           *taskTmpl // for tmplFor; rebuilt when app changes
	tmplFor        *appspec.App

	need  int       // instances to launch, from the last decision
	next  time.Time // the app's next time-driven decision
	dirty bool
	queue QueueEntry // last published

	counts        taskCounts // sums of countsOf over tasks; see setTask
	status        AppStatus  // last published
	statusChanged bool
}

type taskState struct {
	t            Task
	attrs        map[string]string
	killSentAt   time.Time
	healthySince time.Time
	// mesosCheck is the index of the check Mesos runs in t.Checks (-1:
	// none); set with t.Checks (healthChecks).
	mesosCheck int
}

func newCore(cfg Config, pub func(Event)) *core {
	return &core{
		cfg:         cfg,
		log:         cfg.Log,
		rand:        cfg.Rand,
		pub:         pub,
		apps:        map[string]*appState{},
		tasks:       map[string]*taskState{},
		pods:        map[string]*podInstance{},
		killWanted:  map[string]bool{},
		held:        map[string]bool{},
		agents:      map[string]agentInfo{},
		killing:     map[string]*taskState{},
		unreachable: map[string]*taskState{},
		recon:       reconState{pending: map[string]string{}},
	}
}

// plan is the side effects one step decided, performed by the loop
// after the lock is released.
type plan struct {
	acks       []ackOp
	kills      []killOp
	launches   []launchOp
	declines   []declineOp
	reconciles [][]scheduler.Call_Reconcile_Task // nil element: implicit
	revive     bool
	suppress   bool
	records    []recordOp
}

type ackOp struct {
	agentID, taskID string
	uuid            []byte
}

type killOp struct {
	taskID, agentID string
	policy          *mesos.KillPolicy
}

type launchOp struct {
	offerID string
	tasks   []mesos.TaskInfo
	apps    []*appspec.App
	groups  []groupLaunch // pod instances, one LAUNCH_GROUP each
}

type declineOp struct {
	offerIDs []string
	refuse   time.Duration
}

func (p *plan) empty() bool {
	return len(p.acks)+len(p.kills)+len(p.launches)+len(p.declines)+len(p.reconciles)+len(p.records) == 0 && !p.revive && !p.suppress
}

// ---- desired state (API side) ----

func (c *core) putApp(now time.Time, app *appspec.App) {
	as := c.apps[app.ID]
	if as == nil {
		as = &appState{id: app.ID, tasks: map[string]*taskState{}}
		c.apps[app.ID] = as
		c.appList = append(c.appList, as)
		c.appSetChanged()
	}
	if as.app == nil || as.app.Version != app.Version {
		// A new version starts with a clean backoff, as Marathon does.
		as.failures, as.delay, as.backoffUntil, as.resetAt = 0, 0, time.Time{}, time.Time{}
		as.reason = ""
	}
	as.app = app
	as.constraints, as.constraintsErr = parseConstraints(app.Constraints)
	c.retally(as)
	as.dirty = true
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
	as.statusChanged = true
}

// setTask replaces a task's published value and keeps its app's counts
// in step. While a roll is on (old tasks left), any change of counts
// re-decides the app: a new task turning healthy lets an old one go.
func (c *core) setTask(as *appState, ts *taskState, t Task) {
	if as != nil {
		before, after := countsOf(as.app, ts.t), countsOf(as.app, t)
		if before != after {
			as.counts = as.counts.add(before, -1).add(after, 1)
			as.statusChanged = true
			if as.counts.old > 0 || before.old > 0 {
				as.dirty = true
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
	c.retally(as)
	as.dirty = true
	c.gen++
	c.pub(Event{Type: EventAppRemoved, At: now, App: last})
	c.dropAppIfDone(as)
	return nil
}

func (c *core) dropAppIfDone(as *appState) {
	if as.app == nil && len(as.tasks) == 0 {
		delete(c.apps, as.id)
		as.gone, c.appsGone = true, true
		c.appSetChanged()
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
	as.statusChanged = true
	as.dirty = true
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
		as.statusChanged = true
		c.pub(Event{Type: EventApp, At: now, App: a})
	}
	as.dirty = true
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
	as.statusChanged, as.dirty = true, true
	c.gen++
	return nil
}

// ---- inputs (loop side) ----

func (c *core) handleInput(now time.Time, in Input, p *plan) {
	if in.Disconnected != nil {
		if c.connected {
			c.log.WithError(in.Disconnected).Warn("disconnected from master")
		}
		c.connected = false
		c.gen++
	}
	ev := in.Event
	if ev == nil {
		return
	}
	switch ev.GetType() {
	case scheduler.Event_SUBSCRIBED:
		c.subscribed(now, p)
	case scheduler.Event_OFFERS:
		c.step(now, p)
		c.handleOffers(now, ev.GetOffers().GetOffers(), p)
	case scheduler.Event_UPDATE:
		c.handleUpdate(now, ev.GetUpdate().GetStatus(), p)
	case scheduler.Event_FAILURE:
		f := ev.GetFailure()
		c.log.WithFields(logrus.Fields{"agent": f.GetAgentID().GetValue(), "executor": f.GetExecutorID().GetValue()}).Warn("agent or executor failure")
	case scheduler.Event_ERROR:
		c.log.WithField("message", ev.GetError().GetMessage()).Error("master sent an error")
	case scheduler.Event_RESCIND:
		// Offers are answered in the step that received them; nothing is held.
	}
}

func (c *core) subscribed(now time.Time, p *plan) {
	c.connected = true
	// A new subscription starts unsuppressed (the connection does not
	// pass suppressed_roles), so let the next step decide again.
	c.suppressed = false
	c.prevLaunchable = 0
	c.gen++
	if c.cfg.ReconcileSettle > 0 {
		c.settleUntil = now.Add(c.cfg.ReconcileSettle)
	}
	// Explicit reconciliation of every task we believe is not terminal
	// (Mesos reconciliation guide), then an implicit one to learn of
	// tasks we do not know, e.g. launched by a previous leader.
	c.recon.pending = map[string]string{}
	for _, ts := range c.tasks {
		if ts.t.Active() {
			for _, id := range c.mesosTaskIDs(ts) {
				c.recon.pending[id] = ts.t.AgentID
			}
		}
	}
	if len(c.recon.pending) > 0 {
		c.recon.delay = c.cfg.ReconcileRetry
		c.recon.next = now.Add(c.recon.delay)
		c.explicitReconcile(p)
	} else {
		c.recon.next = time.Time{}
	}
	p.reconciles = append(p.reconciles, nil)
	c.recon.nextImplicit = now.Add(c.cfg.ReconcileInterval)
	// Kills sent on the old subscription may have been lost.
	for _, ts := range c.killing {
		ts.killSentAt = time.Time{}
	}
	c.nextKill = now
	c.step(now, p)
}

// reconcileBatch bounds one RECONCILE call so its JSON stays far below
// the master's and mesos-go's frame limits.
const reconcileBatch = 1000

func (c *core) explicitReconcile(p *plan) {
	addReconciles(p, c.recon.pending, func(agent string) string { return agent })
}

// addReconciles appends explicit RECONCILE calls for the tasks of m (by
// id, sorted) in batches of reconcileBatch; agent gives a task's agent id,
// "" for none.
func addReconciles[V any](p *plan, m map[string]V, agent func(V) string) {
	for ids := range slices.Chunk(slices.Sorted(maps.Keys(m)), reconcileBatch) {
		batch := make([]scheduler.Call_Reconcile_Task, len(ids))
		for i, id := range ids {
			batch[i].TaskID = mesos.TaskID{Value: id}
			if a := agent(m[id]); a != "" {
				batch[i].AgentID = &mesos.AgentID{Value: a}
			}
		}
		p.reconciles = append(p.reconciles, batch)
	}
}

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

	ts := c.tasks[id]
	adopted := false
	if ts == nil {
		if isTerminal(state) {
			return
		}
		appID, ok := AppIDFromTaskID(id)
		as := c.apps[appID]
		if (!ok || as == nil || as.app == nil) && c.holdUnknown {
			if !c.held[id] {
				c.held[id] = true
				log().WithFields(logrus.Fields{"agent": agent, "app": appID}).Warn("keeping a task of an app this leader does not know: the stored apps were not all read")
			}
			return
		}
		if !ok || as == nil || as.app == nil {
			log().WithField("agent", agent).Warn("killing a task nobody asked for")
			p.kills = append(p.kills, killOp{taskID: id, agentID: agent, policy: c.killPolicy()})
			return
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
		adopted = true
	}
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
		as.dirty = true
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
		as.dirty = true
	}
}

func taskPtr(t Task) *Task { return &t }

// fail records an app failure: backoffSeconds × backoffFactor^(n-1),
// capped by the app's maxLaunchDelaySeconds and the global cap.
func (c *core) fail(now time.Time, as *appState) {
	as.failures++
	as.delay = backoffDelay(as.app, as.failures, c.cfg.MaxLaunchDelay)
	as.backoffUntil = now.Add(as.delay)
	as.dirty = true
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
	c.touch(ts.t.AppID)
	as.counts = as.counts.add(countsOf(as.app, ts.t), 1)
	as.statusChanged = true
	as.dirty = true
	c.placedValid = false
	c.gen++
}

func (c *core) removeTask(now time.Time, ts *taskState) {
	id := ts.t.ID
	delete(c.tasks, id)
	delete(c.pods, id)
	delete(c.killing, id)
	delete(c.unreachable, id)
	delete(c.killWanted, id)
	delete(c.recon.pending, id)
	c.placedValid = false
	c.gen++
	c.touch(ts.t.AppID)
	if as := c.apps[ts.t.AppID]; as != nil {
		delete(as.tasks, id)
		as.counts = as.counts.add(countsOf(as.app, ts.t), -1)
		as.statusChanged = true
		as.dirty = true
		c.dropAppIfDone(as)
	}
	if c.cfg.Tasks != nil {
		c.recOps = append(c.recOps, recordOp{rec: recordOf(ts.t), del: true})
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

// ---- time-driven step ----

// step brings decisions up to date with now: expunges, reconciliation
// retries, kills, backoff resets, launch needs and offer interest.
func (c *core) step(now time.Time, p *plan) {
	if c.appsGone {
		live := c.appList[:0]
		for _, as := range c.appList {
			if !as.gone {
				live = append(live, as)
			}
		}
		clear(c.appList[len(live):])
		c.appList, c.appsGone = live, false
	}
	if !c.settleUntil.IsZero() && !now.Before(c.settleUntil) {
		// The hold is over: launches may go out and the queue's reason
		// changes. Cleared, so that it no longer wakes the loop.
		c.settleUntil = time.Time{}
		c.gen++
	}
	if !c.nextUnreach.IsZero() && !now.Before(c.nextUnreach) {
		c.scanUnreachable(now)
	}
	if c.connected {
		if !c.recon.next.IsZero() && !now.Before(c.recon.next) && len(c.recon.pending) > 0 {
			c.log.WithField("tasks", len(c.recon.pending)).Info("explicit reconciliation unanswered; retrying")
			c.explicitReconcile(p)
			c.recon.delay = min(2*c.recon.delay, c.cfg.ReconcileRetryMax)
			c.recon.next = now.Add(c.recon.delay)
		}
		if len(c.unreachable) > 0 && !now.Before(c.nextUnreachRecon) {
			agentOf := make(map[string]string, len(c.unreachable))
			for _, ts := range c.unreachable {
				for _, id := range c.mesosTaskIDs(ts) { // a pod instance's: its containers
					agentOf[id] = ts.t.AgentID
				}
			}
			addReconciles(p, agentOf, func(agent string) string { return agent })
			c.nextUnreachRecon = now.Add(c.cfg.UnreachableReconcile)
		}
		if !c.recon.nextImplicit.IsZero() && !now.Before(c.recon.nextImplicit) {
			p.reconciles = append(p.reconciles, nil)
			c.recon.nextImplicit = now.Add(c.cfg.ReconcileInterval)
		}
	}
	for _, as := range c.appList {
		if as.gone {
			continue
		}
		if as.failures > 0 && !as.resetAt.IsZero() && !now.Before(as.resetAt) {
			c.maybeResetBackoff(now, as)
		}
		if !as.next.IsZero() && !now.Before(as.next) {
			as.dirty = true
		}
		if as.need > 0 && !as.backoffUntil.IsZero() && !now.Before(as.backoffUntil) {
			as.backoffUntil = time.Time{}
			c.gen++
		}
		if as.dirty {
			c.decide(now, as)
		}
	}
	if c.connected && !c.nextKill.IsZero() && !now.Before(c.nextKill) {
		c.sendKills(now, p)
	}
	c.offerInterest(now, p)
	c.publishQueues(now)
	c.publishStatuses(now)
}

// publishStatuses publishes the AppStatus of every app whose counts or
// instances changed since the last step, if the status itself changed.
func (c *core) publishStatuses(now time.Time) {
	for _, as := range c.appList {
		if as.gone {
			continue
		}
		if !as.statusChanged || as.app == nil {
			continue
		}
		as.statusChanged = false
		st := statusOf(as)
		if st != as.status {
			as.status = st
			c.gen++
			c.pub(Event{Type: EventDeployment, At: now, Status: &st})
		}
	}
}

func (c *core) scanUnreachable(now time.Time) {
	c.nextUnreach = time.Time{}
	for _, ts := range c.unreachable {
		as := c.apps[ts.t.AppID]
		ds := unreachDeadlines(as.app, ts.t.UnreachableSince)
		if len(ds) == 2 && !now.Before(ds[1]) {
			// Expunged: forgotten. Should it come back, reconciliation
			// finds it unknown and the surplus logic decides its fate.
			c.log.WithFields(logrus.Fields{"task": ts.t.ID, "app": ts.t.AppID}).Info("expunging unreachable task")
			c.removeTask(now, ts)
			continue
		}
		if len(ds) == 2 && !now.Before(ds[0]) {
			as.dirty = true // inactive: the decision stops counting it
		}
		for _, at := range ds {
			if at.After(now) && (c.nextUnreach.IsZero() || at.Before(c.nextUnreach)) {
				c.nextUnreach = at
			}
		}
	}
}

func (c *core) maybeResetBackoff(now time.Time, as *appState) {
	as.resetAt = time.Time{}
	for _, ts := range as.tasks {
		if ts.healthySince.IsZero() {
			continue
		}
		at := ts.healthySince.Add(c.cfg.BackoffResetAfter)
		if !now.Before(at) {
			c.log.WithField("app", as.id).Info("task ran healthy; resetting launch backoff")
			as.failures, as.delay, as.backoffUntil, as.resetAt = 0, 0, time.Time{}, time.Time{}
			as.dirty = true
			c.gen++
			return
		}
		if as.resetAt.IsZero() || at.Before(as.resetAt) {
			as.resetAt = at
		}
	}
}

// decide applies decideApp to one app: it marks kills and records the
// launch need.
func (c *core) decide(now time.Time, as *appState) {
	as.dirty = false
	d := decideApp(as.app, as.tasks, c.killWanted, c.cfg.StagingTimeout, now)
	for _, id := range d.kill {
		ts := as.tasks[id]
		t := ts.t
		t.Killing = true
		c.setTask(as, ts, t)
		c.killing[id] = ts
		ts.killSentAt = time.Time{}
		c.nextKill = now
		c.gen++
		c.log.WithFields(logrus.Fields{"task": id, "app": as.id, "why": d.why[id]}).Info("killing task")
		c.pub(Event{Type: EventTask, At: now, Task: taskPtr(t)})
	}
	if as.need != d.need {
		c.gen++
	}
	as.need = d.need
	as.next = d.next
	c.dropAppIfDone(as)
}

func (c *core) sendKills(now time.Time, p *plan) {
	c.nextKill = time.Time{}
	for id, ts := range c.killing {
		due := ts.killSentAt.IsZero() || !now.Before(ts.killSentAt.Add(c.cfg.KillRetry))
		if due {
			p.kills = append(p.kills, c.killOps(id, ts)...)
			ts.killSentAt = now
		}
		at := ts.killSentAt.Add(c.cfg.KillRetry)
		if c.nextKill.IsZero() || at.Before(c.nextKill) {
			c.nextKill = at
		}
	}
	sort.Slice(p.kills, func(i, j int) bool { return p.kills[i].taskID < p.kills[j].taskID })
}

// launchable counts instances that would launch if offers came now.
func (c *core) launchable(now time.Time) int {
	if now.Before(c.settleUntil) {
		return 0
	}
	n := 0
	for _, as := range c.appList {
		if as.gone {
			continue
		}
		if as.app != nil && as.need > 0 && as.constraintsErr == nil && !now.Before(as.backoffUntil) {
			n += as.need
		}
	}
	return n
}

// holdingWithDemand: launches are held after SUBSCRIBED but instances
// wait; suppressing now would only force a REVIVE when the hold ends.
func (c *core) holdingWithDemand(now time.Time) bool {
	if !now.Before(c.settleUntil) {
		return false
	}
	for _, as := range c.appList {
		if as.gone {
			continue
		}
		if as.app != nil && as.need > 0 {
			return true
		}
	}
	return false
}

// reviveEvery throttles REVIVE: each one makes the master re-offer
// everything, so a burst of failures must not become a burst of revives.
const reviveEvery = time.Second

func (c *core) offerInterest(now time.Time, p *plan) {
	// A throttled revive is re-armed below if it is still wanted; one left
	// armed after its time, with nothing to revive, would wake the loop
	// at once, forever.
	c.reviveAt = time.Time{}
	if !c.connected {
		return
	}
	n := c.launchable(now)
	switch {
	case n > 0 && (c.suppressed || n > c.prevLaunchable):
		if !c.lastRevive.IsZero() && now.Before(c.lastRevive.Add(reviveEvery)) {
			c.reviveAt = c.lastRevive.Add(reviveEvery)
			return // prevLaunchable kept, so the revive happens then
		}
		p.revive = true
		c.suppressed = false
		c.lastRevive = now
		c.reviveAt = time.Time{}
		c.gen++
	case n == 0 && !c.suppressed && !c.holdingWithDemand(now):
		p.suppress = true
		c.suppressed = true
		c.reviveAt = time.Time{}
		c.gen++
	}
	c.prevLaunchable = n
}

func (c *core) queueEntry(now time.Time, as *appState) QueueEntry {
	q := QueueEntry{AppID: as.id, Count: as.need, Delay: as.delay, LastRejection: as.rejection, Reason: as.reason}
	if as.app != nil {
		q.AppVersion = as.app.Version
	}
	if now.Before(as.backoffUntil) {
		q.BackoffUntil = as.backoffUntil
	}
	if as.constraintsErr != nil {
		q.Reason = as.constraintsErr.Error()
	} else if q.Reason == "" && q.Count > 0 && now.Before(c.settleUntil) {
		q.Reason = "launches held until reconciliation after subscribing settles"
	} else if q.Reason == "" && q.Count > 0 && as.app != nil && as.rejection.ProcessedOffers > 0 {
		r := requestFor(as.app, nil, &c.cfg)
		if lack := c.largest.Lacks(&r); lack != "" {
			q.Reason = "no agent has offered enough: " + lack
		}
	}
	if q.Count == 0 {
		q.Delay, q.BackoffUntil, q.LastRejection, q.Reason = 0, time.Time{}, offers.Summary{}, ""
	}
	return q
}

func (c *core) publishQueues(now time.Time) {
	for _, as := range c.appList {
		if as.gone {
			continue
		}
		// An app with nothing queued before or now has nothing to say: its
		// entry would be a zero count either way. Skipping it keeps a step's
		// cost in the apps that wait, not in every app (10,000 apps made
		// this loop 40% of the scheduler's CPU).
		if as.need == 0 && as.queue.Count == 0 {
			continue
		}
		q := c.queueEntry(now, as)
		if !queueEqual(q, as.queue) {
			as.queue = q
			c.gen++
			c.pub(Event{Type: EventQueue, At: now, Queue: &q})
		}
	}
}

func queueEqual(a, b QueueEntry) bool {
	return a.AppID == b.AppID && a.AppVersion == b.AppVersion && a.Count == b.Count &&
		a.Delay == b.Delay && a.BackoffUntil.Equal(b.BackoffUntil) && a.Reason == b.Reason &&
		summaryEqual(a.LastRejection, b.LastRejection)
}

func summaryEqual(a, b offers.Summary) bool {
	if a.ProcessedOffers != b.ProcessedOffers || a.UnusedOffers != b.UnusedOffers || len(a.Reasons) != len(b.Reasons) {
		return false
	}
	for i := range a.Reasons {
		if a.Reasons[i] != b.Reasons[i] {
			return false
		}
	}
	return true
}

// nextWake is when the loop must step even if no input arrives.
func (c *core) nextWake() time.Time {
	at, _ := c.nextWakeWhy()
	return at
}

// nextWakeWhy is nextWake with the name of the wake-up that sets it. Every
// wake-up here must be advanced or cleared by the step it causes: one left
// in the past makes armTimer fire at once, forever, and the loop spins a
// core (TestIdleLoopSleeps names the one that did).
func (c *core) nextWakeWhy() (time.Time, string) {
	var next time.Time
	var why string
	var whyApp *appState // the name is built for the winner only: this runs every step, for every app
	add := func(t time.Time, name string, as *appState) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next, why, whyApp = t, name, as
		}
	}
	add(c.nextUnreach, "unreachable deadline", nil)
	add(c.reviveAt, "throttled revive", nil)
	if c.connected {
		add(c.nextKill, "kill retry", nil)
		if len(c.recon.pending) > 0 {
			add(c.recon.next, "explicit reconciliation retry", nil)
		}
		add(c.recon.nextImplicit, "implicit reconciliation", nil)
		if len(c.unreachable) > 0 {
			add(c.nextUnreachRecon, "unreachable reconciliation", nil)
		}
	}
	add(c.settleUntil, "reconciliation settle", nil)
	for _, as := range c.appList {
		if as.gone {
			continue
		}
		add(as.next, "decision", as)
		if as.need > 0 {
			add(as.backoffUntil, "backoff", as)
		}
		if as.failures > 0 {
			add(as.resetAt, "backoff reset", as)
		}
	}
	if whyApp != nil {
		why = "app " + whyApp.id + ": " + why
	}
	return next, why
}

// ---- offers ----

func (c *core) handleOffers(now time.Time, mos []mesos.Offer, p *plan) {
	if len(mos) == 0 {
		return
	}
	ofs := make([]offers.Offer, len(mos))
	for i := range mos {
		ofs[i] = offers.FromMesos(&mos[i])
		c.largest.Grow(&ofs[i])
		c.agents[ofs[i].AgentID] = agentInfo{host: ofs[i].Hostname, attrs: ofs[i].Attributes, url: agentURL(mos[i].URL)}
	}
	for _, ts := range c.tasks {
		// Adopted tasks learn their host from the first offer of their agent.
		if ts.t.Host == "" {
			if ai, ok := c.agents[ts.t.AgentID]; ok {
				t := ts.t
				t.Host = ai.host
				ts.t = t
				c.touch(t.AppID)
				ts.attrs = ai.attrs
				c.placedValid = false
			}
		}
	}

	var reqs []offers.Request
	var reqApp []*appState
	if !now.Before(c.settleUntil) {
		for _, id := range slices.Sorted(maps.Keys(c.apps)) {
			as := c.apps[id]
			if as.app == nil || as.need <= 0 || as.constraintsErr != nil || now.Before(as.backoffUntil) {
				continue
			}
			base := requestFor(as.app, as.constraints, &c.cfg)
			// Waiting instances stay a count: only as many requests as the
			// offers could hold are built, plus one that cannot fit, so an
			// app that keeps waiting gets its rejection summary. 10^9
			// instances on three agents cost what fits on three agents.
			n := min(as.need, offers.Fits(ofs, &base)+1)
			for i := 0; i < n; i++ {
				r := base
				r.ID = strconv.Itoa(len(reqs))
				reqs = append(reqs, r)
				reqApp = append(reqApp, as)
			}
		}
	}
	if len(reqs) == 0 {
		ids := make([]string, len(ofs))
		for i, o := range ofs {
			ids[i] = o.ID
		}
		p.declines = append(p.declines, declineOp{offerIDs: ids, refuse: c.refuse(now)})
		return
	}
	res := offers.Place(ofs, reqs, c.placedTasks(), c.cfg.Placement)

	byOffer := map[string]int{}
	for _, pl := range res.Placements {
		i, _ := strconv.Atoi(pl.Request.ID)
		as := reqApp[i]
		if as.app.Pod != nil {
			c.launchPod(now, as, pl, p, byOffer)
			continue
		}
		id := NewTaskID(as.id, c.rand)
		if as.tmplFor != as.app {
			as.tmpl, as.tmplFor = newTaskTmpl(as.app), as.app
		}
		ports := portsByIndex(as.tmpl.ports, pl.Ports)
		ts := &taskState{t: Task{
			ID: id, AppID: as.id, AppVersion: as.app.Version, AgentID: pl.AgentID, Host: pl.Hostname,
			Ports: ports, State: mesos.TASK_STAGING, StagedAt: now,
		}, attrs: c.agents[pl.AgentID].attrs}
		if len(as.app.ReadinessChecks) > 0 {
			ts.t.Ready = new(bool)
		}
		ts.healthChecks(as.app, &ts.t)
		c.addTask(as, ts)
		c.recordAdded(ts)
		as.need--
		as.rejection = offers.Summary{}
		ti := buildTaskInfo(as.app, launchSpec{TaskID: id, AgentID: pl.AgentID, Host: pl.Hostname,
			Ports: ports, Resources: pl.Resources, KillGrace: c.killGrace(as.app), Tmpl: as.tmpl})
		l := p.launchFor(pl.OfferID, byOffer)
		l.tasks = append(l.tasks, ti)
		l.apps = append(l.apps, as.app)
		c.pub(Event{Type: EventTask, At: now, Task: taskPtr(ts.t)})
	}
	for rid, sum := range res.Unplaced {
		i, err := strconv.Atoi(rid)
		if err != nil || i < 0 || i >= len(reqApp) {
			continue
		}
		reqApp[i].rejection = sum
	}
	if len(res.UnusedOffers) > 0 {
		p.declines = append(p.declines, declineOp{offerIDs: res.UnusedOffers, refuse: c.refuse(now)})
	}
	c.prevLaunchable = c.launchable(now)
	c.publishQueues(now)
	if len(res.Placements) > 0 {
		c.log.WithFields(logrus.Fields{"launched": len(res.Placements), "offers": len(ofs), "unused": len(res.UnusedOffers)}).Debug("offers used")
	}
}

// refuse is how long declined offers stay away: briefly while something
// waits (new capacity may fit it), long when nothing does.
func (c *core) refuse(now time.Time) time.Duration {
	if c.launchable(now) > 0 || now.Before(c.settleUntil) {
		return c.cfg.DeclineRefuseWaiting
	}
	return c.cfg.DeclineRefuse
}

func (c *core) placedTasks() []offers.Placed {
	if c.placedValid {
		return c.placed
	}
	c.placed = c.placed[:0]
	for _, ts := range c.tasks {
		if !ts.t.Active() || ts.t.AgentID == "" {
			continue
		}
		c.placed = append(c.placed, offers.Placed{App: ts.t.AppID, AgentID: ts.t.AgentID, Hostname: ts.t.Host, Attributes: ts.attrs})
	}
	c.placedValid = true
	return c.placed
}

func requestFor(app *appspec.App, cs []offers.Constraint, cfg *Config) offers.Request {
	r := offers.Request{App: app.ID, CPUs: app.CPUs, Mem: app.Mem, Disk: app.Disk, GPUs: app.GPUs, Role: cfg.Role, Constraints: cs,
		AcceptedRoles: acceptedRoles(app, cfg.Role, cfg.AcceptedRolesDefault)}
	for _, p := range app.PortList() {
		if p.HostPort != 0 {
			r.HostPorts = append(r.HostPorts, uint64(p.HostPort))
		} else {
			r.Ports++
		}
	}
	return r
}

// portsByIndex puts a placement's ports (the fixed host ports first, then
// the dynamic ones, offers.Placement's order) in the app's port index
// order, so PORT<i> and port mapping i get the port asked for at index i.
func portsByIndex(ps []appspec.Port, placed []uint64) []uint64 {
	fixed := 0
	for _, p := range ps {
		if p.HostPort != 0 {
			fixed++
		}
	}
	if fixed == 0 || fixed == len(ps) || len(placed) != len(ps) {
		return placed
	}
	out := make([]uint64, len(ps))
	f, d := 0, fixed
	for i, p := range ps {
		if p.HostPort != 0 {
			out[i] = placed[f]
			f++
		} else {
			out[i] = placed[d]
			d++
		}
	}
	return out
}

// launchFailed drops a task that was placed but not launched (its
// secrets did not resolve, or ACCEPT failed): it is forgotten and its app
// waits again, with backoff when the app is to blame.
func (c *core) launchFailed(now time.Time, taskID string, reason string, appFault bool) {
	ts := c.tasks[taskID]
	if ts == nil {
		return
	}
	as := c.apps[ts.t.AppID]
	if as != nil && as.app != nil {
		as.reason = reason
		if appFault {
			c.fail(now, as)
		}
	}
	t := ts.t
	t.State = mesos.TASK_DROPPED
	t.Message = reason
	c.setTask(as, ts, t)
	c.removeTask(now, ts)
}

// launched clears a launch problem once a launch of the app went out.
func (c *core) launched(appID string) {
	if as := c.apps[appID]; as != nil && as.reason != "" {
		as.reason = ""
		c.gen++
	}
}

// agentURL turns an offer's agent URL into http(s)://host:port, preferring
// the IP Mesos reports over the hostname.
func agentURL(u *mesos.URL) string {
	if u == nil {
		return ""
	}
	host := u.Address.GetIP()
	if host == "" {
		host = u.Address.GetHostname()
	}
	if host == "" || u.Address.Port == 0 {
		return ""
	}
	scheme := u.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(int(u.Address.Port)))
}
