package framework

import (
	"encoding/hex"
	"maps"
	"math"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Task ids follow Marathon 1.5+'s scheme for apps:
//
//	<app id without the leading "/", "/" replaced by "_">.instance-<uuid>._app.<incarnation>
//
// e.g. /prod/shop/web → prod_shop_web.instance-0b1c…._app.1. Marathon app
// ids cannot contain "_", so the app id is recovered from the task id
// alone; reconciliation relies on that to adopt tasks a previous leader
// launched. The incarnation is 1, except for the relaunches of a resident
// instance on its reservation (2, 3, …, resident.go), as in Marathon.
const (
	instanceSep = ".instance-"
	appSuffix   = "._app.1"
)

// TaskIDPrefix is the part of a task id that names the app.
func TaskIDPrefix(appID string) string {
	return strings.ReplaceAll(strings.TrimPrefix(appID, "/"), "/", "_")
}

// NewTaskID returns a new task id for an app, its uuid drawn from r (the
// scheduler's seeded source, so tests are reproducible).
func NewTaskID(appID string, r *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	// Appended by hand, not fmt.Sprintf: one id per launch (Sprintf was
	// 1% of the CPU of launching 100,000 tasks).
	prefix := TaskIDPrefix(appID)
	out := make([]byte, 0, len(prefix)+len(instanceSep)+36+len(appSuffix))
	out = append(append(out, prefix...), instanceSep...)
	for i, part := range [][]byte{b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]} {
		if i > 0 {
			out = append(out, '-')
		}
		out = hex.AppendEncode(out, part)
	}
	return string(append(out, appSuffix...))
}

// AppIDFromTaskID returns the app id a task id of Flotilla's scheme
// belongs to, or "" and false when the id is not of that scheme.
func AppIDFromTaskID(taskID string) (string, bool) {
	i := strings.Index(taskID, instanceSep)
	if _, _, ok := splitTaskID(taskID); i <= 0 || !ok {
		return "", false
	}
	return "/" + strings.ReplaceAll(taskID[:i], "_", "/"), true
}

// TaskName is the TaskInfo name Marathon gives an app's tasks: the app
// path reversed and joined with dots (/prod/shop/web → web.shop.prod).
// Mesos-DNS turns it into the record name web-shop-prod.
func TaskName(appID string) string {
	parts := strings.Split(strings.Trim(appID, "/"), "/")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

// launchSpec is what buildTaskInfo needs beyond the app.
type launchSpec struct {
	TaskID    string
	AgentID   string
	Host      string
	Ports     []uint64
	Resources []mesos.Resource
	KillGrace time.Duration
	// Tmpl is the app's part of every TaskInfo; nil means build it. The
	// scheduler caches it per app version so that a round placing
	// thousands of tasks builds it once.
	Tmpl *taskTmpl
}

// taskTmpl is what all tasks of one app version share. Its pointers end
// up in several TaskInfos and must not be written.
type taskTmpl struct {
	name      string
	env       []mesos.Environment_Variable
	container *mesos.ContainerInfo
	labels    *mesos.Labels
	// ports is the app's port list (App.PortList), read for every task.
	ports []appspec.Port
}

func newTaskTmpl(app *appspec.App) *taskTmpl {
	tt := &taskTmpl{name: TaskName(app.ID), env: appEnv(app), container: containerInfo(app), ports: app.PortList()}
	if len(app.Labels) > 0 {
		tt.labels = &mesos.Labels{}
		for _, k := range slices.Sorted(maps.Keys(app.Labels)) {
			v := app.Labels[k]
			tt.labels.Labels = append(tt.labels.Labels, mesos.Label{Key: k, Value: &v})
		}
	}
	return tt
}

// buildTaskInfo turns an app and a placement into the TaskInfo Mesos
// launches. It is pure: secrets are added later by the EnvResolver.
func buildTaskInfo(app *appspec.App, ls launchSpec) mesos.TaskInfo {
	tt := ls.Tmpl
	if tt == nil {
		tt = newTaskTmpl(app)
	}
	ti := mesos.TaskInfo{
		Name:      tt.name,
		TaskID:    mesos.TaskID{Value: ls.TaskID},
		AgentID:   mesos.AgentID{Value: ls.AgentID},
		Resources: ls.Resources,
		Command:   commandInfo(app),
		Container: tt.container,
		Labels:    tt.labels,
	}
	ports := tt.ports
	ti.Command.Environment = &mesos.Environment{Variables: taskEnv(ports, tt.env, ls)}
	if tt.container != nil && tt.container.Docker != nil && app.NetworkMode() != appspec.NetworkHost {
		ti.Container = withPortMappings(tt.container, ports, ls.Ports)
	}
	ti.Discovery = discoveryInfo(tt.name, ports, ls.Ports)
	if i := app.MesosHealthCheck(); i >= 0 {
		// Mesos runs one health check per task (COMMAND or MESOS_*);
		// HTTP, HTTPS and TCP checks are probed by the leader (package
		// health), as Marathon does.
		ti.HealthCheck = healthCheck(app, app.HealthChecks[i], checkPorts(app, ports, ls.Ports))
	}
	if ls.KillGrace > 0 {
		ti.KillPolicy = killPolicy(ls.KillGrace)
	}
	return ti
}

func killPolicy(grace time.Duration) *mesos.KillPolicy {
	return &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace.Nanoseconds()}}
}

func dockerImage(app *appspec.App) string {
	if app.Container != nil && app.Container.Docker != nil {
		return app.Container.Docker.Image
	}
	return ""
}

// commandInfo follows Marathon: cmd runs through the shell; args run
// without it (with a Docker image the image's entrypoint gets them as
// arguments); neither with an image runs the image's default command.
func commandInfo(app *appspec.App) *mesos.CommandInfo {
	f, t := false, true
	ci := &mesos.CommandInfo{URIs: fetchURIs(app.Fetch)}
	if app.User != "" {
		u := app.User
		ci.User = &u
	}
	switch {
	case app.Cmd != "":
		ci.Shell = &t
		cmd := app.Cmd
		ci.Value = &cmd
	case len(app.Args) > 0:
		ci.Shell = &f
		ci.Arguments = append([]string(nil), app.Args...)
		if dockerImage(app) == "" {
			// Without an image, Mesos execs value with arguments as argv.
			v := app.Args[0]
			ci.Value = &v
		}
	default:
		ci.Shell = &f
	}
	return ci
}

func containerInfo(app *appspec.App) *mesos.ContainerInfo {
	img := dockerImage(app)
	if img == "" {
		if vs := volumes(app); len(vs) > 0 {
			// A Mesos container without an image: the volumes alone.
			typ := mesos.ContainerInfo_MESOS
			return &mesos.ContainerInfo{Type: &typ, Volumes: vs}
		}
		return nil
	}
	c := app.Container
	if strings.EqualFold(c.Type, "MESOS") {
		typ, it := mesos.ContainerInfo_MESOS, mesos.Image_DOCKER
		return &mesos.ContainerInfo{Type: &typ, Volumes: volumes(app), Mesos: &mesos.ContainerInfo_MesosInfo{
			Image: &mesos.Image{Type: &it, Docker: &mesos.Image_Docker{Name: img}},
		}}
	}
	typ, netw := mesos.ContainerInfo_DOCKER, mesos.ContainerInfo_DockerInfo_HOST
	var nets []mesos.NetworkInfo
	switch app.NetworkMode() {
	case appspec.NetworkBridge:
		netw = mesos.ContainerInfo_DockerInfo_BRIDGE
	case appspec.NetworkContainer:
		// As Marathon builds it: USER mode, the network named in
		// network_infos (the Docker containerizer's CNI network).
		netw = mesos.ContainerInfo_DockerInfo_USER
		name := app.NetworkName()
		nets = []mesos.NetworkInfo{{Name: &name}}
	}
	d := &mesos.ContainerInfo_DockerInfo{Image: img, Network: &netw}
	if c.Docker.ForcePullImage {
		t := true
		d.ForcePullImage = &t
	}
	if c.Docker.Privileged {
		t := true
		d.Privileged = &t
	}
	for _, p := range c.Docker.Parameters {
		d.Parameters = append(d.Parameters, mesos.Parameter{Key: p.Key, Value: p.Value})
	}
	return &mesos.ContainerInfo{Type: &typ, Docker: d, NetworkInfos: nets, Volumes: volumes(app)}
}

// volumes are the app's host volumes as Mesos's ContainerInfo has them.
func volumes(app *appspec.App) []mesos.Volume {
	if app.Container == nil {
		return nil
	}
	var out []mesos.Volume
	for _, v := range app.Container.Volumes {
		if v.Persistent != nil {
			// Mounted by Mesos from the task's resources (the volume's
			// disk.volume), not from ContainerInfo.
			continue
		}
		mode := mesos.RW
		if v.Mode == "RO" {
			mode = mesos.RO
		}
		hp := v.HostPath
		out = append(out, mesos.Volume{ContainerPath: v.ContainerPath, HostPath: &hp, Mode: &mode})
	}
	return out
}

// withPortMappings copies the app's shared container info and adds this
// task's port mappings: host port from the offer, container port as asked
// (0 means the host port, as in Marathon), one mapping per protocol for
// "udp,tcp", since Mesos's PortMapping carries one protocol.
func withPortMappings(shared *mesos.ContainerInfo, ports []appspec.Port, hostPorts []uint64) *mesos.ContainerInfo {
	c := *shared
	d := *shared.Docker
	d.PortMappings = nil
	for i, p := range ports {
		if i >= len(hostPorts) {
			break
		}
		hp := uint32(hostPorts[i])
		cp := p.ContainerPort
		if cp == 0 {
			cp = hp
		}
		for _, proto := range strings.Split(p.Protocol, ",") {
			proto := proto
			d.PortMappings = append(d.PortMappings, mesos.ContainerInfo_DockerInfo_PortMapping{HostPort: hp, ContainerPort: cp, Protocol: &proto})
		}
	}
	c.Docker = &d
	return &c
}

// discoveryInfo announces the task's ports the way Marathon does, so
// Mesos-DNS and other tools reading the master's state find names,
// protocols and labels: one entry per port and protocol, with the host
// port (what is reachable from outside the task), and Marathon's
// network-scope label.
func discoveryInfo(name string, ports []appspec.Port, hostPorts []uint64) *mesos.DiscoveryInfo {
	di := &mesos.DiscoveryInfo{Visibility: mesos.FRAMEWORK, Name: &name}
	if len(ports) == 0 {
		return di
	}
	di.Ports = &mesos.Ports{}
	for i, p := range ports {
		if i >= len(hostPorts) {
			break
		}
		for _, proto := range strings.Split(p.Protocol, ",") {
			mp := mesos.Port{Number: uint32(hostPorts[i]), Protocol: &proto}
			if p.Name != "" {
				n := p.Name
				mp.Name = &n
			}
			scope, scopeV := "network-scope", "host"
			mp.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: scope, Value: &scopeV}}}
			for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
				v := p.Labels[k]
				mp.Labels.Labels = append(mp.Labels.Labels, mesos.Label{Key: k, Value: &v})
			}
			di.Ports.Ports = append(di.Ports.Ports, mp)
		}
	}
	return di
}

// checkPorts are the ports a health check addresses by index. On host
// networking they are the host ports. On a bridge or container network
// Mesos runs the check inside the task's network namespace, so Marathon
// gives it the container port (the host port when the mapping's container
// port is 0); a check from outside would need the forwarder, which Mesos's
// checker never uses.
func checkPorts(app *appspec.App, ports []appspec.Port, hostPorts []uint64) []uint64 {
	if app.NetworkMode() == appspec.NetworkHost {
		return hostPorts
	}
	out := make([]uint64, len(hostPorts))
	for i := range hostPorts {
		out[i] = hostPorts[i]
		if i < len(ports) && ports[i].ContainerPort != 0 {
			out[i] = uint64(ports[i].ContainerPort)
		}
	}
	return out
}

// perTaskEnv reports whether Marathon sets a variable per task (ports,
// host, task id), given the app's port definitions.
func perTaskEnv(app *appspec.App, name string) bool {
	switch name {
	case "PORT", "PORTS", "HOST", "MESOS_TASK_ID":
		return true
	}
	if strings.HasPrefix(name, "PORT") {
		if _, err := strconv.Atoi(name[4:]); err == nil {
			return true
		}
	}
	for _, p := range app.PortList() {
		if n := declaredPort(p); n != 0 && name == "PORT_"+strconv.FormatUint(uint64(n), 10) || p.Name != "" && name == "PORT_"+envName(p.Name) {
			return true
		}
	}
	return false
}

// appEnv is the environment every task of an app version shares: the
// app's plain env values (secrets are resolved at launch by the
// EnvResolver), then the app-level variables Marathon sets, which win on
// a clash as in Marathon. Sorted by name.
func appEnv(app *appspec.App) []mesos.Environment_Variable {
	env := map[string]string{}
	for k, v := range app.Env {
		if v.Secret == "" && !perTaskEnv(app, k) {
			env[k] = v.Value
		}
	}
	env["MARATHON_APP_ID"] = app.ID
	env["MARATHON_APP_VERSION"] = app.Version
	env["MARATHON_APP_RESOURCE_CPUS"] = strconv.FormatFloat(app.CPUs, 'f', -1, 64)
	env["MARATHON_APP_RESOURCE_MEM"] = strconv.FormatFloat(app.Mem, 'f', -1, 64)
	env["MARATHON_APP_RESOURCE_DISK"] = strconv.FormatFloat(app.Disk, 'f', -1, 64)
	env["MARATHON_APP_RESOURCE_GPUS"] = strconv.Itoa(app.GPUs)
	if img := dockerImage(app); img != "" {
		env["MARATHON_APP_DOCKER_IMAGE"] = img
	}
	var labelNames []string
	for _, k := range slices.Sorted(maps.Keys(app.Labels)) {
		n := envName(k)
		labelNames = append(labelNames, n)
		env["MARATHON_APP_LABEL_"+n] = app.Labels[k]
	}
	if len(labelNames) > 0 {
		env["MARATHON_APP_LABELS"] = strings.Join(labelNames, " ")
	}
	out := make([]mesos.Environment_Variable, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		out = append(out, mesos.Environment_Variable{Name: k, Value: &v})
	}
	return out
}

// taskEnv appends the per-task variables to the app's: PORT0…PORTn, PORT,
// PORTS, PORT_<port>, PORT_<NAME>, HOST and MESOS_TASK_ID.
func taskEnv(declared []appspec.Port, base []mesos.Environment_Variable, ls launchSpec) []mesos.Environment_Variable {
	out := make([]mesos.Environment_Variable, len(base), len(base)+3*len(ls.Ports)+4)
	copy(out, base)
	add := func(k, v string) { out = append(out, mesos.Environment_Variable{Name: k, Value: &v}) }
	ports := make([]string, len(ls.Ports))
	for i, p := range ls.Ports {
		ps := strconv.FormatUint(p, 10)
		ports[i] = ps
		add("PORT"+strconv.Itoa(i), ps)
		if i < len(declared) {
			if n := declaredPort(declared[i]); n != 0 {
				add("PORT_"+strconv.FormatUint(uint64(n), 10), ps)
			}
			if declared[i].Name != "" {
				add("PORT_"+envName(declared[i].Name), ps)
			}
		}
	}
	if len(ports) > 0 {
		add("PORT", ports[0])
		add("PORTS", strings.Join(ports, ","))
	}
	add("HOST", ls.Host)
	add("MESOS_TASK_ID", ls.TaskID)
	return out
}

// declaredPort is the port PORT_<n> is named after, as in Marathon's
// EnvironmentHelper: the container port on a bridge or container network,
// the declared (service) port on host networking. The variable's value is
// always the host port.
func declaredPort(p appspec.Port) uint32 {
	if p.ContainerPort != 0 {
		return p.ContainerPort
	}
	return p.ServicePort
}

// envName makes a label or port name fit an environment variable name the
// way Marathon does: upper case, anything but [A-Z0-9_] becomes "_".
func envName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// healthCheck maps a Marathon COMMAND or MESOS_* health check onto
// Mesos's native one (HTTP, HTTPS and TCP are run by package health, never
// sent here). Zero intervals and timeouts (an unvalidated App) get Mesos's
// defaults.
func healthCheck(app *appspec.App, hc appspec.HealthCheck, ports []uint64) *mesos.HealthCheck {
	out := &mesos.HealthCheck{}
	delay, grace := hc.DelaySeconds, hc.GracePeriodSeconds
	out.DelaySeconds = &delay
	out.GracePeriodSeconds = &grace
	if hc.IntervalSeconds > 0 {
		v := hc.IntervalSeconds
		out.IntervalSeconds = &v
	}
	if hc.TimeoutSeconds > 0 {
		v := hc.TimeoutSeconds
		out.TimeoutSeconds = &v
	}
	// Marathon's maxConsecutiveFailures 0 means "never kill"; left unset,
	// Mesos would apply its default of 3 and kill. A count no task reaches
	// says "never" in Mesos's terms.
	cf := uint32(math.MaxUint32)
	if hc.MaxConsecutiveFailures > 0 {
		cf = uint32(hc.MaxConsecutiveFailures)
	}
	out.ConsecutiveFailures = &cf
	port := uint32(0)
	switch {
	case hc.Port != nil:
		port = *hc.Port
	case hc.PortIndex != nil && *hc.PortIndex >= 0 && *hc.PortIndex < len(ports):
		port = uint32(ports[*hc.PortIndex])
	case len(ports) > 0:
		port = uint32(ports[0])
	}
	switch strings.ToUpper(hc.Protocol) {
	case "MESOS_HTTP", "MESOS_HTTPS":
		out.Type = mesos.HealthCheck_HTTP
		scheme := "http"
		if strings.HasSuffix(strings.ToUpper(hc.Protocol), "HTTPS") {
			scheme = "https"
		}
		path := hc.Path
		if path == "" {
			path = "/"
		}
		out.HTTP = &mesos.HealthCheck_HTTPCheckInfo{Port: port, Path: &path, Scheme: &scheme}
	case "MESOS_TCP":
		out.Type = mesos.HealthCheck_TCP
		out.TCP = &mesos.HealthCheck_TCPCheckInfo{Port: port}
	case "COMMAND":
		out.Type = mesos.HealthCheck_COMMAND
		t := true
		v := ""
		if hc.Command != nil {
			v = hc.Command.Value
		}
		out.Command = &mesos.CommandInfo{Shell: &t, Value: &v}
	}
	return out
}
