package appspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// Pod is Marathon's pod (pod.raml, podContainer.raml, Marathon 1.5+):
// containers placed and run together as one instance, sharing its network
// and its volumes. Flotilla runs an instance as one Mesos task group
// (LAUNCH_GROUP with the default executor).
//
// The scheduler sees a pod through App (Pod.App): an app whose resources
// are the containers' sums plus the executor's, whose ports are the
// endpoints' host ports, and whose App.Pod points back here. Scaling,
// backoff, rolling upgrades, kill selection, constraints and unreachable
// handling are therefore the apps' own code.
type Pod struct {
	ID                string              `json:"id"`
	Labels            map[string]string   `json:"labels,omitempty"`
	Version           string              `json:"version,omitempty"`
	Environment       map[string]EnvValue `json:"environment,omitempty"`
	Containers        []PodContainer      `json:"containers"`
	Secrets           map[string]Secret   `json:"secrets,omitempty"`
	Volumes           []PodVolume         `json:"volumes,omitempty"`
	Networks          []PodNetwork        `json:"networks,omitempty"`
	Scaling           *PodScaling         `json:"scaling,omitempty"`
	Scheduling        *PodScheduling      `json:"scheduling,omitempty"`
	ExecutorResources *PodResources       `json:"executorResources,omitempty"`
	// Autoscale is Flotilla's own, as on apps: the instance count follows
	// a metric (cpu and mem are the instance's, all containers summed).
	Autoscale *Autoscale `json:"autoscale,omitempty"`
}

// PodContainer is one container of a pod.
type PodContainer struct {
	Name         string              `json:"name"`
	Exec         *PodExec            `json:"exec,omitempty"`
	Resources    PodResources        `json:"resources"`
	Endpoints    []PodEndpoint       `json:"endpoints,omitempty"`
	Image        *PodImage           `json:"image,omitempty"`
	Environment  map[string]EnvValue `json:"environment,omitempty"`
	HealthCheck  *PodHealthCheck     `json:"healthCheck,omitempty"`
	VolumeMounts []PodVolumeMount    `json:"volumeMounts,omitempty"`
	Artifacts    []FetchURI          `json:"artifacts,omitempty"`
	Labels       map[string]string   `json:"labels,omitempty"`
	Lifecycle    *PodLifecycle       `json:"lifecycle,omitempty"`
}

// PodExec is the container's command.
type PodExec struct {
	Command            PodCommand `json:"command"`
	OverrideEntrypoint *bool      `json:"overrideEntrypoint,omitempty"`
}

// PodCommand is Marathon's MesosCommand: a shell string or an argv.
type PodCommand struct {
	Shell string   `json:"shell,omitempty"`
	Argv  []string `json:"argv,omitempty"`
}

// PodResources are one container's (or the executor's) resources.
type PodResources struct {
	CPUs float64 `json:"cpus"`
	Mem  float64 `json:"mem"`
	Disk float64 `json:"disk"`
	GPUs int     `json:"gpus"`
}

// PodEndpoint is a port of a container: a host port from the offer (0:
// any) in host networking, a container port (and optionally a host port
// mapped to it) in container networking.
type PodEndpoint struct {
	Name          string            `json:"name"`
	ContainerPort *uint32           `json:"containerPort,omitempty"`
	HostPort      *uint32           `json:"hostPort,omitempty"`
	Protocol      []string          `json:"protocol,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// PodImage is the container's filesystem image.
type PodImage struct {
	Kind      string `json:"kind"` // DOCKER
	ID        string `json:"id"`
	ForcePull bool   `json:"forcePull,omitempty"`
}

// PodHealthCheck is Marathon's MesosHealthCheck: exactly one of http, tcp
// or exec.
type PodHealthCheck struct {
	HTTP                   *PodHTTPCheck `json:"http,omitempty"`
	TCP                    *PodTCPCheck  `json:"tcp,omitempty"`
	Exec                   *PodExecCheck `json:"exec,omitempty"`
	GracePeriodSeconds     float64       `json:"gracePeriodSeconds"`
	IntervalSeconds        float64       `json:"intervalSeconds"`
	MaxConsecutiveFailures int           `json:"maxConsecutiveFailures"`
	TimeoutSeconds         float64       `json:"timeoutSeconds"`
	DelaySeconds           float64       `json:"delaySeconds"`
}

// PodHTTPCheck probes an endpoint over HTTP.
type PodHTTPCheck struct {
	Endpoint string `json:"endpoint"`
	Path     string `json:"path,omitempty"`
	Scheme   string `json:"scheme,omitempty"` // HTTP | HTTPS
}

// PodTCPCheck connects to an endpoint.
type PodTCPCheck struct {
	Endpoint string `json:"endpoint"`
}

// PodExecCheck runs a command in the container.
type PodExecCheck struct {
	Command PodCommand `json:"command"`
}

// PodVolumeMount mounts a pod volume into a container.
type PodVolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// PodVolume is an ephemeral volume (name only: a directory of the
// executor's sandbox the containers share) or a host volume (host set).
type PodVolume struct {
	Name string `json:"name"`
	Host string `json:"host,omitempty"`
}

// PodLifecycle is the container's kill grace period.
type PodLifecycle struct {
	KillGracePeriodSeconds *float64 `json:"killGracePeriodSeconds,omitempty"`
}

// PodNetwork is the pod's network: mode host (default), container (a
// named network) or container/bridge.
type PodNetwork struct {
	Mode   string            `json:"mode,omitempty"`
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// PodScaling is the fixed scaling policy.
type PodScaling struct {
	Kind         string `json:"kind,omitempty"` // fixed
	Instances    int    `json:"instances"`
	MaxInstances *int   `json:"maxInstances,omitempty"`
}

// PodScheduling is the pod's scheduling policy.
type PodScheduling struct {
	Backoff             *PodBackoff          `json:"backoff,omitempty"`
	Upgrade             *UpgradeStrategy     `json:"upgrade,omitempty"`
	Placement           *PodPlacement        `json:"placement,omitempty"`
	KillSelection       string               `json:"killSelection,omitempty"`
	UnreachableStrategy *UnreachableStrategy `json:"unreachableStrategy,omitempty"`
}

// PodBackoff is the launch backoff of a failing pod.
type PodBackoff struct {
	Backoff        float64 `json:"backoff"`
	BackoffFactor  float64 `json:"backoffFactor"`
	MaxLaunchDelay float64 `json:"maxLaunchDelay"`
}

// PodPlacement holds the pod's constraints.
type PodPlacement struct {
	Constraints           []PodConstraint `json:"constraints,omitempty"`
	AcceptedResourceRoles []string        `json:"acceptedResourceRoles,omitempty"`
}

// PodConstraint is a constraint as an object (constraint.raml).
type PodConstraint struct {
	FieldName string `json:"fieldName"`
	Operator  string `json:"operator"`
	Value     string `json:"value,omitempty"`
}

// Pod defaults (Marathon's RAML: resources.raml, pod.raml, healthCheck.raml).
const (
	DefaultPodCPUs         = 1.0
	DefaultPodMem          = 128.0
	DefaultExecutorCPUs    = 0.1
	DefaultExecutorMem     = 32.0
	DefaultExecutorDisk    = 10.0
	DefaultPodHealthGrace  = 300.0
	DefaultPodHealthPeriod = 60.0
	// Mesos's minimum resources for an executor (MIN_CPUS, MIN_MEM).
	MinExecutorCPUs = 0.01
	MinExecutorMem  = 32.0
)

// Network modes of a pod.
const (
	PodNetworkHost      = "host"
	PodNetworkContainer = "container"
	PodNetworkBridge    = "container/bridge"
)

var (
	typeOfPod          = reflect.TypeOf(Pod{})
	typeOfPodContainer = reflect.TypeOf(PodContainer{})
	typeOfPodVolume    = reflect.TypeOf(PodVolume{})
	typeOfPodImage     = reflect.TypeOf(PodImage{})
)

func init() {
	unsupportedFields[typeOfPod] = map[string]unsupported{
		"user":                {hint: "containers run as the image's user (or the agent's)"},
		"legacySharedCgroups": {hint: "containers get their own limits"},
		"linuxInfo":           {hint: "Linux capabilities and seccomp settings are not supported"},
	}
	unsupportedFields[typeOfPodContainer] = map[string]unsupported{
		"user":           {hint: "containers run as the image's user (or the agent's)"},
		"check":          {hint: "Mesos checks are not supported; use healthCheck"},
		"readinessCheck": {hint: "readiness checks of pod containers are not supported yet; use healthCheck"},
		"tty":            {hint: "containers get no TTY"},
		"linuxInfo":      {hint: "Linux capabilities and seccomp settings are not supported"},
	}
	unsupportedFields[typeOfPodVolume] = map[string]unsupported{
		"persistent": {hint: "pods have no resident instances in Flotilla (apps do: container.volumes[].persistent); use a host volume (host) or an ephemeral one (name only)"},
		"secret":     {hint: "file-based secrets are not supported; reference the secret in environment ({\"secret\": …})"},
	}
	unsupportedFields[typeOfPodImage] = map[string]unsupported{
		"pullConfig": {hint: "registry credentials are configured on the agents"},
		"labels":     {hint: "image labels are not used"},
	}
}

// podReadOnly are fields of GET /v2/pods/{id}::status and Marathon's GET
// output that a client may PUT back; they are status, not spec.
var podReadOnly = map[string]bool{"versionInfo": true}

// DecodePod reads a pod definition strictly, as Decode does for apps: one
// JSON object, every field known and of its type, each problem named by
// its JSON pointer. The pod returned has Marathon's defaults and the
// canonical id, and still needs Validate.
func DecodePod(r io.Reader) (*Pod, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("appspec: read pod definition: %w", err)
	}
	if len(b) > MaxBodyBytes {
		return nil, ErrTooLarge
	}
	return decodePod(b)
}

func decodePod(b []byte) (*Pod, error) {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) == nil {
		for k := range podReadOnly {
			if _, ok := top[k]; ok {
				delete(top, k)
				var err error
				if b, err = json.Marshal(top); err != nil {
					return nil, malformed("/", err.Error())
				}
			}
		}
	}
	if err := checkJSON(b, typeOfPod, "pod"); err != nil {
		return nil, err
	}
	p := &Pod{}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(p); err != nil {
		return nil, malformed("/", err.Error())
	}
	p.Normalize()
	return p, nil
}

// Normalize fills Marathon's defaults and makes the id canonical.
func (p *Pod) Normalize() {
	p.ID = CanonicalID(p.ID)
	if p.Scaling == nil {
		p.Scaling = &PodScaling{Kind: "fixed", Instances: 1}
	}
	if p.Scaling.Kind == "" {
		p.Scaling.Kind = "fixed"
	}
	if p.ExecutorResources == nil {
		p.ExecutorResources = &PodResources{CPUs: DefaultExecutorCPUs, Mem: DefaultExecutorMem, Disk: DefaultExecutorDisk}
	}
	if len(p.Networks) == 0 {
		p.Networks = []PodNetwork{{Mode: PodNetworkHost}}
	}
	for i := range p.Networks {
		if p.Networks[i].Mode == "" {
			p.Networks[i].Mode = PodNetworkContainer
		}
	}
	if p.Scheduling == nil {
		p.Scheduling = &PodScheduling{}
	}
	s := p.Scheduling
	if s.Backoff == nil {
		s.Backoff = &PodBackoff{Backoff: DefaultBackoffSeconds, BackoffFactor: DefaultBackoffFactor, MaxLaunchDelay: DefaultMaxLaunchDelaySeconds}
	}
	if s.Upgrade == nil {
		s.Upgrade = &UpgradeStrategy{MinimumHealthCapacity: 1, MaximumOverCapacity: 1}
	}
	if s.KillSelection == "" {
		s.KillSelection = DefaultKillSelection
	}
	if s.UnreachableStrategy == nil {
		s.UnreachableStrategy = &UnreachableStrategy{InactiveAfterSeconds: DefaultInactiveAfterSeconds, ExpungeAfterSeconds: DefaultExpungeAfterSeconds}
	}
}

// UnmarshalJSON applies the container defaults (resources cpus 1, mem 128)
// to what the client left out.
func (c *PodContainer) UnmarshalJSON(b []byte) error {
	type plain PodContainer
	// encoding/json sets only the fields present, so the defaults stay
	// for the ones left out, inside resources too.
	p := plain{Resources: PodResources{CPUs: DefaultPodCPUs, Mem: DefaultPodMem}}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = PodContainer(p)
	return nil
}

// UnmarshalJSON applies Marathon's health check defaults to what the
// client left out.
func (h *PodHealthCheck) UnmarshalJSON(b []byte) error {
	type plain PodHealthCheck
	p := plain{GracePeriodSeconds: DefaultPodHealthGrace, IntervalSeconds: DefaultPodHealthPeriod,
		MaxConsecutiveFailures: DefaultHealthMaxFailures, TimeoutSeconds: DefaultHealthTimeoutSeconds, DelaySeconds: DefaultHealthDelaySeconds}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*h = PodHealthCheck(p)
	return nil
}

// NetworkMode is the pod's network mode (host, container,
// container/bridge).
func (p *Pod) NetworkMode() string {
	if len(p.Networks) == 0 {
		return PodNetworkHost
	}
	return p.Networks[0].Mode
}

// Instances is the pod's instance count.
func (p *Pod) Instances() int {
	if p.Scaling == nil {
		return 1
	}
	return p.Scaling.Instances
}

// EndpointRef is an endpoint with the container it belongs to; Index is
// its place among the pod's endpoints that take a host port, -1 for one
// that takes none.
type EndpointRef struct {
	Container int
	Endpoint  PodEndpoint
	Index     int
}

// HostEndpoints lists the endpoints that take a host port, in container
// then endpoint order: the order of App.PortDefinitions (PORT0…), and so
// of the ports a placement gives an instance.
func (p *Pod) HostEndpoints() []EndpointRef {
	var out []EndpointRef
	for ci, c := range p.Containers {
		for _, e := range c.Endpoints {
			if e.HostPort != nil {
				out = append(out, EndpointRef{Container: ci, Endpoint: e, Index: len(out)})
			}
		}
	}
	return out
}

// App is the pod as the scheduler runs it: one app instance per pod
// instance, asking for the containers' resources plus the executor's and a
// host port per endpoint that has one. App.Pod points back to the pod.
func (p *Pod) App() *App {
	// The app owns the instance count and the version (a scale must
	// compare equal in config to what it scales), so its copy of the pod
	// holds neither; App.PodSpec puts them back.
	spec := p.Clone()
	spec.Version = ""
	if spec.Scaling != nil {
		spec.Scaling.Instances = 0
	}
	a := &App{
		ID:        p.ID,
		Version:   p.Version,
		Instances: p.Instances(),
		Labels:    cloneLabels(p.Labels),
		Env:       p.Environment,
		Secrets:   p.Secrets,
		Autoscale: p.Autoscale,
		Pod:       spec,
	}
	if er := p.ExecutorResources; er != nil {
		a.CPUs, a.Mem, a.Disk, a.GPUs = er.CPUs, er.Mem, er.Disk, er.GPUs
	}
	for _, c := range p.Containers {
		a.CPUs += c.Resources.CPUs
		a.Mem += c.Resources.Mem
		a.Disk += c.Resources.Disk
		a.GPUs += c.Resources.GPUs
	}
	a.PortDefinitions = []PortDefinition{}
	for _, e := range p.HostEndpoints() {
		a.PortDefinitions = append(a.PortDefinitions, PortDefinition{
			Port: *e.Endpoint.HostPort, Name: e.Endpoint.Name, Protocol: strings.Join(e.Endpoint.Protocol, ","), Labels: e.Endpoint.Labels,
		})
		// marathon-lb's labels on an endpoint speak of that endpoint:
		// HAPROXY_GROUP there is HAPROXY_{n}_GROUP of the app's port n,
		// which is how the gateway and DNS read them.
		for _, k := range slices.Sorted(maps.Keys(e.Endpoint.Labels)) {
			name, ok := strings.CutPrefix(k, "HAPROXY_")
			if !ok || name == "" || (name[0] >= '0' && name[0] <= '9') {
				continue
			}
			if a.Labels == nil {
				a.Labels = map[string]string{}
			}
			a.Labels[portLabelName(e.Index, name)] = e.Endpoint.Labels[k]
		}
	}
	// Fixed host ports are what the endpoints asked for; Marathon's
	// requirePorts is how an app says so.
	for _, pd := range a.PortDefinitions {
		if pd.Port != 0 {
			a.RequirePorts = true
		}
	}
	s := p.Scheduling
	if s == nil {
		s = &PodScheduling{}
	}
	if b := s.Backoff; b != nil {
		a.BackoffSeconds, a.BackoffFactor, a.MaxLaunchDelaySeconds = b.Backoff, b.BackoffFactor, b.MaxLaunchDelay
	}
	if s.Upgrade != nil {
		a.UpgradeStrategy = *s.Upgrade
	}
	a.KillSelection = s.KillSelection
	if s.UnreachableStrategy != nil {
		a.UnreachableStrategy = *s.UnreachableStrategy
	}
	if s.Placement != nil {
		a.AcceptedResourceRoles = s.Placement.AcceptedResourceRoles
		for _, c := range s.Placement.Constraints {
			cs := []string{c.FieldName, c.Operator}
			if c.Value != "" {
				cs = append(cs, c.Value)
			}
			a.Constraints = append(a.Constraints, cs)
		}
	}
	// The longest grace of a container is the instance's: the executor
	// kills every container of the group.
	for _, c := range p.Containers {
		if c.Lifecycle != nil && c.Lifecycle.KillGracePeriodSeconds != nil {
			g := *c.Lifecycle.KillGracePeriodSeconds
			if a.TaskKillGracePeriodSeconds == nil || g > *a.TaskKillGracePeriodSeconds {
				a.TaskKillGracePeriodSeconds = &g
			}
		}
	}
	return a
}

// PodSpec is the pod an app runs, with the app's instance count and
// version; nil for an app that is not a pod.
func (a *App) PodSpec() *Pod {
	if a.Pod == nil {
		return nil
	}
	p := a.Pod.Clone()
	p.ID = a.ID
	p.Version = a.Version
	if p.Scaling == nil {
		p.Scaling = &PodScaling{Kind: "fixed"}
	}
	p.Scaling.Instances = a.Instances
	return p
}

// HealthChecked says whether any container has a health check: the
// instance is healthy when every such container is.
func (p *Pod) HealthChecked() bool {
	for _, c := range p.Containers {
		if c.HealthCheck != nil {
			return true
		}
	}
	return false
}

// Clone is a deep copy (through JSON: a pod is plain data).
func (p *Pod) Clone() *Pod {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("appspec: a pod does not encode: %v", err))
	}
	c := &Pod{}
	if err := json.Unmarshal(b, c); err != nil {
		panic(fmt.Sprintf("appspec: a pod does not decode: %v", err))
	}
	return c
}

// ContainerNames are the pod's container names, sorted.
func (p *Pod) ContainerNames() []string {
	out := make([]string, len(p.Containers))
	for i, c := range p.Containers {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m)+4)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// portList is the pod's ports as App.PortList gives them: one per
// endpoint with a host port, in HostEndpoints' order, no service port
// (Marathon allocates none for pods).
func (p *Pod) portList() []Port {
	eps := p.HostEndpoints()
	out := make([]Port, len(eps))
	for i, e := range eps {
		proto := strings.Join(e.Endpoint.Protocol, ",")
		cp := uint32(0)
		if e.Endpoint.ContainerPort != nil {
			cp = *e.Endpoint.ContainerPort
		}
		out[i] = Port{Index: i, Name: e.Endpoint.Name, Protocol: protocolOrTCP(proto), ContainerPort: cp,
			HostPort: *e.Endpoint.HostPort, Labels: e.Endpoint.Labels}
	}
	return out
}
