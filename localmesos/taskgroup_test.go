package localmesos

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// TestTaskGroupSemantics: the default executor's rules for a task group,
// as src/launcher/default_executor.cpp has them. A task ending
// TASK_FAILED or TASK_KILLED kills the rest of its group; one ending
// TASK_FINISHED does not; every update names the task's nested container
// with the executor's container as parent; the executor's resources stay
// allocated until the group's last task is gone.
func TestTaskGroupSemantics(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		ends     mesos.TaskState
		killsAll bool
	}{
		{"failed", mesos.TASK_FAILED, true},
		{"killed", mesos.TASK_KILLED, true},
		{"finished", mesos.TASK_FINISHED, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, sims := startMaster(t, Config{Agents: 1})
			f := subscribeRaw(t, m, paInfo)
			o := f.offer("")
			a := o.AgentID.Value
			task := func(id string) string {
				return `{"name":"` + id + `","task_id":{"value":"` + id + `"},"agent_id":{"value":"` + a + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}],"command":{"value":"sleep 100"}}`
			}
			f.call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"operations":[{"type":"LAUNCH_GROUP","launch_group":{"executor":{"type":"DEFAULT","executor_id":{"value":"pod"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.25}},{"name":"mem","type":"SCALAR","scalar":{"value":32}},{"name":"disk","type":"SCALAR","scalar":{"value":10}}]},"task_group":{"tasks":[` + task("app") + `,` + task("sidecar") + `,` + task("third") + `]}}}]}`)
			seen := map[string][]mesos.TaskState{}
			parents := map[string]bool{}
			nested := map[string]bool{}
			running := 0
			for running < 3 {
				st := f.next(scheduler.Event_UPDATE).Update.Status
				seen[st.TaskID.Value] = append(seen[st.TaskID.Value], st.GetState())
				cid := st.GetContainerStatus().GetContainerID()
				if cid == nil || cid.GetParent() == nil || cid.Value == "" {
					t.Fatalf("update of %s has no nested container id: %+v", st.TaskID.Value, st.GetContainerStatus())
				}
				parents[cid.GetParent().Value] = true
				nested[cid.Value] = true
				if st.GetState() == mesos.TASK_RUNNING {
					running++
				}
				f.ack(st)
			}
			for _, id := range []string{"app", "sidecar", "third"} {
				if s := seen[id]; len(s) != 2 || s[0] != mesos.TASK_STARTING || s[1] != mesos.TASK_RUNNING {
					t.Fatalf("task %s reported %v, want STARTING then RUNNING", id, s)
				}
			}
			if len(parents) != 1 || len(nested) != 3 {
				t.Fatalf("containers: %d parents, %d nested; want one executor container with 3 nested ones", len(parents), len(nested))
			}
			free := func() float64 {
				m.mu.Lock()
				defer m.mu.Unlock()
				return m.agentList[0].free.scalars["cpus"]
			}
			// 4 cpus - 3 × 0.5 - the executor's 0.25.
			if got := free(); got < 2.249 || got > 2.251 {
				t.Fatalf("free cpus %v with the group running, want 2.25", got)
			}

			if err := sims[a].Exit("sidecar", tc.ends, "exited"); err != nil {
				t.Fatal(err)
			}
			awaitStates(f, map[string]mesos.TaskState{"sidecar": tc.ends})
			if !tc.killsAll {
				f.none(300*time.Millisecond, scheduler.Event_UPDATE)
				// The ended task's cpus are back; the executor's are not.
				if got := free(); got < 2.749 || got > 2.751 {
					t.Fatalf("free cpus %v after one task finished, want 2.75", got)
				}
				return
			}
			awaitStates(f, map[string]mesos.TaskState{"app": mesos.TASK_KILLED, "third": mesos.TASK_KILLED})
			// Everything back, the executor's resources with the last task.
			deadline := time.Now().Add(10 * time.Second)
			for free() < 3.999 {
				if time.Now().After(deadline) {
					t.Fatalf("free cpus %v after the group ended, want 4", free())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestTaskGroupKillOne: a scheduler's KILL of one task of a group kills
// that task, which (TASK_KILLED) takes the group down with it.
func TestTaskGroupKillOne(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	a := o.AgentID.Value
	var tasks string
	for i := 0; i < 2; i++ {
		if i > 0 {
			tasks += ","
		}
		tasks += fmt.Sprintf(`{"name":"c%d","task_id":{"value":"c%d"},"agent_id":{"value":"%s"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],"command":{"value":"sleep 100"}}`, i, i, a)
	}
	f.call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"operations":[{"type":"LAUNCH_GROUP","launch_group":{"executor":{"type":"DEFAULT","executor_id":{"value":"e"},"resources":` + execRes + `},"task_group":{"tasks":[` + tasks + `]}}}]}`)
	awaitStates(f, map[string]mesos.TaskState{"c0": mesos.TASK_RUNNING, "c1": mesos.TASK_RUNNING})
	f.call(`"type":"KILL","kill":{"task_id":{"value":"c0"}}`)
	awaitStates(f, map[string]mesos.TaskState{"c0": mesos.TASK_KILLED, "c1": mesos.TASK_KILLED})
}

// awaitStates acknowledges every update until each task named has
// reported its state; an update of another task, or another state, is
// acknowledged and passed over.
func awaitStates(f *rawFW, want map[string]mesos.TaskState) {
	f.t.Helper()
	left := len(want)
	got := map[string]bool{}
	for left > 0 {
		st := f.next(scheduler.Event_UPDATE).Update.Status
		if len(st.UUID) > 0 {
			f.ack(st)
		}
		if w, ok := want[st.TaskID.Value]; ok && st.GetState() == w && !got[st.TaskID.Value] {
			got[st.TaskID.Value] = true
			left--
		}
	}
}

// TestTaskGroupStatistics: /monitor/statistics has one entry per
// executor, as Mesos does for the default executor: a group's tasks are
// summed under the executor's id.
func TestTaskGroupStatistics(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Unix(1700000000, 0))
	m, sims := startMaster(t, Config{Clock: fc, Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	ag := m.Agents()[0]
	o := f.offer(ag.ID)
	task := func(id string) string {
		return `{"name":"` + id + `","task_id":{"value":"` + id + `"},"agent_id":{"value":"` + ag.ID + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],"command":{"value":"sleep 100"}}`
	}
	f.call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"operations":[{"type":"LAUNCH_GROUP","launch_group":{"executor":{"type":"DEFAULT","executor_id":{"value":"pod"},"resources":` + execRes + `},"task_group":{"tasks":[` + task("a") + `,` + task("b") + `]}}}]}`)
	awaitStates(f, map[string]mesos.TaskState{"a": mesos.TASK_RUNNING, "b": mesos.TASK_RUNNING})
	if err := sims[ag.ID].SetUsage("a", 0.5, 10<<20); err != nil {
		t.Fatal(err)
	}
	if err := sims[ag.ID].SetUsage("b", 0.25, 6<<20); err != nil {
		t.Fatal(err)
	}
	fc.Step(10 * time.Second)
	var got []struct {
		ExecutorID string `json:"executor_id"`
		Statistics struct {
			CPUsUser    float64 `json:"cpus_user_time_secs"`
			CPUsSystem  float64 `json:"cpus_system_time_secs"`
			CPUsLimit   float64 `json:"cpus_limit"`
			MemRSSBytes uint64  `json:"mem_rss_bytes"`
			MemLimit    uint64  `json:"mem_limit_bytes"`
		} `json:"statistics"`
	}
	if err := json.Unmarshal([]byte(getBody(t, ag.URL+"/monitor/statistics")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ExecutorID != "pod" {
		t.Fatalf("entries %+v, want one for executor pod", got)
	}
	s := got[0].Statistics
	// 0.5 and 0.25 cpus for 10 s: 5 + 2.5 cpu seconds; limits 0.5 + 0.5.
	if cpu := s.CPUsUser + s.CPUsSystem; cpu < 7.4 || cpu > 7.6 || s.CPUsLimit != 1 || s.MemRSSBytes != 16<<20 || s.MemLimit != 64<<20 {
		t.Fatalf("statistics %+v, want the two tasks summed", s)
	}
}

// execRes is the least an executor may have (Mesos's MIN_CPUS, MIN_MEM,
// some disk).
const execRes = `[{"name":"cpus","type":"SCALAR","scalar":{"value":0.01}},{"name":"mem","type":"SCALAR","scalar":{"value":32}},{"name":"disk","type":"SCALAR","scalar":{"value":1}}]`

// TestTaskGroupValidation: the master's task group checks, with Mesos's
// messages (validation.cpp, task::group): every task of the group gets
// TASK_ERROR, REASON_TASK_GROUP_INVALID, and nothing launches.
func TestTaskGroupValidation(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	cases := []struct {
		name, executor, task, msg string
	}{
		{"executor without memory", `"type":"DEFAULT","executor_id":{"value":"e1"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"disk","type":"SCALAR","scalar":{"value":1}}]`, ``,
			"Executor 'e1' uses less memory (None) than the minimum required (32MB)"},
		{"executor with too few cpus", `"type":"DEFAULT","executor_id":{"value":"e2"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.001}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]`, ``,
			"Executor 'e2' uses less CPUs (0.001) than the minimum required (0.01)"},
		{"executor without disk", `"type":"DEFAULT","executor_id":{"value":"e3"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]`, ``,
			"Executor 'e3' uses no disk"},
		{"docker executor", `"type":"DEFAULT","executor_id":{"value":"e4"},"container":{"type":"DOCKER","docker":{"image":"x"}},"resources":` + execRes, ``,
			"Docker ContainerInfo is not supported on the executor"},
		{"docker task", `"type":"DEFAULT","executor_id":{"value":"e5"},"resources":` + execRes, `,"container":{"type":"DOCKER","docker":{"image":"x"}}`,
			"Task 'v-docker task' is invalid: Docker ContainerInfo is not supported on the task"},
		{"task with a network", `"type":"DEFAULT","executor_id":{"value":"e6"},"resources":` + execRes, `,"container":{"type":"MESOS","network_infos":[{"name":"n"}]}`,
			"Task 'v-task with a network' is invalid: NetworkInfos must not be set on the task"},
	}
	for _, tc := range cases {
		o := f.offer("")
		id := "v-" + tc.name
		task := `{"name":"x","task_id":{"value":"` + id + `"},"agent_id":{"value":"` + o.AgentID.Value + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],"command":{"value":"sleep 100"}` + tc.task + `}`
		f.call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + o.ID.Value + `"}],"filters":{"refuse_seconds":0},"operations":[{"type":"LAUNCH_GROUP","launch_group":{"executor":{` + tc.executor + `},"task_group":{"tasks":[` + task + `]}}}]}`)
		st := f.update(id)
		if st.GetState() != mesos.TASK_ERROR || st.GetReason() != mesos.REASON_TASK_GROUP_INVALID || st.GetMessage() != tc.msg {
			t.Errorf("%s: %s %s %q, want TASK_ERROR REASON_TASK_GROUP_INVALID %q", tc.name, st.GetState(), st.GetReason(), st.GetMessage(), tc.msg)
		}
	}
}
