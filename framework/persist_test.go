package framework

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/store"
)

func recordsByID(t *testing.T, ts TaskStore) map[string]store.TaskRecord {
	t.Helper()
	recs, err := ts.ListAllTasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.TaskRecord{}
	for _, r := range recs {
		out[r.TaskID] = r
	}
	return out
}

// TestTaskRecordsFollowTasks: records are written from the loop's changes
// and deleted with the task.
func TestTaskRecordsFollowTasks(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(nil, 0)
	h := newHarness(t, func(c *Config) { c.Tasks = st })
	h.s.PutApp(testApp("/web", 2))
	h.subscribe()
	ids := launchedIDs(h.offer("h1"))
	h.sync()
	recs := recordsByID(t, st)
	if len(recs) != 2 {
		t.Fatalf("%d records after launch, want 2: %v", len(recs), recs)
	}
	for _, id := range ids {
		r := recs[id]
		want := store.TaskRecord{TaskID: id, AppID: "/web", AgentID: "a-h1", AppVersion: "v1", State: "TASK_STAGING",
			Host: "h1", Ports: r.Ports, StagedAt: r.StagedAt}
		if !reflect.DeepEqual(r, want) || r.StagedAt.IsZero() {
			t.Errorf("record %+v, want %+v with a staging time", r, want)
		}
	}
	h.update(ids[0], mesos.TASK_RUNNING)
	if got := recordsByID(t, st)[ids[0]].State; got != "TASK_RUNNING" {
		t.Errorf("state recorded %s after RUNNING, want TASK_RUNNING", got)
	}
	h.update(ids[1], mesos.TASK_FAILED)
	if r, ok := recordsByID(t, st)[ids[1]]; ok {
		t.Errorf("record of a failed task kept: %+v", r)
	}
}

// TestRestoreAfterFailover: a new leader restored from the store knows
// which version and agent each task of an interrupted roll had, so the roll
// goes on instead of the old tasks passing for new ones.
func TestRestoreAfterFailover(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(nil, 0)
	app := rollApp(2, 1, 0, false)
	a := newHarness(t, func(c *Config) { c.Tasks = st })
	a.s.PutApp(app)
	a.subscribe()
	a.offer("h1")
	a.runAll(app.ID)
	app.Version = "v2"
	a.s.PutApp(app)
	a.sync()
	v2 := launchedIDs(a.offer("h2"))
	if len(v2) != 1 {
		t.Fatalf("roll launched %v, want one v2 task", v2)
	}
	before := map[string]Task{}
	for _, tk := range a.tasks(app.ID) {
		before[tk.ID] = tk
	}

	for _, restore := range []bool{true, false} {
		name := "restored"
		if !restore {
			name = "not restored"
		}
		t.Run(name, func(t *testing.T) {
			b := newHarness(t, func(c *Config) { c.Tasks = st })
			b.s.PutApp(app)
			if restore {
				n, err := b.s.Restore(context.Background())
				if err != nil || n != 3 {
					t.Fatalf("restore: %d, %v; want 3 tasks", n, err)
				}
			}
			b.subscribe()
			var asked []string
			for _, c := range b.rec.Of(CallReconcile) {
				for _, rt := range c.Reconcile {
					asked = append(asked, rt.TaskID.Value+"@"+rt.AgentID.GetValue())
				}
			}
			slices.Sort(asked)
			var want []string
			if restore {
				for id, tk := range before {
					want = append(want, id+"@"+tk.AgentID)
				}
				slices.Sort(want)
			}
			if !slices.Equal(asked, want) {
				t.Errorf("explicit reconciliation asked %v, want %v", asked, want)
			}
			// The master answers (implicit reconciliation, no uuid).
			for id, tk := range before {
				st := TestStatus(id, tk.AgentID, mesos.TASK_RUNNING, false)
				b.send(UpdateInput(st))
			}
			b.offer("h1", "h2")
			for _, tk := range b.tasks(app.ID) {
				if tk.AgentID != before[tk.ID].AgentID || tk.Host != before[tk.ID].Host {
					t.Errorf("task %s on %s/%s, want %s/%s", tk.ID, tk.AgentID, tk.Host, before[tk.ID].AgentID, before[tk.ID].Host)
				}
				if restore && tk.AppVersion != before[tk.ID].AppVersion {
					t.Errorf("task %s has version %s after failover, want %s", tk.ID, tk.AppVersion, before[tk.ID].AppVersion)
				}
				// DNS and the gateway need a task's ports; reconciliation
				// does not carry them, the records do.
				if restore && !slices.Equal(tk.Ports, before[tk.ID].Ports) {
					t.Errorf("task %s has ports %v after failover, want %v", tk.ID, tk.Ports, before[tk.ID].Ports)
				}
			}
			stat, _ := b.s.Snapshot().StatusOf(app.ID)
			if restore {
				// The roll goes on: one v2 task ran, so one v1 task goes.
				if stat.OldTasks != 2 || stat.Tasks != 1 || stat.Done {
					t.Errorf("status after restore %+v, want the roll going on (2 old, 1 new)", stat)
				}
				var killing []string
				for _, tk := range b.tasks(app.ID) {
					if tk.Killing {
						killing = append(killing, tk.ID)
					}
				}
				if len(killing) != 1 || before[killing[0]].AppVersion != "v1" {
					t.Errorf("killing %v after restore, want one v1 task", killing)
				}
			} else if stat.OldTasks != 0 || stat.Killing != 1 {
				// Without records every adopted task passes for v2: the
				// roll is lost and a v1 task is killed as surplus of v2.
				t.Errorf("status without restore %+v, want no old tasks (the failure Restore prevents)", stat)
			}
		})
	}
}

// TestRestoreDropsStaleRecords: terminal tasks and unknown apps are
// deleted from the store rather than restored.
func TestRestoreDropsStaleRecords(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(nil, 0)
	ctx := context.Background()
	for _, r := range []store.TaskRecord{
		{TaskID: "web.instance-1._app.1", AppID: "/web", AgentID: "a1", AppVersion: "v1", State: "TASK_RUNNING"},
		{TaskID: "web.instance-2._app.1", AppID: "/web", AgentID: "a1", AppVersion: "v1", State: "TASK_FINISHED"},
		{TaskID: "gone.instance-3._app.1", AppID: "/gone", AgentID: "a1", AppVersion: "v1", State: "TASK_RUNNING"},
		{TaskID: "web.instance-4._app.1", AppID: "/web", AgentID: "a1", AppVersion: "v1", State: "NO_SUCH_STATE"},
	} {
		if err := st.PutTask(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{Tasks: st, Log: logging.Component(logging.Discard(), "framework")})
	s.PutApp(testApp("/web", 1))
	n, err := s.Restore(ctx)
	if err != nil || n != 1 {
		t.Fatalf("restore: %d, %v; want 1", n, err)
	}
	left := recordsByID(t, st)
	if len(left) != 1 || left["web.instance-1._app.1"].State != "TASK_RUNNING" {
		t.Errorf("records left %v, want only the running /web task", left)
	}
	if tk := s.Snapshot().TasksOf("/web"); len(tk) != 1 || !tk[0].Adopted || tk[0].AgentID != "a1" {
		t.Errorf("restored tasks %+v", tk)
	}
}

func TestRestoreError(t *testing.T) {
	t.Parallel()
	boom := errors.New("zk down")
	s := New(Config{Tasks: &blockingStore{listErr: boom}})
	if _, err := s.Restore(context.Background()); !errors.Is(err, boom) {
		t.Errorf("restore error %v, want it to wrap %v", err, boom)
	}
}

// blockingStore counts writes and, while gate is set, holds every write
// until the gate closes.
type blockingStore struct {
	mu      sync.Mutex
	gate    chan struct{}
	started chan struct{}
	puts    []store.TaskRecord
	dels    []string
	listErr error
}

func (b *blockingStore) hold() {
	b.mu.Lock()
	g, s := b.gate, b.started
	b.mu.Unlock()
	if g != nil {
		select {
		case s <- struct{}{}:
		default:
		}
		<-g
	}
}

func (b *blockingStore) PutTask(_ context.Context, r store.TaskRecord) error {
	b.hold()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts = append(b.puts, r)
	return nil
}

func (b *blockingStore) DeleteTask(_ context.Context, _, id string) error {
	b.hold()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dels = append(b.dels, id)
	return nil
}

func (b *blockingStore) ListAllTasks(context.Context) ([]store.TaskRecord, error) {
	return nil, b.listErr
}

// TestPersisterCoalesces: while a write is stuck, later changes of the
// same task merge into one pending op (the newest), so a slow store costs
// memory per task, not per update, and writes keep their order.
func TestPersisterCoalesces(t *testing.T) {
	t.Parallel()
	bs := &blockingStore{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	p := newPersister(bs, logging.Component(logging.Discard(), "framework"), time.Minute)
	p.workers = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.run(ctx)

	rec := func(state string) store.TaskRecord {
		return store.TaskRecord{TaskID: "t1", AppID: "/web", AppVersion: "v1", State: state}
	}
	p.enqueue([]recordOp{{rec: rec("TASK_STAGING")}})
	<-bs.started // the first write is in the store, held
	for _, s := range []string{"TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"} {
		p.enqueue([]recordOp{{rec: rec(s)}})
	}
	p.enqueue([]recordOp{{rec: rec("TASK_KILLED"), del: true}})
	p.mu.Lock()
	pending := len(p.pending)
	p.mu.Unlock()
	if pending != 1 {
		t.Errorf("%d ops pending for one task, want 1", pending)
	}
	bs.mu.Lock()
	gate := bs.gate
	bs.gate = nil // later writes pass
	bs.mu.Unlock()
	close(gate) // the held write goes on
	p.wait()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if len(bs.puts) != 1 || bs.puts[0].State != "TASK_STAGING" || !slices.Equal(bs.dels, []string{"t1"}) {
		t.Errorf("writes: puts %v, deletes %v; want the first put then one delete", bs.puts, bs.dels)
	}
}

// TestPersisterDeleteOfMissingRecord: deleting a record that is already
// gone is what the delete wanted, not a warning (make fuzz-api logged
// "writing task record failed … not found" for tasks of deleted apps).
func TestPersisterDeleteOfMissingRecord(t *testing.T) {
	t.Parallel()
	log, hook := logtest.NewNullLogger()
	p := newPersister(store.NewMemory(nil, 0), logging.Component(log, "framework"), time.Minute)
	p.writeOne(context.Background(), recordOp{rec: store.TaskRecord{TaskID: "t1", AppID: "/web"}, del: true})
	for _, e := range hook.AllEntries() {
		t.Errorf("logged %s %q %v", e.Level, e.Message, e.Data)
	}
}

// TestNewLeaderHoldsKillsUntilSettled: a new leader that restores an
// interrupted roll kills nothing until reconciliation has settled. Its
// restored tasks' health is unknown until the master answers, and the
// other replicas and edge nodes still serve the old leader's view until
// they find the new one: a roll's kill sent at SUBSCRIBED (as before)
// took the only backends those views had (bench/chaos saw every
// follower's gateway answer 503 for the app right after the election).
// Once settled, the roll goes on from the reconciled state.
func TestNewLeaderHoldsKillsUntilSettled(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(nil, 0)
	app := rollApp(4, 0.5, 0.5, true)
	app.Version = "v2"
	ctx := context.Background()
	staged := coreT0.Add(-time.Minute)
	// The old leader's last records: four v1 tasks, two of which it killed
	// just before it died (their terminal updates never recorded), and the
	// two v2 tasks it launched.
	recs := map[string]string{"web.instance-a._app.1": "v1", "web.instance-b._app.1": "v1", "web.instance-c._app.1": "v1",
		"web.instance-d._app.1": "v1", "web.instance-e._app.1": "v2", "web.instance-f._app.1": "v2"}
	port := uint64(31000)
	for id, v := range recs {
		port++
		if err := st.PutTask(ctx, store.TaskRecord{TaskID: id, AppID: app.ID, AgentID: "a-h1", AppVersion: v, State: "TASK_RUNNING",
			Host: "h1", Ports: []uint64{port}, StagedAt: staged, StartedAt: staged}); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, func(c *Config) { c.Tasks = st; c.ReconcileSettle = 2 * time.Second })
	h.s.PutApp(app)
	if n, err := h.s.Restore(ctx); err != nil || n != len(recs) {
		t.Fatalf("restore: %d, %v; want %d tasks", n, err, len(recs))
	}
	h.subscribe()
	killing := func() []string {
		var out []string
		for _, tk := range h.tasks(app.ID) {
			if tk.Killing {
				out = append(out, tk.ID)
			}
		}
		slices.Sort(out)
		return out
	}
	if k, ids := h.rec.Of(CallKill), killing(); len(k) != 0 || len(ids) != 0 {
		t.Fatalf("at SUBSCRIBED: %d KILL calls, tasks marked killing %v; want none before reconciliation settles", len(k), ids)
	}
	// The master answers: a and b are gone, the rest run, all healthy.
	for id := range recs {
		s := TestStatus(id, "a-h1", mesos.TASK_RUNNING, false)
		s.Healthy = boolPtr(true)
		if id == "web.instance-a._app.1" || id == "web.instance-b._app.1" {
			s = TestStatus(id, "a-h1", mesos.TASK_KILLED, false)
		}
		h.send(UpdateInput(s))
	}
	h.step(time.Second)
	if k, ids := h.rec.Of(CallKill), killing(); len(k) != 0 || len(ids) != 0 {
		t.Fatalf("1 s into the settle: %d KILL calls, tasks marked killing %v; want none", len(k), ids)
	}
	h.step(time.Second)
	if ids, want := killing(), []string{"web.instance-c._app.1", "web.instance-d._app.1"}; !slices.Equal(ids, want) {
		t.Errorf("settled: killing %v, want the two v1 tasks still running %v", ids, want)
	}
	var sent []string
	for _, c := range h.rec.Of(CallKill) {
		sent = append(sent, c.TaskID)
	}
	slices.Sort(sent)
	if want := []string{"web.instance-c._app.1", "web.instance-d._app.1"}; !slices.Equal(sent, want) {
		t.Errorf("settled: KILL sent for %v, want %v", sent, want)
	}
}

// deadlineStore records how much of its ctx's deadline each write had;
// the write of "slow" waits until its ctx ends.
type deadlineStore struct {
	mu   sync.Mutex
	left map[string]time.Duration
	errs map[string]error
}

func (d *deadlineStore) PutTask(ctx context.Context, r store.TaskRecord) error {
	dl, ok := ctx.Deadline()
	d.mu.Lock()
	d.left[r.TaskID] = -1
	if ok {
		d.left[r.TaskID] = time.Until(dl)
	}
	d.mu.Unlock()
	if r.TaskID == "slow" {
		<-ctx.Done()
	}
	d.mu.Lock()
	d.errs[r.TaskID] = ctx.Err()
	d.mu.Unlock()
	return ctx.Err()
}

func (d *deadlineStore) DeleteTask(context.Context, string, string) error { return nil }
func (d *deadlineStore) ListAllTasks(context.Context) ([]store.TaskRecord, error) {
	return nil, nil
}

// TestPersisterSharedDeadline: writes of a share share a deadline, but a
// write that used it up does not leave the next ones without time: each
// starts with at least half the timeout and at most all of it.
func TestPersisterSharedDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	ds := &deadlineStore{left: map[string]time.Duration{}, errs: map[string]error{}}
	p := newPersister(ds, logging.Component(logging.Discard(), "test"), timeout)
	var ops []recordOp
	for _, id := range []string{"a", "slow", "b", "c"} {
		ops = append(ops, recordOp{rec: store.TaskRecord{TaskID: id, AppID: "/app"}})
	}
	p.writeShare(context.Background(), ops)
	for _, id := range []string{"a", "slow", "b", "c"} {
		if l := ds.left[id]; l <= 0 || l > timeout {
			t.Errorf("write %s had %v of its deadline left, want within (0, %v]", id, l, timeout)
		}
	}
	if !errors.Is(ds.errs["slow"], context.DeadlineExceeded) {
		t.Errorf("the slow write ended with %v, want its deadline exceeded", ds.errs["slow"])
	}
	for _, id := range []string{"b", "c"} {
		if ds.errs[id] != nil {
			t.Errorf("write %s after the slow one failed with %v: it was given a spent deadline", id, ds.errs[id])
		}
	}
}
