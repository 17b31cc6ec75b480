package localmesos

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

func TestOfferShape(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		samePorts bool
		want      [][2]uint64
	}{
		{"ports split between agents", false, [][2]uint64{{31000, 31332}, {31333, 31665}, {31666, 31998}}},
		{"same ports", true, [][2]uint64{{31000, 32000}, {31000, 32000}, {31000, 32000}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := startMaster(t, Config{Agents: 3, SamePorts: tc.samePorts})
			f := subscribeRaw(t, m, plainInfo)
			if !regexp.MustCompile(`^` + m.ID() + `-0000$`).MatchString(f.id) {
				t.Fatalf("framework id %q, want <masterID>-0000", f.id)
			}
			got := map[string]mesos.Offer{}
			for len(got) < 3 {
				for _, o := range f.next(scheduler.Event_OFFERS).Offers.Offers {
					got[o.AgentID.Value] = o
				}
			}
			for i, a := range m.Agents() {
				if a.ID != fmt.Sprintf("%s-S%d", m.ID(), i) {
					t.Fatalf("agent id %q, want <masterID>-S%d", a.ID, i)
				}
				o, ok := got[a.ID]
				if !ok {
					t.Fatalf("no offer for agent %s", a.ID)
				}
				if !regexp.MustCompile(`^` + m.ID() + `-O\d+$`).MatchString(o.ID.Value) {
					t.Fatalf("offer id %q, want <masterID>-O<n>", o.ID.Value)
				}
				if o.AllocationInfo != nil {
					t.Fatalf("offer carries allocation_info %v for a framework without MULTI_ROLE", o.AllocationInfo)
				}
				if o.Hostname != "127.0.0.1" || o.URL == nil || o.URL.Address.Port == 0 || o.FrameworkID.Value != f.id {
					t.Fatalf("offer %v lacks hostname, url or framework id", o)
				}
				if len(o.Attributes) != 1 || o.Attributes[0].Name != "rack" || o.Attributes[0].GetText().GetValue() != fmt.Sprintf("r%d", i%3+1) {
					t.Fatalf("attributes %v, want rack:r%d", o.Attributes, i%3+1)
				}
				res := map[string]*mesos.Resource{}
				for _, r := range o.Resources {
					res[r.Name] = &r
					if r.AllocationInfo != nil || r.GetRole() != "*" {
						t.Fatalf("resource %s: role %q, allocation_info %v; want role * and no allocation_info (not a MULTI_ROLE framework)", r.Name, r.GetRole(), r.AllocationInfo)
					}
				}
				if res["cpus"].GetScalar().GetValue() != 4 || res["mem"].GetScalar().GetValue() != 8192 || res["disk"].GetScalar().GetValue() != 10240 {
					t.Fatalf("scalars %v, want cpus 4 mem 8192 disk 10240", o.Resources)
				}
				rg := res["ports"].GetRanges().GetRange()
				if len(rg) != 1 || rg[0].Begin != tc.want[i][0] || rg[0].End != tc.want[i][1] {
					t.Fatalf("agent %d ports %v, want [%d-%d]", i, rg, tc.want[i][0], tc.want[i][1])
				}
			}
		})
	}
}

// TestOfferAllocationInfo: allocation_info, on the offer and on every
// resource, goes only to frameworks that subscribed with MULTI_ROLE, as
// Mesos >= 1.3.2 sends it (Master::offer strips it for the others,
// MESOS-8237), naming the framework's role; a framework without MULTI_ROLE
// that launches with bare resources, as a plain mesos-go framework does,
// gets its task started.
func TestOfferAllocationInfo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, info string
		wantRole   string // "" for no allocation_info
	}{
		{"without MULTI_ROLE", `{"user":"root","name":"plain"}`, ""},
		{"without MULTI_ROLE, with role", `{"user":"root","name":"plain","role":"web"}`, ""},
		{"MULTI_ROLE", `{"user":"root","name":"multi","capabilities":[{"type":"MULTI_ROLE"}]}`, "*"},
		{"MULTI_ROLE with roles", `{"user":"root","name":"multi","roles":["web"],"capabilities":[{"type":"MULTI_ROLE"}]}`, "web"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := startMaster(t, Config{Agents: 1})
			f := subscribeRaw(t, m, tc.info)
			o := f.next(scheduler.Event_OFFERS).Offers.Offers[0]
			if got := o.AllocationInfo.GetRole(); (o.AllocationInfo != nil) != (tc.wantRole != "") || got != tc.wantRole {
				t.Fatalf("offer allocation_info %v, want role %q (none if empty)", o.AllocationInfo, tc.wantRole)
			}
			for _, r := range o.Resources {
				if got := r.AllocationInfo.GetRole(); (r.AllocationInfo != nil) != (tc.wantRole != "") || got != tc.wantRole {
					t.Fatalf("resource %s allocation_info %v, want role %q (none if empty)", r.Name, r.AllocationInfo, tc.wantRole)
				}
			}
			// Bare resources (no role, no allocation_info) launch.
			f.call(acceptJSON(o.ID.Value, 0, taskJSON("t", o.AgentID.Value)))
			st := f.update("t")
			if st.GetState() != mesos.TASK_STARTING && st.GetState() != mesos.TASK_RUNNING {
				t.Fatalf("task with bare resources: %v %v %q, want it started", st.GetState(), st.GetReason(), st.GetMessage())
			}
		})
	}
}

// TestFilters drives refuse_seconds, DECLINE, REVIVE and SUPPRESS on a
// fake clock, running the allocator by hand.
func TestFilters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// act runs with an outstanding offer o; then the clock steps
		// through steps, and offered says whether an offer must be
		// outstanding after each step.
		act     func(f *rawFW, o mesos.Offer)
		steps   []time.Duration
		offered []bool
	}{
		{"decline without filters refuses 5s", func(f *rawFW, o mesos.Offer) {
			f.call(`"type":"DECLINE","decline":{"offer_ids":[{"value":"` + o.ID.Value + `"}]}`)
		}, []time.Duration{0, 4900 * time.Millisecond, 100 * time.Millisecond}, []bool{false, false, true}},
		{"decline refuse 30s", func(f *rawFW, o mesos.Offer) {
			f.call(`"type":"DECLINE","decline":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"filters":{"refuse_seconds":30}}`)
		}, []time.Duration{0, 29 * time.Second, time.Second}, []bool{false, false, true}},
		{"decline refuse 0 re-offers at once", func(f *rawFW, o mesos.Offer) {
			f.call(`"type":"DECLINE","decline":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"filters":{"refuse_seconds":0}}`)
		}, []time.Duration{0}, []bool{true}},
		{"revive clears filters", func(f *rawFW, o mesos.Offer) {
			f.call(`"type":"DECLINE","decline":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"filters":{"refuse_seconds":300}}`)
			f.call(`"type":"REVIVE","revive":{}`)
		}, []time.Duration{0}, []bool{true}},
		{"suppress stops offers until revive", func(f *rawFW, o mesos.Offer) {
			f.call(`"type":"SUPPRESS","suppress":{}`)
			f.call(`"type":"DECLINE","decline":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"filters":{"refuse_seconds":0}}`)
		}, []time.Duration{0, time.Hour}, []bool{false, false}},
		{"accept leftovers count as declined", func(f *rawFW, o mesos.Offer) {
			f.call(acceptJSON(o.ID.Value, 10, taskJSON("t", o.AgentID.Value)))
		}, []time.Duration{0, 9 * time.Second, time.Second}, []bool{false, false, true}},
		{"freed resources lift a filter", func(f *rawFW, o mesos.Offer) {
			f.call(acceptJSON(o.ID.Value, 300, taskJSON("t", o.AgentID.Value)))
			f.ack(f.updateIn("t", mesos.TASK_STARTING))
			f.ack(f.updateIn("t", mesos.TASK_RUNNING))
			f.call(`"type":"KILL","kill":{"task_id":{"value":"t"}}`)
			f.ack(f.updateIn("t", mesos.TASK_KILLED))
		}, []time.Duration{0}, []bool{true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := clock.NewFake(time.Unix(1700000000, 0))
			m, _ := startMaster(t, Config{Clock: fc, Agents: 1})
			f := subscribeRaw(t, m, plainInfo)
			o := f.offer("")
			tc.act(f, o)
			for i, d := range tc.steps {
				fc.Step(d)
				m.allocate()
				if got := len(m.Offers()) == 1; got != tc.offered[i] {
					t.Fatalf("after step %d (+%v): offered=%v, want %v", i, d, got, tc.offered[i])
				}
			}
		})
	}
}

func TestAcceptInvalidOffers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		info  string
		offer func(o mesos.Offer) string
		want  mesos.TaskState
	}{
		{"unknown offer, partition aware", paInfo, func(mesos.Offer) string { return "no-such-offer" }, mesos.TASK_DROPPED},
		{"unknown offer, not partition aware", plainInfo, func(mesos.Offer) string { return "no-such-offer" }, mesos.TASK_LOST},
		{"used offer, partition aware", paInfo, func(o mesos.Offer) string { return o.ID.Value }, mesos.TASK_DROPPED},
		{"used offer, not partition aware", plainInfo, func(o mesos.Offer) string { return o.ID.Value }, mesos.TASK_LOST},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := startMaster(t, Config{Agents: 1})
			f := subscribeRaw(t, m, tc.info)
			o := f.offer("")
			f.call(`"type":"DECLINE","decline":{"offer_ids":[{"value":"` + o.ID.Value + `"}]}`)
			f.call(acceptJSON(tc.offer(o), 0, taskJSON("t", o.AgentID.Value)))
			st := f.update("t")
			if st.GetState() != tc.want || st.GetReason() != mesos.REASON_INVALID_OFFERS || st.GetSource() != mesos.SOURCE_MASTER || st.UUID != nil {
				t.Fatalf("got %s %s %s uuid %x, want %s REASON_INVALID_OFFERS SOURCE_MASTER without uuid",
					st.GetState(), st.GetReason(), st.GetSource(), st.UUID, tc.want)
			}
		})
	}
}

func TestTaskValidation(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	agent := o.AgentID.Value
	f.launchRunning(o, "existing")
	res := `"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]}}]`
	base := func(id, rest string) string {
		return `{"name":"x","task_id":{"value":"` + id + `"},"agent_id":{"value":"` + agent + `"},` + rest + `}`
	}
	cases := []struct {
		name   string
		tasks  []string
		taskID string
		reason mesos.TaskStatus_Reason
		msg    string
	}{
		{"no resources", []string{base("t1", `"resources":[],"command":{"value":"true"}`)}, "t1", mesos.REASON_TASK_INVALID, "Task uses no resources"},
		{"duplicate of a running task", []string{base("existing", res+`,"command":{"value":"true"}`)}, "existing", mesos.REASON_TASK_INVALID, "Task has duplicate ID"},
		{"duplicate within the accept", []string{base("t2", `"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],"command":{"value":"true"}`), base("t2", res+`,"command":{"value":"true"}`)}, "t2", mesos.REASON_TASK_INVALID, "Task has duplicate ID"},
		{"neither command nor executor", []string{base("t3", res)}, "t3", mesos.REASON_TASK_INVALID, "at least one (but not both)"},
		{"both command and executor", []string{base("t4", res+`,"command":{"value":"true"},"executor":{"executor_id":{"value":"e"},"command":{"value":"true"}}`)}, "t4", mesos.REASON_TASK_INVALID, "at least one (but not both)"},
		{"more than offered", []string{base("t5", `"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":400}}],"command":{"value":"true"}`)}, "t5", mesos.REASON_TASK_INVALID, "more resources"},
		{"port outside the offer", []string{base("t6", `"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":80,"end":80}]}}],"command":{"value":"true"}`)}, "t6", mesos.REASON_TASK_INVALID, "more resources"},
		{"another agent", []string{`{"name":"x","task_id":{"value":"t7"},"agent_id":{"value":"other"},` + res + `,"command":{"value":"true"}}`}, "t7", mesos.REASON_TASK_INVALID, "invalid agent"},
		{"empty id", []string{base("", res+`,"command":{"value":"true"}`)}, "", mesos.REASON_TASK_INVALID, "must not be empty"},
		{"slash in id", []string{base("a/b", res+`,"command":{"value":"true"}`)}, "a/b", mesos.REASON_TASK_INVALID, "'/' is not allowed"},
		{"port mappings on host network", []string{base("t8", res+`,"command":{"shell":false},"container":{"type":"DOCKER","docker":{"image":"x","network":"HOST","port_mappings":[{"host_port":31000,"container_port":80}]}}`)}, "t8", mesos.REASON_TASK_INVALID, "only supported for bridge"},
		{"host port outside the task's ports", []string{base("t9", res+`,"command":{"shell":false},"container":{"type":"DOCKER","docker":{"image":"x","network":"BRIDGE","port_mappings":[{"host_port":31005,"container_port":80}]}}`)}, "t9", mesos.REASON_TASK_INVALID, "host port 31005"},
		{"port mappings on none network", []string{base("t13", res+`,"command":{"shell":false},"container":{"type":"DOCKER","docker":{"image":"x","network":"NONE","port_mappings":[{"host_port":31000,"container_port":80}]}}`)}, "t13", mesos.REASON_TASK_INVALID, "only supported for bridge"},
		{"container port out of range", []string{base("t14", res+`,"command":{"shell":false},"container":{"type":"DOCKER","docker":{"image":"x","network":"BRIDGE","port_mappings":[{"host_port":31000,"container_port":0}]}}`)}, "t14", mesos.REASON_TASK_INVALID, "container port 0"},
		{"protocol neither tcp nor udp", []string{base("t15", res+`,"command":{"shell":false},"container":{"type":"DOCKER","docker":{"image":"x","network":"BRIDGE","port_mappings":[{"host_port":31000,"container_port":80,"protocol":"sctp"}]}}`)}, "t15", mesos.REASON_TASK_INVALID, `protocol "sctp"`},
		{"user network without network_infos", []string{base("t16", res+`,"command":{"shell":false},"container":{"type":"DOCKER","docker":{"image":"x","network":"USER","port_mappings":[{"host_port":31000,"container_port":80}]}}`)}, "t16", mesos.REASON_TASK_INVALID, "No network info found"},
		{"docker without docker info", []string{base("t10", res+`,"command":{"value":"true"},"container":{"type":"DOCKER"}`)}, "t10", mesos.REASON_TASK_INVALID, "DockerInfo"},
		{"negative resource", []string{base("t11", `"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}],"command":{"value":"true"}`)}, "t11", mesos.REASON_TASK_INVALID, "invalid value"},
		{"bad health check", []string{base("t12", res+`,"command":{"value":"true"},"health_check":{"type":"HTTP","http":{"port":0}}`)}, "t12", mesos.REASON_TASK_INVALID, "health check"},
		{"empty task group", []string{}, "", mesos.REASON_TASK_GROUP_INVALID, "group is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := f.offer("")
			if tc.reason == mesos.REASON_TASK_GROUP_INVALID {
				f.call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"filters":{"refuse_seconds":0},"operations":[{"type":"LAUNCH_GROUP","launch_group":{"executor":{"executor_id":{"value":"e"},"type":"DEFAULT"},"task_group":{"tasks":[]}}}]}`)
				// An empty group has no task to report on; nothing launches.
				f.none(100*time.Millisecond, scheduler.Event_UPDATE)
				return
			}
			f.call(acceptJSON(o.ID.Value, 0, tc.tasks...))
			var st mesos.TaskStatus
			for {
				st = f.update(tc.taskID)
				if st.GetState() == mesos.TASK_ERROR {
					break
				}
				f.ack(st) // the valid first task of the duplicate case
			}
			if st.GetReason() != tc.reason || !strings.Contains(st.GetMessage(), tc.msg) || st.GetSource() != mesos.SOURCE_MASTER || st.UUID != nil {
				t.Fatalf("got %s %s %q %s uuid %x, want TASK_ERROR %s saying %q from the master without uuid",
					st.GetState(), st.GetReason(), st.GetMessage(), st.GetSource(), st.UUID, tc.reason, tc.msg)
			}
		})
	}
}

func TestLaunchGroup(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	a := o.AgentID.Value
	task := func(id string) string {
		return `{"name":"` + id + `","task_id":{"value":"` + id + `"},"agent_id":{"value":"` + a + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],"command":{"value":"sleep 100"}}`
	}
	f.call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"operations":[{"type":"LAUNCH_GROUP","launch_group":{"executor":{"type":"DEFAULT","executor_id":{"value":"pod1"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}},{"name":"disk","type":"SCALAR","scalar":{"value":10}}]},"task_group":{"tasks":[` + task("g1") + `,` + task("g2") + `]}}}]}`)
	running := map[string]bool{}
	for len(running) < 2 {
		st := f.next(scheduler.Event_UPDATE).Update.Status
		if st.GetExecutorID().GetValue() != "pod1" {
			t.Fatalf("task %s executor id %q, want the group's executor pod1", st.TaskID.Value, st.GetExecutorID().GetValue())
		}
		if st.GetState() == mesos.TASK_RUNNING {
			running[st.TaskID.Value] = true
		}
		f.ack(st)
	}
	if !running["g1"] || !running["g2"] {
		t.Fatalf("running tasks %v, want g1 and g2", running)
	}
	// The executor's and both tasks' cpus are used: 4 - 0.3.
	m.mu.Lock()
	free := m.agentList[0].free.scalars["cpus"]
	m.mu.Unlock()
	if free < 3.69 || free > 3.71 {
		t.Fatalf("agent free cpus %v, want 3.7", free)
	}
}

// pendingStarting launches task "t" on a master with a fake clock and
// returns the framework with the task's STARTING update unacknowledged.
func pendingStarting(t *testing.T) (*clock.Fake, *Master, *rawFW, mesos.TaskStatus) {
	t.Helper()
	fc := clock.NewFake(time.Unix(1700000000, 0))
	m, _ := startMaster(t, Config{Clock: fc, Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	f.call(acceptJSON(o.ID.Value, 0, taskJSON("t", o.AgentID.Value)))
	return fc, m, f, f.updateIn("t", mesos.TASK_STARTING)
}

// TestReliableUpdates: one update in flight per task, re-sent after 10 s,
// then 20 s, until acknowledged; dropped updates and acks are recovered
// the same way.
func TestReliableUpdates(t *testing.T) {
	t.Parallel()
	fc, m, f, first := pendingStarting(t)
	if len(first.UUID) != 16 {
		t.Fatalf("uuid %x is not 16 bytes", first.UUID)
	}
	// RUNNING waits behind the unacknowledged STARTING.
	f.none(100*time.Millisecond, scheduler.Event_UPDATE)
	step := func(d time.Duration) {
		// The retry loop ticks every second of the fake clock. Ticks it
		// has not taken yet coalesce, which is harmless: it compares the
		// clock with each update's next retry time, and the clock stays
		// where the last step left it until the test has seen what it
		// waits for.
		for left := d; left > 0; left -= time.Second {
			fc.Step(time.Second)
		}
	}
	step(10 * time.Second)
	again := f.update("t")
	if again.GetState() != mesos.TASK_STARTING || string(again.UUID) != string(first.UUID) {
		t.Fatalf("retry sent %s %x, want the same STARTING update %x", again.GetState(), again.UUID, first.UUID)
	}
	step(10 * time.Second)
	f.none(100*time.Millisecond, scheduler.Event_UPDATE) // backoff doubled to 20 s
	step(10 * time.Second)
	f.updateIn("t", mesos.TASK_STARTING)

	// A dropped acknowledgement: the update comes again.
	m.SetFaults(Faults{DropAcks: 1})
	f.ack(first)
	step(40 * time.Second)
	f.updateIn("t", mesos.TASK_STARTING)
	f.ack(first)
	running := f.updateIn("t", mesos.TASK_RUNNING)

	// A stale or repeated ack changes nothing.
	f.ack(first)
	f.ack(running)
	// A dropped update: nothing arrives until the agent's retry.
	m.SetFaults(Faults{DropUpdates: 1})
	f.call(`"type":"KILL","kill":{"task_id":{"value":"t"}}`)
	f.none(100*time.Millisecond, scheduler.Event_UPDATE)
	step(10 * time.Second)
	killed := f.updateIn("t", mesos.TASK_KILLED)
	f.ack(killed)
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.frameworks[f.id].tasks) == 0
	})
}

// TestFailoverResendsPendingUpdates: when a framework fails over, each
// task's unacknowledged update is sent again at once on the new stream
// (Mesos: UpdateFrameworkMessage, then the agent's status update manager
// resumes), not at the agent's next retry. The fake clock never moves, so
// only the failover can bring the update.
func TestFailoverResendsPendingUpdates(t *testing.T) {
	t.Parallel()
	_, m, old, first := pendingStarting(t) // never acknowledged: the old leader dies
	info := strings.Replace(paInfo, `{"user"`, `{"id":{"value":"`+old.id+`"},"user"`, 1)
	nw := subscribeRaw(t, m, info)
	again := nw.updateIn("t", mesos.TASK_STARTING)
	if string(again.UUID) != string(first.UUID) {
		t.Fatalf("after the failover got STARTING %x, want the pending update %x again", again.UUID, first.UUID)
	}
	// The stream goes on from there: RUNNING follows the acknowledgement.
	nw.ack(again)
	nw.updateIn("t", mesos.TASK_RUNNING)
}

func TestDelayedUpdatesAndAcks(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Unix(1700000000, 0))
	m, _ := startMaster(t, Config{Clock: fc, Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	m.SetFaults(Faults{DelayUpdates: 3 * time.Second, DelayAcks: 2 * time.Second})
	f.call(acceptJSON(o.ID.Value, 0, taskJSON("t", o.AgentID.Value)))
	f.none(100*time.Millisecond, scheduler.Event_UPDATE)
	waitFor(t, func() bool { return fc.Waiters() >= 4 }) // heartbeat, allocator, retry, delay
	fc.Step(3 * time.Second)
	st := f.updateIn("t", mesos.TASK_STARTING)
	f.ack(st)
	f.none(100*time.Millisecond, scheduler.Event_UPDATE)
	fc.Step(2 * time.Second) // the ack lands; RUNNING is sent, itself delayed
	f.none(100*time.Millisecond, scheduler.Event_UPDATE)
	fc.Step(3 * time.Second)
	f.updateIn("t", mesos.TASK_RUNNING)
}

// TestBridgeTaskOnSimulatedAgent: a valid BRIDGE task reaches an agent
// whose executor cannot run it, which answers TASK_ERROR itself (from the
// executor, with a uuid), as an agent without Docker would.
func TestBridgeTaskOnSimulatedAgent(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	task := `{"name":"b","task_id":{"value":"b1"},"agent_id":{"value":"` + o.AgentID.Value + `"},` +
		`"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000}]}}],` +
		`"command":{"shell":false},"container":{"type":"DOCKER","docker":{"image":"x","network":"BRIDGE","port_mappings":[{"host_port":31000,"container_port":80,"protocol":"tcp"}]}}}`
	f.call(acceptJSON(o.ID.Value, 0, task))
	st := f.update("b1")
	if st.GetState() != mesos.TASK_ERROR || st.GetReason() != mesos.REASON_TASK_INVALID || st.GetSource() != mesos.SOURCE_EXECUTOR ||
		!strings.Contains(st.GetMessage(), "needs the docker executor") {
		t.Fatalf("got %s %s %s %q, want TASK_ERROR REASON_TASK_INVALID from the executor saying it needs docker", st.GetState(), st.GetReason(), st.GetSource(), st.GetMessage())
	}
}

// TestOfferDomain: an agent with a fault domain (Mesos's --domain) has it
// in every offer, as DomainInfo; one without has none.
func TestOfferDomain(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{AgentSpecs: []AgentSpec{{Region: "eu", Zone: "z2"}, {}}})
	f := subscribeRaw(t, m, plainInfo)
	got := map[string]mesos.Offer{}
	for len(got) < 2 {
		for _, o := range f.next(scheduler.Event_OFFERS).Offers.Offers {
			got[o.AgentID.Value] = o
		}
	}
	agents := m.Agents()
	with := got[agents[0].ID]
	fd := with.GetDomain().GetFaultDomain()
	if fd == nil || fd.Region.Name != "eu" || fd.Zone.Name != "z2" {
		t.Errorf("offer of the agent with a domain: %+v", got[agents[0].ID].Domain)
	}
	if d := got[agents[1].ID].Domain; d != nil {
		t.Errorf("offer of an agent without a domain carries %+v", d)
	}
}
