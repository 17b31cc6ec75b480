//lint:file-ignore ST1005 the unknown-network message is Mesos's own (CNI isolator)

package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/portfwd"
)

// checkUserNetwork refuses a USER network the agent does not have, with the
// words of Mesos's CNI isolator for an unknown network.
func checkUserNetwork(nw dockerNet, have []string) error {
	if nw.user == "" {
		return nil
	}
	if have == nil {
		have = DefaultNetworks
	}
	if slices.Contains(have, nw.user) {
		return nil
	}
	known := "none"
	if len(have) > 0 {
		known = strings.Join(have, ", ")
	}
	return fmt.Errorf("Unknown CNI network '%s' (this agent's networks: %s)", nw.user, known)
}

// bindPorts binds the task's mapped host ports on the agent's address
// before its container exists, so that a taken port fails the launch with
// no container to clean up (docker run -p fails the same way).
func (d *Docker) bindPorts(t Task, nw dockerNet, log *logrus.Entry) (*portfwd.Forwarder, error) {
	if !nw.isolated || len(nw.mappings) == 0 {
		return nil, nil
	}
	host := t.Hostname
	if host == "" {
		host = "127.0.0.1"
	}
	return portfwd.Listen(host, nw.mappings, portfwd.Config{Clock: d.clock, Log: log.WithField("component", "portfwd")})
}

// attachNetwork opens the running container's network namespace and starts
// forwarding into it. The namespace also serves the health checks.
func (d *Docker) attachNetwork(ctx context.Context, containerID string, fwd *portfwd.Forwarder) (*portfwd.NetNS, error) {
	ins, err := d.cli.ContainerInspect(ctx, containerID)
	if err != nil {
		return nil, fmt.Errorf("inspecting the container for its network namespace: %w", err)
	}
	if ins.State == nil || ins.State.Pid == 0 {
		return nil, fmt.Errorf("the container is not running, so it has no network namespace to forward into")
	}
	ns, err := portfwd.OpenNetNS(fmt.Sprintf("/proc/%d/ns/net", ins.State.Pid))
	if err != nil {
		return nil, err
	}
	if fwd != nil {
		fwd.Serve(ns)
	}
	return ns, nil
}

// closeNetwork stops forwarding (listeners and connections closed, the
// host ports free again) and releases the namespace.
func closeNetwork(fwd *portfwd.Forwarder, ns *portfwd.NetNS, log *logrus.Entry) {
	if fwd != nil {
		if err := fwd.Close(); err != nil {
			log.WithError(err).Warn("closing the port forwarder")
		}
	}
	if ns != nil {
		if err := ns.Close(); err != nil {
			log.WithError(err).Warn("closing the container's network namespace")
		}
	}
}
