package executor

import (
	"context"
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Task is what an agent hands an executor.
type Task struct {
	Info        mesos.TaskInfo
	FrameworkID string
	AgentID     string
	Hostname    string
	// Sandbox is the task's own directory, created by the agent.
	Sandbox string
	// ParentSandbox is, for a task of a task group, its executor's
	// sandbox (Sandbox is inside it): where the group's ephemeral volumes
	// (SANDBOX_PATH volumes of type PARENT) live. Empty otherwise.
	ParentSandbox string
	// Group is set for a task of a task group (LAUNCH_GROUP).
	Group *Group
	// name, when set, is the Docker container's name (a group's network
	// leader needs it known before the container exists).
	name string
	// Networks are the USER networks the agent offers Docker tasks; nil
	// means DefaultNetworks.
	Networks []string
	// GPUs are the simulated GPU ids the agent assigned the task; they
	// reach it as NVIDIA_VISIBLE_DEVICES.
	GPUs []int
}

// Group is what a task of a task group knows of its group: the
// executor's container, whose network the group's containers share (a
// pod on container/bridge networking: NetworkInfos with the port
// mappings), and whether this task is the one that creates that network
// (the group's first). The default executor's own container holds the
// namespace in Mesos; here the first task's container does, and the
// others join it.
type Group struct {
	ID        string // the executor id
	Container *mesos.ContainerInfo
	Leader    bool
}

// networked says whether the group has a network of its own (rather
// than the host's).
func (g *Group) networked() bool {
	return g != nil && len(g.Container.GetNetworkInfos()) > 0
}

// Status is one state change of a task as the executor saw it. The agent
// adds task id, agent id, uuid, timestamp and source and delivers it
// reliably.
type Status struct {
	State   mesos.TaskState
	Reason  *mesos.TaskStatus_Reason
	Message string
	// Healthy is set only on TASK_RUNNING updates carrying
	// REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.
	Healthy *bool
}

// Report receives a task's statuses in order. It must not block for long.
type Report func(taskID string, s Status)

// Executor runs tasks for one agent.
type Executor interface {
	// Launch starts the task and returns once it is started (TASK_STARTING,
	// then TASK_RUNNING reported) or has failed (a terminal status reported
	// and an error returned). Later changes, health included, go to report.
	Launch(ctx context.Context, t Task, report Report) error
	// Kill stops the task: SIGTERM, then SIGKILL after grace. TASK_KILLED
	// goes to report when it is gone. Killing an unknown task is an error.
	Kill(ctx context.Context, taskID string, grace time.Duration) error
	// Stats gives the task's usage for the agent's /monitor/statistics.
	Stats(ctx context.Context, taskID string) (*mesos.ResourceStatistics, error)
	// Close kills every task without reporting and releases resources.
	Close() error
}

// launchCheck is the guard every executor's Launch starts with: a task id,
// a Report to send its statuses to, and a live ctx. kind names the
// executor in the error. Nothing is reported: without an id or a Report
// there is nowhere to report to.
func launchCheck(ctx context.Context, kind string, t *Task, report Report) (string, error) {
	id := t.Info.TaskID.Value
	switch {
	case id == "":
		return "", fmt.Errorf("executor: %s launch: empty task id", kind)
	case report == nil:
		return "", fmt.Errorf("executor: %s launch %s: nil report", kind, id)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("executor: %s launch %s: %w", kind, id, err)
	}
	return id, nil
}

// launchFailed reports TASK_FAILED for task id with reason and err as its
// message, and returns err.
func launchFailed(id string, report Report, reason mesos.TaskStatus_Reason, err error) error {
	report(id, Status{State: mesos.TASK_FAILED, Reason: &reason, Message: err.Error()})
	return err
}
