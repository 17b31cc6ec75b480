//lint:file-ignore ST1005 task validation messages are Mesos's own, word for word (master/validation.cpp), so frameworks see the same text

package localmesos

import (
	"encoding/json"
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// taskGroup is one LAUNCH_GROUP: the tasks Mesos's default executor runs
// as nested containers of one executor. Its semantics follow
// src/launcher/default_executor.cpp:
//
//   - the tasks are launched together, each reporting TASK_STARTING and
//     TASK_RUNNING on its own;
//   - when one task ends TASK_FAILED or TASK_KILLED (a health check kill
//     included), every other live task of the group is killed ("the
//     default restart policy for a task group is to kill all the
//     remaining child containers if one of them terminated with a
//     non-zero exit code"); TASK_FINISHED leaves the others running;
//   - the executor's resources stay allocated until its last task is
//     gone (the executor shuts down when no child container is left).
type taskGroup struct {
	executorID string
	agent      *agent
	tasks      []*task
	execRes    rset
	// killing is set once the group is being killed for one task's end,
	// so the kills that follow do not start another round.
	killing bool
	freed   bool
	// containerID is the executor's container; each task runs in a nested
	// container of it (nested), which its status updates name.
	containerID string
	nested      map[string]string
}

// containerStatus is what the default executor puts in each update of a
// task: the task's nested container id with the executor's as parent.
func (g *taskGroup) containerStatus(taskID string) *mesos.ContainerStatus {
	return &mesos.ContainerStatus{ContainerID: &mesos.ContainerID{
		Value:  g.nested[taskID],
		Parent: &mesos.ContainerID{Value: g.containerID},
	}}
}

// launchGroupLocked launches a validated task group: the executor's
// resources are taken from the agent as the group's own, then every task
// is launched with the group's executor id.
func (m *Master) launchGroupLocked(fw *framework, a *agent, lg *mesos.Offer_Operation_LaunchGroup, execRes rset, resList []rset, ids map[string]bool) {
	g := &taskGroup{executorID: lg.Executor.ExecutorID.Value, agent: a, execRes: execRes,
		containerID: uuidString(m.newUUID()), nested: map[string]string{}}
	a.free.sub(execRes)
	tis := lg.TaskGroup.Tasks
	for i := range tis {
		ti := tis[i]
		ti.Executor = nil
		ids[ti.TaskID.Value] = true
		g.nested[ti.TaskID.Value] = uuidString(m.newUUID())
		m.launchLocked(fw, a, ti, resList[i], g.executorID,
			&executor.Group{ID: g.executorID, Container: lg.Executor.Container, Leader: i == 0})
		if t := fw.tasks[ti.TaskID.Value]; t != nil {
			t.group = g
			g.tasks = append(g.tasks, t)
		}
	}
}

// groupTaskEndedLocked is the default executor seeing one of its child
// containers end: on TASK_FAILED or TASK_KILLED the rest of the group is
// killed, each with its own kill policy (3 s when it has none, the
// default executor's grace).
func (m *Master) groupTaskEndedLocked(t *task, state mesos.TaskState) {
	g := t.group
	live := 0
	for _, o := range g.tasks {
		if !isTerminal(o.agentState) {
			live++
		}
	}
	if live == 0 {
		t.agent.files.markEnded(sandboxVirtual(t.fw.id, g.executorID), m.now())
		return
	}
	if g.killing || (state != mesos.TASK_FAILED && state != mesos.TASK_KILLED) {
		return
	}
	g.killing = true
	m.log.WithFields(logrus.Fields{"executor": g.executorID, "task": t.id, "state": state.String()}).Info("killing the task group: one of its tasks ended")
	for _, o := range g.tasks {
		if o == t || isTerminal(o.agentState) {
			continue
		}
		grace := defaultGroupKillGrace
		if kp := o.info.GetKillPolicy(); kp != nil && kp.GetGracePeriod() != nil {
			grace = time.Duration(kp.GetGracePeriod().GetNanoseconds())
		}
		m.killLocked(o, grace)
	}
}

// defaultGroupKillGrace is the default executor's grace period for a
// child container whose task has no kill policy.
const defaultGroupKillGrace = 3 * time.Second

// groupRecoveredLocked frees the executor's resources once the last task
// of its group has given its own back.
func (m *Master) groupRecoveredLocked(t *task) {
	g := t.group
	if g == nil || g.freed {
		return
	}
	for _, o := range g.tasks {
		if !o.recovered {
			return
		}
	}
	g.freed = true
	if g.agent.state != agentGone {
		g.agent.free.add(g.execRes)
	}
}

// mergeGroupStatistics makes the statistics of a task group's tasks one
// entry per executor, as Mesos's /monitor/statistics has them (the
// default executor's container holds its nested ones): times, limits
// and memory summed, the latest timestamp. Entries of tasks launched
// alone (executor id = task id) are left as they are.
func mergeGroupStatistics(entries []map[string]any) []map[string]any {
	var out []map[string]any
	byExec := map[string]int{}
	for _, e := range entries {
		if e == nil {
			continue
		}
		ex, _ := e["executor_id"].(string)
		if ex == e["source"] {
			out = append(out, e)
			continue
		}
		st := decodeStats(e["statistics"])
		if i, ok := byExec[ex]; ok {
			sum := decodeStats(out[i]["statistics"])
			addStats(&sum, st)
			out[i]["statistics"] = sum
			continue
		}
		byExec[ex] = len(out)
		out = append(out, map[string]any{"executor_id": ex, "executor_name": "Default Executor (" + ex + ")",
			"framework_id": e["framework_id"], "source": ex, "statistics": st})
	}
	return out
}

func decodeStats(v any) mesos.ResourceStatistics {
	var st mesos.ResourceStatistics
	switch x := v.(type) {
	case mesos.ResourceStatistics:
		return x
	case json.RawMessage:
		_ = json.Unmarshal(x, &st) // our own encoding, just made
	}
	return st
}

func addStats(dst *mesos.ResourceStatistics, src mesos.ResourceStatistics) {
	dst.Timestamp = max(dst.Timestamp, src.Timestamp)
	addF := func(d **float64, s *float64) {
		if s != nil {
			v := *s
			if *d != nil {
				v += **d
			}
			*d = &v
		}
	}
	addU := func(d **uint64, s *uint64) {
		if s != nil {
			v := *s
			if *d != nil {
				v += **d
			}
			*d = &v
		}
	}
	addF(&dst.CPUsUserTimeSecs, src.CPUsUserTimeSecs)
	addF(&dst.CPUsSystemTimeSecs, src.CPUsSystemTimeSecs)
	addF(&dst.CPUsLimit, src.CPUsLimit)
	addU(&dst.MemRSSBytes, src.MemRSSBytes)
	addU(&dst.MemLimitBytes, src.MemLimitBytes)
}

// Mesos's minimum executor resources (MIN_CPUS, MIN_MEM in the master).
const (
	minExecutorCPUs  = 0.01
	minExecutorMemMB = 32
)

// validateGroupTask is the master's task group specific check of a
// task (validation::task::group::internal::validateTask): its network is
// the executor's, and nested containers are the Mesos containerizer's.
func validateGroupTask(ti *mesos.TaskInfo) error {
	if c := ti.Container; c != nil {
		if len(c.NetworkInfos) > 0 {
			return fmt.Errorf("NetworkInfos must not be set on the task")
		}
		if c.GetType() == mesos.ContainerInfo_DOCKER {
			return fmt.Errorf("Docker ContainerInfo is not supported on the task")
		}
	}
	return nil
}

// validateGroupExecutor is the master's check of a task group's executor
// (validation::task::group::internal::validateExecutor), its messages
// word for word: a type, not a Docker container, at least the minimum
// cpus and memory, and some disk. "" when valid.
func validateGroupExecutor(ex *mesos.ExecutorInfo, res rset) string {
	id := ex.ExecutorID.Value
	switch {
	case ex.Type == mesos.ExecutorInfo_UNKNOWN:
		return "Unknown executor type"
	case ex.Container != nil && ex.Container.Type != nil && *ex.Container.Type == mesos.ContainerInfo_DOCKER:
		return "Docker ContainerInfo is not supported on the executor"
	}
	if cpus, ok := res.scalars["cpus"]; !ok || cpus < minExecutorCPUs {
		return fmt.Sprintf("Executor '%s' uses less CPUs (%s) than the minimum required (%v)", id, scalarText(res, "cpus"), minExecutorCPUs)
	}
	if mem, ok := res.scalars["mem"]; !ok || mem < minExecutorMemMB {
		return fmt.Sprintf("Executor '%s' uses less memory (%s) than the minimum required (%dMB)", id, scalarText(res, "mem"), minExecutorMemMB)
	}
	if _, ok := res.scalars["disk"]; !ok {
		return fmt.Sprintf("Executor '%s' uses no disk", id)
	}
	return ""
}

func scalarText(res rset, name string) string {
	if v, ok := res.scalars[name]; ok {
		return fmt.Sprint(v)
	}
	return "None"
}
