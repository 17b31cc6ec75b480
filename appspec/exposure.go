package appspec

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Exposure modes.
const (
	ExposureInternal = "internal"
	ExposureExternal = "external"
)

// marathon-lb labels Flotilla honours, so apps already published through
// marathon-lb keep their exposure when they move over. The per-port ones
// are written with the port index in place of {n} (HAPROXY_0_VHOST).
const (
	LabelHAProxyGroup = "HAPROXY_GROUP"
	LabelHAProxyVHost = "HAPROXY_0_VHOST"
	LabelHAProxyPath  = "HAPROXY_0_PATH"
)

// Proxy modes of a port (HAPROXY_{n}_MODE).
const (
	ModeHTTP = "http"
	ModeTCP  = "tcp"
)

// Balancing algorithms of a port (HAPROXY_{n}_BALANCE), HAProxy's names.
const (
	BalanceRoundRobin = "roundrobin"
	BalanceLeastConn  = "leastconn"
	BalanceSource     = "source"
)

// The per-port labels Flotilla implements, by the name after HAPROXY_{n}_.
var portLabels = map[string]bool{
	"VHOST": true, "PATH": true, "GROUP": true, "PORT": true, "MODE": true, "BALANCE": true,
	"STICKY": true, "REDIRECT_TO_HTTPS": true, "USE_HSTS": true, "SSL_CERT": true,
	"BACKEND_WEIGHT": true, "ENABLED": true, "BACKEND_HEALTHCHECK_PORT_INDEX": true,
}

// Why the labels Flotilla does not implement are refused, by the name after
// HAPROXY_{n}_ (or HAPROXY_). Refusing beats ignoring: an app that relied on
// one would otherwise be served differently with no word said.
var unsupportedWhy = map[string]string{
	"AUTH":                        "HTTP basic auth at the gateway is not implemented; authenticate in the app",
	"BIND_ADDR":                   "service ports are bound on the gateway's own listener addresses (--gateway-addr, --internal-gateway-addr)",
	"BIND_OPTIONS":                "HAProxy bind options have no equivalent in Flotilla's gateway",
	"BACKEND_NETWORK_ALLOWED_ACL": "source-address ACLs are not implemented; use the internal listener for apps that must not be reached from outside",
	"HTTP_BACKEND_PROXYPASS_PATH": "path rewriting is not implemented",
	"HTTP_BACKEND_REVPROXY_PATH":  "response header rewriting is not implemented",
	"HTTP_BACKEND_REDIR":          "root redirects are not implemented",
	"DEPLOYMENT_GROUP":            "marathon-lb's blue/green deployments are not implemented; Flotilla's rolling upgrades replace them",
	"DEPLOYMENT_ALT_PORT":         "marathon-lb's blue/green deployments are not implemented; Flotilla's rolling upgrades replace them",
	"DEPLOYMENT_COLOUR":           "marathon-lb's blue/green deployments are not implemented; Flotilla's rolling upgrades replace them",
	"DEPLOYMENT_STARTED_AT":       "marathon-lb's blue/green deployments are not implemented; Flotilla's rolling upgrades replace them",
	"DEPLOYMENT_TARGET_INSTANCES": "marathon-lb's blue/green deployments are not implemented; Flotilla's rolling upgrades replace them",
	"DEPLOYMENT_NEW_INSTANCES":    "marathon-lb's blue/green deployments are not implemented; Flotilla's rolling upgrades replace them",
}

// templateWhy is the reason for every HAProxy config template label
// (HAPROXY_{n}_FRONTEND_HEAD, HAPROXY_{n}_BACKEND_HTTP_OPTIONS, …): anything
// ending in a template's name, or naming an ACL or options block.
const templateWhy = "it overrides a marathon-lb HAProxy config template, and Flotilla's gateway is not HAProxy: there is no config to template"

var perPortLabel = regexp.MustCompile(`^HAPROXY_([0-9]+)_(.+)$`)

// PortExposure is how the gateway serves one port index of an app, from
// marathon-lb's HAPROXY_{n}_* labels (and the exposure field for index 0).
type PortExposure struct {
	Index int
	// ServicePort is where the gateway listens for this port:
	// HAPROXY_{n}_PORT, else the port's service port; 0: not bound.
	ServicePort uint32
	// Groups are the marathon-lb groups (HAPROXY_{n}_GROUP, else
	// HAPROXY_GROUP); "external" among them, or the exposure field's mode
	// external, makes External true.
	Groups   []string
	External bool
	// Mode is ModeHTTP or ModeTCP: HAPROXY_{n}_MODE, else http when the
	// port has a vhost or an HTTP health check, else tcp (marathon-lb's
	// rule).
	Mode   string
	VHosts []string
	Paths  []string
	// PlainPaths: Paths match as plain prefixes (HAProxy's path_beg, for
	// paths from labels) rather than on segment boundaries (the exposure
	// field's paths).
	PlainPaths      bool
	Balance         string // BalanceRoundRobin, BalanceLeastConn, BalanceSource
	Sticky          bool
	RedirectToHTTPS bool
	UseHSTS         bool
	SSLCert         string // a PEM file holding certificate and key
	// BackendWeight orders apps that claim the same vhost and path: the
	// highest wins. A port with a path weighs 1 unless set, as in
	// marathon-lb.
	BackendWeight int
	Enabled       bool
	// HealthCheckPortIndex is HAPROXY_{n}_BACKEND_HEALTHCHECK_PORT_INDEX,
	// -1 when unset.
	HealthCheckPortIndex int
}

// EffectiveExposure is how the gateway must treat the app's first port. An
// explicit exposure field wins; otherwise marathon-lb's labels count
// (HAPROXY_0_GROUP, else HAPROXY_GROUP, containing "external", with
// HAPROXY_0_VHOST host names separated by commas and HAPROXY_0_PATH paths
// separated by spaces or commas); otherwise the app is internal. The vhosts
// and paths of an internal app are kept: the internal listener routes them.
// The result never aliases the app's slices.
func (a *App) EffectiveExposure() Exposure {
	if a.Exposure != nil {
		e := Exposure{
			Mode:   a.Exposure.Mode,
			VHosts: append([]string(nil), a.Exposure.VHosts...),
			Paths:  append([]string(nil), a.Exposure.Paths...),
		}
		if e.Mode == "" {
			e.Mode = ExposureInternal
		}
		return e
	}
	e := Exposure{Mode: ExposureInternal,
		VHosts: splitList(a.Labels[LabelHAProxyVHost], ","),
		Paths:  splitList(a.Labels[LabelHAProxyPath], ", "),
	}
	if contains(a.portGroups(0), ExposureExternal) {
		e.Mode = ExposureExternal
	}
	return e
}

// portGroups is port n's marathon-lb groups: HAPROXY_{n}_GROUP, else
// HAPROXY_GROUP (the more specific wins, as in marathon-lb).
func (a *App) portGroups(n int) []string {
	if g, ok := a.Labels[portLabelName(n, "GROUP")]; ok {
		return splitList(g, ",")
	}
	return splitList(a.Labels[LabelHAProxyGroup], ",")
}

// Groups is the app's marathon-lb groups (HAPROXY_GROUP).
func (a *App) Groups() []string { return splitList(a.Labels[LabelHAProxyGroup], ",") }

func portLabelName(n int, name string) string { return "HAPROXY_" + strconv.Itoa(n) + "_" + name }

// PortExposures lists, per port index, how the gateway serves it. Values
// that validation refuses read as their defaults here (the gateway also
// gets apps that never went through validation, from older stores).
func (a *App) PortExposures() []PortExposure {
	ports := a.PortList()
	out := make([]PortExposure, len(ports))
	for i, p := range ports {
		label := func(name string) (string, bool) {
			v, ok := a.Labels[portLabelName(i, name)]
			return strings.TrimSpace(v), ok
		}
		pe := PortExposure{Index: i, ServicePort: p.ServicePort, Groups: a.portGroups(i),
			Balance: BalanceRoundRobin, Enabled: true, HealthCheckPortIndex: -1}
		if v, ok := label("PORT"); ok {
			if n, err := strconv.ParseUint(v, 10, 16); err == nil && n > 0 {
				pe.ServicePort = uint32(n)
			}
		}
		if i == 0 {
			e := a.EffectiveExposure()
			pe.VHosts, pe.Paths, pe.External = e.VHosts, e.Paths, e.Mode == ExposureExternal
			pe.PlainPaths = a.Exposure == nil
		} else {
			v, _ := label("VHOST")
			pe.VHosts = splitList(v, ",")
			v, _ = label("PATH")
			pe.Paths = splitList(v, ", ")
			pe.PlainPaths = true
			pe.External = contains(pe.Groups, ExposureExternal)
			if a.Exposure != nil {
				pe.External = a.Exposure.Mode == ExposureExternal
			}
		}
		if len(pe.Paths) > 0 {
			pe.BackendWeight = 1
		}
		if v, ok := label("BACKEND_WEIGHT"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				pe.BackendWeight = n
			}
		}
		if v, ok := label("BALANCE"); ok && balances[strings.ToLower(v)] {
			pe.Balance = strings.ToLower(v)
		}
		pe.Sticky = labelBool(label("STICKY"))
		pe.RedirectToHTTPS = labelBool(label("REDIRECT_TO_HTTPS"))
		pe.UseHSTS = labelBool(label("USE_HSTS"))
		if v, ok := label("ENABLED"); ok {
			pe.Enabled = parseBool(v)
		}
		pe.SSLCert, _ = label("SSL_CERT")
		hcIndex := -1
		if v, ok := label("BACKEND_HEALTHCHECK_PORT_INDEX"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < len(ports) {
				pe.HealthCheckPortIndex, hcIndex = n, n
			}
		}
		pe.Mode = a.defaultMode(i, hcIndex, len(pe.VHosts) > 0)
		if v, ok := label("MODE"); ok {
			if m := strings.ToLower(v); m == ModeHTTP || m == ModeTCP {
				pe.Mode = m
			}
		}
		out[i] = pe
	}
	return out
}

// defaultMode is marathon-lb's: http when port n (or, without one, the
// health-check port index) has an HTTP health check, or the port has a
// vhost; tcp otherwise.
func (a *App) defaultMode(n, hcIndex int, vhost bool) string {
	check := a.healthCheckOf(n)
	if check == nil && hcIndex >= 0 {
		check = a.healthCheckOf(hcIndex)
	}
	if check != nil {
		switch check.Protocol {
		case "HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS":
			return ModeHTTP
		}
	}
	if vhost {
		return ModeHTTP
	}
	return ModeTCP
}

func (a *App) healthCheckOf(n int) *HealthCheck {
	for i := range a.HealthChecks {
		c := &a.HealthChecks[i]
		idx := 0 // Marathon's default port index
		if c.PortIndex != nil {
			idx = *c.PortIndex
		}
		// A check on a fixed port applies to every port, as marathon-lb
		// reads it (get_health_check).
		if c.Port != nil || idx == n {
			return c
		}
	}
	return nil
}

var balances = map[string]bool{BalanceRoundRobin: true, BalanceLeastConn: true, BalanceSource: true}

func labelBool(v string, ok bool) bool { return ok && parseBool(v) }

// parseBool reads marathon-lb's booleans (its string_to_bool).
func parseBool(v string) bool {
	switch strings.ToLower(v) {
	case "true", "t", "yes", "y":
		return true
	}
	return false
}

func validBool(v string) bool {
	switch strings.ToLower(v) {
	case "true", "t", "yes", "y", "false", "f", "no", "n":
		return true
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkHAProxyLabels refuses every HAPROXY_* label Flotilla does not
// implement, and implemented ones whose value it cannot use, each at its
// own path (/labels/HAPROXY_0_MODE).
func (a *App) checkHAProxyLabels(v *ValidationError) {
	nports := a.Ports()
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		if strings.HasPrefix(k, "HAPROXY_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := "/labels/" + pointerToken(k)
		val := strings.TrimSpace(a.Labels[k])
		m := perPortLabel.FindStringSubmatch(k)
		if m == nil {
			name := strings.TrimPrefix(k, "HAPROXY_")
			switch {
			case k == LabelHAProxyGroup:
				if len(splitList(val, ",")) == 0 {
					v.add(path, "must name at least one group (comma-separated), e.g. external")
				}
			case unsupportedWhy[name] != "":
				v.addf(path, "Flotilla does not implement this marathon-lb label: %s", unsupportedWhy[name])
			default:
				v.addf(path, "Flotilla does not implement this marathon-lb label: %s", templateWhy)
			}
			continue
		}
		n, err := strconv.Atoi(m[1])
		name := m[2]
		if !portLabels[name] {
			why := unsupportedWhy[name]
			if why == "" {
				why = templateWhy
			}
			v.addf(path, "Flotilla does not implement this marathon-lb label: %s", why)
			continue
		}
		if err != nil || n >= nports {
			v.addf(path, "port index %s is not one of the app's %d ports (portDefinitions or container.portMappings)", m[1], nports)
			continue
		}
		a.checkPortLabel(v, path, n, name, val)
	}
}

func (a *App) checkPortLabel(v *ValidationError, path string, n int, name, val string) {
	switch name {
	case "VHOST":
		for i, h := range splitList(val, ",") {
			if len(h) > 253 || !hostName.MatchString(h) {
				v.addf(fmt.Sprintf("%s/%d", path, i), "%q is not a valid host name (lowercase DNS name, optionally starting with *.)", h)
			}
		}
		if n == 0 && a.Exposure != nil {
			v.add(path, "the exposure field already sets the first port's vhosts; use one or the other")
		}
	case "PATH":
		for i, p := range splitList(val, ", ") {
			if !strings.HasPrefix(p, "/") {
				v.addf(fmt.Sprintf("%s/%d", path, i), "must start with / (got %q); HAProxy flags such as -i are not supported", p)
			}
		}
		if _, ok := a.Labels[portLabelName(n, "VHOST")]; !ok {
			v.addf(path, "a path needs a vhost, as in marathon-lb (which ignores a path without one): set HAPROXY_%d_VHOST", n)
		}
		if n == 0 && a.Exposure != nil {
			v.add(path, "the exposure field already sets the first port's paths; use one or the other")
		}
	case "GROUP":
		if len(splitList(val, ",")) == 0 {
			v.add(path, "must name at least one group (comma-separated), e.g. external")
		}
	case "PORT":
		if p, err := strconv.ParseUint(val, 10, 16); err != nil || p == 0 {
			v.addf(path, "must be a port from 1 to 65535 (got %q)", val)
		}
	case "MODE":
		if m := strings.ToLower(val); m != ModeHTTP && m != ModeTCP {
			v.addf(path, "must be http or tcp (got %q)", val)
		}
	case "BALANCE":
		if !balances[strings.ToLower(val)] {
			v.addf(path, "must be roundrobin, leastconn or source (got %q); other HAProxy algorithms are not implemented", val)
		}
	case "STICKY", "REDIRECT_TO_HTTPS", "USE_HSTS", "ENABLED":
		if !validBool(val) {
			v.addf(path, "must be true or false (got %q)", val)
		}
	case "SSL_CERT":
		if !strings.HasPrefix(val, "/") {
			v.addf(path, "must be the absolute path of a PEM file (certificate and key) readable by the gateway (got %q)", val)
		}
	case "BACKEND_WEIGHT":
		if _, err := strconv.Atoi(val); err != nil {
			v.addf(path, "must be a whole number (got %q)", val)
		}
	case "BACKEND_HEALTHCHECK_PORT_INDEX":
		if i, err := strconv.Atoi(val); err != nil || i < 0 || i >= a.Ports() {
			v.addf(path, "must be the index of one of the app's %d ports (got %q)", a.Ports(), val)
		}
	}
}

func splitList(s, seps string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// SecretEnv maps each env variable that takes a secret to the secret's
// Vault source ("<path>#<field>"). It holds references only.
func (a *App) SecretEnv() map[string]string {
	out := map[string]string{}
	for k, v := range a.Env {
		if v.Secret != "" {
			out[k] = a.Secrets[v.Secret].Source
		}
	}
	return out
}

// SecretNames lists the names of the secrets the env uses, sorted.
func (a *App) SecretNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range a.Env {
		if v.Secret != "" && !seen[v.Secret] {
			seen[v.Secret] = true
			out = append(out, v.Secret)
		}
	}
	sort.Strings(out)
	return out
}
