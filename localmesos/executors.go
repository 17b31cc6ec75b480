package localmesos

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// ExecutorByName gives the agents' executor for a --executor flag value:
// docker, process or simulated; "" picks docker when the engine answers
// (within 3 s), else process. It returns the name chosen. forwarding is the
// docker executor's port forwarding for BRIDGE/USER tasks
// (executor.DockerConfig.Forwarding: auto, kernel or userland; "" is auto);
// the other executors ignore it.
func ExecutorByName(ctx context.Context, name, forwarding string, log *logrus.Logger) (string, ExecutorFactory, error) {
	if err := executor.CheckForwarding(forwarding); err != nil {
		return "", nil, err
	}
	if name == "" {
		name = "process"
		if d, err := executor.NewDocker(executor.DockerConfig{Log: log}); err == nil {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if d.Ping(pctx) == nil {
				name = "docker"
			}
			cancel()
			d.Close()
		}
	}
	switch name {
	case "docker":
		return name, func(string) (executor.Executor, error) {
			return executor.NewDocker(executor.DockerConfig{Log: log, Forwarding: forwarding})
		}, nil
	case "process":
		return name, func(string) (executor.Executor, error) {
			return executor.NewProcess(executor.ProcessConfig{Log: log}), nil
		}, nil
	case "simulated":
		return name, func(string) (executor.Executor, error) { return executor.NewSimulated(clock.Real{}), nil }, nil
	}
	return "", nil, fmt.Errorf("--executor must be docker, process or simulated, got %q", name)
}
