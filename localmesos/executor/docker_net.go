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

// agentHost is the address host ports are bound and forwarded on.
func agentHost(t Task) string {
	if t.Hostname == "" {
		return "127.0.0.1"
	}
	return t.Hostname
}

// bindPorts binds the task's mapped host ports on the agent's address
// before its container exists, so that a taken port fails the launch with
// no container to clean up (docker run -p fails the same way). In kernel
// mode the sockets stay bound, unserved, for the task's life: the DNAT
// takes the packets before they reach them, and no other process can bind
// the ports meanwhile.
func (d *Docker) bindPorts(t Task, nw dockerNet, log *logrus.Entry) (*portfwd.Forwarder, error) {
	if !nw.isolated || len(nw.mappings) == 0 {
		return nil, nil
	}
	return portfwd.Listen(agentHost(t), nw.mappings, portfwd.Config{Clock: d.clock, Log: log.WithField("component", "portfwd")})
}

// The values of DockerConfig.Forwarding.
const (
	ForwardAuto     = "auto"
	ForwardKernel   = "kernel"
	ForwardUserland = "userland"
)

// CheckForwarding refuses a Forwarding value that is none of them ("" is
// auto).
func CheckForwarding(mode string) error {
	switch mode {
	case "", ForwardAuto, ForwardKernel, ForwardUserland:
		return nil
	}
	return fmt.Errorf("executor: port forwarding must be %s, %s or %s, got %q", ForwardAuto, ForwardKernel, ForwardUserland, mode)
}

// openNamespace opens the running container's network namespace, which
// the forwarding and the health checks use.
func (d *Docker) openNamespace(ctx context.Context, containerID string) (*portfwd.NetNS, error) {
	ins, err := d.cli.ContainerInspect(ctx, containerID)
	if err != nil {
		return nil, fmt.Errorf("inspecting the container for its network namespace: %w", err)
	}
	if ins.State == nil || ins.State.Pid == 0 {
		return nil, fmt.Errorf("the container is not running, so it has no network namespace to forward into")
	}
	return portfwd.OpenNetNS(fmt.Sprintf("/proc/%d/ns/net", ins.State.Pid))
}

// forward starts forwarding the task's host ports (fwd holds them bound)
// into ns: through the kernel unless the agent is set to userland or the
// kernel forwarding cannot be set up, in which case fwd serves them. It
// never fails the task: the user-space forwarder always works. It returns
// the kernel forwarding, nil when fwd serves.
func (d *Docker) forward(ctx context.Context, t Task, nw dockerNet, fwd *portfwd.Forwarder, ns *portfwd.NetNS, log *logrus.Entry) *portfwd.Kernel {
	if fwd == nil {
		return nil
	}
	if d.forwarding != ForwardUserland {
		k, err := d.forwardKernel(ctx, agentHost(t), nw.mappings, ns, portfwd.KernelConfig{})
		if err == nil {
			// fwd stays unserved: it only keeps the ports from others.
			log.WithFields(logrus.Fields{"ports": fwd.Addrs(), "mode": ForwardKernel, "veth": k.Interface(),
				"container_addr": k.ContainerAddr().String(), "nft_table": k.Table()}).Info("forwarding host ports into the container")
			return k
		}
		l := log.WithError(err).WithField("forwarding", d.forwarding)
		if d.fellBack.CompareAndSwap(false, true) {
			l.Warn("kernel port forwarding cannot be set up; using the user-space forwarder for this task (later fallbacks are logged at debug)")
		} else {
			l.Debug("kernel port forwarding cannot be set up; using the user-space forwarder for this task")
		}
	}
	fwd.Serve(ns)
	log.WithFields(logrus.Fields{"ports": fwd.Addrs(), "mode": ForwardUserland}).Info("forwarding host ports into the container")
	return nil
}

// closeNetwork stops forwarding (the kernel's table and veth first, then
// the listeners and connections: the host ports are free again) and
// releases the namespace.
func closeNetwork(fwd *portfwd.Forwarder, kern *portfwd.Kernel, ns *portfwd.NetNS, log *logrus.Entry) {
	if kern != nil {
		if err := kern.Close(); err != nil {
			log.WithError(err).Warn("removing the kernel port forwarding")
		}
	}
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
