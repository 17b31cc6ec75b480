package framework

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

// Pods run through the app machinery: a pod is an app (appspec.Pod.App)
// whose instance is one Task here, launched as one Mesos task group.
//
// Ids follow Marathon's scheme for pods:
//
//	instance  <pod id without "/", "/" → "_">.instance-<uuid>
//	task      <instance>.<container name>
//	executor  instance-<instance>
//
// Task.ID of a pod instance is the instance id; Mesos knows only the
// container tasks. Their updates are folded into the instance
// (podUpdate): it runs when every container runs, is healthy when every
// health-checked container is, and ends when any container ends, its
// other containers killed with it (Mesos's default executor does the same
// for TASK_FAILED and TASK_KILLED; the scheduler also does it for
// TASK_FINISHED, since an instance with a container gone is not the pod).

// ContainerStatus is one container of a pod instance as Mesos reported it.
type ContainerStatus struct {
	Name    string
	TaskID  string
	State   mesos.TaskState
	Healthy *bool
	Message string
	// heard: Mesos reported this container. An instance this scheduler
	// did not launch (restored, adopted) lists the containers of the
	// pod's current version, which its own version may not have had.
	heard bool
}

// podInstance is the scheduler's record of an instance's containers.
type podInstance struct {
	containers []ContainerStatus // in the pod's container order
}

// NewInstanceID returns a new pod instance id, its uuid drawn from r.
func NewInstanceID(podID string, r *rand.Rand) string {
	return strings.TrimSuffix(NewTaskID(podID, r), appSuffix)
}

// PodTaskID splits a pod container's task id into its instance id, pod
// id and container name; ok is false for any other id.
func PodTaskID(taskID string) (instance, podID, container string, ok bool) {
	i := strings.Index(taskID, instanceSep)
	if i <= 0 || strings.HasSuffix(taskID, appSuffix) {
		return "", "", "", false
	}
	rest := taskID[i+len(instanceSep):]
	j := strings.IndexByte(rest, '.')
	if j <= 0 || j == len(rest)-1 {
		return "", "", "", false
	}
	return taskID[:i+len(instanceSep)+j], "/" + strings.ReplaceAll(taskID[:i], "_", "/"), rest[j+1:], true
}

// PodIDFromInstanceID returns the pod id of an instance id.
func PodIDFromInstanceID(instance string) (string, bool) {
	i := strings.Index(instance, instanceSep)
	if i <= 0 || strings.Contains(instance[i+len(instanceSep):], ".") {
		return "", false
	}
	return "/" + strings.ReplaceAll(instance[:i], "_", "/"), true
}

func executorIDOf(instance string) string { return "instance-" + instance }

// podOf is the pod of an app state, nil for an app.
func podOf(as *appState) *appspec.Pod {
	if as == nil || as.app == nil {
		return nil
	}
	return as.app.Pod
}

// mesosTaskIDs are the ids Mesos knows a Task by: the task's own, or its
// containers' for a pod instance.
func (c *core) mesosTaskIDs(ts *taskState) []string {
	pi := c.pods[ts.t.ID]
	if pi == nil {
		return []string{ts.t.ID}
	}
	out := make([]string, len(pi.containers))
	for i, cs := range pi.containers {
		out[i] = cs.TaskID
	}
	return out
}

// killOps kills a task, or every live container of a pod instance.
func (c *core) killOps(id string, ts *taskState) []killOp {
	policy := c.killPolicyOf(ts.t.AppID)
	pi := c.pods[id]
	if pi == nil {
		return []killOp{{taskID: id, agentID: ts.t.AgentID, policy: policy}}
	}
	var out []killOp
	for _, cs := range pi.containers {
		if !isTerminal(cs.State) {
			out = append(out, killOp{taskID: cs.TaskID, agentID: ts.t.AgentID, policy: policy})
		}
	}
	return out
}

// podUpdate folds a container's update into its instance: st becomes the
// instance's status (id, aggregate state and health) for handleUpdate to
// go on with; false means the update is handled (or dropped) here.
func (c *core) podUpdate(now time.Time, st *mesos.TaskStatus, p *plan) bool {
	inst, podID, name, ok := PodTaskID(st.TaskID.Value)
	if !ok {
		return true
	}
	agent := st.GetAgentID().GetValue()
	state := st.GetState()
	log := c.log.WithFields(logrus.Fields{"task": st.TaskID.Value, "state": state.String()})
	ts := c.tasks[inst]
	pi := c.pods[inst]
	if ts == nil {
		delete(c.pods, inst)
		if isTerminal(state) {
			return false
		}
		as := c.apps[podID]
		pod := podOf(as)
		if pod == nil && c.holdUnknown {
			if !c.held[st.TaskID.Value] {
				c.held[st.TaskID.Value] = true
				log.WithFields(logrus.Fields{"agent": agent, "pod": podID}).Warn("keeping a task of a pod this leader does not know: the stored apps were not all read")
			}
			return false
		}
		if pod == nil {
			log.WithField("agent", agent).Warn("killing a task nobody asked for")
			p.kills = append(p.kills, killOp{taskID: st.TaskID.Value, agentID: agent, policy: c.killPolicy()})
			return false
		}
		// A container of an instance a previous leader launched: adopt the
		// instance, with the containers the pod has now.
		ts = &taskState{t: Task{
			ID: inst, AppID: podID, AppVersion: as.app.Version, AgentID: agent,
			Host: c.agents[agent].host, State: mesos.TASK_STAGING, StagedAt: now, Adopted: true,
		}, attrs: c.agents[agent].attrs}
		ts.t.Healthy = podStartHealth(pod)
		pi = newPodInstance(pod, inst)
		c.pods[inst] = pi
		log.WithField("pod", podID).Info("adopting a running pod instance")
		c.addTask(as, ts)
		c.recordAdded(ts)
	}
	if pi == nil {
		pi = newPodInstance(podOf(c.apps[ts.t.AppID]), inst)
		c.pods[inst] = pi
	}
	k := -1
	for i := range pi.containers {
		if pi.containers[i].Name == name {
			k = i
		}
	}
	if k < 0 {
		// A container the instance's version did not have (adopted under
		// a newer pod spec): track it too, so it is killed with the rest.
		pi.containers = append(pi.containers, ContainerStatus{Name: name, TaskID: st.TaskID.Value, State: mesos.TASK_STAGING})
		k = len(pi.containers) - 1
		if ts.t.Killing && !isTerminal(state) {
			// The instance is being killed: this container goes too.
			p.kills = append(p.kills, killOp{taskID: st.TaskID.Value, agentID: agent, policy: c.killPolicyOf(ts.t.AppID)})
		}
	}
	cs := &pi.containers[k]
	if isTerminal(state) && !cs.heard && st.GetReason() == mesos.REASON_RECONCILIATION && len(pi.containers) > 1 {
		// Mesos does not know this container: the instance (restored or
		// adopted from a previous leader) is of a version without it.
		// It is forgotten, not taken for the instance's end.
		pi.containers = append(pi.containers[:k], pi.containers[k+1:]...)
		t := ts.t
		t.Containers = append([]ContainerStatus(nil), pi.containers...)
		ts.t = t
		return false
	}
	cs.heard = true
	cs.State = state
	cs.Message = st.GetMessage()
	if st.Healthy != nil {
		h := st.GetHealthy()
		cs.Healthy = &h
	}
	agg := *st
	agg.TaskID = mesos.TaskID{Value: inst}
	agg.State = aggregateState(pi.containers, ts.t.Adopted).Enum()
	if pod := podOf(c.apps[ts.t.AppID]); pod != nil && pod.HealthChecked() {
		h := podHealthy(pod, pi.containers)
		agg.Healthy = &h
	} else {
		agg.Healthy = nil
	}
	if isTerminal(agg.GetState()) {
		// The instance is over: the rest of the group goes with it.
		if !ts.t.Killing {
			for _, o := range pi.containers {
				if !isTerminal(o.State) {
					p.kills = append(p.kills, killOp{taskID: o.TaskID, agentID: ts.t.AgentID, policy: c.killPolicyOf(ts.t.AppID)})
				}
			}
		}
		msg := fmt.Sprintf("container %s: %s", name, st.GetMessage())
		agg.Message = &msg
	}
	t := ts.t
	t.Containers = append([]ContainerStatus(nil), pi.containers...)
	ts.t = t
	*st = agg
	return true
}

func newPodInstance(pod *appspec.Pod, inst string) *podInstance {
	pi := &podInstance{}
	if pod == nil {
		return pi
	}
	for _, ct := range pod.Containers {
		pi.containers = append(pi.containers, ContainerStatus{Name: ct.Name, TaskID: inst + "." + ct.Name, State: mesos.TASK_STAGING})
	}
	return pi
}

// aggregateState is an instance's state from its containers': the first
// terminal one if any ended; else unreachable, killing, or the least
// advanced of staging, starting and running. Of an instance this
// scheduler did not launch (adopted), only the containers Mesos reported
// count: the others may not be of its version.
func aggregateState(cs []ContainerStatus, adopted bool) mesos.TaskState {
	least := mesos.TASK_RUNNING
	rank := map[mesos.TaskState]int{mesos.TASK_STAGING: 0, mesos.TASK_STARTING: 1, mesos.TASK_RUNNING: 2}
	var unreachable, killing, any bool
	for _, c := range cs {
		if adopted && !c.heard {
			continue
		}
		any = true
		switch {
		case isTerminal(c.State):
			return c.State
		case c.State == mesos.TASK_UNREACHABLE:
			unreachable = true
		case c.State == mesos.TASK_KILLING:
			killing = true
		case rank[c.State] < rank[least]:
			least = c.State
		}
	}
	switch {
	case !any:
		return mesos.TASK_STAGING
	case unreachable:
		return mesos.TASK_UNREACHABLE
	case killing:
		return mesos.TASK_KILLING
	}
	return least
}

// podHealthy: every container with a health check reported healthy.
func podHealthy(pod *appspec.Pod, cs []ContainerStatus) bool {
	for _, ct := range pod.Containers {
		if ct.HealthCheck == nil {
			continue
		}
		present, ok := false, false
		for _, c := range cs {
			if c.Name == ct.Name {
				present, ok = true, c.Healthy != nil && *c.Healthy
			}
		}
		// A container the instance does not have (of another version)
		// has no say.
		if present && !ok {
			return false
		}
	}
	return true
}

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
		inside = map[string]uint64{}
		for _, ct := range pod.Containers {
			for _, e := range ct.Endpoints {
				if e.ContainerPort != nil {
					inside[e.Name] = uint64(*e.ContainerPort)
				}
			}
		}
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
				proto := proto
				mappings = append(mappings, mesos.NetworkInfo_PortMapping{HostPort: uint32(hp), ContainerPort: *e.Endpoint.ContainerPort, Protocol: &proto})
			}
		}
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
		for _, k := range sortedKeys(ct.Environment) {
			add(k, ct.Environment[k].Value)
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
			for _, k := range sortedKeys(ct.Labels) {
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
		tasks := g.tasks
		if s.cfg.ResolveEnv != nil && hasSecrets(g.app) {
			var vars []mesos.Environment_Variable
			err := s.callWith(ctx, "resolve env", logrus.Fields{"app": g.app.ID, "task": g.instance}, func(ctx context.Context) error {
				var err error
				vars, err = s.cfg.ResolveEnv(ctx, g.app, g.instance)
				return err
			})
			if err != nil {
				reason := fmt.Sprintf("framework: resolving the environment of pod %s: %v", g.app.ID, err)
				s.locked(func(c *core, now time.Time) { c.launchFailed(now, g.instance, reason, true) })
				s.wake()
				continue
			}
			tasks = make([]mesos.TaskInfo, len(g.tasks))
			for i, ti := range g.tasks {
				env := &mesos.Environment{Variables: append(append([]mesos.Environment_Variable(nil), ti.Command.Environment.GetVariables()...), vars...)}
				cmd := *ti.Command
				cmd.Environment = env
				ti.Command = &cmd
				tasks[i] = ti
			}
		}
		ex := g.executor
		ops = append(ops, mesos.Offer_Operation{Type: mesos.Offer_Operation_LAUNCH_GROUP, LaunchGroup: &mesos.Offer_Operation_LaunchGroup{
			Executor: ex, TaskGroup: mesos.TaskGroupInfo{Tasks: tasks},
		}})
		ids = append(ids, g.instance)
	}
	return ops, ids
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

// podStartHealth is an instance's health before its containers report
// any: not healthy when the pod has health checks (a roll must not count
// an instance whose checks have not run, nor a restored one whose have
// not been heard yet), nil (no checks) otherwise.
func podStartHealth(pod *appspec.Pod) *bool {
	if pod.HealthChecked() {
		return new(bool)
	}
	return nil
}
