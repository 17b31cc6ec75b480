package executor

import (
	"fmt"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// commandEnv turns CommandInfo.environment into NAME=value pairs. SECRET
// variables with an inline VALUE secret become ordinary variables; the
// values never leave this function except inside the returned slice, and
// errors name the variable, never its value.
func commandEnv(ci *mesos.CommandInfo) ([]string, error) {
	if ci == nil || ci.Environment == nil {
		return nil, nil
	}
	vars := ci.Environment.Variables
	out := make([]string, 0, len(vars))
	for i := range vars {
		v := &vars[i]
		if v.Name == "" {
			return nil, fmt.Errorf("executor: environment variable %d has no name", i)
		}
		switch v.GetType() {
		case mesos.Environment_Variable_VALUE:
			if v.Value == nil {
				return nil, fmt.Errorf("executor: environment variable %s of type VALUE has no value", v.Name)
			}
			out = append(out, v.Name+"="+*v.Value)
		case mesos.Environment_Variable_SECRET:
			s := v.GetSecret()
			if s == nil {
				return nil, fmt.Errorf("executor: environment variable %s of type SECRET has no secret", v.Name)
			}
			if s.GetType() != mesos.Secret_VALUE || s.Value == nil {
				return nil, fmt.Errorf("executor: environment variable %s: only secrets of type VALUE are supported, got %s", v.Name, s.GetType())
			}
			out = append(out, v.Name+"="+string(s.Value.GetData()))
		default:
			return nil, fmt.Errorf("executor: environment variable %s has unknown type %s", v.Name, v.GetType())
		}
	}
	return out, nil
}

// mesosEnv is what Mesos's executors add to every task's environment; the
// task's own variables come after and so win.
func mesosEnv(t Task, sandbox string) []string {
	env := []string{
		"MESOS_TASK_ID=" + t.Info.TaskID.Value,
		"MESOS_EXECUTOR_ID=" + t.Info.TaskID.Value,
		"MESOS_SANDBOX=" + sandbox,
		"MESOS_FRAMEWORK_ID=" + t.FrameworkID,
		"MESOS_AGENT_ID=" + t.AgentID,
		"MESOS_SLAVE_ID=" + t.AgentID,
	}
	if len(t.GPUs) > 0 {
		ids := make([]string, len(t.GPUs))
		for i, g := range t.GPUs {
			ids[i] = strconv.Itoa(g)
		}
		// The simulated GPUs the agent gave the task (localmesos/gpus.go).
		env = append(env, "NVIDIA_VISIBLE_DEVICES="+strings.Join(ids, ","))
	}
	return env
}
