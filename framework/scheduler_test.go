package framework

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

func TestLaunchRunAndAcknowledge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.s.PutApp(testApp("/prod/shop/web", 3))
	h.subscribe()
	calls := h.offer("h1")
	ids := launchedIDs(calls)
	if len(ids) != 3 {
		t.Fatalf("launched %d tasks, want 3 (calls %+v)", len(ids), calls)
	}
	if countCalls(calls, CallAccept) != 1 {
		t.Errorf("want the 3 tasks in one ACCEPT, got %d accepts", countCalls(calls, CallAccept))
	}
	if !hasPrefixAll(ids, "prod_shop_web.instance-") {
		t.Errorf("task ids %v do not follow the Marathon scheme", ids)
	}
	// Nothing waits any more: offers are suppressed.
	if countCalls(calls, CallSuppress) != 1 {
		t.Errorf("want SUPPRESS once all instances are placed, calls %v", callTypes(calls))
	}
	for _, id := range ids {
		h.update(id, mesos.TASK_RUNNING)
	}
	acks := h.rec.Of(CallAcknowledge)
	if len(acks) != 3 {
		t.Errorf("acknowledged %d updates, want 3", len(acks))
	}
	snap := h.s.Snapshot()
	if len(snap.Tasks) != 3 {
		t.Fatalf("snapshot has %d tasks, want 3", len(snap.Tasks))
	}
	for _, task := range snap.Tasks {
		if task.State != mesos.TASK_RUNNING || task.StartedAt.IsZero() || task.Host != "h1" || len(task.Ports) != 1 || task.AppVersion != "v1" {
			t.Errorf("task %+v: want RUNNING on h1 with one port, started, version v1", task)
		}
	}
	if len(snap.Queue) != 0 {
		t.Errorf("queue %+v, want empty", snap.Queue)
	}
}

func callTypes(calls []Call) []CallType {
	var out []CallType
	for _, c := range calls {
		out = append(out, c.Type)
	}
	return out
}

func TestAcknowledgeOnlyUpdatesWithUUID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.s.PutApp(testApp("/web", 1))
	h.subscribe()
	id := launchedIDs(h.offer("h1"))[0]
	h.rec.Take()
	tests := []struct {
		name    string
		uuid    bool
		wantAck bool
	}{
		{"agent update with uuid", true, true},
		{"master update without uuid", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.send(UpdateInput(TestStatus(id, "a-h1", mesos.TASK_RUNNING, tc.uuid)))
			acks := h.rec.Of(CallAcknowledge)
			h.rec.Take()
			if got := len(acks) == 1; got != tc.wantAck {
				t.Fatalf("acks %+v, want ack=%v", acks, tc.wantAck)
			}
			if tc.wantAck && (acks[0].TaskID != id || acks[0].AgentID != "a-h1" || len(acks[0].UUID) != 16) {
				t.Errorf("ack %+v does not name the task, agent and uuid", acks[0])
			}
		})
	}
}

func TestScaleUpAndDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		selection string
		wantKill  func(staged []string) []string // staged in launch order
	}{
		{"youngest first", "YOUNGEST_FIRST", func(s []string) []string { return s[2:] }},
		{"oldest first", "OLDEST_FIRST", func(s []string) []string { return s[:2] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			app := testApp("/web", 2)
			app.KillSelection = tc.selection
			h.s.PutApp(app)
			h.subscribe()
			staged := launchedIDs(h.offer("h1"))
			h.runAll("/web")
			h.clk.Step(time.Minute)
			if err := h.s.Scale("/web", 4); err != nil {
				t.Fatal(err)
			}
			h.sync()
			if n := len(h.rec.Of(CallRevive)); n != 1 {
				t.Errorf("want one REVIVE after scale-up, got %d", n)
			}
			more := launchedIDs(h.offer("h2"))
			if len(more) != 2 {
				t.Fatalf("scale to 4 launched %d, want 2", len(more))
			}
			staged = append(staged, more...)
			h.runAll("/web")
			h.rec.Take()
			if err := h.s.Scale("/web", 2); err != nil {
				t.Fatal(err)
			}
			h.sync()
			want := tc.wantKill(staged)
			slices.Sort(want)
			if got := h.rec.Killed(); !slices.Equal(got, want) {
				t.Errorf("killed %v, want %v", got, want)
			}
			for _, id := range want {
				h.update(id, mesos.TASK_KILLED)
			}
			if n := len(h.tasks("/web")); n != 2 {
				t.Errorf("%d tasks left, want 2", n)
			}
			if q := h.s.Snapshot().Queue; len(q) != 0 {
				t.Errorf("killed-on-request tasks must not be replaced; queue %+v", q)
			}
		})
	}
}

func TestKilledTaskIsReplaced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		scale       bool
		end         mesos.TaskState
		wantLaunch  int
		wantBackoff bool
	}{
		{"kill request replaces", false, mesos.TASK_KILLED, 1, false},
		{"kill and scale does not replace", true, mesos.TASK_KILLED, 0, false},
		{"unexpected failure replaces after backoff", false, mesos.TASK_FAILED, 1, true},
		{"lost task replaces at once", false, mesos.TASK_LOST, 1, false},
		{"gone by operator replaces at once", false, mesos.TASK_GONE_BY_OPERATOR, 1, false},
		{"dropped replaces at once", false, mesos.TASK_DROPPED, 1, false},
		{"error replaces after backoff", false, mesos.TASK_ERROR, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.s.PutApp(testApp("/web", 3))
			h.subscribe()
			ids := launchedIDs(h.offer("h1"))
			h.runAll("/web")
			victim := ids[1]
			if tc.end == mesos.TASK_KILLED {
				kill := func() error { return h.s.KillTasks("/web", []string{victim}) }
				if tc.scale {
					kill = func() error { return h.s.KillAndScale("/web", []string{victim}, 2) }
				}
				if err := kill(); err != nil {
					t.Fatal(err)
				}
				h.sync()
				if got := h.rec.Killed(); !slices.Equal(got, []string{victim}) {
					t.Fatalf("killed %v, want [%s]", got, victim)
				}
			}
			h.update(victim, tc.end)
			if slices.Contains(h.activeIDs("/web"), victim) {
				t.Fatalf("terminal task %s still known", victim)
			}
			calls := h.offer("h2")
			got := len(launchedIDs(calls))
			if tc.wantBackoff {
				if got != 0 {
					t.Fatalf("launched %d during backoff, want 0", got)
				}
				q := h.s.Snapshot().Queue
				if len(q) != 1 || q[0].Delay != time.Second || !q[0].BackoffUntil.Equal(h.clk.Now().Add(time.Second)) {
					t.Fatalf("queue %+v: want 1 waiting with 1 s backoff", q)
				}
				h.clk.Step(time.Second)
				h.sync()
				got = len(launchedIDs(h.offer("h2")))
			}
			if got != tc.wantLaunch {
				t.Errorf("launched %d replacements, want %d", got, tc.wantLaunch)
			}
			want := 3
			if tc.scale {
				want = 2
			}
			if n := len(h.activeIDs("/web")); n != want {
				t.Errorf("%d tasks, want %d", n, want)
			}
		})
	}
}

func TestUniqueHostnameQueuesWithReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	app := testApp("/web", 4)
	app.Constraints = [][]string{{"hostname", "UNIQUE"}}
	h.s.PutApp(app)
	h.subscribe()
	calls := h.offer("h1", "h2", "h3")
	ids := launchedIDs(calls)
	if len(ids) != 3 {
		t.Fatalf("launched %d, want 3", len(ids))
	}
	hosts := map[string]bool{}
	for _, tk := range h.tasks("/web") {
		hosts[tk.Host] = true
	}
	if len(hosts) != 3 {
		t.Errorf("tasks on hosts %v, want 3 distinct", hosts)
	}
	q := h.s.Snapshot().Queue
	if len(q) != 1 || q[0].Count != 1 {
		t.Fatalf("queue %+v, want one instance waiting", q)
	}
	if !hasReason(q[0].LastRejection, offers.UnfulfilledConstraint) {
		t.Errorf("rejection %+v does not say UnfulfilledConstraint", q[0].LastRejection)
	}
	// The waiting instance keeps offers coming: no SUPPRESS.
	if countCalls(calls, CallSuppress) != 0 {
		t.Errorf("suppressed while an instance waits")
	}
	// A fourth host takes it.
	if n := len(launchedIDs(h.offer("h4"))); n != 1 {
		t.Errorf("4th host launched %d, want 1", n)
	}
}

func hasReason(s offers.Summary, r offers.Reason) bool {
	for _, rc := range s.Reasons {
		if rc.Reason == r && rc.Declined > 0 {
			return true
		}
	}
	return false
}

func TestBackoffGrowsCapsAndResets(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.BackoffResetAfter = 30 * time.Second; c.MaxLaunchDelay = 6 * time.Second })
	app := testApp("/web", 1)
	app.BackoffSeconds, app.BackoffFactor, app.MaxLaunchDelaySeconds = 1, 2, 100
	app.HealthChecks = []appspec.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/health"}}
	h.s.PutApp(app)
	h.subscribe()
	// Delays 1, 2, 4, then the global cap 6 s.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 6 * time.Second} {
		ids := launchedIDs(h.offer("h1"))
		if len(ids) != 1 {
			t.Fatalf("round %d: launched %d, want 1", i, len(ids))
		}
		h.update(ids[0], mesos.TASK_FAILED)
		q := h.s.Snapshot().Queue
		if len(q) != 1 || q[0].Delay != want {
			t.Fatalf("round %d: queue %+v, want delay %v", i, q, want)
		}
		h.step(want - time.Millisecond)
		if n := len(launchedIDs(h.offer("h1"))); n != 0 {
			t.Fatalf("round %d: launched before the backoff ended", i)
		}
		h.step(time.Millisecond)
	}
	// A task that runs healthy for BackoffResetAfter resets the backoff.
	id := launchedIDs(h.offer("h1"))[0]
	healthy := func(st *mesos.TaskStatus) { b := true; st.Healthy = &b }
	h.update(id, mesos.TASK_RUNNING, healthy)
	h.step(29 * time.Second)
	h.update(id, mesos.TASK_FAILED)
	if q := h.s.Snapshot().Queue; len(q) != 1 || q[0].Delay != 6*time.Second {
		t.Fatalf("failure before the reset period: queue %+v, want the capped delay", q)
	}
	h.step(6 * time.Second)
	id = launchedIDs(h.offer("h1"))[0]
	h.update(id, mesos.TASK_RUNNING, healthy)
	h.step(30 * time.Second)
	h.update(id, mesos.TASK_FAILED)
	if q := h.s.Snapshot().Queue; len(q) != 1 || q[0].Delay != time.Second {
		t.Fatalf("failure after a healthy run: queue %+v, want delay back to 1 s", q)
	}
}

func TestBackoffDelayGuardsZeroValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		app    appspec.App
		n      int
		global time.Duration
		want   time.Duration
	}{
		{"no failure", appspec.App{BackoffSeconds: 1, BackoffFactor: 2}, 0, 0, 0},
		{"zero values use Marathon defaults", appspec.App{}, 2, 0, 1150 * time.Millisecond},
		{"app cap", appspec.App{BackoffSeconds: 10, BackoffFactor: 10, MaxLaunchDelaySeconds: 50}, 5, 0, 50 * time.Second},
		{"global cap", appspec.App{BackoffSeconds: 10, BackoffFactor: 10, MaxLaunchDelaySeconds: 500}, 5, time.Minute, time.Minute},
		{"many failures stay capped", appspec.App{BackoffSeconds: 1, BackoffFactor: 2, MaxLaunchDelaySeconds: 300}, 10000, 0, 300 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := backoffDelay(&tc.app, tc.n, tc.global); got != tc.want {
				t.Errorf("backoffDelay = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnreachableTimeline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	app := testApp("/web", 1)
	app.UnreachableStrategy = appspec.UnreachableStrategy{InactiveAfterSeconds: 60, ExpungeAfterSeconds: 120}
	h.s.PutApp(app)
	h.subscribe()
	orig := launchedIDs(h.offer("h1"))[0]
	h.update(orig, mesos.TASK_RUNNING)
	h.update(orig, mesos.TASK_UNREACHABLE)
	if tk := h.tasks("/web"); len(tk) != 1 || tk[0].UnreachableSince.IsZero() {
		t.Fatalf("tasks %+v: want the original marked unreachable", tk)
	}
	// Mesos need not announce the agent's return: the scheduler asks
	// about unreachable tasks explicitly every UnreachableReconcile (5 s).
	h.rec.Take()
	h.step(5 * time.Second)
	rec := h.rec.Of(CallReconcile)
	if len(rec) != 1 || len(rec[0].Reconcile) != 1 || rec[0].Reconcile[0].TaskID.Value != orig {
		t.Errorf("after 5 s unreachable: reconcile calls %+v, want one explicit for %s", rec, orig)
	}
	h.step(54 * time.Second)
	if n := len(launchedIDs(h.offer("h2"))); n != 0 {
		t.Fatalf("replacement launched before inactiveAfterSeconds")
	}
	h.step(time.Second)
	if n := len(h.rec.Of(CallRevive)); n == 0 {
		t.Errorf("no REVIVE when the task became inactive")
	}
	repl := launchedIDs(h.offer("h2"))
	if len(repl) != 1 {
		t.Fatalf("launched %d at inactiveAfterSeconds, want 1 replacement", len(repl))
	}
	h.update(repl[0], mesos.TASK_RUNNING)
	// The original comes back: one of the two is surplus; the replacement
	// is the youngest (YOUNGEST_FIRST).
	h.rec.Take()
	h.update(orig, mesos.TASK_RUNNING)
	if got := h.rec.Killed(); !slices.Equal(got, repl) {
		t.Errorf("killed %v after the original came back, want the surplus %v", got, repl)
	}
}

func TestUnreachableExpunge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	app := testApp("/web", 1)
	app.UnreachableStrategy = appspec.UnreachableStrategy{InactiveAfterSeconds: 0, ExpungeAfterSeconds: 30}
	h.s.PutApp(app)
	h.subscribe()
	orig := launchedIDs(h.offer("h1"))[0]
	h.update(orig, mesos.TASK_RUNNING)
	h.update(orig, mesos.TASK_UNREACHABLE)
	// inactiveAfterSeconds 0: replaced at once.
	repl := launchedIDs(h.offer("h2"))
	if len(repl) != 1 {
		t.Fatalf("launched %d right after TASK_UNREACHABLE, want 1", len(repl))
	}
	h.step(29 * time.Second)
	if !slices.Contains(h.activeIDs("/web"), orig) {
		t.Fatalf("original expunged before expungeAfterSeconds")
	}
	h.step(time.Second)
	if slices.Contains(h.activeIDs("/web"), orig) {
		t.Fatalf("original not expunged at expungeAfterSeconds")
	}
	// Back after the expunge: unknown, adopted, then killed as surplus.
	h.rec.Take()
	h.update(orig, mesos.TASK_RUNNING)
	h.update(repl[0], mesos.TASK_RUNNING)
	if got := h.rec.Killed(); len(got) != 1 {
		t.Errorf("killed %v, want exactly one surplus task", got)
	}
}

func TestUnreachableDisabledNeverReplaces(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	app := testApp("/web", 1)
	app.UnreachableStrategy = appspec.UnreachableStrategy{Disabled: true}
	h.s.PutApp(app)
	h.subscribe()
	orig := launchedIDs(h.offer("h1"))[0]
	h.update(orig, mesos.TASK_UNREACHABLE)
	h.step(time.Hour)
	if n := len(launchedIDs(h.offer("h2"))); n != 0 {
		t.Errorf("launched %d with the strategy disabled, want 0", n)
	}
}

func TestReconciliationRetriesUntilAnswered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.ReconcileRetry = 5 * time.Second; c.ReconcileRetryMax = 12 * time.Second })
	h.s.PutApp(testApp("/web", 3))
	h.subscribe()
	ids := launchedIDs(h.offer("h1"))
	h.runAll("/web")
	// Re-subscribe (failover): explicit for the 3 tasks, then implicit.
	h.send(Input{Disconnected: errors.New("stream closed")})
	h.rec.Take()
	h.subscribe()
	rec := h.rec.Of(CallReconcile)
	if len(rec) != 2 || len(rec[0].Reconcile) != 3 || rec[1].Reconcile != nil {
		t.Fatalf("reconcile calls %+v: want explicit for 3 tasks then implicit", rec)
	}
	for _, rt := range rec[0].Reconcile {
		if rt.AgentID.GetValue() != "a-h1" {
			t.Errorf("reconcile entry %+v lacks the agent id", rt)
		}
	}
	// Two answer (as the master does: no uuid, reason RECONCILIATION).
	for _, id := range ids[:2] {
		h.send(UpdateInput(TestStatus(id, "a-h1", mesos.TASK_RUNNING, false)))
	}
	h.rec.Take()
	wantAt := []time.Duration{5 * time.Second, 10 * time.Second, 12 * time.Second}
	for i, d := range wantAt {
		h.step(d - time.Millisecond)
		if n := len(h.rec.Of(CallReconcile)); n != 0 {
			t.Fatalf("retry %d came early", i)
		}
		h.step(time.Millisecond)
		rec = h.rec.Take()
		if len(rec) != 1 || len(rec[0].Reconcile) != 1 || rec[0].Reconcile[0].TaskID.Value != ids[2] {
			t.Fatalf("retry %d: calls %+v, want explicit reconcile of the one silent task", i, rec)
		}
	}
	h.send(UpdateInput(TestStatus(ids[2], "a-h1", mesos.TASK_RUNNING, false)))
	h.step(time.Minute)
	if n := len(h.rec.Of(CallReconcile)); n != 0 {
		t.Errorf("reconciliation retried after every task answered")
	}
}

func TestImplicitReconciliationIsPeriodic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.ReconcileInterval = time.Minute })
	h.subscribe()
	h.rec.Take()
	for i := 0; i < 3; i++ {
		h.step(time.Minute)
		rec := h.rec.Take()
		if len(rec) != 1 || rec[0].Type != CallReconcile || rec[0].Reconcile != nil {
			t.Fatalf("minute %d: calls %+v, want one implicit RECONCILE", i+1, rec)
		}
	}
}

func TestUnknownTasks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		taskID    string
		state     mesos.TaskState
		wantKill  bool
		wantAdopt bool
	}{
		{"task of no app is killed", "other_app.instance-x._app.1", mesos.TASK_RUNNING, true, false},
		{"task of a foreign id scheme is killed", "something-else", mesos.TASK_RUNNING, true, false},
		{"task of a known app is adopted", "web.instance-previous-leader._app.1", mesos.TASK_RUNNING, false, true},
		{"terminal unknown task is ignored", "other.instance-x._app.1", mesos.TASK_FINISHED, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.s.PutApp(testApp("/web", 1))
			h.subscribe()
			h.rec.Take()
			h.send(UpdateInput(TestStatus(tc.taskID, "a-h9", tc.state, false)))
			killed := h.rec.Killed()
			if got := slices.Equal(killed, []string{tc.taskID}); got != tc.wantKill {
				t.Errorf("killed %v, want kill=%v", killed, tc.wantKill)
			}
			adopted := slices.Contains(h.activeIDs("/web"), tc.taskID)
			if adopted != tc.wantAdopt {
				t.Errorf("adopted=%v, want %v", adopted, tc.wantAdopt)
			}
			if tc.wantAdopt {
				// The adopted task fills the one instance: nothing launches.
				if n := len(launchedIDs(h.offer("h1"))); n != 0 {
					t.Errorf("launched %d beside the adopted task", n)
				}
			}
		})
	}
}

func TestSuppressAndRevive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.subscribe()
	if got := callTypes(h.rec.Take()); !slices.Equal(got, []CallType{CallReconcile, CallSuppress}) {
		t.Fatalf("with nothing to run: calls %v, want implicit RECONCILE then SUPPRESS", got)
	}
	if !h.s.Snapshot().Suppressed {
		t.Errorf("snapshot does not show the suppression")
	}
	h.s.PutApp(testApp("/web", 2))
	h.sync()
	if got := callTypes(h.rec.Take()); !slices.Equal(got, []CallType{CallRevive}) {
		t.Fatalf("after PutApp: calls %v, want REVIVE", got)
	}
	if calls := h.offer("h1"); countCalls(calls, CallSuppress) != 1 {
		t.Fatalf("calls %v: want SUPPRESS once both instances are placed", callTypes(calls))
	}
	// Suppressed again: new apps revive, but at most once a second (the
	// second PutApp's revive is throttled, then follows).
	h.step(5 * time.Second)
	h.s.PutApp(testApp("/a", 1))
	h.sync()
	h.s.PutApp(testApp("/b", 1))
	h.sync()
	if n := len(h.rec.Of(CallRevive)); n != 1 {
		t.Errorf("revives within a second: %d, want 1", n)
	}
	h.step(time.Second)
	if n := len(h.rec.Of(CallRevive)); n != 2 {
		t.Errorf("the throttled revive did not follow: %d revives", n)
	}
	// Unused offers are declined with a filter.
	calls := h.offer("h2", "h3", "h4")
	decl := 0
	for _, c := range calls {
		if c.Type == CallDecline {
			decl += len(c.OfferIDs)
			if c.Filters.GetRefuseSeconds() <= 0 {
				t.Errorf("decline without refuse_seconds")
			}
		}
	}
	if decl != 1 {
		t.Errorf("declined %d offers, want 1 (two used for /a and /b)", decl)
	}
}

func TestRemoveAppAndNewVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.s.PutApp(testApp("/web", 2))
	h.subscribe()
	v1 := launchedIDs(h.offer("h1"))
	h.runAll("/web")
	h.rec.Take()
	app := testApp("/web", 2)
	app.Version = "v2"
	// Replace-all: every old task may go at once (no healthy minimum) and
	// every new one start beside them (room for 2×instances).
	app.UpgradeStrategy = appspec.UpgradeStrategy{MinimumHealthCapacity: 0, MaximumOverCapacity: 1}
	h.s.PutApp(app)
	h.sync()
	slices.Sort(v1)
	if got := h.rec.Killed(); !slices.Equal(got, v1) {
		t.Errorf("new version killed %v, want all v1 tasks %v", got, v1)
	}
	v2 := launchedIDs(h.offer("h2"))
	if len(v2) != 2 {
		t.Fatalf("new version launched %d, want 2", len(v2))
	}
	for _, tk := range h.tasks("/web") {
		want := "v1"
		if slices.Contains(v2, tk.ID) {
			want = "v2"
		}
		if tk.AppVersion != want {
			t.Errorf("task %s has version %s, want %s", tk.ID, tk.AppVersion, want)
		}
	}
	h.rec.Take()
	if err := h.s.RemoveApp("/web"); err != nil {
		t.Fatal(err)
	}
	h.sync()
	slices.Sort(v2)
	if got := h.rec.Killed(); !slices.Equal(got, v2) {
		t.Errorf("remove killed %v, want %v", got, v2)
	}
	if h.s.Snapshot().App("/web") != nil {
		t.Errorf("removed app still in the snapshot")
	}
	for _, id := range append(v1, v2...) {
		h.update(id, mesos.TASK_KILLED)
	}
	if n := len(h.s.Snapshot().Tasks); n != 0 {
		t.Errorf("%d tasks left after removal", n)
	}
	if err := h.s.RemoveApp("/web"); !errors.Is(err, ErrUnknownApp) {
		t.Errorf("second remove: %v, want ErrUnknownApp", err)
	}
}

func TestKillRetriedUntilTerminal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.KillRetry = 10 * time.Second })
	h.s.PutApp(testApp("/web", 1))
	h.subscribe()
	id := launchedIDs(h.offer("h1"))[0]
	if err := h.s.KillAndScale("/web", []string{id}, 0); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.step(10 * time.Second)
	if got := h.rec.Killed(); !slices.Equal(got, []string{id, id}) {
		t.Errorf("kills %v, want the kill re-sent once after 10 s", got)
	}
	h.update(id, mesos.TASK_KILLED)
	h.rec.Take()
	h.step(time.Minute)
	if n := len(h.rec.Killed()); n != 0 {
		t.Errorf("kill re-sent after the task ended")
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	s.PutApp(testApp("/web", 1))
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"scale unknown app", s.Scale("/nope", 1), ErrUnknownApp},
		{"remove unknown app", s.RemoveApp("/nope"), ErrUnknownApp},
		{"kill unknown task", s.KillTasks("/web", []string{"web.instance-x._app.1"}), ErrUnknownTask},
		{"kill in unknown app", s.KillTasks("/nope", nil), ErrUnknownApp},
		{"sync without run", s.Sync(context.Background()), ErrNotRunning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("got %v, want %v", tc.err, tc.want)
			}
			if tc.err != nil && !strings.HasPrefix(tc.err.Error(), "framework: ") {
				t.Errorf("error %q lacks the package prefix", tc.err)
			}
		})
	}
	if err := s.Scale("/web", -1); err == nil {
		t.Errorf("negative scale accepted")
	}
}

func TestSnapshotBeforeRunAndImmutable(t *testing.T) {
	t.Parallel()
	s := New(Config{})
	app := testApp("/web", 2)
	s.PutApp(app)
	app.Labels = map[string]string{"changed": "after put"}
	snap := s.Snapshot()
	if a := snap.App("/web"); a == nil || a.Instances != 2 || a.Labels != nil {
		t.Fatalf("snapshot app %+v: want the app as put, unaffected by the caller's later change", a)
	}
	if err := s.Scale("/web", 5); err != nil {
		t.Fatal(err)
	}
	if snap.App("/web").Instances != 2 {
		t.Errorf("an earlier snapshot changed after Scale")
	}
	if got := s.Snapshot().App("/web").Instances; got != 5 {
		t.Errorf("new snapshot has %d instances, want 5", got)
	}
}

func TestEventBus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	fast := h.s.Subscribe(1000)
	slow := h.s.Subscribe(2)
	h.s.PutApp(testApp("/web", 3))
	h.subscribe()
	ids := launchedIDs(h.offer("h1"))
	h.runAll("/web")
	var gotTask, gotApp, gotQueue int
	running := map[string]bool{}
	for len(fast.C) > 0 {
		e := <-fast.C
		switch e.Type {
		case EventTask:
			gotTask++
			if e.Task.State == mesos.TASK_RUNNING {
				running[e.Task.ID] = true
			}
		case EventApp:
			gotApp++
		case EventQueue:
			gotQueue++
		case EventLagged:
			t.Errorf("fast subscriber lagged")
		}
	}
	if gotApp != 1 || gotQueue == 0 || len(running) != len(ids) {
		t.Errorf("events: %d app, %d queue, running %v; want 1 app, queue events, %d running", gotApp, gotQueue, running, len(ids))
	}
	// The slow subscriber lost events: after draining it, the next event
	// is preceded by a lagged marker.
	for len(slow.C) > 0 {
		<-slow.C
	}
	if err := h.s.Scale("/web", 4); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if e := <-slow.C; e.Type != EventLagged {
		t.Errorf("first event after loss is %s, want lagged", e.Type)
	}
	slow.Close()
	for range slow.C { // buffered events drain, then the channel is closed
	}
	slow.Close() // idempotent
}

func TestEnvResolver(t *testing.T) {
	t.Parallel()
	fail := true
	h := newHarness(t, func(c *Config) {
		c.ResolveEnv = func(ctx context.Context, app *appspec.App, taskID string) ([]mesos.Environment_Variable, error) {
			if fail {
				return nil, errors.New("vault sealed")
			}
			v := "s3cr3t"
			return []mesos.Environment_Variable{{Name: "DB_PASSWORD", Value: &v}}, nil
		}
	})
	app := testApp("/web", 1)
	app.Env = map[string]appspec.EnvValue{"DB_PASSWORD": {Secret: "db"}, "PLAIN": {Value: "x"}}
	app.Secrets = map[string]appspec.Secret{"db": {Source: "secret/db#password"}}
	h.s.PutApp(app)
	h.subscribe()
	calls := h.offer("h1")
	if n := len(launchedIDs(calls)); n != 0 {
		t.Fatalf("launched %d with an unresolvable secret", n)
	}
	if countCalls(calls, CallDecline) != 1 {
		t.Errorf("offer of the failed launch not declined: %v", callTypes(calls))
	}
	q := h.s.Snapshot().Queue
	if len(q) != 1 || !strings.Contains(q[0].Reason, "vault sealed") || q[0].Delay == 0 {
		t.Fatalf("queue %+v: want the task waiting with the resolver's error and a backoff", q)
	}
	if len(h.s.Snapshot().Tasks) != 0 {
		t.Errorf("a task that never launched is listed")
	}
	fail = false // read by the loop only after the next send
	h.step(q[0].Delay)
	calls = h.offer("h1")
	if n := len(launchedIDs(calls)); n != 1 {
		t.Fatalf("launched %d after the secret resolved, want 1", n)
	}
	env := envOf(calls[0].Launched()[0])
	if env["DB_PASSWORD"] != "s3cr3t" || env["PLAIN"] != "x" {
		// Never print the value, even a test's.
		t.Errorf("DB_PASSWORD is the resolved value: %v; PLAIN = %q: want the resolved secret and the plain value",
			env["DB_PASSWORD"] == "s3cr3t", env["PLAIN"])
	}
	if q := h.s.Snapshot().Queue; len(q) != 0 {
		t.Errorf("queue %+v after launch, want empty", q)
	}
}

func TestAcceptFailureRequeues(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.rec.Fail = func(c Call) error {
		if c.Type == CallAccept {
			return fmt.Errorf("403 not subscribed")
		}
		return nil
	}
	h.s.PutApp(testApp("/web", 2))
	h.subscribe()
	h.offer("h1")
	if n := len(h.s.Snapshot().Tasks); n != 0 {
		t.Fatalf("%d tasks kept after ACCEPT failed", n)
	}
	q := h.s.Snapshot().Queue
	if len(q) != 1 || q[0].Count != 2 || q[0].Delay != 0 {
		t.Fatalf("queue %+v: want 2 waiting without backoff (not the app's fault)", q)
	}
}

func TestSettleHoldsLaunchesAfterSubscribe(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.ReconcileSettle = 2 * time.Second })
	h.s.PutApp(testApp("/web", 2))
	h.subscribe()
	if n := len(h.rec.Of(CallSuppress)); n != 0 {
		t.Errorf("suppressed during the hold although instances wait")
	}
	// A previous leader's task shows up in implicit reconciliation.
	h.send(UpdateInput(TestStatus("web.instance-old._app.1", "a-h1", mesos.TASK_RUNNING, false)))
	if n := len(launchedIDs(h.offer("h1"))); n != 0 {
		t.Fatalf("launched %d while reconciliation settles", n)
	}
	if q := h.s.Snapshot().Queue; len(q) != 1 || q[0].Reason == "" {
		t.Errorf("queue %+v: want the hold visible", q)
	}
	h.rec.Take()
	h.step(2 * time.Second)
	if n := len(h.rec.Of(CallRevive)); n != 1 {
		t.Errorf("%d REVIVEs when the hold ended, want 1 (declined offers were filtered)", n)
	}
	if n := len(launchedIDs(h.offer("h1"))); n != 1 {
		t.Errorf("launched %d after settling, want 1 (one adopted)", n)
	}
}

func TestRunTwiceAndAcrossRuns(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	if err := h.s.Run(context.Background(), nil, h.rec); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	h.s.PutApp(testApp("/web", 1))
	h.subscribe()
	id := launchedIDs(h.offer("h1"))[0]
	// The connection closes the input: Run returns nil, state is kept.
	close(h.in)
	if err := <-h.done; err != nil {
		t.Fatalf("Run after input closed: %v", err)
	}
	if h.s.Snapshot().Connected {
		t.Errorf("still connected after Run returned")
	}
	in := make(chan Input)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.s.Run(ctx, in, h.rec) }()
	h.in = in
	h.sync()
	h.rec.Take()
	h.subscribe()
	rec := h.rec.Of(CallReconcile)
	if len(rec) == 0 || len(rec[0].Reconcile) != 1 || rec[0].Reconcile[0].TaskID.Value != id {
		t.Errorf("second Run reconciles %+v, want the task of the first", rec)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v, want context.Canceled", err)
	}
	h.done <- nil // for the harness's cleanup
}

func TestStagingTimeoutReplaces(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.StagingTimeout = time.Minute })
	h.s.PutApp(testApp("/web", 2))
	h.subscribe()
	ids := launchedIDs(h.offer("h1"))
	h.update(ids[0], mesos.TASK_RUNNING)
	h.rec.Take()
	h.step(time.Minute - time.Millisecond)
	if k := h.rec.Killed(); len(k) != 0 {
		t.Fatalf("killed %v before the staging timeout", k)
	}
	h.step(time.Millisecond)
	if k := h.rec.Killed(); !slices.Equal(k, ids[1:]) {
		t.Fatalf("killed %v, want the task still staging %v", k, ids[1:])
	}
	if n := len(launchedIDs(h.offer("h2"))); n != 1 {
		t.Errorf("launched %d replacements, want 1", n)
	}
}

func TestBadConstraintAndRelativeID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	bad := testApp("bad", 1) // relative id: stored as /bad
	bad.Constraints = [][]string{{"hostname", "NO_SUCH_OPERATOR"}}
	h.s.PutApp(bad)
	h.s.PutApp(testApp("/good", 1))
	h.subscribe()
	ids := launchedIDs(h.offer("h1"))
	if len(ids) != 1 || !hasPrefixAll(ids, "good.") {
		t.Fatalf("launched %v, want only /good's task", ids)
	}
	snap := h.s.Snapshot()
	if snap.App("/bad") == nil {
		t.Fatalf("relative id not stored as /bad")
	}
	if len(snap.Queue) != 1 || snap.Queue[0].AppID != "/bad" || !strings.Contains(snap.Queue[0].Reason, "NO_SUCH_OPERATOR") {
		t.Errorf("queue %+v: want /bad waiting with the constraint error", snap.Queue)
	}
	if err := h.s.Scale("bad", 0); err != nil {
		t.Errorf("scale by relative id: %v", err)
	}
}

// TestLaunchFailureReasonNeedsNoFurtherInput: the reason a launch failed
// reaches the queue on its own. The loop only sleeps when idle, so the
// failed launch must wake it; otherwise the reason would be published at
// the backoff's end, by the step that places the instance again and
// clears it (flotilla dev's queue never showed a Vault outage).
func TestLaunchFailureReasonNeedsNoFurtherInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.ResolveEnv = func(ctx context.Context, app *appspec.App, taskID string) ([]mesos.Environment_Variable, error) {
			return nil, errors.New("vault sealed")
		}
	})
	app := testApp("/web", 1)
	app.Env = map[string]appspec.EnvValue{"DB_PASSWORD": {Secret: "db"}}
	app.Secrets = map[string]appspec.Secret{"db": {Source: "secret/db#password"}}
	h.s.PutApp(app)
	h.subscribe()
	// No Sync after the offer (a Sync steps the loop itself) and no step
	// of the clock: only the loop's own wake-ups may publish the reason.
	h.in <- OffersInput(TestOffer("o-1", "a-h1", "h1", 8, 8192, 31000, 31099, nil))
	var q []QueueEntry
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if q = h.s.Snapshot().Queue; len(q) == 1 && strings.Contains(q[0].Reason, "vault sealed") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("queue after a failed launch and no further input: %+v; want the resolver's error as the reason", q)
}

// TestWaitingInstancesAreACount: an app asking for 10^9 instances on three
// agents costs the tasks that fit, not a request per instance (it once
// allocated 23.6 GB and was OOM-killed). Not parallel, so the allocation
// count is this test's own.
func TestWaitingInstancesAreACount(t *testing.T) {
	h := newHarness(t, nil)
	const want = 1_000_000_000
	app := testApp("/big", want)
	h.s.PutApp(app)
	h.subscribe()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ids := launchedIDs(h.offer("h1", "h2", "h3"))
	runtime.ReadMemStats(&after)
	// 8 cpus / 0.5 = 16 per agent.
	if len(ids) != 48 {
		t.Fatalf("launched %d, want 48 (16 per 8-cpu agent)", len(ids))
	}
	q := h.s.Snapshot().Queue
	if len(q) != 1 || q[0].Count != want-48 {
		t.Fatalf("queue %+v, want %d waiting", q, want-48)
	}
	if !hasReason(q[0].LastRejection, offers.InsufficientCpus) {
		t.Errorf("rejection %+v does not say InsufficientCpus", q[0].LastRejection)
	}
	if q[0].Reason != "" {
		t.Errorf("reason %q: these agents can hold the app, it only waits for room", q[0].Reason)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("the offer cycle allocated %d MiB for 48 launches", grew>>20)
	}
}

func TestQueueSaysNoAgentEverFits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	app := testApp("/huge", 2)
	app.CPUs = 1e308
	h.s.PutApp(app)
	h.subscribe()
	if ids := launchedIDs(h.offer("h1", "h2")); len(ids) != 0 {
		t.Fatalf("launched %v on 8-cpu agents", ids)
	}
	q := h.s.Snapshot().Queue
	want := "no agent has offered enough: cpus: needs 1e+308, the largest offer seen had 8"
	if len(q) != 1 || q[0].Count != 2 || q[0].Reason != want {
		t.Fatalf("queue %+v, want 2 waiting with reason %q", q, want)
	}
	// Scaled down to something that fits, the reason goes.
	app.CPUs, app.Version = 1, "v2"
	h.s.PutApp(app)
	if ids := launchedIDs(h.offer("h1")); len(ids) != 2 {
		t.Fatalf("launched %d after the fix, want 2", len(ids))
	}
	if q := h.s.Snapshot().Queue; len(q) != 0 && (q[0].Count != 0 || q[0].Reason != "") {
		t.Errorf("queue %+v after every instance launched", q)
	}
}

// TestAdoptedTaskLearnsHostFromOffer: a task adopted before any offer of
// its agent has no host; the first offer of that agent gives it one (the
// OFFERS handler looks only at such tasks, not at every task).
func TestAdoptedTaskLearnsHostFromOffer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.s.PutApp(testApp("/web", 1))
	h.subscribe()
	id := NewTaskID("/web", rand.New(rand.NewSource(7)))
	h.send(UpdateInput(TestStatus(id, "a-h9", mesos.TASK_RUNNING, true)))
	h.sync()
	var adopted *Task
	for _, tk := range h.tasks("/web") {
		if tk.ID == id {
			adopted = &tk
		}
	}
	if adopted == nil || !adopted.Adopted || adopted.Host != "" {
		t.Fatalf("after an update from an unknown agent: task %+v, want adopted with no host", adopted)
	}
	h.offer("h1") // another agent's offer tells nothing about a-h9
	for _, tk := range h.tasks("/web") {
		if tk.ID == id && tk.Host != "" {
			t.Fatalf("host %q from another agent's offer", tk.Host)
		}
	}
	h.offer("h9")
	for _, tk := range h.tasks("/web") {
		if tk.ID == id && tk.Host != "h9" {
			t.Fatalf("after an offer of its agent: host %q, want h9", tk.Host)
		}
	}
	h.s.locked(func(c *core, _ time.Time) {
		if len(c.hostless) != 0 {
			t.Errorf("hostless set still holds %d tasks after their agent offered", len(c.hostless))
		}
	})
}
