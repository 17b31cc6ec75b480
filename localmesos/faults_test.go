package localmesos

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// TestReconciliation checks every answer of MESOS.md's reconciliation
// list, with and without PARTITION_AWARE.
func TestReconciliation(t *testing.T) {
	t.Parallel()
	for _, pa := range []bool{true, false} {
		name := map[bool]string{true: "partition aware", false: "not partition aware"}[pa]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m, _ := startMaster(t, Config{Agents: 3})
			info := plainInfo
			if pa {
				info = paInfo
			}
			f := subscribeRaw(t, m, info)
			ag := m.Agents()
			active, unreach, removed := ag[0].ID, ag[1].ID, ag[2].ID
			f.launchRunning(f.offer(active), "run")
			f.launchRunning(f.offer(unreach), "far")
			if err := m.SetAgentReachable(unreach, false); err != nil {
				t.Fatal(err)
			}
			if err := m.RemoveAgent(removed); err != nil {
				t.Fatal(err)
			}
			lost := func(s mesos.TaskState) mesos.TaskState {
				if pa {
					return s
				}
				return mesos.TASK_LOST
			}
			cases := []struct {
				name   string
				task   string
				agent  string
				want   mesos.TaskState
				byKill bool
			}{
				{"known task", "run", active, mesos.TASK_RUNNING, false},
				{"known task without agent id", "run", "", mesos.TASK_RUNNING, false},
				{"known task on unreachable agent", "far", unreach, lost(mesos.TASK_UNREACHABLE), false},
				{"unknown task on registered agent", "ghost", active, lost(mesos.TASK_GONE), false},
				{"unknown task on unreachable agent", "ghost", unreach, lost(mesos.TASK_UNREACHABLE), false},
				{"unknown task on removed agent", "ghost", removed, lost(mesos.TASK_GONE_BY_OPERATOR), false},
				{"unknown task on unknown agent", "ghost", "nowhere", lost(mesos.TASK_UNKNOWN), false},
				{"unknown task without agent", "ghost", "", lost(mesos.TASK_UNKNOWN), false},
				{"kill of an unknown task reconciles it", "ghost", active, lost(mesos.TASK_GONE), true},
			}
			for _, tc := range cases {
				agent := ""
				if tc.agent != "" {
					agent = `,"agent_id":{"value":"` + tc.agent + `"}`
				}
				if tc.byKill {
					f.call(`"type":"KILL","kill":{"task_id":{"value":"` + tc.task + `"}` + agent + `}`)
				} else {
					f.call(`"type":"RECONCILE","reconcile":{"tasks":[{"task_id":{"value":"` + tc.task + `"}` + agent + `}]}`)
				}
				st := f.update(tc.task)
				if st.GetState() != tc.want || st.GetReason() != mesos.REASON_RECONCILIATION || st.GetSource() != mesos.SOURCE_MASTER || st.UUID != nil {
					t.Errorf("%s: got %s %s %s uuid %x, want %s REASON_RECONCILIATION SOURCE_MASTER without uuid",
						tc.name, st.GetState(), st.GetReason(), st.GetSource(), st.UUID, tc.want)
				}
			}
			// Implicit: every known task, nothing else.
			f.call(`"type":"RECONCILE","reconcile":{"tasks":[]}`)
			got := map[string]mesos.TaskState{}
			for len(got) < 2 {
				st := f.next(scheduler.Event_UPDATE).Update.Status
				got[st.TaskID.Value] = st.GetState()
			}
			if got["run"] != mesos.TASK_RUNNING || got["far"] != lost(mesos.TASK_UNREACHABLE) {
				t.Fatalf("implicit reconciliation %v, want run RUNNING and far %s", got, lost(mesos.TASK_UNREACHABLE))
			}
			f.none(100*time.Millisecond, scheduler.Event_UPDATE)
		})
	}
}

func TestAgentFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		pa        bool
		fault     func(m *Master, id string) error
		wantState mesos.TaskState
		wantWhy   mesos.TaskStatus_Reason
	}{
		{"removed, partition aware", true, (*Master).RemoveAgent, mesos.TASK_GONE_BY_OPERATOR, mesos.REASON_AGENT_REMOVED_BY_OPERATOR},
		{"removed, not partition aware", false, (*Master).RemoveAgent, mesos.TASK_LOST, mesos.REASON_AGENT_REMOVED_BY_OPERATOR},
		{"unreachable, partition aware", true, func(m *Master, id string) error { return m.SetAgentReachable(id, false) }, mesos.TASK_UNREACHABLE, mesos.REASON_AGENT_REMOVED},
		{"unreachable, not partition aware", false, func(m *Master, id string) error { return m.SetAgentReachable(id, false) }, mesos.TASK_LOST, mesos.REASON_AGENT_REMOVED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := startMaster(t, Config{Agents: 2})
			info := plainInfo
			if tc.pa {
				info = paInfo
			}
			f := subscribeRaw(t, m, info)
			id := m.Agents()[0].ID
			f.launchRunning(f.offer(id), "t")
			if err := tc.fault(m, id); err != nil {
				t.Fatal(err)
			}
			fe := f.next(scheduler.Event_FAILURE)
			if fe.Failure.GetAgentID().GetValue() != id || fe.Failure.ExecutorID != nil {
				t.Fatalf("FAILURE %v, want agent %s and no executor", fe.Failure, id)
			}
			st := f.update("t")
			if st.GetState() != tc.wantState || st.GetReason() != tc.wantWhy || st.GetSource() != mesos.SOURCE_MASTER || st.UUID != nil {
				t.Fatalf("got %s %s %s, want %s %s from the master", st.GetState(), st.GetReason(), st.GetSource(), tc.wantState, tc.wantWhy)
			}
			// No more offers from that agent.
			for _, oid := range m.Offers() {
				m.mu.Lock()
				on := m.offers[oid].agent.id
				m.mu.Unlock()
				if on == id {
					t.Fatalf("offer %s still outstanding on the lost agent", oid)
				}
			}
		})
	}
}

// TestAgentRecovery: an unreachable agent comes back; tasks of a
// partition-aware framework are running again (reconciliation says so)
// and an update queued meanwhile is delivered.
func TestAgentRecovery(t *testing.T) {
	t.Parallel()
	m, sims := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	id := m.Agents()[0].ID
	f.launchRunning(f.offer(id), "t")
	if err := m.SetAgentReachable(id, false); err != nil {
		t.Fatal(err)
	}
	f.updateIn("t", mesos.TASK_UNREACHABLE)
	if err := sims[id].SetHealthy("t", true); err != nil {
		t.Fatal(err)
	}
	f.none(100*time.Millisecond, scheduler.Event_UPDATE) // the agent cannot reach the master
	if err := m.SetAgentReachable(id, true); err != nil {
		t.Fatal(err)
	}
	st := f.updateIn("t", mesos.TASK_RUNNING)
	if !st.GetHealthy() || len(st.UUID) != 16 {
		t.Fatalf("queued update %v, want the healthy RUNNING update with its uuid", st)
	}
	f.ack(st)
	f.call(`"type":"RECONCILE","reconcile":{"tasks":[{"task_id":{"value":"t"}}]}`)
	if st := f.update("t"); st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("reconciled %s after recovery, want TASK_RUNNING", st.GetState())
	}
}

// TestFrameworkFailover: a second SUBSCRIBE with the same id takes over;
// the old stream gets ERROR "Framework failed over" and closes; offers are
// rescinded and made again; tasks stay.
func TestFrameworkFailover(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 2})
	old := subscribeRaw(t, m, paInfo)
	old.launchRunning(old.offer(m.Agents()[0].ID), "t")
	outstanding := m.Offers()
	if len(outstanding) == 0 {
		waitFor(t, func() bool { return len(m.Offers()) > 0 })
		outstanding = m.Offers()
	}
	info := strings.Replace(paInfo, `{"user"`, `{"id":{"value":"`+old.id+`"},"user"`, 1)
	nw := subscribeRaw(t, m, info)
	if nw.id != old.id {
		t.Fatalf("re-subscribe got framework id %q, want %q", nw.id, old.id)
	}
	ev := old.next(scheduler.Event_ERROR)
	if ev.Error.Message != "Framework failed over" {
		t.Fatalf("old stream error %q", ev.Error.Message)
	}
	if !old.streamEnded(5 * time.Second) {
		t.Fatal("old stream still open")
	}
	r := nw.next(scheduler.Event_RESCIND)
	found := false
	for _, o := range outstanding {
		found = found || o == r.Rescind.OfferID.Value
	}
	if !found {
		t.Fatalf("rescinded %s, want one of the outstanding %v", r.Rescind.OfferID.Value, outstanding)
	}
	nw.offer("")
	if code, _ := old.try(`"type":"REVIVE","revive":{}`); code != 400 {
		t.Fatalf("a call with the old stream id answered %d, want 400", code)
	}
	nw.call(`"type":"RECONCILE","reconcile":{"tasks":[{"task_id":{"value":"t"}}]}`)
	if st := nw.update("t"); st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("task after failover %s, want TASK_RUNNING", st.GetState())
	}
}

// TestFailoverTimeout: a disconnected framework answers 403 until its
// failover_timeout passes; then it is removed, its tasks are killed and it
// cannot come back. With failover_timeout 0 that happens at once.
func TestFailoverTimeout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		timeout float64
	}{
		{"timeout 30s", 30},
		{"timeout 0", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := clock.NewFake(time.Unix(1700000000, 0))
			m, sims := startMaster(t, Config{Clock: fc, Agents: 1})
			info := `{"user":"root","name":"ft","failover_timeout":` + strings.TrimSuffix(strings.TrimSuffix(jsonNum(tc.timeout), ".0"), ".") + `}`
			f := subscribeRaw(t, m, info)
			id := m.Agents()[0].ID
			f.launchRunning(f.offer(id), "t")
			f.closeStream()
			removed := func() bool {
				m.mu.Lock()
				defer m.mu.Unlock()
				return m.removedFws[f.id]
			}
			if tc.timeout > 0 {
				waitFor(t, func() bool {
					m.mu.Lock()
					defer m.mu.Unlock()
					return m.frameworks[f.id].stream == nil
				})
				if code, _ := f.try(`"type":"REVIVE","revive":{}`); code != 403 {
					t.Fatalf("disconnected framework call answered %d, want 403", code)
				}
				// A fake timer that is due fires inside Step and leaves the
				// clock's waiters; the failover timer must not be due yet.
				armed := fc.Waiters()
				fc.Step(29 * time.Second)
				if fc.Waiters() != armed || removed() {
					t.Fatalf("a timer fired 29 s into a %v s failover timeout (%d timers armed, then %d; removed %v)", tc.timeout, armed, fc.Waiters(), removed())
				}
				fc.Step(time.Second)
			}
			waitFor(t, removed)
			waitFor(t, func() bool { return sims[id].Len() == 0 })
			back := subscribeRaw(t, m, strings.Replace(info, `{"user"`, `{"id":{"value":"`+f.id+`"},"user"`, 1))
			if ev := back.next(scheduler.Event_ERROR); ev.Error.Message != "Framework has been removed" {
				t.Fatalf("re-subscribe after removal: %q", ev.Error.Message)
			}
		})
	}
}

func jsonNum(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestMasterFailover: streams drop, the master id changes, the framework
// re-subscribes with its id and finds its task.
func TestMasterFailover(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	f.launchRunning(f.offer(""), "t")
	before := m.ID()
	if err := m.Failover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.streamEnded(5 * time.Second) {
		t.Fatal("stream survived the failover")
	}
	if m.ID() == before {
		t.Fatal("master id unchanged by failover")
	}
	g := subscribeRaw(t, m, strings.Replace(paInfo, `{"user"`, `{"id":{"value":"`+f.id+`"},"user"`, 1))
	if g.id != f.id {
		t.Fatalf("framework id after failover %q, want %q", g.id, f.id)
	}
	o := g.offer("")
	if !strings.HasPrefix(o.ID.Value, m.ID()+"-O") {
		t.Fatalf("offer id %q does not carry the new master id", o.ID.Value)
	}
	g.call(`"type":"RECONCILE","reconcile":{"tasks":[]}`)
	if st := g.update("t"); st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("task after master failover %s, want TASK_RUNNING", st.GetState())
	}
}

func TestTeardown(t *testing.T) {
	t.Parallel()
	m, sims := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	id := m.Agents()[0].ID
	f.launchRunning(f.offer(id), "t")
	f.call(`"type":"TEARDOWN"`)
	if !f.streamEnded(5 * time.Second) {
		t.Fatal("stream open after TEARDOWN")
	}
	waitFor(t, func() bool { return sims[id].Len() == 0 })
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.agentList[0].free.scalars["cpus"] == 4
	})
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	id := m.Agents()[0].ID
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"rescind", "POST", "/admin/offers/" + o.ID.Value + "/rescind", "", 200},
		{"rescind unknown", "POST", "/admin/offers/nope/rescind", "", 404},
		{"faults", "POST", "/admin/faults", `{"drop_updates":1,"delay_acks":"1s"}`, 200},
		{"faults bad duration", "POST", "/admin/faults", `{"delay_acks":"soon"}`, 400},
		{"faults unknown field", "POST", "/admin/faults", `{"drop_everything":true}`, 400},
		{"faults reset", "POST", "/admin/faults", `{}`, 200},
		{"unreachable", "POST", "/admin/agents/" + id + "/unreachable", "", 200},
		{"reachable", "POST", "/admin/agents/" + id + "/reachable", "", 200},
		{"unknown agent", "POST", "/admin/agents/nope/remove", "", 404},
		{"GET is 405", "GET", "/admin/failover", "", 405},
		{"unknown path", "POST", "/admin/nothing", "", 404},
		{"failover", "POST", "/admin/failover", "", 200},
		{"remove", "POST", "/admin/agents/" + id + "/remove", "", 200},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, m.URL()+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %s answered %d, want %d", tc.name, tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	if ev := f.next(scheduler.Event_RESCIND); ev.Rescind.OfferID.Value != o.ID.Value {
		t.Fatalf("rescinded %s, want %s", ev.Rescind.OfferID.Value, o.ID.Value)
	}
	if got := m.Agents()[0].State; got != "gone" {
		t.Fatalf("agent state %q after remove, want gone", got)
	}
}
