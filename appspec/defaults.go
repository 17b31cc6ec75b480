package appspec

import (
	"encoding/json"
	"path"
	"strings"
)

// Marathon's defaults (app.raml, healthCheck.raml, readinessCheck.raml,
// unreachableStrategy.raml). Kept as constants so the API, the docs and the
// tests quote one source.
const (
	DefaultCPUs                  = 1.0
	DefaultMem                   = 128.0
	DefaultDisk                  = 0.0
	DefaultInstances             = 1
	DefaultBackoffSeconds        = 1.0
	DefaultBackoffFactor         = 1.15
	DefaultMaxLaunchDelaySeconds = 3600.0
	DefaultKillSelection         = "YOUNGEST_FIRST"
	DefaultInactiveAfterSeconds  = 300.0
	DefaultExpungeAfterSeconds   = 600.0

	DefaultHealthGracePeriodSeconds = 300.0
	DefaultHealthIntervalSeconds    = 60.0
	DefaultHealthTimeoutSeconds     = 20.0
	DefaultHealthMaxFailures        = 3
	DefaultHealthDelaySeconds       = 15.0

	DefaultReadinessName            = "readinessCheck"
	DefaultReadinessPortName        = "http-api"
	DefaultReadinessIntervalSeconds = 30.0
	DefaultReadinessTimeoutSeconds  = 10.0
)

// Defaults returns an app holding every Marathon default. Decode starts from
// it so that a field the client left out gets Marathon's value while an
// explicit zero stays zero (and is then judged by Validate).
func Defaults() *App {
	return &App{
		CPUs:                  DefaultCPUs,
		Mem:                   DefaultMem,
		Disk:                  DefaultDisk,
		Instances:             DefaultInstances,
		BackoffSeconds:        DefaultBackoffSeconds,
		BackoffFactor:         DefaultBackoffFactor,
		MaxLaunchDelaySeconds: DefaultMaxLaunchDelaySeconds,
		KillSelection:         DefaultKillSelection,
		UpgradeStrategy:       UpgradeStrategy{MinimumHealthCapacity: 1, MaximumOverCapacity: 1},
		UnreachableStrategy: UnreachableStrategy{
			InactiveAfterSeconds: DefaultInactiveAfterSeconds,
			ExpungeAfterSeconds:  DefaultExpungeAfterSeconds,
		},
	}
}

// CanonicalID makes an app id absolute and clean, as Marathon resolves ids
// relative to the root group: "web" and "/web/" are both "/web", and
// "/prod/./shop/../web" is "/prod/web". It does not validate.
func CanonicalID(id string) string {
	id = strings.TrimSpace(id)
	if !strings.HasPrefix(id, "/") {
		id = "/" + id
	}
	return path.Clean(id)
}

// Normalize applies the canonical id and the defaults that depend on other
// fields (ports, per-protocol health check settings). Decode already calls
// it; code that builds an App by hand calls it before Validate. It is
// idempotent.
func (a *App) Normalize() {
	a.ID = CanonicalID(a.ID)
	if a.KillSelection == "" {
		a.KillSelection = DefaultKillSelection
	}
	if a.Container != nil && a.Container.Type == "" {
		a.Container.Type = "DOCKER"
	}
	// Marathon gives an app without ports one dynamic port unless the
	// container declares its ports through port mappings. An explicit []
	// (non-nil) means "no ports" and is kept.
	if a.PortDefinitions == nil && len(a.portMappings()) == 0 {
		a.PortDefinitions = []PortDefinition{{Port: 0, Protocol: "tcp"}}
	}
	for i := range a.PortDefinitions {
		if a.PortDefinitions[i].Protocol == "" {
			a.PortDefinitions[i].Protocol = "tcp"
		}
	}
	for i := range a.HealthChecks {
		a.HealthChecks[i].normalize()
	}
	for i := range a.ReadinessChecks {
		a.ReadinessChecks[i].normalize()
	}
	if a.Exposure != nil && a.Exposure.Mode == "" {
		a.Exposure.Mode = ExposureInternal
	}
}

func (h *HealthCheck) normalize() {
	if h.Protocol == "" {
		h.Protocol = "HTTP"
	}
	// A zero interval or timeout is left as it is, for Validate to refuse:
	// JSON gets Marathon's defaults in UnmarshalJSON, so a zero here was
	// asked for, and quietly turning it into 60 would hide the mistake.
	switch h.Protocol {
	case "HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS":
		if h.Path == "" {
			h.Path = "/"
		}
		fallthrough
	case "TCP", "MESOS_TCP":
		if h.Port == nil && h.PortIndex == nil {
			zero := 0
			h.PortIndex = &zero
		}
	}
}

func (r *ReadinessCheck) normalize() {
	if r.Name == "" {
		r.Name = DefaultReadinessName
	}
	if r.Protocol == "" {
		r.Protocol = "HTTP"
	}
	if r.Path == "" {
		r.Path = "/"
	}
	if r.PortName == "" {
		r.PortName = DefaultReadinessPortName
	}
	if r.IntervalSeconds == 0 {
		r.IntervalSeconds = DefaultReadinessIntervalSeconds
	}
	if r.TimeoutSeconds == 0 {
		r.TimeoutSeconds = DefaultReadinessTimeoutSeconds
	}
	if r.HTTPStatusCodesForReady == nil {
		r.HTTPStatusCodesForReady = []int{200}
	}
}

// UnmarshalJSON starts from Marathon's defaults so that an omitted
// gracePeriodSeconds is 300 while an explicit 0 stays 0.
func (h *HealthCheck) UnmarshalJSON(b []byte) error {
	type plain HealthCheck
	p := plain{
		GracePeriodSeconds:     DefaultHealthGracePeriodSeconds,
		IntervalSeconds:        DefaultHealthIntervalSeconds,
		TimeoutSeconds:         DefaultHealthTimeoutSeconds,
		MaxConsecutiveFailures: DefaultHealthMaxFailures,
		DelaySeconds:           DefaultHealthDelaySeconds,
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*h = HealthCheck(p)
	return nil
}

// UnmarshalJSON starts from Marathon's readiness defaults.
func (r *ReadinessCheck) UnmarshalJSON(b []byte) error {
	type plain ReadinessCheck
	p := plain{
		Name:            DefaultReadinessName,
		Protocol:        "HTTP",
		Path:            "/",
		PortName:        DefaultReadinessPortName,
		IntervalSeconds: DefaultReadinessIntervalSeconds,
		TimeoutSeconds:  DefaultReadinessTimeoutSeconds,
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = ReadinessCheck(p)
	return nil
}

// MarshalJSON writes Marathon's "disabled" for a disabled strategy.
func (u UnreachableStrategy) MarshalJSON() ([]byte, error) {
	if u.Disabled {
		return []byte(`"disabled"`), nil
	}
	type plain UnreachableStrategy
	return json.Marshal(plain(u))
}

// UnmarshalJSON accepts Marathon's two forms: the string "disabled" or an
// object with inactiveAfterSeconds and expungeAfterSeconds.
func (u *UnreachableStrategy) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "disabled" {
			return &json.UnmarshalTypeError{Value: "string " + s, Type: typeOfUnreachable}
		}
		*u = UnreachableStrategy{Disabled: true}
		return nil
	}
	type plain UnreachableStrategy
	p := plain(*u)
	p.Disabled = false
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*u = UnreachableStrategy(p)
	return nil
}
