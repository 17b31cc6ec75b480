package framework

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/store"
)

// TaskStore keeps a record of every task the scheduler knows, so that a
// new leader (Restore) knows each task's agent and version before Mesos
// answers reconciliation: with only the task id it would take an adopted
// task for the app's current version, and a rolling upgrade interrupted
// by the failover would count old tasks as new. store.Store satisfies it.
type TaskStore interface {
	PutTask(ctx context.Context, t store.TaskRecord) error
	DeleteTask(ctx context.Context, appID, taskID string) error
	ListAllTasks(ctx context.Context) ([]store.TaskRecord, error)
}

// recordOp is one pending write of a task record: a put of rec, or its
// deletion.
type recordOp struct {
	rec store.TaskRecord
	del bool
}

// recordChanged says whether a task change changes its record.
func recordChanged(a, b Task) bool {
	return a.State != b.State || a.AgentID != b.AgentID || a.AppVersion != b.AppVersion
}

func recordOf(t Task) store.TaskRecord {
	return store.TaskRecord{TaskID: t.ID, AppID: t.AppID, AgentID: t.AgentID, AppVersion: t.AppVersion, State: t.State.String(),
		Host: t.Host, Ports: append([]uint64(nil), t.Ports...), StagedAt: t.StagedAt, StartedAt: t.StartedAt}
}

// persister writes task records off the loop. The loop only merges ops
// into a map keyed by task id, so a burst of updates for one task costs
// one write, memory is bounded by the number of tasks, and the loop never
// waits on the store. Batches are written one after another (each spread
// over a few goroutines), so the writes of one task keep their order.
type persister struct {
	ts      TaskStore
	log     *logrus.Entry
	timeout time.Duration
	workers int

	mu      sync.Mutex
	cond    *sync.Cond
	pending map[string]recordOp
	// spare and ops are the previous batch's map and slice, emptied and
	// used again: regrowing them for each batch was a fifth of what the
	// record path allocated. Only run touches them.
	spare  map[string]recordOp
	ops    []recordOp
	busy   bool // a batch is being written
	closed bool
	kick   chan struct{}
}

// persistWorkers bounds concurrent writes to the store: enough to hide
// ZooKeeper's round trips, few enough not to crowd it.
const persistWorkers = 4

// persistKeep is the largest batch whose map and slice are kept for the
// next: a map keeps its size once grown, and walking or clearing one
// sized for a burst of 100,000 records would cost every small batch after.
const persistKeep = 4096

// persistShare is the smallest share of a batch worth its own goroutine.
const persistShare = 32

func newPersister(ts TaskStore, log *logrus.Entry, timeout time.Duration) *persister {
	p := &persister{ts: ts, log: log, timeout: timeout, workers: persistWorkers,
		pending: map[string]recordOp{}, spare: map[string]recordOp{}, kick: make(chan struct{}, 1)}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *persister) enqueue(ops []recordOp) {
	p.mu.Lock()
	for _, op := range ops {
		p.pending[op.rec.TaskID] = op
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run writes batches until ctx ends. Writes still pending then are
// dropped (Run gives them one action timeout after it returns); the next
// leader's reconciliation corrects what its records miss.
func (p *persister) run(ctx context.Context) {
	defer func() {
		p.mu.Lock()
		p.closed, p.busy = true, false
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		for ctx.Err() == nil {
			p.mu.Lock()
			batch := p.pending
			if len(batch) == 0 {
				p.busy = false
				p.cond.Broadcast()
				p.mu.Unlock()
				break
			}
			p.pending, p.spare = p.spare, nil
			p.busy = true
			p.mu.Unlock()
			p.write(ctx, batch)
			p.spare = map[string]recordOp{}
			if len(batch) <= persistKeep {
				clear(batch)
				p.spare = batch
			}
		}
	}
}

// write spreads a batch over up to p.workers goroutines, each with its
// own share: a channel hand-off per op cost more than a memory store's write.
func (p *persister) write(ctx context.Context, batch map[string]recordOp) {
	ops := p.ops[:0]
	if cap(ops) < len(batch) {
		// At its size at once: growing by append copied the ops again
		// and again, 2% of the CPU of launching 100,000 tasks.
		ops = make([]recordOp, 0, len(batch))
	}
	for _, op := range batch {
		ops = append(ops, op)
	}
	defer func() {
		clear(ops)
		p.ops = nil
		if cap(ops) <= persistKeep {
			p.ops = ops[:0]
		}
	}()
	n := min(p.workers, (len(ops)+persistShare-1)/persistShare)
	if n <= 1 {
		p.writeShare(ctx, ops)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		share := ops[i*len(ops)/n : (i+1)*len(ops)/n]
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.writeShare(ctx, share)
		}()
	}
	wg.Wait()
}

// writeShare writes ops one after another under deadlines shared by
// consecutive writes: a context and its timer per write were a sixth of
// what the record path allocated. Each write starts with at least half
// of p.timeout left and has at most all of it.
func (p *persister) writeShare(ctx context.Context, ops []recordOp) {
	for len(ops) > 0 {
		ops = p.writeUntil(ctx, ops)
	}
}

// writeUntil writes ops under one deadline, p.timeout from now, until
// less than half of it is left, and returns the ops not written.
func (p *persister) writeUntil(ctx context.Context, ops []recordOp) []recordOp {
	until := time.Now().Add(p.timeout)
	cctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	for i, op := range ops {
		if i > 0 && time.Until(until) < p.timeout/2 {
			return ops[i:]
		}
		p.writeOne(cctx, op)
	}
	return nil
}

// writeOne writes one record under ctx's deadline. A failure is logged and dropped: the task's
// next change writes it again, and reconciliation after a failover
// corrects what a missing or stale record gets wrong.
func (p *persister) writeOne(ctx context.Context, op recordOp) {
	defer func() {
		if r := recover(); r != nil {
			p.log.WithField("panic", fmt.Sprint(r)).WithField("stack", string(debug.Stack())).Error("task record write panicked")
		}
	}()
	var err error
	if op.del {
		err = p.ts.DeleteTask(ctx, op.rec.AppID, op.rec.TaskID)
		if errors.Is(err, store.ErrNotFound) {
			// Already gone (deleted with its app, or never written before
			// the task ended): what the delete wanted holds.
			err = nil
		}
	} else {
		err = p.ts.PutTask(ctx, op.rec)
	}
	if err != nil {
		p.log.WithError(err).WithFields(logrus.Fields{"task": op.rec.TaskID, "app": op.rec.AppID, "delete": op.del}).Warn("writing task record failed")
	}
}

// wait returns once every op enqueued before it was written (or run ended).
func (p *persister) wait() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && (len(p.pending) > 0 || p.busy) {
		p.cond.Wait()
	}
}

// Restore loads the task records of Config.Tasks, so that this replica,
// about to lead, knows every recorded task's agent and version before
// Mesos answers reconciliation. Call it after every app was put (PutApp)
// and before Run: records of unknown apps and of terminal tasks are
// deleted as stale, except that while HoldUnknown is on (the store held
// apps it could not decode) records of unknown apps are kept, since their
// app may be one of those. Records that cannot be decoded are skipped and
// returned in a *store.BrokenError beside the count. Restored tasks count as Adopted; the explicit
// reconciliation after SUBSCRIBED brings their state up to date and drops
// those Mesos no longer knows. It returns how many tasks it restored;
// without a TaskStore it does nothing.
func (s *Scheduler) Restore(ctx context.Context) (int, error) {
	if s.cfg.Tasks == nil {
		return 0, nil
	}
	recs, err := s.cfg.Tasks.ListAllTasks(ctx)
	broken, partial := store.BrokenItems(err)
	if err != nil && !partial {
		return 0, fmt.Errorf("framework: restoring task records: %w", err)
	}
	for _, b := range broken {
		// Reconciliation adopts the task (without its ports until Mesos
		// says) or, when its app is unknown, judges it as any other.
		s.cfg.Log.WithError(b.Err).WithField("record", b.Key).Error("skipping a task record this version cannot decode")
	}
	var n int
	var stale []store.TaskRecord
	s.locked(func(c *core, now time.Time) { n, stale = c.restore(now, recs) })
	for _, r := range stale {
		if err := s.cfg.Tasks.DeleteTask(ctx, r.AppID, r.TaskID); err != nil {
			return n, fmt.Errorf("framework: deleting stale task record %s: %w", r.TaskID, err)
		}
	}
	s.wake()
	if partial {
		return n, err
	}
	return n, nil
}

func (c *core) restore(now time.Time, recs []store.TaskRecord) (n int, stale []store.TaskRecord) {
	for _, r := range recs {
		if c.tasks[r.TaskID] != nil {
			continue // already known: what the loop saw is newer
		}
		as := c.apps[r.AppID]
		if r.State == stateReserved {
			if !c.restoreReservation(as, r) {
				stale = append(stale, r)
			}
			continue
		}
		v, ok := mesos.TaskState_value[r.State]
		state := mesos.TaskState(v)
		if ok && !isTerminal(state) && (as == nil || as.app == nil) && c.holdUnknown {
			// Its app may be one the store could not give: keep the record.
			c.log.WithFields(logrus.Fields{"task": r.TaskID, "app": r.AppID}).Warn("keeping the record of a task of an app this leader does not know")
			continue
		}
		if !ok || isTerminal(state) || as == nil || as.app == nil {
			c.log.WithFields(logrus.Fields{"task": r.TaskID, "app": r.AppID, "state": r.State}).Info("dropping stale task record")
			stale = append(stale, r)
			continue
		}
		ai := c.agents[r.AgentID]
		host, staged := r.Host, r.StagedAt
		if host == "" {
			host = ai.host
		}
		if staged.IsZero() {
			staged = now
		}
		ts := &taskState{t: Task{
			ID: r.TaskID, AppID: r.AppID, AppVersion: r.AppVersion, AgentID: r.AgentID, Host: host,
			Ports: append([]uint64(nil), r.Ports...), State: state, StagedAt: staged, StartedAt: r.StartedAt, Adopted: true,
		}, attrs: ai.attrs}
		if state == mesos.TASK_UNREACHABLE {
			if len(c.unreachable) == 0 {
				c.nextUnreachRecon = now.Add(c.cfg.UnreachableReconcile)
			}
			ts.t.UnreachableSince = now
			c.unreachable[r.TaskID] = ts
			c.armUnreach(as, ts)
		}
		if pod := podOf(as); pod != nil {
			c.pods[r.TaskID] = newPodInstance(pod, r.TaskID)
			ts.t.Healthy = podStartHealth(pod)
		}
		c.addTask(as, ts)
		c.adoptReservation(ts, state != mesos.TASK_STAGING)
		if c.connected {
			// Restored while leading: the SUBSCRIBED round is over, so
			// reconcile these at the next retry.
			for _, id := range c.mesosTaskIDs(ts) {
				c.recon.pending[id] = r.AgentID
			}
			if c.recon.next.IsZero() {
				c.recon.delay = c.cfg.ReconcileRetry
				c.recon.next = now
			}
		}
		n++
	}
	return n, stale
}
