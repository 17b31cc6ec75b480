// Package executor runs the tasks of localmesos's agents: as Docker
// containers (Docker), as child processes in a sandbox (Process), or not at
// all (Simulated, for scale benchmarks). Health checks (HTTP, TCP, COMMAND)
// run beside the task the way Mesos's executors run them, with Mesos's
// defaults, and kill the task after consecutive_failures.
//
// An agent owns reliability (uuids, acknowledgements, retries); an executor
// only reports what happened to a task, in order, through the report
// callback: TASK_STARTING, TASK_RUNNING, health changes (TASK_RUNNING with
// REASON_TASK_HEALTH_CHECK_STATUS_UPDATED and healthy), then one terminal
// state. Stats gives the numbers of /monitor/statistics in Mesos's
// ResourceStatistics shape.
//
// Environment variables of type SECRET (secret type VALUE) reach the task
// like values; their values are never logged or put in errors or statuses.
//
//	ex := executor.NewProcess(executor.ProcessConfig{Log: root})
//	defer ex.Close()
//	err := ex.Launch(ctx, executor.Task{Info: info, FrameworkID: fw,
//		AgentID: agent, Sandbox: dir}, func(taskID string, s executor.Status) {
//		agentQueue.Push(taskID, s) // uuid, retry until acknowledged
//	})
//	...
//	_ = ex.Kill(ctx, info.TaskID.Value, 3*time.Second) // TASK_KILLED follows
//
// Docker tasks on BRIDGE or USER networking need a network namespace, so
// only Docker runs them; Process and Simulated answer TASK_ERROR, as an
// agent without Docker would, rather than run them on the host network
// where their container ports would collide.
//
// NewDocker talks to the engine with API version negotiation; Ping tells
// whether the engine answers, which is how an agent chooses between docker
// and process. NewSimulated keeps no goroutine or timer per task.
package executor
