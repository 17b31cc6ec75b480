package framework

import (
	"context"
	"fmt"
	"math/rand"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// Scheduler is the scheduler core: it keeps what runs on Mesos equal to the
// apps it was given. See doc.go.
type Scheduler struct {
	cfg Config
	bus bus

	mu sync.Mutex // guards c; held for one step at a time, never during I/O
	c  *core

	running atomic.Bool
	poke    chan struct{}
	syncReq chan chan struct{}

	// Acknowledgements go out on worker goroutines: one HTTP round trip
	// per update would otherwise bound the whole loop (10,000 tasks make
	// 20,000 updates). Order does not matter: an agent sends a task's next
	// update only after the previous one was acknowledged.
	ackCh       chan ackOp // set by Run, used by its goroutine only
	acksPending sync.WaitGroup
	persist     *persister // set by Run when Config.Tasks is; used by its goroutine only
	// recSpare is the record slice of the previous turn, handed back to
	// the core once the persister copied it out: regrowing c.recOps each
	// turn showed in the allocation profile. Run's goroutine only.
	recSpare []recordOp
	full     atomic.Pointer[fullSnapshot]
	fullMu   sync.Mutex // one builder of full at a time
}

func (cfg Config) withDefaults() Config {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewSource(cfg.Clock.Now().UnixNano()))
	}
	if cfg.Log == nil {
		cfg.Log = logging.Component(logging.Discard(), "framework")
	}
	if cfg.Role == "" {
		cfg.Role = "*"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.MaxLaunchDelay, time.Hour)
	def(&cfg.BackoffResetAfter, time.Minute)
	def(&cfg.ReconcileInterval, 10*time.Minute)
	def(&cfg.ReconcileRetry, 5*time.Second)
	def(&cfg.ReconcileRetryMax, time.Minute)
	def(&cfg.ReconcileSettle, 2*time.Second)
	def(&cfg.UnreachableReconcile, 5*time.Second)
	def(&cfg.KillRetry, 10*time.Second)
	def(&cfg.StagingTimeout, 5*time.Minute)
	def(&cfg.DeclineRefuse, 120*time.Second)
	def(&cfg.DeclineRefuseWaiting, 5*time.Second)
	def(&cfg.ActionTimeout, 10*time.Second)
	if cfg.AckWorkers <= 0 {
		cfg.AckWorkers = 8
	}
	if cfg.ReconcileRetryMax < cfg.ReconcileRetry {
		cfg.ReconcileRetryMax = cfg.ReconcileRetry
	}
	return cfg
}

// New returns a Scheduler; it starts no goroutine (Run does the work).
func New(cfg Config) *Scheduler {
	cfg = cfg.withDefaults()
	s := &Scheduler{cfg: cfg, poke: make(chan struct{}, 1), syncReq: make(chan chan struct{})}
	s.c = newCore(cfg, s.bus.publish)
	return s
}

// Run drives the scheduler from the connection's inputs until ctx ends
// (returning ctx.Err()) or in is closed (returning nil). Apps and known
// tasks survive across Runs of the same Scheduler; each SUBSCRIBED starts
// reconciliation that brings them up to date.
func (s *Scheduler) Run(ctx context.Context, in <-chan Input, act Actions) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	defer s.locked(func(c *core, _ time.Time) { c.connected = false; c.gen++ })

	s.ackCh = make(chan ackOp, 1024)
	var workers sync.WaitGroup
	for range s.cfg.AckWorkers {
		workers.Add(1)
		go s.ackWorker(ctx, act, &workers)
	}
	defer func() {
		close(s.ackCh)
		workers.Wait()
	}()

	if s.cfg.Tasks != nil {
		// The persister outlives ctx by at most one action timeout: when
		// Run ends on a graceful stop the replica still leads, and records
		// of tasks launched in the last steps would otherwise be lost (the
		// next leader would adopt those tasks without their ports).
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.persist = newPersister(s.cfg.Tasks, s.cfg.Log, s.cfg.ActionTimeout)
		done := make(chan struct{})
		go func() { defer close(done); s.persist.run(pctx) }()
		defer func() {
			deadline := time.AfterFunc(s.cfg.ActionTimeout, cancel)
			s.persist.wait()
			deadline.Stop()
			cancel()
			<-done
		}()
	}

	timer := s.cfg.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	s.iterate(ctx, act, nil)
	for {
		s.armTimer(timer)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case x, ok := <-in:
			if !ok {
				return nil
			}
			s.iterate(ctx, act, &x)
		case <-s.poke:
			s.iterate(ctx, act, nil)
		case <-timer.C():
			s.iterate(ctx, act, nil)
		case done := <-s.syncReq:
			s.iterate(ctx, act, nil)
			s.acksPending.Wait()
			if s.persist != nil {
				s.persist.wait()
			}
			close(done)
		}
	}
}

func (s *Scheduler) armTimer(t clock.Timer) {
	var next time.Time
	var now time.Time
	s.locked(func(c *core, n time.Time) { next, now = c.nextWake(), n })
	d := time.Hour
	if !next.IsZero() {
		d = max(next.Sub(now), 0)
	}
	t.Stop()
	// Drain a tick that fired while the loop was busy: the step that
	// follows any input already covered it.
	select {
	case <-t.C():
	default:
	}
	t.Reset(d)
}

func (s *Scheduler) locked(f func(c *core, now time.Time)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.c, s.cfg.Clock.Now())
}

// iterate is one turn of the loop: decide under the lock, then perform.
// A panic is recovered here, at the loop's edge, so one bad input does
// not stop scheduling; its stack is logged.
func (s *Scheduler) iterate(ctx context.Context, act Actions, in *Input) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.WithField("panic", fmt.Sprint(r)).WithField("stack", string(debug.Stack())).Error("scheduler step panicked")
		}
	}()
	var p plan
	s.locked(func(c *core, now time.Time) {
		if in != nil {
			c.handleInput(now, *in, &p)
		}
		c.step(now, &p)
		p.records, c.recOps = c.recOps, s.recSpare
	})
	s.recSpare = nil
	if !p.empty() {
		s.perform(ctx, act, &p)
	}
	if cap(p.records) <= persistKeep {
		// perform's enqueue copied every op (the persister keeps its own
		// map), so the slice is free again; a burst's is let go.
		clear(p.records)
		s.recSpare = p.records[:0]
	}
}

func (s *Scheduler) call(ctx context.Context, what string, f func(ctx context.Context) error) error {
	return s.callWith(ctx, what, nil, f)
}

func (s *Scheduler) callWith(ctx context.Context, what string, fields logrus.Fields, f func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ActionTimeout)
	defer cancel()
	err := f(cctx)
	if err != nil {
		s.cfg.Log.WithError(err).WithFields(fields).WithField("call", what).Warn("call failed")
	}
	return err
}

// perform carries out a plan. Failures are logged and repaired by the
// state machine: acks are re-sent by the agent, kills retried, failed
// launches requeued, reconciliation retried.
func (s *Scheduler) perform(ctx context.Context, act Actions, p *plan) {
	if len(p.records) > 0 && s.persist != nil {
		s.persist.enqueue(p.records)
	}
	for _, a := range p.acks {
		s.acksPending.Add(1)
		select {
		case s.ackCh <- a:
		case <-ctx.Done():
			s.acksPending.Done()
		}
	}
	for _, k := range p.kills {
		var agent *mesos.AgentID
		if k.agentID != "" {
			agent = &mesos.AgentID{Value: k.agentID}
		}
		_ = s.call(ctx, "kill", func(ctx context.Context) error {
			return act.Kill(ctx, mesos.TaskID{Value: k.taskID}, agent, k.policy)
		})
	}
	if p.revive {
		_ = s.call(ctx, "revive", func(ctx context.Context) error { return act.Revive(ctx, []string{s.cfg.Role}) })
	}
	for _, l := range p.launches {
		s.launch(ctx, act, l)
	}
	for _, d := range p.declines {
		ids := make([]mesos.OfferID, len(d.offerIDs))
		for i, id := range d.offerIDs {
			ids[i] = mesos.OfferID{Value: id}
		}
		_ = s.call(ctx, "decline", func(ctx context.Context) error { return act.Decline(ctx, ids, refuseFilter(d.refuse)) })
	}
	for _, r := range p.reconciles {
		_ = s.call(ctx, "reconcile", func(ctx context.Context) error { return act.Reconcile(ctx, r) })
	}
	if p.suppress {
		_ = s.call(ctx, "suppress", func(ctx context.Context) error { return act.Suppress(ctx, []string{s.cfg.Role}) })
	}
}

// ackWorker sends acknowledgements until Run closes ackCh, as many at a
// time as are waiting (up to maxAckBatch) when Actions can pipeline them.
// A failed one is only logged: the agent re-sends the update, which is
// acknowledged again.
func (s *Scheduler) ackWorker(ctx context.Context, act Actions, wg *sync.WaitGroup) {
	defer wg.Done()
	ba, _ := act.(BatchAcker)
	batch := make([]ackOp, 0, maxAckBatch)
	for a := range s.ackCh {
		batch = append(batch[:0], a)
	drain:
		for ba != nil && len(batch) < maxAckBatch {
			select {
			case a, ok := <-s.ackCh:
				if !ok {
					break drain
				}
				batch = append(batch, a)
			default:
				break drain
			}
		}
		s.acknowledge(ctx, act, ba, batch)
	}
}

// maxAckBatch bounds one pipelined write; 64 small calls are ~10 KiB.
const maxAckBatch = 64

func (s *Scheduler) acknowledge(ctx context.Context, act Actions, ba BatchAcker, batch []ackOp) {
	defer s.acksPending.Add(-len(batch))
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.WithField("panic", fmt.Sprint(r)).WithField("stack", string(debug.Stack())).Error("acknowledgement panicked")
		}
	}()
	if ba == nil {
		a := batch[0]
		_ = s.callWith(ctx, "acknowledge", logrus.Fields{"task": a.taskID}, func(ctx context.Context) error {
			return act.Acknowledge(ctx, mesos.AgentID{Value: a.agentID}, mesos.TaskID{Value: a.taskID}, a.uuid)
		})
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ActionTimeout)
	defer cancel()
	acks := make([]Ack, len(batch))
	for i, a := range batch {
		acks[i] = Ack{AgentID: a.agentID, TaskID: a.taskID, UUID: a.uuid}
	}
	for i, err := range ba.AcknowledgeAll(cctx, acks) {
		if err != nil {
			s.cfg.Log.WithError(err).WithField("task", batch[i].taskID).WithField("call", "acknowledge").Warn("call failed")
		}
	}
}

func refuseFilter(d time.Duration) *mesos.Filters {
	secs := d.Seconds()
	return &mesos.Filters{RefuseSeconds: &secs}
}

// hasSecrets says whether an app needs the EnvResolver at all.
func hasSecrets(app *appspec.App) bool {
	if envHasSecrets(app.Env) {
		return true
	}
	if app.Pod != nil {
		for _, c := range app.Pod.Containers {
			if envHasSecrets(c.Environment) {
				return true
			}
		}
	}
	return false
}

func envHasSecrets(env map[string]appspec.EnvValue) bool {
	for _, v := range env {
		if v.Secret != "" {
			return true
		}
	}
	return false
}

func (s *Scheduler) launch(ctx context.Context, act Actions, l launchOp) {
	tasks := l.tasks[:0:0]
	if s.cfg.ResolveEnv == nil {
		tasks = l.tasks
	} else {
		for i, ti := range l.tasks {
			app := l.apps[i]
			if !hasSecrets(app) {
				tasks = append(tasks, ti)
				continue
			}
			var vars []mesos.Environment_Variable
			err := s.callWith(ctx, "resolve env", logrus.Fields{"app": app.ID, "task": ti.TaskID.Value}, func(ctx context.Context) error {
				var err error
				vars, err = s.cfg.ResolveEnv(ctx, app, ti.TaskID.Value)
				return err
			})
			if err != nil {
				reason := fmt.Sprintf("framework: resolving the environment of app %s: %v", app.ID, err)
				s.locked(func(c *core, now time.Time) { c.launchFailed(now, ti.TaskID.Value, reason, true) })
				// The queue's reason is published by a step; without a
				// wake the next step would come only at the backoff's end,
				// which places the instance again and clears the reason.
				s.wake()
				continue
			}
			env := &mesos.Environment{Variables: append(append([]mesos.Environment_Variable(nil), ti.Command.Environment.GetVariables()...), vars...)}
			cmd := *ti.Command
			cmd.Environment = env
			ti.Command = &cmd
			tasks = append(tasks, ti)
		}
	}
	ops, groups := s.groupOps(ctx, l)
	pre := residentPre(l.resident, tasks)
	offer := []mesos.OfferID{{Value: l.offerID}}
	if len(tasks) == 0 && len(ops) == 0 && len(pre) == 0 {
		// Every task of this offer was dropped; hand the offer back.
		_ = s.call(ctx, "decline", func(ctx context.Context) error {
			return act.Decline(ctx, offer, refuseFilter(s.cfg.DeclineRefuseWaiting))
		})
		return
	}
	if len(tasks) > 0 {
		op := mesos.Offer_Operation{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: tasks}}
		ops = append([]mesos.Offer_Operation{op}, ops...)
	}
	// Reservations and volumes first: the LAUNCH uses what they make.
	ops = append(pre, ops...)
	err := s.callWith(ctx, "accept", logrus.Fields{"offer": l.offerID, "tasks": len(tasks), "groups": len(groups)}, func(ctx context.Context) error {
		return act.Accept(ctx, offer, ops, refuseFilter(s.cfg.DeclineRefuseWaiting))
	})
	s.locked(func(c *core, now time.Time) {
		for _, ti := range tasks {
			if err != nil {
				c.launchFailed(now, ti.TaskID.Value, fmt.Sprintf("framework: accepting offer %s: %v", l.offerID, err), false)
				continue
			}
			if id, ok := AppIDFromTaskID(ti.TaskID.Value); ok {
				c.launched(id)
			}
		}
		for _, inst := range groups {
			if err != nil {
				c.launchFailed(now, inst, fmt.Sprintf("framework: accepting offer %s: %v", l.offerID, err), false)
			} else if id, ok := PodIDFromInstanceID(inst); ok {
				c.launched(id)
			}
		}
	})
	s.wake() // publish what the launch changed in the queue
}

func (s *Scheduler) wake() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// PutApp creates or updates an app; app.ID, made canonical ("web" →
// "/web"), is its key. A different app.Version (a new spec, or a
// restart) replaces its tasks by a rolling upgrade within
// app.UpgradeStrategy (see rollDecision), followed through AppStatus; a
// newer version put during a roll takes over from where it is. The same
// version only changes what needs no new tasks (instances). The
// scheduler keeps its own copy.
func (s *Scheduler) PutApp(app appspec.App) {
	a := cloneApp(&app)
	a.ID = appspec.CanonicalID(a.ID)
	s.locked(func(c *core, now time.Time) { c.putApp(now, a) })
	s.wake()
}

// RemoveApp forgets an app and kills all its tasks.
func (s *Scheduler) RemoveApp(id string) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.removeApp(now, appspec.CanonicalID(id)) })
	s.wake()
	return err
}

// HoldUnknown tells the scheduler whether its apps are the complete
// desired state. While hold is true (the store could not be read, or some
// stored app could not be decoded), tasks of apps it does not know are
// kept running, never killed as unknown; their task records are kept too.
func (s *Scheduler) HoldUnknown(hold bool) {
	s.locked(func(c *core, now time.Time) { c.setHoldUnknown(now, hold) })
	s.wake()
}

// Scale sets an app's instances (same version: no task is replaced).
func (s *Scheduler) Scale(id string, instances int) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.scale(now, appspec.CanonicalID(id), instances) })
	s.wake()
	return err
}

// KillTasks kills tasks of an app so that they are replaced. Unknown
// task ids fail the whole call with ErrUnknownTask.
func (s *Scheduler) KillTasks(appID string, taskIDs []string) error {
	return s.killTasks(appID, taskIDs, -1)
}

// KillAndScale kills tasks of an app and sets its instances to instances
// in the same step, so that no replacement is launched between the two.
// The caller counts (package deploy stores the count before it calls);
// the scheduler takes the number as given. Unknown task ids fail the
// whole call with ErrUnknownTask and change nothing.
func (s *Scheduler) KillAndScale(appID string, taskIDs []string, instances int) error {
	if instances < 0 {
		return fmt.Errorf("framework: kill and scale %s to %d: instances must not be negative", appID, instances)
	}
	return s.killTasks(appID, taskIDs, instances)
}

func (s *Scheduler) killTasks(appID string, taskIDs []string, instances int) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.killTasks(now, appspec.CanonicalID(appID), taskIDs, instances) })
	s.wake()
	return err
}

// WipeTasks gives up the reservations and persistent volumes of the
// instances of these tasks (Marathon's wipe=true): once a task ended they
// are destroyed and unreserved at the next offer of their agent, and the
// instance, if still wanted, comes back as a new one elsewhere. It kills
// nothing: the caller kills the running tasks (KillTasks, KillAndScale).
// An id may also be the last task id of a suspended instance (SuspendedOf).
// Tasks of apps without persistent volumes have nothing to wipe. Unknown
// ids fail the whole call with ErrUnknownTask and change nothing.
func (s *Scheduler) WipeTasks(appID string, taskIDs []string) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.wipeTasks(appspec.CanonicalID(appID), taskIDs) })
	s.wake()
	return err
}

// ResetDelay clears an app's launch backoff (Marathon's DELETE
// /v2/queue/{id}/delay): waiting instances launch on the next offers.
func (s *Scheduler) ResetDelay(appID string) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.resetDelay(now, appspec.CanonicalID(appID)) })
	s.wake()
	return err
}

// SetReadiness records the result of a task's readiness check (the
// readiness package runs them). A task launched for an app with a
// readiness check is not ready until this says so: a rolling upgrade does
// not count it, discovery does not announce it. Unknown task ids fail with
// ErrUnknownTask; tasks without a check ignore it.
func (s *Scheduler) SetReadiness(taskID string, ready bool) error {
	var err error
	s.locked(func(c *core, now time.Time) { err = c.setReady(now, taskID, ready) })
	s.wake()
	return err
}

// Snapshot returns the current state; safe from any goroutine, also
// before and between Runs. It reflects every desired-state call that
// returned before it, and task state as of the loop's last step.
func (s *Scheduler) Snapshot() *Snapshot {
	snap := s.SnapshotByApp()
	key := weak.Make(snap)
	if f := s.full.Load(); f != nil && f.byApp == key {
		if full := f.full.Value(); full != nil {
			return full
		}
	}
	// The flat task list is built outside the scheduler's lock
	// (snapshot.go), once per generation: readers arriving together wait
	// for one of them rather than each copying every task.
	s.fullMu.Lock()
	defer s.fullMu.Unlock()
	if f := s.full.Load(); f != nil && f.byApp == key {
		if full := f.full.Value(); full != nil {
			return full
		}
	}
	full := snap.withTasks()
	f := &fullSnapshot{byApp: key, gen: snap.Generation, full: weak.Make(full)}
	if cur := s.full.Load(); cur == nil || cur.gen <= snap.Generation {
		s.full.Store(f) // a reader late with an older generation keeps the newer one
	}
	return full
}

// SnapshotByApp is Snapshot without the flat task list: Tasks is nil and
// each app's tasks are read with TasksOf. It costs only what changed
// since the last one (the apps a step touched), where Snapshot also
// copies every task once per generation; the API's lists read it.
func (s *Scheduler) SnapshotByApp() *Snapshot {
	var snap *Snapshot
	s.locked(func(c *core, now time.Time) { snap = c.snapshot(now) })
	return snap
}

// fullSnapshot is the last Snapshot and the SnapshotByApp it was built
// from, both weak: the flat copy is shared by the readers that hold it
// and freed after the last lets it go. Held by the scheduler, the copy a
// follower read once at its start (28 MB with 100,000 tasks) stayed for
// as long as no other reader asked for a newer one.
type fullSnapshot struct {
	byApp weak.Pointer[Snapshot]
	gen   uint64
	full  weak.Pointer[Snapshot]
}

// Sync waits until the running loop has handled every input received and
// every call made before it, performed the resulting actions, and stepped
// to the clock's current time. Tests use it to step a fake clock
// deterministically.
func (s *Scheduler) Sync(ctx context.Context) error {
	if !s.running.Load() {
		return ErrNotRunning
	}
	done := make(chan struct{})
	select {
	case s.syncReq <- done:
	case <-ctx.Done():
		return fmt.Errorf("framework: sync: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("framework: sync: %w", ctx.Err())
	}
}

// Subscribe returns a subscription whose channel holds up to buffer
// events. Publishing never blocks the scheduler: a subscriber that falls
// behind loses events and then receives an EventLagged marker, after
// which it should re-read a Snapshot.
func (s *Scheduler) Subscribe(buffer int) *Subscription {
	return s.bus.subscribe(buffer)
}

// AgentURL gives the HTTP endpoint of an agent seen in offers (for its
// /monitor/statistics), or false when none is known.
func (s *Scheduler) AgentURL(agentID string) (url string, ok bool) {
	s.locked(func(c *core, _ time.Time) {
		ai, found := c.agents[agentID]
		url, ok = ai.url, found && ai.url != ""
	})
	return url, ok
}

// residentPre are the reservation operations that go before a launch: a
// teardown's, and a new instance's only when its task is still launched
// (a task dropped for its secrets must not leave a reservation behind).
func residentPre(rs []residentOps, tasks []mesos.TaskInfo) []mesos.Offer_Operation {
	var out []mesos.Offer_Operation
	for _, r := range rs {
		keep := r.taskID == ""
		for i := 0; !keep && i < len(tasks); i++ {
			keep = tasks[i].TaskID.Value == r.taskID
		}
		if keep {
			out = append(out, r.ops...)
		}
	}
	return out
}
