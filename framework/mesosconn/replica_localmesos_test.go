package mesosconn

import (
	"context"
	"math/rand"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// haLocalMesos starts a localmesos master with simulated agents,
// registered in ZooKeeper when zkURL is set.
func haLocalMesos(t testing.TB, zkURL string) *localmesos.Master {
	t.Helper()
	m, err := localmesos.Start(context.Background(), localmesos.Config{
		ZK:        zkURL,
		Agents:    1,
		NoSandbox: true,
		Executor: func(string) (executor.Executor, error) {
			return executor.NewSimulated(clock.Real{}), nil
		},
		Log: logging.Discard(),
	})
	if err != nil {
		t.Fatalf("start localmesos: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Two localmesos masters registered in ZooKeeper: the connection follows
// the leader when it dies, and re-subscribes with the same framework id.
func TestConnLocalMesosMasterFailover(t *testing.T) {
	t.Parallel()
	servers, root, _ := haZK(t)
	zkURL := "zk://" + servers[0] + root + "/mesos"
	m1 := haLocalMesos(t, zkURL)
	haWaitLeader(t, m1)
	m2 := haLocalMesos(t, zkURL)

	det, err := NewDetector(DetectorConfig{Master: zkURL, SessionTimeout: 4 * time.Second, Logger: haLog(t, "detector")})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	store := &haIDStore{}
	c, err := NewConn(ConnConfig{Detector: det, FrameworkIDs: store, User: "tester",
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: haLog(t, "conn")})
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan framework.Input, 64)
	haRun(t, c, in)
	sub := haNextEvent(t, in, scheduler.Event_SUBSCRIBED)
	id := sub.GetSubscribed().GetFrameworkID().GetValue()
	if got := sub.GetSubscribed().GetMasterInfo().GetID(); got != m1.ID() {
		t.Fatalf("subscribed to master %q, want the leader %q", got, m1.ID())
	}
	if store.get() != id {
		t.Fatalf("stored %q, want %q", store.get(), id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Driver().Reconcile(ctx, nil); err != nil {
		t.Fatalf("RECONCILE on m1: %v", err)
	}

	m1.Close()
	haWaitLeader(t, m2)
	for {
		i := haNext(t, in, 20*time.Second)
		if i.Event == nil {
			continue // Disconnected: stream ended or master changed, whichever came first
		}
		if i.Event.GetType() != scheduler.Event_SUBSCRIBED {
			continue
		}
		if got := i.Event.GetSubscribed().GetFrameworkID().GetValue(); got != id {
			t.Fatalf("re-subscribed as %q, want %q", got, id)
		}
		if got := i.Event.GetSubscribed().GetMasterInfo().GetID(); got != m2.ID() {
			t.Fatalf("re-subscribed to master %q, want %q", got, m2.ID())
		}
		break
	}
	if err := c.Driver().Reconcile(ctx, nil); err != nil {
		t.Fatalf("RECONCILE on m2: %v", err)
	}
}

// haNextEvent skips inputs until an event of type want.
func haNextEvent(t testing.TB, in <-chan framework.Input, want scheduler.Event_Type) *scheduler.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case i := <-in:
			if i.Event != nil && i.Event.GetType() == want {
				return i.Event
			}
		case <-deadline:
			t.Fatalf("no %v within 20s", want)
			return nil
		}
	}
}

func haWaitLeader(t testing.TB, m *localmesos.Master) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !m.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatalf("master %s never led", m.ID())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkFailoverExpiryToFirstAccept measures, per iteration, the time
// from the old leader's ZooKeeper session expiry (its election znode
// deleted by the server, seen by a separate watcher) to the new leader's
// first ACCEPT answered 202, with two replicas and a 4 s session timeout:
// with the real Scheduler against localmesos (first ACCEPT that launches
// a task), and with a stand-in core that accepts every offer (localmesos,
// and the stub master). Reported as ms/failover (mean); fence_ms is how
// long before the expiry the old leader fenced.
//
//	go test -run '^$' -bench FailoverExpiryToFirstAccept -benchtime 3x ./framework/mesosconn/
func BenchmarkFailoverExpiryToFirstAccept(b *testing.B) {
	masters := []struct {
		name  string
		start func(b *testing.B) string // returns the --master value
	}{
		{"localmesos", func(b *testing.B) string { return haLocalMesos(b, "").SchedulerURL() }},
		{"stubmaster", func(b *testing.B) string {
			m := newHAMaster(b, "M1")
			m.set(func(m *haMaster) { m.offerOnSub = true })
			return m.URL()
		}},
	}
	b.Run("localmesos+scheduler", func(b *testing.B) {
		// The real Scheduler: its first launching ACCEPT after failover
		// waits for ReconcileSettle (default 2 s) by design.
		var total, fenceLead time.Duration
		for i := 0; i < b.N; i++ {
			d, lead, _, _ := haSchedulerFailover(b)
			b.Logf("failover %d: expiry→first launching ACCEPT %v; old leader fenced %v before expiry", i, d, lead)
			total += d
			fenceLead += lead
		}
		b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(b.N), "ms/failover")
		b.ReportMetric(float64(fenceLead)/float64(time.Millisecond)/float64(b.N), "fence_ms")
	})
	for _, mt := range masters {
		b.Run(mt.name, func(b *testing.B) {
			var total, fenceLead time.Duration
			for i := 0; i < b.N; i++ {
				d, lead := haFailoverOnce(b, mt.start)
				b.Logf("failover %d: expiry→first ACCEPT %v; old leader fenced %v before expiry", i, d, lead)
				total += d
				fenceLead += lead
			}
			b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(b.N), "ms/failover")
			b.ReportMetric(float64(fenceLead)/float64(time.Millisecond)/float64(b.N), "fence_ms")
		})
	}
}

func haFailoverOnce(b *testing.B, start func(b *testing.B) string) (expiryToAccept, fenceLead time.Duration) {
	servers, root, watcher := haZK(b)
	path := root + "/leader"
	master := start(b)
	store := &haIDStore{}
	proxy := newHAProxy(b, servers[0])
	coreA, coreB := newHACore(), newHACore()
	a := haStartReplica(b, "a", []string{proxy.Addr()}, path, master, store, coreA)
	haRecv(b, coreA.accepts, 20*time.Second, "a accepted")
	rb := haStartReplica(b, "b", servers, path, master, store, coreB)

	deleted := haNodeDeleted(b, watcher, a)
	haJoined(b, rb, "http://a:8080")
	proxy.Cut()
	expiry := haRecv(b, deleted, 20*time.Second, "a's session expired")
	accepted := haRecv(b, coreB.accepts, 20*time.Second, "b accepted")
	coreA.mu.Lock()
	fenced := coreA.fencedAt
	coreA.mu.Unlock()
	if fenced.IsZero() || !fenced.Before(expiry) {
		b.Errorf("a fenced at %v, not before its expiry at %v", fenced, expiry)
	}
	return accepted.Sub(expiry), expiry.Sub(fenced)
}

func haReplicaLeader(r *haReplica) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr, _ := r.r.LeaderAddress(ctx)
	return addr
}

// Flotilla restarted (a new process with the same store) re-subscribes to
// localmesos as the same framework.
func TestReplicaRestartKeepsFrameworkLocalMesos(t *testing.T) {
	t.Parallel()
	servers, root, _ := haZK(t)
	m := haLocalMesos(t, "")
	store := &haIDStore{}
	core1 := newHACore()
	r1 := haStartReplica(t, "a", servers, root+"/leader", m.SchedulerURL(), store, core1)
	id := haRecv(t, core1.subscribed, 10*time.Second, "first process subscribed")
	haRecv(t, core1.accepts, 10*time.Second, "first process accepted an offer")
	if r1.r.FrameworkID() != id {
		t.Fatalf("FrameworkID() = %q, want %q", r1.r.FrameworkID(), id)
	}
	r1.stop()
	if r1.r.IsLeader() || r1.r.Subscribed() {
		t.Fatal("stopped replica still leads or is subscribed")
	}

	core2 := newHACore()
	haStartReplica(t, "a2", servers, root+"/leader", m.SchedulerURL(), store, core2)
	if got := haRecv(t, core2.subscribed, 10*time.Second, "second process subscribed"); got != id {
		t.Fatalf("restarted process subscribed as %q, want %q", got, id)
	}
	haRecv(t, core2.accepts, 10*time.Second, "second process accepted an offer")
}

// haTapCore runs the real Scheduler and notes when an ACCEPT that
// launches something has been answered 202.
type haTapCore struct {
	s        *framework.Scheduler
	launches chan time.Time
}

func (c *haTapCore) Run(ctx context.Context, in <-chan framework.Input, act framework.Actions) error {
	return c.s.Run(ctx, in, &haTapActions{Actions: act, c: c})
}

type haTapActions struct {
	framework.Actions
	c *haTapCore
}

func (a *haTapActions) Accept(ctx context.Context, ids []mesos.OfferID, ops []mesos.Offer_Operation, f *mesos.Filters) error {
	err := a.Actions.Accept(ctx, ids, ops, f)
	if err == nil && slices.ContainsFunc(ops, func(o mesos.Offer_Operation) bool { return o.Type == mesos.Offer_Operation_LAUNCH }) {
		select {
		case a.c.launches <- time.Now():
		default:
		}
	}
	return err
}

func haScheduler(t testing.TB, name string, seed int64) *haTapCore {
	// Defaults as in production (ReconcileSettle 2 s included), but fast
	// declines so that offers come back quickly in a test.
	// Task ids come from Rand: replicas need distinct seeds, or the new
	// leader re-mints the old leader's task ids.
	s := framework.New(framework.Config{Clock: clock.Real{}, Rand: rand.New(rand.NewSource(seed)), Log: haLog(t, "scheduler-"+name),
		DeclineRefuseWaiting: time.Second, DeclineRefuse: time.Second})
	return &haTapCore{s: s, launches: make(chan time.Time, 64)}
}

func haRunning(s *framework.Snapshot, appID string) []string {
	var ids []string
	for _, t := range s.TasksOf(appID) {
		if t.State == mesos.TASK_RUNNING && !t.Killing {
			ids = append(ids, t.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func haWaitSnapshot(t testing.TB, s *framework.Scheduler, what string, d time.Duration, ok func(*framework.Snapshot) bool) *framework.Snapshot {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		snap := s.Snapshot()
		if ok(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (tasks %+v)", what, d, snap.Tasks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// haSchedulerFailover runs the real Scheduler in two replicas against
// localmesos found through ZooKeeper: a launches 3 tasks; the app is
// scaled to 4 in b's (standby) state; a's ZooKeeper link is cut. It
// returns the time from a's session expiry to b's first launching ACCEPT,
// how long before the expiry a fenced, and b's running tasks at the end
// next to a's three.
func haSchedulerFailover(t testing.TB) (expiryToLaunch, fenceLead time.Duration, aTasks, bTasks []string) {
	servers, root, watcher := haZK(t)
	zkMesos := "zk://" + servers[0] + root + "/mesos"
	m := haLocalMesos(t, zkMesos)
	haWaitLeader(t, m)
	path := root + "/leader"
	store := &haIDStore{}
	proxy := newHAProxy(t, servers[0])
	web := appspec.App{ID: "/ha/web", Version: "v1", Instances: 3, CPUs: 0.01, Mem: 1, Cmd: "sleep 1000"}

	coreA, coreB := haScheduler(t, "a", 1), haScheduler(t, "b", 2)
	coreA.s.PutApp(web)
	coreB.s.PutApp(web) // both replicas load the apps (from the store, in production)
	a := haStartReplica(t, "a", []string{proxy.Addr()}, path, zkMesos, store, haCoreOf(coreA))
	snapA := haWaitSnapshot(t, coreA.s, "a runs 3 tasks", 20*time.Second, func(s *framework.Snapshot) bool { return len(haRunning(s, web.ID)) == 3 })
	aTasks = haRunning(snapA, web.ID)
	rb := haStartReplica(t, "b", servers, path, zkMesos, store, haCoreOf(coreB))
	if err := coreB.s.Scale(web.ID, 4); err != nil {
		t.Fatal(err)
	}

	deleted := haNodeDeleted(t, watcher, a)
	haJoined(t, rb, "http://a:8080")
	fenced := make(chan time.Time, 1)
	go func() {
		for a.r.IsLeader() {
			time.Sleep(5 * time.Millisecond)
		}
		fenced <- time.Now()
	}()

	proxy.Cut()
	expiry := haRecv(t, deleted, 20*time.Second, "a's session expired")
	launched := haRecv(t, coreB.launches, 20*time.Second, "b launched")
	fencedAt := haRecv(t, fenced, time.Second, "a fenced")
	snapB := haWaitSnapshot(t, coreB.s, "b runs 4 tasks", 20*time.Second, func(s *framework.Snapshot) bool {
		return len(haRunning(s, web.ID)) == 4 && len(s.TasksOf(web.ID)) == 4
	})
	return launched.Sub(expiry), expiry.Sub(fencedAt), aTasks, haRunning(snapB, web.ID)
}

// haCoreOf adapts a haTapCore to what haStartReplica takes.
func haCoreOf(c *haTapCore) Core { return c }

// Two replicas with the real Scheduler: the leader loses ZooKeeper, the
// standby takes over, adopts the three tasks the old leader launched (none
// lost, none duplicated) and launches the fourth it was asked for.
func TestReplicaFailoverWithScheduler(t *testing.T) {
	t.Parallel()
	_, _, aTasks, bTasks := haSchedulerFailover(t)
	for _, id := range aTasks {
		if !slices.Contains(bTasks, id) {
			t.Errorf("task %s launched by a is not running under b (b runs %v)", id, bTasks)
		}
	}
	if len(bTasks) != 4 {
		t.Errorf("b runs %v, want a's 3 and one more", bTasks)
	}
}

// haExistsW sets a watch on p, retrying while the watcher's connection
// recovers from a hiccup on this busy machine.
func haExistsW(t testing.TB, conn *zk.Conn, p string) <-chan zk.Event {
	t.Helper()
	var err error
	for range 10 {
		var w <-chan zk.Event
		if _, _, w, err = conn.ExistsW(p); err == nil {
			return w
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("watch %s: %v", p, err)
	return nil
}

// localmesos's own faults, seen through the connection: a master that
// fails over in place (streams dropped, new master id) and a master that
// does not lead (307 to the leader).
func TestConnLocalMesosFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"failover in place", func(t *testing.T) {
			m := haLocalMesos(t, "")
			store := &haIDStore{}
			c := haConn(t, m.SchedulerURL(), store, nil)
			in := make(chan framework.Input, 64)
			haRun(t, c, in)
			first := haNextEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := m.Failover(ctx); err != nil {
				t.Fatal(err)
			}
			again := haNextEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed()
			if again.GetFrameworkID().GetValue() != first.GetFrameworkID().GetValue() {
				t.Fatalf("re-subscribed as %v, want %v", again.GetFrameworkID(), first.GetFrameworkID())
			}
			if again.GetMasterInfo().GetID() == first.GetMasterInfo().GetID() {
				t.Fatalf("master id unchanged (%s): not a failover", again.GetMasterInfo().GetID())
			}
			if err := c.Driver().Revive(ctx, nil); err != nil {
				t.Fatalf("REVIVE after failover: %v", err)
			}
		}},
		{"redirect from a standby master", func(t *testing.T) {
			servers, root, _ := haZK(t)
			zkURL := "zk://" + servers[0] + root + "/mesos"
			leader := haLocalMesos(t, zkURL)
			haWaitLeader(t, leader)
			standby := haLocalMesos(t, zkURL)
			// Given the standby's URL, not ZooKeeper: only the 307 can help.
			c := haConn(t, standby.SchedulerURL(), &haIDStore{}, nil)
			in := make(chan framework.Input, 64)
			haRun(t, c, in)
			sub := haNextEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed()
			if got := sub.GetMasterInfo().GetID(); got != leader.ID() {
				t.Fatalf("subscribed to %q, want the leader %q", got, leader.ID())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Driver().Reconcile(ctx, nil); err != nil {
				t.Fatalf("RECONCILE after redirect: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

// haNodeDeleted reports when the leader's candidate znode is deleted
// (its session expired), as seen by another ZooKeeper client.
func haNodeDeleted(tb testing.TB, watcher *zk.Conn, leader *haReplica) <-chan time.Time {
	tb.Helper()
	leader.r.election.mu.Lock()
	node := leader.r.election.cur.node
	leader.r.election.mu.Unlock()
	deleted := make(chan time.Time, 1)
	w := haExistsW(tb, watcher, node)
	go func() {
		if ev := <-w; ev.Type == zk.EventNodeDeleted {
			deleted <- time.Now()
		}
	}()
	return deleted
}

// haJoined waits until standby r sees leader lead: it has joined the
// election. Generous: joining needs a ZooKeeper session, slow on a loaded
// machine.
func haJoined(tb testing.TB, r *haReplica, leader string) {
	tb.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for haReplicaLeader(r) != leader {
		if time.Now().After(deadline) {
			tb.Fatalf("the standby never joined: it sees leader %q, want %q", haReplicaLeader(r), leader)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
