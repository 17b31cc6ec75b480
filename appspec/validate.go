package appspec

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Detail is one field's problems, in Marathon's error shape.
type Detail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// ValidationError is Marathon's error body:
// {"message": "Object is not valid", "details": [{"path": "/cpus", "errors": ["…"]}]}.
// The API writes it as JSON unchanged. It wraps ErrMalformed when the body
// was not JSON or had values of the wrong type.
type ValidationError struct {
	Message   string   `json:"message"`
	Details   []Detail `json:"details"`
	malformed bool
	// index finds a path's detail: an app can have thousands of problems
	// (one per port, label or vhost), and a scan per problem made
	// validating them quadratic (2 s for 6,000 secrets, found by
	// bench/fuzzapi).
	index map[string]int
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("appspec: ")
	b.WriteString(strings.ToLower(e.Message))
	for i, d := range e.Details {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(d.Path)
		b.WriteString(": ")
		b.WriteString(strings.Join(d.Errors, ", "))
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error {
	if e.malformed {
		return ErrMalformed
	}
	return nil
}

func (e *ValidationError) add(path, msg string) {
	if e.Message == "" {
		e.Message = "Object is not valid"
	}
	if e.index == nil || len(e.index) != len(e.Details) { // first use, or Details set by hand
		e.index = make(map[string]int, len(e.Details))
		for i, d := range e.Details {
			e.index[d.Path] = i
		}
	}
	if i, ok := e.index[path]; ok {
		e.Details[i].Errors = append(e.Details[i].Errors, msg)
		return
	}
	e.index[path] = len(e.Details)
	e.Details = append(e.Details, Detail{Path: path, Errors: []string{msg}})
}

func (e *ValidationError) addf(path, format string, args ...any) {
	e.add(path, fmt.Sprintf(format, args...))
}

var (
	// portName is Marathon's Name type (stringTypes.raml).
	portName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// networkName is a Docker/CNI network name.
	networkName = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.]{0,63}$`)
	// envName is Marathon's EnvName type.
	envName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	hostName = regexp.MustCompile(`^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// CheckID reports why id is not a valid app id, or nil. The id is judged
// in its canonical form (CanonicalID), so "web" is valid and means "/web".
// Every segment of the path must be a lowercase DNS-like name, so an id
// never holds "_" (the store relies on that to escape ids), of at most
// MaxIDSegment characters; the whole id has at most MaxIDLength.
func CheckID(id string) error {
	c := CanonicalID(id)
	if c == "/" {
		return fmt.Errorf("appspec: app id must not be empty or the root group; use a path like /prod/shop/web")
	}
	for rest := c[1:]; ; {
		seg, more, found := strings.Cut(rest, "/")
		if len(seg) > MaxIDSegment {
			return fmt.Errorf("appspec: app id segment %q is %d characters; a segment is one DNS label, at most %d", abbrev(seg), len(seg), MaxIDSegment)
		}
		if !validSegment(seg) {
			return fmt.Errorf("appspec: app id segment %q is invalid: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", seg)
		}
		if !found {
			break
		}
		rest = more
	}
	if len(c) > MaxIDLength {
		return fmt.Errorf("appspec: app id is %d characters; at most %d fit in a Mesos task id (255 characters)", len(c), MaxIDLength)
	}
	return nil
}

// validSegment reports whether seg is a segment of an app id: one or more
// labels joined by '.', each of lowercase letters, digits and '-', not
// starting or ending with '-' (the pattern
// ^(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$,
// which TestValidSegmentAgreesWithPattern holds it to). A loop, not that
// regexp: every task record the framework writes is checked (CheckID was
// 1.8% of the CPU of launching 100,000 tasks).
func validSegment(seg string) bool {
	start, prev := true, byte(0) // start: at the beginning of a label
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if start {
				return false
			}
		case c == '.':
			if start || prev == '-' {
				return false
			}
			start, prev = true, c
			continue
		default:
			return false
		}
		start, prev = false, c
	}
	return !start && prev != '-'
}

// abbrev shortens a string quoted back in an error: an id can be as long
// as a request body.
func abbrev(s string) string {
	if len(s) <= 24 {
		return s
	}
	return s[:20] + "…"
}

var (
	healthProtocols = map[string]bool{"HTTP": true, "HTTPS": true, "TCP": true, "COMMAND": true, "MESOS_HTTP": true, "MESOS_HTTPS": true, "MESOS_TCP": true}
	constraintOps   = map[string]bool{"UNIQUE": true, "CLUSTER": true, "GROUP_BY": true, "LIKE": true, "UNLIKE": true, "MAX_PER": true, "IS": true}
	autoscaleMetric = map[string]bool{AutoscaleCPU: true, AutoscaleMem: true, AutoscaleRPS: true, AutoscalePrometheus: true}
)

// Autoscale metrics.
const (
	AutoscaleCPU        = "cpu"
	AutoscaleMem        = "mem"
	AutoscaleRPS        = "rps"
	AutoscalePrometheus = "prometheus"
)

// Validate is ValidateWith(DefaultLimits()).
func (a *App) Validate() error { return a.ValidateWith(DefaultLimits()) }

// ValidateWith checks the app against Marathon's rules, Flotilla's, and the
// limits l (unset fields of l take their defaults), and returns every
// problem at once as a *ValidationError, or nil. Call it after Normalize
// (Decode does that). The API calls it on every write and the store restore
// on every app it reads, with the server's limits, so both judge an app
// alike.
func (a *App) ValidateWith(l Limits) error {
	l = l.WithDefaults()
	v := &ValidationError{}
	a.validateCore(v)
	a.validateRoles(v, l)
	a.validateLimits(v, l)
	a.validateRanges(v)
	a.validateContainer(v)
	a.validateNetworks(v)
	a.validateDependencies(v)
	a.validateFetch(v)
	a.validateVolumes(v)
	a.validateResident(v, l)
	a.validatePorts(v)
	a.validateEnv(v)
	a.validateConstraints(v)
	a.validateHealth(v)
	a.validateReadiness(v)
	a.validateStrategies(v)
	a.validateExposure(v)
	a.validateAutoscale(v)
	if len(v.Details) == 0 {
		return nil
	}
	return v
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func (a *App) validateCore(v *ValidationError) {
	if err := CheckID(a.ID); err != nil {
		v.add("/id", strings.TrimPrefix(err.Error(), "appspec: "))
	}
	if !(a.CPUs > 0) || !finite(a.CPUs) {
		v.addf("/cpus", "must be greater than 0 (got %v); the default is %v", a.CPUs, DefaultCPUs)
	}
	if !(a.Mem >= 0) || !finite(a.Mem) {
		v.addf("/mem", "must be 0 or more MiB (got %v)", a.Mem)
	}
	if !(a.Disk >= 0) || !finite(a.Disk) {
		v.addf("/disk", "must be 0 or more MiB (got %v)", a.Disk)
	}
	if a.GPUs < 0 {
		v.addf("/gpus", "must be 0 or more (got %d)", a.GPUs)
	}
	if a.Instances < 0 {
		v.addf("/instances", "must be 0 or more (got %d)", a.Instances)
	}
	if a.Cmd != "" && len(a.Args) > 0 {
		v.add("/", "AppDefinition must not contain both 'cmd' and 'args'; use one of them")
	}
	if a.Cmd == "" && len(a.Args) == 0 && a.Container == nil {
		v.add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'")
	}
	if a.KillSelection != "YOUNGEST_FIRST" && a.KillSelection != "OLDEST_FIRST" {
		v.addf("/killSelection", "must be YOUNGEST_FIRST or OLDEST_FIRST (got %q)", a.KillSelection)
	}
}

func (a *App) portMappings() []PortMapping {
	if a.Container == nil {
		return nil
	}
	out := append([]PortMapping(nil), a.Container.PortMappings...)
	if a.Container.Docker != nil {
		out = append(out, a.Container.Docker.PortMappings...)
	}
	return out
}

func (a *App) validateContainer(v *ValidationError) {
	c := a.Container
	if c == nil {
		return
	}
	switch c.Type {
	case "DOCKER":
		if c.Docker == nil || strings.TrimSpace(c.Docker.Image) == "" {
			v.add("/container/docker/image", "a DOCKER container needs an image, e.g. \"nginx:1.25\"")
		}
	case "MESOS":
		// The Mesos containerizer runs a Docker image when one is given,
		// and a plain command otherwise.
		if c.Docker == nil && a.Cmd == "" && len(a.Args) == 0 {
			v.add("/container", "a MESOS container without a docker image needs cmd or args")
		}
	default:
		v.addf("/container/type", "must be DOCKER or MESOS (got %q)", c.Type)
	}
	if c.Docker != nil {
		for i, p := range c.Docker.Parameters {
			if strings.TrimSpace(p.Key) == "" {
				v.add(fmt.Sprintf("/container/docker/parameters/%d/key", i), "must not be empty")
			}
		}
	}
}

// validateNetworks applies Marathon's NetworkValidation and the parts of
// AppValidation about networks, with its messages, plus what Flotilla's
// agents can run: bridge and container networks through the Docker
// containerizer only.
func (a *App) validateNetworks(v *ValidationError) {
	c := a.Container
	if c != nil && c.Docker != nil && c.Docker.Network != "" {
		switch n := strings.ToUpper(c.Docker.Network); {
		case len(a.Networks) > 0 && (n == "HOST" || n == "BRIDGE" || n == "USER"):
			v.add("/container/docker/network", "must not specify both container.docker.network and networks")
		default:
			v.addf("/container/docker/network", "unsupported docker network type %s; use HOST, BRIDGE or USER", c.Docker.Network)
		}
	}
	if c != nil && c.Docker != nil && len(c.Docker.PortMappings) > 0 {
		v.add("/container/docker/portMappings", "cannot specify both portMappings and docker.portMappings")
	}
	counts := map[string]int{}
	names := map[string]bool{}
	for i, n := range a.Networks {
		p := fmt.Sprintf("/networks/%d", i)
		switch n.Mode {
		case NetworkHost:
			if n.Name != "" || len(n.Labels) > 0 {
				v.add(p, "Host networks may not have names or labels")
			}
		case NetworkBridge:
			if n.Name != "" {
				v.add(p+"/name", "Bridge networks may not have names")
			}
		case NetworkContainer:
			if n.Name == "" {
				v.add(p+"/name", "Network name must be specified when container network is selected.")
			} else if !networkName.MatchString(n.Name) {
				v.addf(p+"/name", "must be letters, digits, '-', '_' and '.', at most 64 characters (got %q)", n.Name)
			}
		default:
			v.addf(p+"/mode", "must be host, container/bridge or container (got %q)", n.Mode)
			continue
		}
		counts[n.Mode]++
		if n.Name != "" {
			if names[n.Name] {
				v.add("/networks", "Duplicate networks are not allowed")
			}
			names[n.Name] = true
		}
	}
	h, b, ct := counts[NetworkHost], counts[NetworkBridge], counts[NetworkContainer]
	if !(h <= 1 && b == 0 && ct == 0 || h == 0 && b <= 1 && ct == 0 || h == 0 && b == 0 && ct > 0) {
		v.add("/networks", "May specify a single host network, single bridge network, or else 1-to-n container networks")
	}
	if ct > 1 {
		v.add("/networks", "may only specify a single container network when using the Docker container engine")
	}
	mode := a.NetworkMode()
	if mode == NetworkHost {
		if c != nil && len(c.PortMappings) > 0 {
			v.add("/container/portMappings", "portMappings are not allowed with host-networking; declare ports in portDefinitions, or use \"networks\": [{\"mode\": \"container/bridge\"}]")
		}
		return
	}
	if c == nil || c.Type != "DOCKER" {
		v.addf("/networks", "not supported by Flotilla: %s networking needs a DOCKER container (Flotilla's agents map ports with the Docker containerizer)", mode)
		return
	}
	if len(a.PortDefinitions) > 0 {
		v.add("/portDefinitions", "portDefinitions are only allowed with host-networking; declare ports in container.portMappings")
	}
	a.validatePortMappings(v, mode)
}

func (a *App) validatePortMappings(v *ValidationError, mode string) {
	seenName := map[string]int{}
	type hostKey struct {
		port  uint32
		proto string
	}
	seenHost := map[hostKey]int{}
	for i, pm := range a.Container.PortMappings {
		base := fmt.Sprintf("/container/portMappings/%d", i)
		if pm.ContainerPort > 65535 {
			v.addf(base+"/containerPort", "must be a port from 1 to 65535, or 0 for the host port (got %d)", pm.ContainerPort)
		}
		if mode == NetworkContainer && pm.ContainerPort == 0 {
			v.add(base+"/containerPort", "must be a port from 1 to 65535 on a container network")
		}
		switch {
		case pm.HostPort == nil:
			// Marathon: no host port, reachable on the container's own
			// address only. Flotilla's agents give containers no address of
			// their own (no CNI), so such a port would be unreachable.
			v.add(base+"/hostPort", "not supported by Flotilla: a mapping without hostPort is reachable only on the container's own IP, which Flotilla's agents do not assign; set \"hostPort\": 0 for any host port")
		case *pm.HostPort > 65535:
			v.addf(base+"/hostPort", "must be 0 (any port) or a port from 1 to 65535 (got %d)", *pm.HostPort)
		case *pm.HostPort != 0:
			for _, proto := range strings.Split(pm.Protocol, ",") {
				k := hostKey{*pm.HostPort, proto}
				if j, dup := seenHost[k]; dup {
					v.addf("/container/portMappings", "host port %d/%s is mapped twice: /container/portMappings/%d and %s", *pm.HostPort, proto, j, base)
				} else {
					seenHost[k] = i
				}
			}
		}
		if pm.ServicePort > 65535 {
			v.addf(base+"/servicePort", "must be 0 (assigned by Flotilla) or a port from 1 to 65535 (got %d)", pm.ServicePort)
		}
		switch pm.Protocol {
		case "tcp", "udp", "udp,tcp", "tcp,udp":
		default:
			v.addf(base+"/protocol", "must be tcp, udp or udp,tcp (got %q)", pm.Protocol)
		}
		if pm.Name != "" {
			if len(pm.Name) > 63 || !portName.MatchString(pm.Name) {
				v.addf(base+"/name", "must be lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit (got %q)", pm.Name)
			}
			if j, dup := seenName[pm.Name]; dup {
				v.addf("/container/portMappings", "Port names must be unique: %q is used by /container/portMappings/%d and %s", pm.Name, j, base)
			} else {
				seenName[pm.Name] = i
			}
		}
	}
}

func (a *App) validateVolumes(v *ValidationError) {
	if a.Container == nil {
		return
	}
	seen := map[string]int{}
	for i, vol := range a.Container.Volumes {
		p := fmt.Sprintf("/container/volumes/%d", i)
		if vol.Persistent != nil {
			// validateResident judges it; only the duplicate check is shared.
			if j, dup := seen[vol.ContainerPath]; dup {
				v.addf(p+"/containerPath", "%s is mounted twice: by /container/volumes/%d and here", vol.ContainerPath, j)
			} else {
				seen[vol.ContainerPath] = i
			}
			continue
		}
		if strings.TrimSpace(vol.ContainerPath) == "" {
			v.add(p+"/containerPath", "must not be empty")
		} else if strings.Contains("/"+vol.ContainerPath+"/", "/../") {
			v.addf(p+"/containerPath", "must not contain .. (got %q)", vol.ContainerPath)
		}
		if !strings.HasPrefix(vol.HostPath, "/") {
			v.addf(p+"/hostPath", "must be an absolute path on the agent (got %q); only host volumes are supported", vol.HostPath)
		}
		if vol.Mode != "RW" && vol.Mode != "RO" {
			v.addf(p+"/mode", "must be RW or RO (got %q)", vol.Mode)
		}
		if j, dup := seen[vol.ContainerPath]; dup {
			v.addf(p+"/containerPath", "%s is mounted twice: by /container/volumes/%d and here", vol.ContainerPath, j)
		} else {
			seen[vol.ContainerPath] = i
		}
	}
}

func (a *App) validateFetch(v *ValidationError) {
	if len(a.DeprecatedURIs) > 0 {
		v.add("/uris", "may not be set in conjunction with fetch")
	}
	for i, f := range a.Fetch {
		p := fmt.Sprintf("/fetch/%d", i)
		if strings.TrimSpace(f.URI) == "" {
			v.add(p+"/uri", "must not be empty")
		}
		if d := f.DestPath; d != "" && (strings.HasPrefix(d, "/") || strings.Contains("/"+d+"/", "/../")) {
			v.addf(p+"/destPath", "must be a path inside the sandbox, without a leading / or .. (got %q)", d)
		}
	}
}

func (a *App) validateDependencies(v *ValidationError) {
	for i, d := range a.Dependencies {
		p := fmt.Sprintf("/dependencies/%d", i)
		switch {
		case d == a.ID:
			v.add(p, "an app cannot depend on itself")
		case d == "/":
			v.add(p, "an app cannot depend on the root group (it contains the app)")
		case strings.HasPrefix(a.ID, d+"/"):
			v.addf(p, "an app cannot depend on its own group %s (the group contains the app)", d)
		default:
			if err := CheckID(d); err != nil {
				v.add(p, strings.TrimPrefix(err.Error(), "appspec: "))
			}
		}
	}
}

func (a *App) validatePorts(v *ValidationError) {
	if len(a.DeprecatedPorts) > 0 {
		v.add("/ports", "cannot specify both ports and port definitions; ports is deprecated, keep portDefinitions")
	}
	seenPort := map[uint32]int{}
	seenName := map[string]int{}
	for i, p := range a.PortDefinitions {
		base := fmt.Sprintf("/portDefinitions/%d", i)
		if p.Port > 65535 {
			v.addf(base+"/port", "must be 0 (any port) or a port from 1 to 65535 (got %d)", p.Port)
		}
		if p.Port != 0 {
			if j, dup := seenPort[p.Port]; dup {
				v.addf("/portDefinitions", "Ports must be unique: port %d is used by /portDefinitions/%d and %s", p.Port, j, base)
			} else {
				seenPort[p.Port] = i
			}
		}
		switch p.Protocol {
		case "", "tcp", "udp", "tcp,udp", "udp,tcp":
		default:
			v.addf(base+"/protocol", "must be tcp, udp or tcp,udp (got %q)", p.Protocol)
		}
		if p.Name != "" {
			if len(p.Name) > 63 || !portName.MatchString(p.Name) {
				v.addf(base+"/name", "must be lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit (got %q)", p.Name)
			}
			if j, dup := seenName[p.Name]; dup {
				v.addf("/portDefinitions", "Port names must be unique: %q is used by /portDefinitions/%d and %s", p.Name, j, base)
			} else {
				seenName[p.Name] = i
			}
		}
	}
}

func (a *App) validateEnv(v *ValidationError) {
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		p := "/env/" + pointerToken(k)
		if !envName.MatchString(k) {
			v.add(p, "environment variable names use letters, digits and '_', and do not start with a digit")
		}
		if s := a.Env[k].Secret; s != "" {
			if _, ok := a.Secrets[s]; !ok {
				v.addf(p, "references secret %q, which is not defined in secrets; add \"secrets\": {%q: {\"source\": \"<vault path>#<field>\"}}", s, s)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(a.Secrets)) {
		p := "/secrets/" + pointerToken(name) + "/source"
		if err := CheckSecretSource(a.Secrets[name].Source); err != nil {
			v.add(p, strings.TrimPrefix(err.Error(), "appspec: "))
		}
	}
}

// CheckSecretSource reports why src is not a Vault reference of the form
// "<path>#<field>" (the path as `vault kv get` takes it), or nil.
func CheckSecretSource(src string) error {
	path, fieldName, ok := strings.Cut(src, "#")
	switch {
	case strings.TrimSpace(src) == "":
		return fmt.Errorf("appspec: secret source must not be empty; use \"<vault path>#<field>\", e.g. \"secret/db#password\"")
	case !ok || fieldName == "":
		return fmt.Errorf("appspec: secret source %q has no field; use \"<vault path>#<field>\", e.g. %q", src, strings.TrimSuffix(src, "#")+"#password")
	case strings.Trim(path, "/") == "":
		return fmt.Errorf("appspec: secret source %q has no path; use \"<vault path>#<field>\"", src)
	case strings.Contains(fieldName, "#"):
		return fmt.Errorf("appspec: secret source %q has more than one '#'", src)
	}
	return nil
}

func (a *App) validateConstraints(v *ValidationError) {
	for i, c := range a.Constraints {
		p := fmt.Sprintf("/constraints/%d", i)
		if len(c) < 2 || len(c) > 3 {
			v.add(p, "a constraint is [field, operator] or [field, operator, value]")
			continue
		}
		if strings.TrimSpace(c[0]) == "" {
			v.add(p, "the constraint field must not be empty (e.g. hostname or an agent attribute)")
		}
		op := c[1]
		if !constraintOps[op] {
			v.addf(p, "operator %q is not one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS", op)
			continue
		}
		hasValue := len(c) == 3
		switch op {
		case "UNIQUE":
			if hasValue {
				v.add(p, "UNIQUE takes no value")
			}
		case "LIKE", "UNLIKE":
			if !hasValue {
				v.addf(p, "%s needs a regular expression value", op)
			} else if _, err := regexp.Compile("^(" + c[2] + ")$"); err != nil {
				v.addf(p, "%s value %q is not a valid regular expression: %v", op, c[2], err)
			}
		case "MAX_PER":
			if !hasValue {
				v.add(p, "MAX_PER needs a value: the maximum number of tasks per field value")
			} else if n, err := strconv.Atoi(c[2]); err != nil || n < 1 {
				v.addf(p, "MAX_PER value must be a positive integer (got %q)", c[2])
			}
		case "GROUP_BY":
			if hasValue {
				if n, err := strconv.Atoi(c[2]); err != nil || n < 1 {
					v.addf(p, "GROUP_BY value must be a positive integer, the number of groups (got %q)", c[2])
				}
			}
		case "IS":
			if !hasValue || c[2] == "" {
				v.add(p, "IS needs a value to compare with")
			}
		case "CLUSTER":
			// An empty or missing value clusters on the first value seen
			// (constraints.md), so any value is valid.
		}
	}
}

func (a *App) validateHealth(v *ValidationError) {
	ports := a.Ports()
	mesosCheck := -1
	for i, h := range a.HealthChecks {
		p := fmt.Sprintf("/healthChecks/%d", i)
		if !healthProtocols[h.Protocol] {
			v.addf(p+"/protocol", "must be one of HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP (got %q)", h.Protocol)
			continue
		}
		if h.RunByMesos() {
			// Marathon's AppValidation (haveAtMostOneMesosHealthCheck):
			// Mesos runs one health check per task. Marathon also lets
			// further COMMAND checks through, for old definitions, and
			// then never runs them; Flotilla refuses them instead.
			if mesosCheck >= 0 {
				v.addf(p+"/protocol", "AppDefinition can contain at most one Mesos health check (COMMAND or MESOS_*; /healthChecks/%d is one already): "+
					"Mesos runs one check per task. Use HTTP, HTTPS or TCP (run by Flotilla) for the others", mesosCheck)
			} else {
				mesosCheck = i
			}
		}
		if h.Protocol == "COMMAND" {
			if h.Command == nil || strings.TrimSpace(h.Command.Value) == "" {
				v.add(p+"/command", "a COMMAND health check needs {\"value\": \"<shell command>\"}")
			}
		} else {
			if h.Command != nil {
				v.addf(p+"/command", "only COMMAND health checks take a command (protocol is %s)", h.Protocol)
			}
			if h.Port != nil && h.PortIndex != nil {
				v.add(p, "set port or portIndex, not both")
			}
			if h.PortIndex != nil && (*h.PortIndex < 0 || *h.PortIndex >= ports) {
				v.addf(p+"/portIndex", "must point at one of the app's %d ports (0 to %d); got %d", ports, ports-1, *h.PortIndex)
			}
			if h.Port != nil && (*h.Port == 0 || *h.Port > 65535) {
				v.addf(p+"/port", "must be a port from 1 to 65535 (got %d)", *h.Port)
			}
		}
		if strings.HasPrefix(h.Protocol, "HTTP") || strings.HasPrefix(h.Protocol, "MESOS_HTTP") {
			if !strings.HasPrefix(h.Path, "/") {
				v.addf(p+"/path", "must start with / (got %q)", h.Path)
			}
		}
		if h.MaxConsecutiveFailures < 0 {
			v.addf(p+"/maxConsecutiveFailures", "must be 0 (never kill) or more (got %d)", h.MaxConsecutiveFailures)
		}
	}
}

func (a *App) validateReadiness(v *ValidationError) {
	names := map[string]bool{}
	for _, p := range a.PortList() {
		if p.Name != "" {
			names[p.Name] = true
		}
	}
	for i, r := range a.ReadinessChecks {
		p := fmt.Sprintf("/readinessChecks/%d", i)
		if r.Protocol != "HTTP" && r.Protocol != "HTTPS" {
			v.addf(p+"/protocol", "must be HTTP or HTTPS (got %q)", r.Protocol)
		}
		if !strings.HasPrefix(r.Path, "/") {
			v.addf(p+"/path", "must start with / (got %q)", r.Path)
		}
		if !names[r.PortName] {
			v.addf(p+"/portName", "no port named %q in portDefinitions or container.portMappings; name a port, e.g. \"portDefinitions\": [{\"port\": 0, \"name\": %q}]", r.PortName, r.PortName)
		}
		if !(r.TimeoutSeconds > 0) || r.TimeoutSeconds >= r.IntervalSeconds {
			v.addf(p+"/timeoutSeconds", "must be greater than 0 and smaller than intervalSeconds (got %v, interval %v)", r.TimeoutSeconds, r.IntervalSeconds)
		}
		for j, c := range r.HTTPStatusCodesForReady {
			if c < 100 || c > 999 {
				v.addf(fmt.Sprintf("%s/httpStatusCodesForReady/%d", p, j), "must be an HTTP status code from 100 to 999 (got %d)", c)
			}
		}
	}
	if len(a.ReadinessChecks) > 1 {
		v.add("/readinessChecks", "at most one readiness check per app (as in Marathon)")
	}
}

func (a *App) validateStrategies(v *ValidationError) {
	u := a.UpgradeStrategy
	if !(u.MinimumHealthCapacity >= 0 && u.MinimumHealthCapacity <= 1) {
		v.addf("/upgradeStrategy/minimumHealthCapacity", "must be between 0 and 1 (got %v)", u.MinimumHealthCapacity)
	}
	if !(u.MaximumOverCapacity >= 0 && u.MaximumOverCapacity <= 1) {
		v.addf("/upgradeStrategy/maximumOverCapacity", "must be between 0 and 1 (got %v)", u.MaximumOverCapacity)
	}
	un := a.UnreachableStrategy
	if !un.Disabled {
		if !(un.ExpungeAfterSeconds >= un.InactiveAfterSeconds) {
			v.addf("/unreachableStrategy/expungeAfterSeconds", "must not be smaller than inactiveAfterSeconds (got %v < %v)", un.ExpungeAfterSeconds, un.InactiveAfterSeconds)
		}
	}
}

func (a *App) validateExposure(v *ValidationError) {
	if a.Exposure != nil {
		checkExposure(v, *a.Exposure, "/exposure/vhosts", "/exposure/paths")
		switch a.Exposure.Mode {
		case ExposureInternal, ExposureExternal:
		default:
			v.addf("/exposure/mode", "must be internal or external (got %q)", a.Exposure.Mode)
		}
	}
	// Labels are checked one by one, each at its own path; an external
	// app without vhost or path is valid: it is served on its service
	// ports, as in marathon-lb.
	a.checkHAProxyLabels(v)
}

func checkExposure(v *ValidationError, e Exposure, vhostPath, pathPath string) {
	for i, h := range e.VHosts {
		if len(h) > 253 || !hostName.MatchString(h) {
			v.addf(fmt.Sprintf("%s/%d", vhostPath, i), "%q is not a valid host name (lowercase DNS name, optionally starting with *.)", h)
		}
	}
	for i, p := range e.Paths {
		if !strings.HasPrefix(p, "/") {
			v.addf(fmt.Sprintf("%s/%d", pathPath, i), "must start with / (got %q)", p)
		}
	}
}

func (a *App) validateAutoscale(v *ValidationError) {
	s := a.Autoscale
	if s == nil {
		return
	}
	if s.Min < 0 {
		v.addf("/autoscale/min", "must be 0 or more (got %d)", s.Min)
	}
	if s.Max < 1 || s.Max < s.Min {
		v.addf("/autoscale/max", "must be at least 1 and at least min (got max %d, min %d)", s.Max, s.Min)
	}
	if !autoscaleMetric[s.Metric] {
		v.addf("/autoscale/metric", "must be one of cpu, mem, rps, prometheus (got %q)", s.Metric)
	}
	if !(s.Target > 0) || !finite(s.Target) {
		v.addf("/autoscale/target", "must be greater than 0 (got %v)", s.Target)
	}
	if s.MaxStep < 0 {
		v.addf("/autoscale/maxStep", "must be 0 (no limit) or more (got %d)", s.MaxStep)
	}
	if s.Metric == AutoscalePrometheus {
		if s.Prometheus == nil {
			v.add("/autoscale/prometheus", "metric prometheus needs a prometheus block: {\"name\": \"<metric>\", \"portIndex\": 0, \"path\": \"/metrics\"}")
		} else {
			if strings.TrimSpace(s.Prometheus.Name) == "" {
				v.add("/autoscale/prometheus/name", "must name the Prometheus metric to scale on")
			}
			if ports := a.Ports(); s.Prometheus.PortIndex < 0 || s.Prometheus.PortIndex >= ports {
				v.addf("/autoscale/prometheus/portIndex", "must point at one of the app's %d ports (got %d)", ports, s.Prometheus.PortIndex)
			}
			if s.Prometheus.Path != "" && !strings.HasPrefix(s.Prometheus.Path, "/") {
				v.addf("/autoscale/prometheus/path", "must start with / (got %q)", s.Prometheus.Path)
			}
		}
	} else if s.Prometheus != nil {
		v.addf("/autoscale/prometheus", "only metric prometheus takes a prometheus block (metric is %q)", s.Metric)
	}
}
