package executor

import (
	"context"
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
	// Networks are the USER networks the agent offers Docker tasks; nil
	// means DefaultNetworks.
	Networks []string
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
