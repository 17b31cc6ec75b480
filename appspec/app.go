package appspec

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// App is one application: Marathon's v2 App JSON (the documented subset in
// DESIGN.md) plus Flotilla's own fields. Field names and JSON tags follow
// Marathon's app.raml so Marathon clients read and write it unchanged.
// Pointers mark fields whose absence differs from their zero value.
type App struct {
	ID              string           `json:"id"`
	Cmd             string           `json:"cmd,omitempty"`
	Args            []string         `json:"args,omitempty"`
	Container       *Container       `json:"container,omitempty"`
	CPUs            float64          `json:"cpus"`
	Mem             float64          `json:"mem"`
	Disk            float64          `json:"disk"`
	GPUs            int              `json:"gpus"`
	Instances       int              `json:"instances"`
	Networks        []Network        `json:"networks,omitempty"`
	PortDefinitions []PortDefinition `json:"portDefinitions"`
	// DeprecatedPorts is Marathon's "ports", still accepted:
	// Normalize turns it into PortDefinitions and clears it.
	DeprecatedPorts []uint32            `json:"ports,omitempty"`
	RequirePorts    bool                `json:"requirePorts"`
	Env             map[string]EnvValue `json:"env"`
	Secrets         map[string]Secret   `json:"secrets"`
	Labels          map[string]string   `json:"labels"`
	Constraints     [][]string          `json:"constraints"`
	HealthChecks    []HealthCheck       `json:"healthChecks"`
	ReadinessChecks []ReadinessCheck    `json:"readinessChecks"`
	UpgradeStrategy UpgradeStrategy     `json:"upgradeStrategy"`
	BackoffSeconds  float64             `json:"backoffSeconds"`
	BackoffFactor   float64             `json:"backoffFactor"`
	// MaxLaunchDelaySeconds caps the launch backoff.
	MaxLaunchDelaySeconds float64 `json:"maxLaunchDelaySeconds"`
	KillSelection         string  `json:"killSelection"` // YOUNGEST_FIRST | OLDEST_FIRST
	// Fetch are artifacts the agent downloads into the task's sandbox
	// before it starts (Mesos's fetcher); Normalize turns the deprecated
	// uris into entries here.
	Fetch []FetchURI `json:"fetch,omitempty"`
	// DeprecatedURIs is Marathon's "uris", still accepted.
	DeprecatedURIs []string `json:"uris,omitempty"`
	// Dependencies are apps or groups that must be running, healthy and
	// ready before this app is started or changed in the same deployment
	// (Marathon's dependencies). Normalize makes them absolute, relative
	// to the app's group as Marathon resolves them.
	Dependencies []string `json:"dependencies,omitempty"`
	// TaskKillGracePeriodSeconds is the time between SIGTERM and SIGKILL
	// when a task is killed (Mesos's kill policy); nil: the scheduler's.
	TaskKillGracePeriodSeconds *float64            `json:"taskKillGracePeriodSeconds,omitempty"`
	UnreachableStrategy        UnreachableStrategy `json:"unreachableStrategy"`
	// Role is the Mesos role the app's tasks run under (Marathon ≥ 1.9);
	// "" is the framework's (--mesos-role), the only one allowed.
	Role string `json:"role,omitempty"`
	// AcceptedResourceRoles are the reservation roles whose resources the
	// tasks may use ("*" = unreserved; roles.go); empty: the server's
	// default (--accepted-resource-roles-default-behavior).
	AcceptedResourceRoles []string `json:"acceptedResourceRoles,omitempty"`
	// User runs the task as this user on the agent (CommandInfo.user);
	// "" leaves it to Mesos (the framework's user, --mesos-user).
	User string `json:"user,omitempty"`
	// Residency is Marathon's residency object: set (or defaulted by
	// Decode) on apps with persistent volumes, whose instances are
	// resident (resident.go).
	Residency *Residency `json:"residency,omitempty"`
	Version   string     `json:"version,omitempty"`

	// Flotilla's fields.
	Exposure  *Exposure  `json:"exposure,omitempty"`
	Autoscale *Autoscale `json:"autoscale,omitempty"`
	// ProgressDeadlineSeconds bounds a deployment of this app; past it the
	// deployment fails and the previous version is restored.
	ProgressDeadlineSeconds float64 `json:"progressDeadlineSeconds,omitempty"`
	// Pod is set when this app is how the scheduler runs a pod (Pod.App);
	// apps written through /v2/apps never have one.
	Pod *Pod `json:"pod,omitempty"`
}

// Container is Marathon's container object.
type Container struct {
	Type         string        `json:"type"` // DOCKER (default) | MESOS
	Docker       *Docker       `json:"docker,omitempty"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// Volumes are host paths mounted into the container (Marathon's
	// host volumes) and local persistent volumes (Persistent set: the app
	// is resident, resident.go); external and secret volumes are refused
	// by name.
	Volumes []Volume `json:"volumes,omitempty"`
}

// Volume is a host path mounted into the task's container, or (Persistent
// set) a local persistent volume the scheduler reserves and creates on the
// agent of the instance's first launch.
type Volume struct {
	ContainerPath string            `json:"containerPath"`
	HostPath      string            `json:"hostPath,omitempty"`
	Mode          string            `json:"mode"` // RW or RO
	Persistent    *PersistentVolume `json:"persistent,omitempty"`
}

// Docker is Marathon's container.docker object.
type Docker struct {
	Image string `json:"image"`
	// Network is the legacy (pre-1.5) network field; Normalize moves it
	// into App.Networks and clears it.
	Network        string        `json:"network,omitempty"`
	PortMappings   []PortMapping `json:"portMappings,omitempty"`
	Parameters     []DockerParam `json:"parameters,omitempty"`
	ForcePullImage bool          `json:"forcePullImage"`
	Privileged     bool          `json:"privileged,omitempty"`
}

// DockerParam is one `docker run` option.
type DockerParam struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// PortMapping maps a container port to a host port (bridge and container
// networks). HostPort is a pointer because Marathon tells "no host port"
// (absent, container networks) from "any host port" (0).
type PortMapping struct {
	ContainerPort uint32            `json:"containerPort"`
	HostPort      *uint32           `json:"hostPort,omitempty"`
	ServicePort   uint32            `json:"servicePort,omitempty"`
	Protocol      string            `json:"protocol,omitempty"`
	Name          string            `json:"name,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// PortDefinition asks for a host port (0 = any from the offer).
type PortDefinition struct {
	Port     uint32            `json:"port"`
	Protocol string            `json:"protocol,omitempty"`
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// FetchURI is one entry of Marathon's fetch: a URI the agent downloads
// into the sandbox, extracted if it is an archive, made executable if
// asked; DestPath names the file (Mesos's output_file).
type FetchURI struct {
	URI        string `json:"uri"`
	Extract    bool   `json:"extract"`
	Executable bool   `json:"executable"`
	Cache      bool   `json:"cache"`
	DestPath   string `json:"destPath,omitempty"`
}

// UnmarshalJSON applies Marathon's default (extract: true) to an entry
// that leaves it out.
func (f *FetchURI) UnmarshalJSON(b []byte) error {
	type plain FetchURI
	p := plain{Extract: true}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = FetchURI(p)
	return nil
}

// EnvValue is an env entry: a plain string, or {"secret": "<name>"} naming
// an entry of App.Secrets. The value of a secret never lives here.
type EnvValue struct {
	Value  string
	Secret string
}

func (e EnvValue) MarshalJSON() ([]byte, error) {
	if e.Secret != "" {
		return json.Marshal(map[string]string{"secret": e.Secret})
	}
	return json.Marshal(e.Value)
}

func (e *EnvValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*e = EnvValue{}
		return json.Unmarshal(b, &e.Value)
	}
	var ref struct {
		Secret *string `json:"secret"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil || ref.Secret == nil {
		return fmt.Errorf(`want a string or {"secret": "<name>"}`)
	}
	*e = EnvValue{Secret: *ref.Secret}
	return nil
}

// Secret is a reference into Vault: "<path>#<field>".
type Secret struct {
	Source string `json:"source"`
}

// HealthCheck is Marathon's health check.
type HealthCheck struct {
	Protocol               string        `json:"protocol"` // HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP
	Path                   string        `json:"path,omitempty"`
	PortIndex              *int          `json:"portIndex,omitempty"`
	Port                   *uint32       `json:"port,omitempty"`
	Command                *CommandCheck `json:"command,omitempty"`
	GracePeriodSeconds     float64       `json:"gracePeriodSeconds"`
	IntervalSeconds        float64       `json:"intervalSeconds"`
	TimeoutSeconds         float64       `json:"timeoutSeconds"`
	MaxConsecutiveFailures int           `json:"maxConsecutiveFailures"`
	DelaySeconds           float64       `json:"delaySeconds"`
	IgnoreHTTP1xx          bool          `json:"ignoreHttp1xx,omitempty"`
}

// CommandCheck is a COMMAND health check's command.
type CommandCheck struct {
	Value string `json:"value"`
}

// ReadinessCheck is Marathon's readiness check (HTTP only).
type ReadinessCheck struct {
	Name                    string  `json:"name"`
	Protocol                string  `json:"protocol"`
	Path                    string  `json:"path"`
	PortName                string  `json:"portName"`
	IntervalSeconds         float64 `json:"intervalSeconds"`
	TimeoutSeconds          float64 `json:"timeoutSeconds"`
	HTTPStatusCodesForReady []int   `json:"httpStatusCodesForReady"`
	PreserveLastResponse    bool    `json:"preserveLastResponse"`
}

// UpgradeStrategy bounds a rolling upgrade.
type UpgradeStrategy struct {
	MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
	MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
}

// UnreachableStrategy says when an unreachable task is replaced (inactive)
// and forgotten (expunged).
type UnreachableStrategy struct {
	InactiveAfterSeconds float64 `json:"inactiveAfterSeconds"`
	ExpungeAfterSeconds  float64 `json:"expungeAfterSeconds"`
	// Disabled is Marathon's "unreachableStrategy": "disabled": unreachable
	// tasks are never replaced. It is written as that string in JSON.
	Disabled bool `json:"-"`
}

// Exposure is Flotilla's line between outside and inside: every app is
// internal unless Mode is "external".
type Exposure struct {
	Mode   string   `json:"mode"` // internal (default) | external
	VHosts []string `json:"vhosts,omitempty"`
	Paths  []string `json:"paths,omitempty"`
}

// Autoscale is Flotilla's target-tracking autoscaler configuration.
type Autoscale struct {
	Min                    int         `json:"min"`
	Max                    int         `json:"max"`
	Metric                 string      `json:"metric"` // cpu | mem | rps | prometheus
	Target                 float64     `json:"target"`
	Tolerance              float64     `json:"tolerance,omitempty"`
	IntervalSeconds        float64     `json:"intervalSeconds,omitempty"`
	ScaleUpWindowSeconds   float64     `json:"scaleUpWindowSeconds,omitempty"`
	ScaleDownWindowSeconds float64     `json:"scaleDownWindowSeconds,omitempty"`
	MaxStep                int         `json:"maxStep,omitempty"`
	CooldownSeconds        float64     `json:"cooldownSeconds,omitempty"`
	Prometheus             *PromMetric `json:"prometheus,omitempty"`
}

// PromMetric names a Prometheus metric scraped from the task.
type PromMetric struct {
	PortIndex int               `json:"portIndex"`
	Path      string            `json:"path"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
}
