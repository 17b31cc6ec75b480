package executor

import (
	"context"
	"fmt"
	"sync"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// dockerGroup is the network namespace of a task group on a network of
// its own (a pod on container/bridge networking). In Mesos the default
// executor's container holds it and the tasks' nested containers share
// it; here the group's first task (Group.Leader) creates it, with the
// executor's port mappings forwarded into it, and the other tasks' Docker
// containers join it (--network container:<first>), so every container
// of the group reaches the others on localhost.
type dockerGroup struct {
	ready chan struct{} // closed once the leader's container runs, or failed
	once  sync.Once
	name  string // the leader's container
	err   error
}

// group is the group's namespace record, made by whichever of its tasks
// comes first.
func (d *Docker) group(id string) *dockerGroup {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.groups == nil {
		d.groups = map[string]*dockerGroup{}
	}
	g := d.groups[id]
	if g == nil {
		g = &dockerGroup{ready: make(chan struct{})}
		d.groups[id] = g
	}
	return g
}

// settle publishes the leader's launch: its container's name, or why it
// did not start (the other tasks then fail with that reason).
func (g *dockerGroup) settle(name string, err error) {
	g.once.Do(func() {
		g.name, g.err = name, err
		close(g.ready)
	})
}

// forget drops a group's record once its leader's container is gone.
func (d *Docker) forget(groupID string) {
	if groupID == "" {
		return
	}
	d.mu.Lock()
	delete(d.groups, groupID)
	d.mu.Unlock()
}

// planNetwork is the task's Docker network: its own (planDockerNetwork),
// or its group's. The leader's container is the group's BRIDGE, with the
// port mappings of the executor's NetworkInfo (every endpoint of the
// group); the others join it once it runs.
func (d *Docker) planNetwork(ctx context.Context, t *Task, g *dockerGroup) (dockerNet, error) {
	if g == nil {
		return planDockerNetwork(&t.Info)
	}
	if !t.Group.Leader {
		select {
		case <-g.ready:
		case <-ctx.Done():
			return dockerNet{}, fmt.Errorf("waiting for the group's network: %w", ctx.Err())
		}
		if g.err != nil {
			return dockerNet{}, fmt.Errorf("the group's first task, which holds the group's network, did not start: %w", g.err)
		}
		return dockerNet{mode: "container:" + g.name, isolated: true}, nil
	}
	info := t.Info
	c := *info.GetContainer()
	if c.Docker == nil {
		return dockerNet{}, fmt.Errorf("the task has no docker image")
	}
	dk := *c.Docker
	netw := mesos.ContainerInfo_DockerInfo_BRIDGE
	dk.Network, dk.PortMappings = &netw, nil
	var ranges []mesos.Value_Range
	for _, ni := range t.Group.Container.GetNetworkInfos() {
		for _, pm := range ni.PortMappings {
			dk.PortMappings = append(dk.PortMappings, mesos.ContainerInfo_DockerInfo_PortMapping(pm))
			ranges = append(ranges, mesos.Value_Range{Begin: uint64(pm.HostPort), End: uint64(pm.HostPort)})
		}
	}
	c.Docker, c.NetworkInfos = &dk, nil
	info.Container = &c
	if len(ranges) > 0 {
		// The group's host ports are spread over its tasks' resources;
		// the leader forwards them all.
		info.Resources = append(append([]mesos.Resource(nil), info.Resources...),
			mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: ranges}})
	}
	return planDockerNetwork(&info)
}
