package framework

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

// A pod instance's launch: its placement turned into one LAUNCH_GROUP
// (the default executor and a TaskInfo per container, the placement's
// resources cut between them), secrets added when it goes out.

// groupLaunch is one pod instance's LAUNCH_GROUP.
type groupLaunch struct {
	instance string
	app      *appspec.App
	executor mesos.ExecutorInfo
	tasks    []mesos.TaskInfo
}

// launchPod records a placed pod instance and adds its task group to the
// plan's ACCEPT for the offer: handleOffers's launch, for a pod.
func (c *core) launchPod(now time.Time, as *appState, pl offers.Placement, p *plan, byOffer map[string]int) {
	pod := as.app.Pod
	if as.tmplFor != as.app {
		as.tmpl, as.tmplFor = newTaskTmpl(as.app), as.app
	}
	ports := portsByIndex(as.tmpl.ports, pl.Ports)
	inst := NewInstanceID(as.id, c.rand)
	ts := &taskState{t: Task{
		ID: inst, AppID: as.id, AppVersion: as.app.Version, AgentID: pl.AgentID, Host: pl.Hostname,
		Ports: ports, State: mesos.TASK_STAGING, StagedAt: now,
	}, attrs: c.agents[pl.AgentID].attrs}
	ts.t.Healthy = podStartHealth(pod)
	pi := newPodInstance(pod, inst)
	c.pods[inst] = pi
	ts.t.Containers = append([]ContainerStatus(nil), pi.containers...)
	c.addTask(as, ts)
	c.recordAdded(ts)
	as.need--
	as.rejection = offers.Summary{}
	g := buildTaskGroup(as.app, inst, launchSpec{TaskID: inst, AgentID: pl.AgentID, Host: pl.Hostname,
		Ports: ports, Resources: pl.Resources, KillGrace: c.killGrace(as.app), Tmpl: as.tmpl})
	l := p.launchFor(pl.OfferID, byOffer)
	l.groups = append(l.groups, g)
	c.pub(Event{Type: EventTask, At: now, Task: taskPtr(ts.t)})
}

// launchFor is the plan's ACCEPT of an offer (byOffer: its index), added
// on first use: everything placed on one offer goes out in one call.
func (p *plan) launchFor(offerID string, byOffer map[string]int) *launchOp {
	k, ok := byOffer[offerID]
	if !ok {
		k = len(p.launches)
		byOffer[offerID] = k
		p.launches = append(p.launches, launchOp{offerID: offerID})
	}
	return &p.launches[k]
}

// buildTaskGroup turns a placed pod instance into its executor and one
// TaskInfo per container, the placement's resources cut between them.
// It is pure: secrets are added at launch.
func buildTaskGroup(app *appspec.App, inst string, ls launchSpec) groupLaunch {
	pod := app.Pod
	tt := ls.Tmpl
	if tt == nil {
		tt = newTaskTmpl(app)
	}
	cut := newCarver(ls.Resources)
	eps := pod.HostEndpoints()
	bridge := pod.NetworkMode() == appspec.PodNetworkBridge
	// An endpoint's port as the containers see it: the host port on the
	// host's network; on a bridge the container port, in the instance's
	// own namespace, where Mesos also runs the health checks (Marathon's
	// ENDPOINT_<NAME> is the same).
	hostPort := map[string]uint64{}
	for _, e := range eps {
		if e.Index < len(ls.Ports) {
			hostPort[e.Endpoint.Name] = ls.Ports[e.Index]
		}
	}
	inside := hostPort
	var mappings []mesos.NetworkInfo_PortMapping
	if bridge {
		inside, mappings = bridgePorts(pod, eps, hostPort)
	}
	g := groupLaunch{instance: inst, app: app}
	for ci, ct := range pod.Containers {
		id := inst + "." + ct.Name
		res := cut.scalars(ct.Resources.CPUs, ct.Resources.Mem, ct.Resources.Disk, float64(ct.Resources.GPUs))
		var mine []uint64
		var declared []appspec.Port
		for _, e := range eps {
			if e.Container == ci && e.Index < len(ls.Ports) {
				mine = append(mine, ls.Ports[e.Index])
				declared = append(declared, tt.ports[e.Index])
			}
		}
		res = append(res, cut.ports(mine)...)
		cls := ls
		cls.TaskID = id
		env := taskEnv(tt.ports, tt.env, cls)
		add := func(k, v string) { env = append(env, mesos.Environment_Variable{Name: k, Value: &v}) }
		for _, ct := range pod.Containers {
			for _, e := range ct.Endpoints {
				if p, ok := inside[e.Name]; ok {
					add("ENDPOINT_"+envName(e.Name), strconv.FormatUint(p, 10))
				}
			}
		}
		add("MESOS_CONTAINER_NAME", ct.Name)
		for _, k := range slices.Sorted(maps.Keys(ct.Environment)) {
			if ct.Environment[k].Secret == "" { // secrets are added at launch (groupOps)
				add(k, ct.Environment[k].Value)
			}
		}
		ti := mesos.TaskInfo{
			Name:      ct.Name,
			TaskID:    mesos.TaskID{Value: id},
			AgentID:   mesos.AgentID{Value: ls.AgentID},
			Resources: res,
			Command:   podCommand(ct),
			Discovery: discoveryInfo(tt.name, declared, mine),
		}
		ti.Command.Environment = &mesos.Environment{Variables: env}
		ti.Container = podContainerInfo(pod, ct)
		if len(ct.Labels) > 0 {
			ti.Labels = &mesos.Labels{}
			for _, k := range slices.Sorted(maps.Keys(ct.Labels)) {
				v := ct.Labels[k]
				ti.Labels.Labels = append(ti.Labels.Labels, mesos.Label{Key: k, Value: &v})
			}
		}
		if hc := ct.HealthCheck; hc != nil {
			ti.HealthCheck = podHealthCheck(hc, inside)
		}
		grace := ls.KillGrace
		if ct.Lifecycle != nil && ct.Lifecycle.KillGracePeriodSeconds != nil {
			grace = secs(*ct.Lifecycle.KillGracePeriodSeconds)
		}
		if grace > 0 {
			ti.KillPolicy = killPolicy(grace)
		}
		g.tasks = append(g.tasks, ti)
	}
	typ := mesos.ExecutorInfo_DEFAULT
	ctyp := mesos.ContainerInfo_MESOS
	g.executor = mesos.ExecutorInfo{
		Type:       typ,
		ExecutorID: mesos.ExecutorID{Value: executorIDOf(inst)},
		Name:       &tt.name,
		// What the containers did not take: the executor's share, and
		// whatever rounding left of the placement.
		Resources: cut.rest(),
		Container: &mesos.ContainerInfo{Type: &ctyp},
	}
	if bridge {
		// The instance's network namespace is the executor's, shared by
		// its containers; its port mappings forward the endpoints' host
		// ports (Marathon names the network mesos-bridge).
		name := "mesos-bridge"
		g.executor.Container.NetworkInfos = []mesos.NetworkInfo{{Name: &name, PortMappings: mappings}}
	}
	return g
}

// bridgePorts are a bridged pod instance's endpoint ports as its
// containers see them (the container ports, in the instance's own
// namespace) and the port mappings that forward the endpoints' host ports
// there, one per protocol.
func bridgePorts(pod *appspec.Pod, eps []appspec.EndpointRef, hostPort map[string]uint64) (map[string]uint64, []mesos.NetworkInfo_PortMapping) {
	inside := map[string]uint64{}
	for _, ct := range pod.Containers {
		for _, e := range ct.Endpoints {
			if e.ContainerPort != nil {
				inside[e.Name] = uint64(*e.ContainerPort)
			}
		}
	}
	var mappings []mesos.NetworkInfo_PortMapping
	for _, e := range eps {
		hp, ok := hostPort[e.Endpoint.Name]
		if !ok || e.Endpoint.ContainerPort == nil {
			continue
		}
		protos := e.Endpoint.Protocol
		if len(protos) == 0 {
			protos = []string{"tcp"}
		}
		for _, proto := range protos {
			mappings = append(mappings, mesos.NetworkInfo_PortMapping{HostPort: uint32(hp), ContainerPort: *e.Endpoint.ContainerPort, Protocol: &proto})
		}
	}
	return inside, mappings
}

func podCommand(ct appspec.PodContainer) *mesos.CommandInfo {
	ci := &mesos.CommandInfo{URIs: fetchURIs(ct.Artifacts)}
	t, f := true, false
	switch {
	case ct.Exec == nil:
		ci.Shell = &f
	case ct.Exec.Command.Shell != "":
		v := ct.Exec.Command.Shell
		ci.Shell, ci.Value = &t, &v
	default:
		argv := ct.Exec.Command.Argv
		ci.Shell = &f
		ci.Arguments = append([]string(nil), argv...)
		if ct.Image == nil || (ct.Exec.OverrideEntrypoint != nil && *ct.Exec.OverrideEntrypoint) {
			v := argv[0]
			ci.Value = &v
		}
	}
	return ci
}

// podContainerInfo is a container's ContainerInfo: the Mesos
// containerizer (pods have no other), its image, its volume mounts.
// Ephemeral volumes are directories of the executor's sandbox
// (SANDBOX_PATH, PARENT), host volumes host paths.
func podContainerInfo(pod *appspec.Pod, ct appspec.PodContainer) *mesos.ContainerInfo {
	if ct.Image == nil && len(ct.VolumeMounts) == 0 {
		return nil
	}
	typ := mesos.ContainerInfo_MESOS
	ci := &mesos.ContainerInfo{Type: &typ}
	if im := ct.Image; im != nil {
		it := mesos.Image_DOCKER
		cached := !im.ForcePull
		ci.Mesos = &mesos.ContainerInfo_MesosInfo{Image: &mesos.Image{Type: &it, Docker: &mesos.Image_Docker{Name: im.ID}, Cached: &cached}}
	}
	for _, m := range ct.VolumeMounts {
		mode := mesos.RW
		if m.ReadOnly {
			mode = mesos.RO
		}
		v := mesos.Volume{ContainerPath: m.MountPath, Mode: &mode}
		for _, pv := range pod.Volumes {
			if pv.Name != m.Name {
				continue
			}
			if pv.Host != "" {
				hp := pv.Host
				v.HostPath = &hp
			} else {
				st, parent := mesos.Volume_Source_SANDBOX_PATH, mesos.Volume_Source_SandboxPath_PARENT
				v.Source = &mesos.Volume_Source{Type: st, SandboxPath: &mesos.Volume_Source_SandboxPath{Type: parent, Path: "volumes/" + pv.Name}}
			}
		}
		ci.Volumes = append(ci.Volumes, v)
	}
	return ci
}

func podHealthCheck(hc *appspec.PodHealthCheck, hostPort map[string]uint64) *mesos.HealthCheck {
	out := &mesos.HealthCheck{}
	delay, grace, interval, timeout := hc.DelaySeconds, hc.GracePeriodSeconds, hc.IntervalSeconds, hc.TimeoutSeconds
	out.DelaySeconds, out.GracePeriodSeconds, out.IntervalSeconds, out.TimeoutSeconds = &delay, &grace, &interval, &timeout
	// As for apps: 0 means never kill, which Mesos has no word for.
	cf := uint32(math.MaxUint32)
	if hc.MaxConsecutiveFailures > 0 {
		cf = uint32(hc.MaxConsecutiveFailures)
	}
	out.ConsecutiveFailures = &cf
	switch {
	case hc.HTTP != nil:
		out.Type = mesos.HealthCheck_HTTP
		scheme := strings.ToLower(hc.HTTP.Scheme)
		if scheme == "" {
			scheme = "http"
		}
		path := hc.HTTP.Path
		if path == "" {
			path = "/"
		}
		out.HTTP = &mesos.HealthCheck_HTTPCheckInfo{Port: uint32(hostPort[hc.HTTP.Endpoint]), Path: &path, Scheme: &scheme}
	case hc.TCP != nil:
		out.Type = mesos.HealthCheck_TCP
		out.TCP = &mesos.HealthCheck_TCPCheckInfo{Port: uint32(hostPort[hc.TCP.Endpoint])}
	case hc.Exec != nil:
		out.Type = mesos.HealthCheck_COMMAND
		out.Command = &mesos.CommandInfo{}
		if s := hc.Exec.Command.Shell; s != "" {
			t := true
			out.Command.Shell, out.Command.Value = &t, &s
		} else {
			f := false
			argv := hc.Exec.Command.Argv
			out.Command.Shell, out.Command.Value, out.Command.Arguments = &f, &argv[0], argv
		}
	}
	return out
}

// carver cuts a placement's resources into the containers' shares, each
// piece keeping the role, reservation and allocation it was offered with.
type carver struct{ left []mesos.Resource }

func newCarver(rs []mesos.Resource) *carver {
	left := make([]mesos.Resource, len(rs))
	for i, r := range rs {
		left[i] = r
		if r.Scalar != nil {
			s := *r.Scalar
			left[i].Scalar = &s
		}
	}
	return &carver{left: left}
}

func (c *carver) scalars(cpus, mem, disk, gpus float64) []mesos.Resource {
	var out []mesos.Resource
	for _, want := range []struct {
		name string
		v    float64
	}{{"cpus", cpus}, {"mem", mem}, {"disk", disk}, {"gpus", gpus}} {
		need := want.v
		for i := range c.left {
			r := &c.left[i]
			if need < 1e-9 || r.Name != want.name || r.Scalar == nil || r.Scalar.Value < 1e-9 {
				continue
			}
			take := math.Min(need, r.Scalar.Value)
			piece := *r
			piece.Scalar = &mesos.Value_Scalar{Value: math.Round(take*1000) / 1000}
			r.Scalar.Value = math.Round((r.Scalar.Value-take)*1000) / 1000
			need -= take
			if piece.Scalar.Value > 0 {
				out = append(out, piece)
			}
		}
	}
	return out
}

func (c *carver) ports(ps []uint64) []mesos.Resource {
	var out []mesos.Resource
	for _, p := range ps {
		for i := range c.left {
			r := &c.left[i]
			if r.Name != "ports" || r.Ranges == nil || !inRanges(r.Ranges.Range, p) {
				continue
			}
			piece := *r
			piece.Ranges = &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: p, End: p}}}
			out = append(out, piece)
			break
		}
	}
	return out
}

func inRanges(rs []mesos.Value_Range, p uint64) bool {
	for _, r := range rs {
		if p >= r.Begin && p <= r.End {
			return true
		}
	}
	return false
}

// rest is what no container took, ports excepted (every port belongs to
// an endpoint).
func (c *carver) rest() []mesos.Resource {
	var out []mesos.Resource
	for _, r := range c.left {
		if r.Scalar != nil && r.Scalar.Value > 1e-9 {
			out = append(out, r)
		}
	}
	return out
}

// groupOps resolves the groups' secrets and turns them into LAUNCH_GROUP
// operations; a group whose secrets do not resolve is dropped (its
// instance waits again, with backoff).
func (s *Scheduler) groupOps(ctx context.Context, l launchOp) (ops []mesos.Offer_Operation, ids []string) {
	for _, g := range l.groups {
		tasks, err := s.groupSecrets(ctx, g)
		if err != nil {
			reason := fmt.Sprintf("framework: resolving the environment of pod %s: %v", g.app.ID, err)
			s.locked(func(c *core, now time.Time) { c.launchFailed(now, g.instance, reason, true) })
			s.wake()
			continue
		}
		ex := g.executor
		ops = append(ops, mesos.Offer_Operation{Type: mesos.Offer_Operation_LAUNCH_GROUP, LaunchGroup: &mesos.Offer_Operation_LaunchGroup{
			Executor: ex, TaskGroup: mesos.TaskGroupInfo{Tasks: tasks},
		}})
		ids = append(ids, g.instance)
	}
	return ops, ids
}

// groupSecrets adds the resolved secrets to a group's tasks: the pod's
// (its environment, every container) and then each container's own, so a
// container's variable wins over the pod's of the same name. Nothing is
// resolved without a resolver or a secret.
func (s *Scheduler) groupSecrets(ctx context.Context, g groupLaunch) ([]mesos.TaskInfo, error) {
	if s.cfg.ResolveEnv == nil || !hasSecrets(g.app) {
		return g.tasks, nil
	}
	resolve := func(app *appspec.App) ([]mesos.Environment_Variable, error) {
		var vars []mesos.Environment_Variable
		err := s.callWith(ctx, "resolve env", logrus.Fields{"app": g.app.ID, "task": g.instance}, func(ctx context.Context) error {
			var err error
			vars, err = s.cfg.ResolveEnv(ctx, app, g.instance)
			return err
		})
		return vars, err
	}
	var podVars []mesos.Environment_Variable
	if envHasSecrets(g.app.Env) {
		var err error
		if podVars, err = resolve(g.app); err != nil {
			return nil, err
		}
	}
	tasks := make([]mesos.TaskInfo, len(g.tasks))
	for i, ti := range g.tasks {
		vars := append(append([]mesos.Environment_Variable(nil), ti.Command.Environment.GetVariables()...), podVars...)
		if i < len(g.app.Pod.Containers) {
			if own := g.app.Pod.Containers[i].Environment; envHasSecrets(own) {
				// The container's secrets alone, under the pod's declarations.
				cv, err := resolve(&appspec.App{ID: g.app.ID, Version: g.app.Version, Env: own, Secrets: g.app.Secrets})
				if err != nil {
					return nil, err
				}
				vars = append(vars, cv...)
			}
		}
		cmd := *ti.Command
		cmd.Environment = &mesos.Environment{Variables: vars}
		ti.Command = &cmd
		tasks[i] = ti
	}
	return tasks, nil
}

// fetchURIs are Marathon's fetch entries (an app's fetch, a pod
// container's artifacts) as Mesos's fetcher takes them.
func fetchURIs(fs []appspec.FetchURI) []mesos.CommandInfo_URI {
	var out []mesos.CommandInfo_URI
	for _, u := range fs {
		uri := mesos.CommandInfo_URI{Value: u.URI, Extract: &u.Extract, Executable: &u.Executable, Cache: &u.Cache}
		if u.DestPath != "" {
			uri.OutputFile = &u.DestPath
		}
		out = append(out, uri)
	}
	return out
}
