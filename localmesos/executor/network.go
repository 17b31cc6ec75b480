//lint:file-ignore ST1005 messages are Mesos's own where Mesos has one (src/docker/docker.cpp), so frameworks see the same text

package executor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/portfwd"
)

// DefaultNetworks are the user networks an agent offers when its
// configuration names none: "dcos", the overlay DC/OS clusters give Marathon
// apps, so app definitions written for them launch here unchanged.
var DefaultNetworks = []string{"dcos"}

// dockerNet is how one Docker task is networked on this agent.
type dockerNet struct {
	// mode is the engine's network mode: host or none. BRIDGE and USER run
	// on none (a namespace with loopback only): the engine here has no
	// bridge and nothing may reach private-range addresses.
	mode string
	// isolated: BRIDGE or USER, reached only through the forwarder; health
	// checks probe inside the container's namespace.
	isolated bool
	// user is the USER network's name.
	user     string
	mappings []portfwd.Mapping
}

// planDockerNetwork reads the task's DockerInfo as Mesos's
// Docker::RunOptions::create does and refuses what it refuses, with its
// messages.
func planDockerNetwork(info *mesos.TaskInfo) (dockerNet, error) {
	c := info.GetContainer()
	d := c.GetDocker()
	var n dockerNet
	switch d.GetNetwork() {
	case mesos.ContainerInfo_DockerInfo_HOST:
		n.mode = "host"
	case mesos.ContainerInfo_DockerInfo_NONE:
		n.mode = "none"
	case mesos.ContainerInfo_DockerInfo_BRIDGE:
		n.mode, n.isolated = "none", true
	case mesos.ContainerInfo_DockerInfo_USER:
		n.mode, n.isolated = "none", true
		switch nis := c.GetNetworkInfos(); {
		case len(nis) == 0:
			return n, errors.New("No network info found in container info")
		case len(nis) > 1:
			return n, errors.New("Only a single network can be defined in Docker run")
		case nis[0].GetName() == "":
			return n, errors.New("No network name found in network info")
		default:
			n.user = nis[0].GetName()
		}
	default:
		return n, fmt.Errorf("Unsupported Network mode: %s", d.GetNetwork())
	}
	pms := d.GetPortMappings()
	if len(pms) == 0 {
		return n, nil
	}
	if !n.isolated {
		return n, errors.New("Port mappings are only supported for bridge and user-defined networks")
	}
	ranges := taskPorts(info)
	if len(ranges) == 0 {
		return n, errors.New("Port mappings require port resources")
	}
	for _, pm := range pms {
		if !slices.ContainsFunc(ranges, func(r mesos.Value_Range) bool {
			return uint64(pm.HostPort) >= r.Begin && uint64(pm.HostPort) <= r.End
		}) {
			return n, fmt.Errorf("Port mapping with host port %d is not included in the task's 'ports' resource", pm.HostPort)
		}
		if pm.ContainerPort == 0 || pm.ContainerPort > 65535 {
			return n, fmt.Errorf("Port mapping with host port %d has container port %d, outside 1-65535", pm.HostPort, pm.ContainerPort)
		}
		// Mesos lower-cases the protocol for docker run -p; empty is tcp.
		proto := strings.ToLower(pm.GetProtocol())
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp":
		default:
			return n, fmt.Errorf("Port mapping with host port %d has protocol %q; only tcp and udp are supported", pm.HostPort, pm.GetProtocol())
		}
		n.mappings = append(n.mappings, portfwd.Mapping{HostPort: int(pm.HostPort), ContainerPort: int(pm.ContainerPort), Protocol: proto})
	}
	return n, nil
}

// ValidateDockerNetwork reports what is wrong with a DOCKER task's
// networking (network mode, network_infos, port mappings against the task's
// ports resource, container ports, protocols), so that the master can answer
// TASK_ERROR before launching, as MESOS.md has it. Real Mesos finds the same
// faults in its docker executor and answers TASK_FAILED "Failed to create
// docker run options: …". nil for tasks that are not DOCKER.
func ValidateDockerNetwork(info *mesos.TaskInfo) error {
	if info.GetContainer().GetType() != mesos.ContainerInfo_DOCKER || info.GetContainer().GetDocker() == nil {
		return nil
	}
	_, err := planDockerNetwork(info)
	return err
}

// needsNamespace tells whether the task is a DOCKER task on BRIDGE or USER
// networking, which only the docker executor can run.
func needsNamespace(info *mesos.TaskInfo) bool {
	c := info.GetContainer()
	if c.GetType() != mesos.ContainerInfo_DOCKER || c.GetDocker() == nil {
		return false
	}
	switch c.GetDocker().GetNetwork() {
	case mesos.ContainerInfo_DockerInfo_BRIDGE, mesos.ContainerInfo_DockerInfo_USER:
		return true
	}
	return false
}

// refuseNamespaced is the process and simulated executors' answer to a
// BRIDGE or USER Docker task: TASK_ERROR, as from an agent without Docker,
// so that the scheduler does not retry it there.
func refuseNamespaced(kind, id string, info *mesos.TaskInfo, report Report) error {
	err := fmt.Errorf("executor: %s launch %s: a DOCKER task on %s networking needs the docker executor; this agent runs tasks as %s",
		kind, id, info.GetContainer().GetDocker().GetNetwork(), kindNoun[kind])
	r := mesos.REASON_TASK_INVALID
	report(id, Status{State: mesos.TASK_ERROR, Reason: &r, Message: err.Error()})
	return err
}

// refuseGroupNetwork is the process and simulated executors' answer to a
// task of a group with a network of its own (a pod on container/bridge):
// TASK_ERROR, as refuseNamespaced.
func refuseGroupNetwork(kind, id string, report Report) error {
	err := fmt.Errorf("executor: %s launch %s: a task group on a network of its own (a pod on container/bridge networking) needs the docker executor; this agent runs tasks as %s", kind, id, kindNoun[kind])
	r := mesos.REASON_TASK_INVALID
	report(id, Status{State: mesos.TASK_ERROR, Reason: &r, Message: err.Error()})
	return err
}

var kindNoun = map[string]string{"process": "processes", "simulated": "simulations"}

func taskPorts(info *mesos.TaskInfo) []mesos.Value_Range {
	var out []mesos.Value_Range
	for i := range info.Resources {
		if r := &info.Resources[i]; r.GetName() == "ports" && r.GetRanges() != nil {
			out = append(out, r.GetRanges().GetRange()...)
		}
	}
	return out
}

// dialer opens the connections of HTTP and TCP health checks; nil means the
// agent's own network.
type dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// nsDialer dials 127.0.0.1:port inside a container's namespace, where
// Mesos's docker executor runs the checks of BRIDGE and USER tasks (Marathon
// gives them the container port for that reason).
func nsDialer(ns *portfwd.NetNS) dialer {
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("executor: health check port %q: %w", p, err)
		}
		return ns.DialTCP(ctx, port)
	}
}
