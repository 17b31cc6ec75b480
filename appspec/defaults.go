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
	DefaultMaxLaunchDelaySeconds = 300.0 // Marathon 1.8+
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

// ResolveID resolves id against base as Marathon resolves a relative id:
// "db" in /prod/shop is /prod/shop/db, "../db" is /prod/db, "/db" is /db.
func ResolveID(base, id string) string {
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, "/") {
		return CanonicalID(id)
	}
	return CanonicalID(path.Join(base, id))
}

// Normalize applies the canonical id and the defaults that depend on other
// fields (ports, per-protocol health check settings). Decode already calls
// it; code that builds an App by hand calls it before Validate. It is
// idempotent.
func (a *App) Normalize() {
	a.ID = CanonicalID(a.ID)
	for i, d := range a.Dependencies {
		a.Dependencies[i] = ResolveID(path.Dir(a.ID), d)
	}
	if a.KillSelection == "" {
		a.KillSelection = DefaultKillSelection
	}
	if a.Container != nil && a.Container.Type == "" {
		a.Container.Type = "DOCKER"
	}
	// Marathon before 1.5 wrote a bridge app's service ports into the
	// deprecated ports of its GET answers: the same numbers as the port
	// mappings' service ports say nothing new, so an export PUT back is
	// not refused for them.
	if len(a.DeprecatedPorts) > 0 && a.PortDefinitions == nil && servicePortsOf(a.DeprecatedPorts, a.portMappings()) {
		a.DeprecatedPorts = nil
	}
	// Marathon's deprecated ports: the same ports as portDefinitions.
	// Both given and different is left for Validate to refuse.
	if len(a.DeprecatedPorts) > 0 && (a.PortDefinitions == nil || portsEqual(a.DeprecatedPorts, a.PortDefinitions)) {
		if a.PortDefinitions == nil {
			for _, p := range a.DeprecatedPorts {
				a.PortDefinitions = append(a.PortDefinitions, PortDefinition{Port: p})
			}
		}
		a.DeprecatedPorts = nil
	}
	// Marathon's deprecated uris: fetch entries, extracted when the name
	// says archive (Marathon's FetchUri.isExtract). Both given is left
	// for Validate to refuse, as Marathon does.
	if len(a.DeprecatedURIs) > 0 && len(a.Fetch) == 0 {
		for _, u := range a.DeprecatedURIs {
			a.Fetch = append(a.Fetch, FetchURI{URI: u, Extract: IsArchive(u)})
		}
		a.DeprecatedURIs = nil
	}
	// Marathon's older GET answers write UNIQUE with an empty value
	// (["hostname", "UNIQUE", ""]): the same constraint as without one.
	for i, c := range a.Constraints {
		if len(c) == 3 && c[1] == "UNIQUE" && c[2] == "" {
			a.Constraints[i] = c[:2]
		}
	}
	a.normalizeNetworks()
	// Marathon gives a host-networking app without ports one dynamic port.
	// An explicit [] (non-nil) means "no ports" and is kept.
	if a.NetworkMode() == NetworkHost && a.PortDefinitions == nil && len(a.portMappings()) == 0 {
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
	// Empty collections are absent ones: a GET answer, which writes them
	// as [] and {}, PUT back is the same configuration, not a new one
	// that restarts every task.
	if len(a.Env) == 0 {
		a.Env = nil
	}
	if len(a.Secrets) == 0 {
		a.Secrets = nil
	}
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(a.Constraints) == 0 {
		a.Constraints = nil
	}
	if len(a.HealthChecks) == 0 {
		a.HealthChecks = nil
	}
	if len(a.ReadinessChecks) == 0 {
		a.ReadinessChecks = nil
	}
	// Off host networking no port definitions is none, [] or absent (on
	// host networking [] says "no ports" and absent "one").
	if a.NetworkMode() != NetworkHost && len(a.PortDefinitions) == 0 {
		a.PortDefinitions = nil
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

// normalizeNetworks brings both of Marathon's networking forms to the 1.5
// form, as Marathon's AppNormalization does: docker.network becomes
// networks, docker.portMappings become container.portMappings, a bridge or
// container network without mappings gets one default mapping (and takes
// over what portDefinitions declared: Marathon turns each into a mapping),
// a bridge mapping without hostPort gets 0 (any), and requirePorts only
// applies to host networking. Conflicting forms (both networks and
// docker.network, both mapping lists) are left in place for Validate to
// name.
func (a *App) normalizeNetworks() {
	c := a.Container
	if c != nil && c.Docker != nil {
		d := c.Docker
		if len(d.PortMappings) > 0 && len(c.PortMappings) == 0 {
			c.PortMappings, d.PortMappings = d.PortMappings, nil
		}
		if d.Network != "" && len(a.Networks) == 0 {
			switch strings.ToUpper(d.Network) {
			case "HOST":
				a.Networks, d.Network = []Network{{Mode: NetworkHost}}, ""
			case "BRIDGE":
				a.Networks, d.Network = []Network{{Mode: NetworkBridge}}, ""
			case "USER":
				a.Networks, d.Network = []Network{{Mode: NetworkContainer}}, ""
			}
			// NONE and unknown values stay for Validate, which refuses
			// them as Marathon does.
		}
	}
	if len(a.Networks) == 0 {
		a.Networks = []Network{{Mode: NetworkHost}}
	}
	mode := a.NetworkMode()
	if mode == NetworkHost {
		return
	}
	a.RequirePorts = false
	if c == nil {
		// Marathon creates a MESOS container for a non-host network;
		// Validate says Flotilla needs DOCKER for it.
		return
	}
	// Plain dynamic port definitions ({"port": 0}) count ports, which
	// Marathon turns into mappings; definitions carrying a port, name or
	// labels stay for Validate to refuse, so nothing they say is lost.
	extra := 0
	if plainPortDefinitions(a.PortDefinitions) {
		extra = len(a.PortDefinitions) - len(c.PortMappings)
		if a.PortDefinitions != nil {
			a.PortDefinitions = []PortDefinition{}
		}
	}
	if len(c.PortMappings) == 0 && extra <= 0 {
		extra = 1
	}
	for ; extra > 0; extra-- {
		c.PortMappings = append(c.PortMappings, PortMapping{})
	}
	for i := range c.PortMappings {
		pm := &c.PortMappings[i]
		if pm.Protocol == "" {
			pm.Protocol = "tcp"
		}
		if mode == NetworkBridge && pm.HostPort == nil {
			zero := uint32(0)
			pm.HostPort = &zero
		}
	}
}

func plainPortDefinitions(pds []PortDefinition) bool {
	for _, pd := range pds {
		if pd.Port != 0 || pd.Name != "" || len(pd.Labels) > 0 {
			return false
		}
	}
	return true
}

func portsEqual(ports []uint32, pds []PortDefinition) bool {
	if len(ports) != len(pds) {
		return false
	}
	for i := range ports {
		if ports[i] != pds[i].Port {
			return false
		}
	}
	return true
}

// IsArchive reports whether a URI names an archive the fetcher extracts
// (Marathon's FetchUri.isExtract list).
func IsArchive(uri string) bool {
	u := strings.ToLower(uri)
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	for _, ext := range []string{".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip"} {
		if strings.HasSuffix(u, ext) {
			return true
		}
	}
	return false
}

// servicePortsOf says whether ports are the service ports of mappings,
// one each in order (0: any).
func servicePortsOf(ports []uint32, mappings []PortMapping) bool {
	if len(mappings) == 0 || len(ports) != len(mappings) {
		return false
	}
	for i, p := range ports {
		if p != 0 && p != mappings[i].ServicePort {
			return false
		}
	}
	return true
}
