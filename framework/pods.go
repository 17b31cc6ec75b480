package framework

import (
	"fmt"
	"math/rand"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Pods run through the app machinery: a pod is an app (appspec.Pod.App)
// whose instance is one Task here, launched as one Mesos task group.
//
// Ids follow Marathon's scheme for pods:
//
//	instance  <pod id without "/", "/" → "_">.instance-<uuid>
//	task      <instance>.<container name>
//	executor  instance-<instance>
//
// Task.ID of a pod instance is the instance id; Mesos knows only the
// container tasks. Their updates are folded into the instance
// (podUpdate): it runs when every container runs, is healthy when every
// health-checked container is, and ends when any container ends, its
// other containers killed with it (Mesos's default executor does the same
// for TASK_FAILED and TASK_KILLED; the scheduler also does it for
// TASK_FINISHED, since an instance with a container gone is not the pod).

// ContainerStatus is one container of a pod instance as Mesos reported it.
type ContainerStatus struct {
	Name    string
	TaskID  string
	State   mesos.TaskState
	Healthy *bool
	Message string
	// heard: Mesos reported this container. An instance this scheduler
	// did not launch (restored, adopted) lists the containers of the
	// pod's current version, which its own version may not have had.
	heard bool
}

// podInstance is the scheduler's record of an instance's containers.
type podInstance struct {
	containers []ContainerStatus // in the pod's container order
}

// NewInstanceID returns a new pod instance id, its uuid drawn from r.
func NewInstanceID(podID string, r *rand.Rand) string {
	return strings.TrimSuffix(NewTaskID(podID, r), appSuffix)
}

// PodTaskID splits a pod container's task id into its instance id, pod
// id and container name; ok is false for any other id.
func PodTaskID(taskID string) (instance, podID, container string, ok bool) {
	i := strings.Index(taskID, instanceSep)
	if _, _, app := splitTaskID(taskID); i <= 0 || app {
		return "", "", "", false
	}
	rest := taskID[i+len(instanceSep):]
	j := strings.IndexByte(rest, '.')
	if j <= 0 || j == len(rest)-1 {
		return "", "", "", false
	}
	return taskID[:i+len(instanceSep)+j], "/" + strings.ReplaceAll(taskID[:i], "_", "/"), rest[j+1:], true
}

// PodIDFromInstanceID returns the pod id of an instance id.
func PodIDFromInstanceID(instance string) (string, bool) {
	i := strings.Index(instance, instanceSep)
	if i <= 0 || strings.Contains(instance[i+len(instanceSep):], ".") {
		return "", false
	}
	return "/" + strings.ReplaceAll(instance[:i], "_", "/"), true
}

func executorIDOf(instance string) string { return "instance-" + instance }

// podOf is the pod of an app state, nil for an app.
func podOf(as *appState) *appspec.Pod {
	if as == nil || as.app == nil {
		return nil
	}
	return as.app.Pod
}

// mesosTaskIDs are the ids Mesos knows a Task by: the task's own, or its
// containers' for a pod instance.
func (c *core) mesosTaskIDs(ts *taskState) []string {
	pi := c.pods[ts.t.ID]
	if pi == nil {
		return []string{ts.t.ID}
	}
	out := make([]string, len(pi.containers))
	for i, cs := range pi.containers {
		out[i] = cs.TaskID
	}
	return out
}

// killOps kills a task, or every live container of a pod instance.
func (c *core) killOps(id string, ts *taskState) []killOp {
	policy := c.killPolicyOf(ts.t.AppID)
	pi := c.pods[id]
	if pi == nil {
		return []killOp{{taskID: id, agentID: ts.t.AgentID, policy: policy}}
	}
	var out []killOp
	for _, cs := range pi.containers {
		if !isTerminal(cs.State) {
			out = append(out, killOp{taskID: cs.TaskID, agentID: ts.t.AgentID, policy: policy})
		}
	}
	return out
}

// podUpdate folds a container's update into its instance: st becomes the
// instance's status (id, aggregate state and health) for handleUpdate to
// go on with; false means the update is handled (or dropped) here.
func (c *core) podUpdate(now time.Time, st *mesos.TaskStatus, p *plan) bool {
	inst, podID, name, ok := PodTaskID(st.TaskID.Value)
	if !ok {
		return true
	}
	agent := st.GetAgentID().GetValue()
	state := st.GetState()
	log := c.log.WithFields(logrus.Fields{"task": st.TaskID.Value, "state": state.String()})
	ts := c.tasks[inst]
	pi := c.pods[inst]
	if ts == nil {
		delete(c.pods, inst)
		if isTerminal(state) {
			return false
		}
		as := c.apps[podID]
		pod := podOf(as)
		if pod == nil && c.holdUnknown {
			if !c.held[st.TaskID.Value] {
				c.held[st.TaskID.Value] = true
				log.WithFields(logrus.Fields{"agent": agent, "pod": podID}).Warn("keeping a task of a pod this leader does not know: the stored apps were not all read")
			}
			return false
		}
		if pod == nil {
			log.WithField("agent", agent).Warn("killing a task nobody asked for")
			p.kills = append(p.kills, killOp{taskID: st.TaskID.Value, agentID: agent, policy: c.killPolicy()})
			return false
		}
		// A container of an instance a previous leader launched: adopt the
		// instance, with the containers the pod has now.
		ts = &taskState{t: Task{
			ID: inst, AppID: podID, AppVersion: as.app.Version, AgentID: agent,
			Host: c.agents[agent].host, State: mesos.TASK_STAGING, StagedAt: now, Adopted: true,
		}, attrs: c.agents[agent].attrs}
		ts.t.Healthy = podStartHealth(pod)
		pi = newPodInstance(pod, inst)
		c.pods[inst] = pi
		log.WithField("pod", podID).Info("adopting a running pod instance")
		c.addTask(as, ts)
		c.recordAdded(ts)
	}
	if pi == nil {
		pi = newPodInstance(podOf(c.apps[ts.t.AppID]), inst)
		c.pods[inst] = pi
	}
	k := -1
	for i := range pi.containers {
		if pi.containers[i].Name == name {
			k = i
		}
	}
	if k < 0 {
		// A container the instance's version did not have (adopted under
		// a newer pod spec): track it too, so it is killed with the rest.
		pi.containers = append(pi.containers, ContainerStatus{Name: name, TaskID: st.TaskID.Value, State: mesos.TASK_STAGING})
		k = len(pi.containers) - 1
		if ts.t.Killing && !isTerminal(state) {
			// The instance is being killed: this container goes too.
			p.kills = append(p.kills, killOp{taskID: st.TaskID.Value, agentID: agent, policy: c.killPolicyOf(ts.t.AppID)})
		}
	}
	cs := &pi.containers[k]
	if isTerminal(state) && !cs.heard && st.GetReason() == mesos.REASON_RECONCILIATION && len(pi.containers) > 1 {
		// Mesos does not know this container: the instance (restored or
		// adopted from a previous leader) is of a version without it.
		// It is forgotten, not taken for the instance's end.
		pi.containers = append(pi.containers[:k], pi.containers[k+1:]...)
		t := ts.t
		t.Containers = append([]ContainerStatus(nil), pi.containers...)
		ts.t = t
		c.touch(t.AppID)
		return false
	}
	cs.heard = true
	cs.State = state
	cs.Message = st.GetMessage()
	if st.Healthy != nil {
		h := st.GetHealthy()
		cs.Healthy = &h
	}
	agg := *st
	agg.TaskID = mesos.TaskID{Value: inst}
	agg.State = aggregateState(pi.containers, ts.t.Adopted).Enum()
	if pod := podOf(c.apps[ts.t.AppID]); pod != nil && pod.HealthChecked() {
		h := podHealthy(pod, pi.containers)
		agg.Healthy = &h
	} else {
		agg.Healthy = nil
	}
	if isTerminal(agg.GetState()) {
		// The instance is over: the rest of the group goes with it.
		if !ts.t.Killing {
			for _, o := range pi.containers {
				if !isTerminal(o.State) {
					p.kills = append(p.kills, killOp{taskID: o.TaskID, agentID: ts.t.AgentID, policy: c.killPolicyOf(ts.t.AppID)})
				}
			}
		}
		msg := fmt.Sprintf("container %s: %s", name, st.GetMessage())
		agg.Message = &msg
	}
	t := ts.t
	t.Containers = append([]ContainerStatus(nil), pi.containers...)
	ts.t = t
	c.touch(t.AppID)
	*st = agg
	return true
}

func newPodInstance(pod *appspec.Pod, inst string) *podInstance {
	pi := &podInstance{}
	if pod == nil {
		return pi
	}
	for _, ct := range pod.Containers {
		pi.containers = append(pi.containers, ContainerStatus{Name: ct.Name, TaskID: inst + "." + ct.Name, State: mesos.TASK_STAGING})
	}
	return pi
}

// aggregateState is an instance's state from its containers': the first
// terminal one if any ended; else unreachable, killing, or the least
// advanced of staging, starting and running. Of an instance this
// scheduler did not launch (adopted), only the containers Mesos reported
// count: the others may not be of its version.
func aggregateState(cs []ContainerStatus, adopted bool) mesos.TaskState {
	least := mesos.TASK_RUNNING
	rank := map[mesos.TaskState]int{mesos.TASK_STAGING: 0, mesos.TASK_STARTING: 1, mesos.TASK_RUNNING: 2}
	var unreachable, killing, any bool
	for _, c := range cs {
		if adopted && !c.heard {
			continue
		}
		any = true
		switch {
		case isTerminal(c.State):
			return c.State
		case c.State == mesos.TASK_UNREACHABLE:
			unreachable = true
		case c.State == mesos.TASK_KILLING:
			killing = true
		case rank[c.State] < rank[least]:
			least = c.State
		}
	}
	switch {
	case !any:
		return mesos.TASK_STAGING
	case unreachable:
		return mesos.TASK_UNREACHABLE
	case killing:
		return mesos.TASK_KILLING
	}
	return least
}

// podHealthy: every container with a health check reported healthy.
func podHealthy(pod *appspec.Pod, cs []ContainerStatus) bool {
	for _, ct := range pod.Containers {
		if ct.HealthCheck == nil {
			continue
		}
		present, ok := false, false
		for _, c := range cs {
			if c.Name == ct.Name {
				present, ok = true, c.Healthy != nil && *c.Healthy
			}
		}
		// A container the instance does not have (of another version)
		// has no say.
		if present && !ok {
			return false
		}
	}
	return true
}

// podStartHealth is an instance's health before its containers report
// any: not healthy when the pod has health checks (a roll must not count
// an instance whose checks have not run, nor a restored one whose have
// not been heard yet), nil (no checks) otherwise.
func podStartHealth(pod *appspec.Pod) *bool {
	if pod.HealthChecked() {
		return new(bool)
	}
	return nil
}
