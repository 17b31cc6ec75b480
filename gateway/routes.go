package gateway

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Backend is one instance an app's requests may go to: a running, healthy,
// ready task's host and the host port of one port index.
type Backend struct {
	TaskID string
	Host   string
	Port   uint32
}

func (b Backend) addr() string {
	return net.JoinHostPort(b.Host, strconv.FormatUint(uint64(b.Port), 10))
}

// App is what the gateway needs to know about one app. The gateway defines
// its own input instead of reading the framework's task events, so those
// can keep changing without touching routing.
type App struct {
	ID       string           // /prod/shop/web
	DNSName  string           // web-shop-prod.flotilla.mesos, computed by the caller
	Exposure appspec.Exposure // the first port's effective exposure
	Backends []Backend        // the first port's
	Options  Options          // the first port's
	// Hidden: the first port is not served here (an edge node's
	// --gateway-groups leave it out); only Services are, by service port
	// and their own vhosts.
	Hidden bool
	// Services are the app's port indexes with a service port to listen
	// on, or (index ≥ 1) vhosts of their own. Index 0's backends and
	// options are the App's own; its VHosts and Paths are ignored
	// (Exposure has them).
	Services []Service
}

// Options are how one port of an app is proxied (marathon-lb's
// HAPROXY_{n}_BALANCE, _STICKY, _REDIRECT_TO_HTTPS, _USE_HSTS,
// _BACKEND_WEIGHT, and HAPROXY_{n}_PATH's path_beg matching).
type Options struct {
	// Balance is appspec.BalanceRoundRobin, BalanceLeastConn or
	// BalanceSource; "" is Config.Balance.
	Balance string
	// Sticky sends a client back to the backend it had: by a cookie in
	// HTTP mode, by its address in TCP mode.
	Sticky bool
	// RedirectToHTTPS answers a request that did not come over TLS with a
	// 301 to the same URL over https.
	RedirectToHTTPS bool
	// UseHSTS adds Strict-Transport-Security to every response.
	UseHSTS bool
	// PlainPaths: paths match as plain prefixes (HAProxy's path_beg);
	// otherwise on segment boundaries.
	PlainPaths bool
	// Weight decides between apps that claim the same host and path: the
	// highest wins.
	Weight int
}

// Service is one port index of an app as a service port serves it.
type Service struct {
	Index int
	// Port is the service port to listen on; 0: none.
	Port uint32
	// Mode is appspec.ModeHTTP or appspec.ModeTCP (the default).
	Mode string
	// External: also listened on at the external listener's host.
	External bool
	// CertFile, a PEM file with certificate and key, makes the service
	// port TLS.
	CertFile string
	// VHosts and Paths (index ≥ 1) route this port on the two listeners.
	VHosts, Paths []string
	Options       Options
	Backends      []Backend
}

// Listener names one of the gateway's two listeners.
type Listener int

const (
	// Internal routes every app, by DNS name and by vhost.
	Internal Listener = iota
	// External routes only apps whose exposure is external, by vhost and path.
	External
)

func (l Listener) String() string {
	if l == External {
		return "external"
	}
	return "internal"
}

// SkipError says why BuildRoutes left an app, or one backend of an app, out
// of the table. Task is empty when the whole app was skipped.
type SkipError struct {
	App    string
	Task   string
	Reason string
}

func (e *SkipError) Error() string {
	if e.Task != "" {
		return fmt.Sprintf("gateway: app %q: backend %q skipped: %s", e.App, e.Task, e.Reason)
	}
	return fmt.Sprintf("gateway: app %q skipped: %s", e.App, e.Reason)
}

// Table is an immutable route table. A request holds the table it started
// with, so swapping in a new one never disturbs requests in flight.
type Table struct {
	// apps maps a pool key (the app ID for the first port, ID#n for port
	// n) to its route.
	apps map[string]*appRoute
	// services maps a service port to what it serves.
	services map[uint32]*serviceRoute
	// hosts maps, per listener, a host ("" for any host, "*.x" for a
	// wildcard) to its routes, longest prefix first.
	hosts [2]map[string][]route
	// wildcard says whether a listener has any "*." host, so lookups of
	// exact hosts skip building wildcard keys.
	wildcard [2]bool
}

type route struct {
	prefix string
	plain  bool // path_beg: no segment boundary
	app    *appRoute
}

type appRoute struct {
	id       string // app ID
	key      string // pool key
	index    int
	backends []Backend
	opts     Options
}

// serviceRoute is one service port's listener contents.
type serviceRoute struct {
	port     uint32
	mode     string
	external bool
	cert     string
	app      *appRoute
}

func poolKey(id string, index int) string {
	if index == 0 {
		return id
	}
	return id + "#" + strconv.Itoa(index)
}

type routeKey struct {
	l            Listener
	host, prefix string
}

// vhostRE is appspec's host-name rule; it is repeated here because the
// gateway also gets apps that never went through the API's validation
// (marathon-lb labels, older specs in the store).
var vhostRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// BuildRoutes turns apps into a route table. It is pure. An app that cannot
// be routed (bad exposure, a host and path another app already holds, …) is
// skipped and reported, and never stops the others from being routed; a bad
// backend is dropped from its app, which keeps its other backends. A port
// index beyond the first is skipped alone, and so is a service port another
// app holds.
//
// When two apps claim the same host and path, or the same service port, the
// one with the higher weight (Options.Weight) keeps it, then the one with
// the smaller ID. The Gateway refines this: among equal weights an app that
// already holds a route keeps it, so deploying a new app can never take
// traffic from a live one.
func BuildRoutes(apps []App) (*Table, []error) { return buildRoutes(apps, nil) }

// unit is one pool's worth of routes: an app's first port (with its DNS
// name and exposure), or one of its later ports.
type unit struct {
	id       string
	index    int
	keys     []routeKey
	backends []Backend
	opts     Options
	svc      *Service
}

func buildRoutes(apps []App, prev *Table) (*Table, []error) {
	t := &Table{apps: map[string]*appRoute{}, services: map[uint32]*serviceRoute{}}
	for l := range t.hosts {
		t.hosts[l] = map[string][]route{}
	}
	var errs []error
	var units []unit
	seenID := map[string]bool{}
	for i := range apps {
		a := &apps[i]
		if a.ID != "" && seenID[a.ID] {
			errs = append(errs, &SkipError{App: a.ID, Reason: "the app ID appears twice in the input"})
			continue
		}
		seenID[a.ID] = true
		us, appErrs := compile(a)
		errs = append(errs, appErrs...)
		units = append(units, us...)
	}
	incumbent := func(u *unit) bool { return prev != nil && prev.apps[poolKey(u.id, u.index)] != nil }
	sort.SliceStable(units, func(a, b int) bool {
		ua, ub := &units[a], &units[b]
		if ua.opts.Weight != ub.opts.Weight {
			return ua.opts.Weight > ub.opts.Weight
		}
		if ia, ib := incumbent(ua), incumbent(ub); ia != ib {
			return ia
		}
		if ua.id != ub.id {
			return ua.id < ub.id
		}
		return ua.index < ub.index
	})

	owner := map[routeKey]string{}
	skippedApp := map[string]bool{}
	for i := range units {
		u := &units[i]
		if skippedApp[u.id] {
			continue
		}
		if k, other, taken := firstTaken(u.keys, owner); taken {
			what := ""
			if u.index > 0 {
				what = fmt.Sprintf("port index %d: ", u.index)
			} else {
				// Without its first port the app has no DNS route: it is
				// skipped whole, as before ports had routes of their own.
				skippedApp[u.id] = true
			}
			errs = append(errs, &SkipError{App: u.id, Reason: fmt.Sprintf(
				"%s%s host %q path %q is already routed to app %q; give this app another vhost or path", what, k.l, displayHost(k.host), k.prefix, other)})
			continue
		}
		ar := &appRoute{id: u.id, key: poolKey(u.id, u.index), index: u.index, backends: u.backends, opts: u.opts}
		for _, k := range u.keys {
			owner[k] = u.id
			t.hosts[k.l][k.host] = append(t.hosts[k.l][k.host], route{prefix: k.prefix, plain: u.opts.PlainPaths && k.prefix != "/", app: ar})
			if strings.HasPrefix(k.host, "*.") {
				t.wildcard[k.l] = true
			}
		}
		if s := u.svc; s != nil && s.Port != 0 {
			if other := t.services[s.Port]; other != nil {
				errs = append(errs, &SkipError{App: u.id, Reason: fmt.Sprintf(
					"port index %d: service port %d is already served for app %q", u.index, s.Port, other.app.id)})
			} else {
				t.services[s.Port] = &serviceRoute{port: s.Port, mode: s.Mode, external: s.External, cert: s.CertFile, app: ar}
			}
		}
		if len(u.keys) > 0 || (u.svc != nil && t.services[u.svc.Port] != nil && t.services[u.svc.Port].app == ar) {
			t.apps[ar.key] = ar
		}
	}
	// A skipped first port takes the app's later ports with it only if
	// they came first in the order; drop what remains of such apps.
	for key, ar := range t.apps {
		if skippedApp[ar.id] {
			delete(t.apps, key)
		}
	}
	for port, sr := range t.services {
		if skippedApp[sr.app.id] {
			delete(t.services, port)
		}
	}
	for l := range t.hosts {
		for h, rs := range t.hosts[l] {
			kept := rs[:0]
			for _, r := range rs {
				if !skippedApp[r.app.id] {
					kept = append(kept, r)
				}
			}
			if len(kept) == 0 {
				delete(t.hosts[l], h)
				continue
			}
			t.hosts[l][h] = kept
			sort.SliceStable(kept, func(i, j int) bool { return len(kept[i].prefix) > len(kept[j].prefix) })
		}
	}
	return t, errs
}

func displayHost(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

func firstTaken(keys []routeKey, owner map[routeKey]string) (routeKey, string, bool) {
	for _, k := range keys {
		if o, ok := owner[k]; ok {
			return k, o, true
		}
	}
	return routeKey{}, "", false
}

// compile validates one app and lists its units: the first port's, then
// one per later port with vhosts or a service port. None when the whole
// app is skipped.
func compile(a *App) (units []unit, errs []error) {
	skip := func(format string, args ...any) ([]unit, []error) {
		return nil, []error{&SkipError{App: a.ID, Reason: fmt.Sprintf(format, args...)}}
	}
	if a.ID == "" {
		return skip("the app has no ID")
	}
	e := a.Exposure
	mode := e.Mode
	if mode == "" {
		mode = appspec.ExposureInternal
	}
	if mode != appspec.ExposureInternal && mode != appspec.ExposureExternal {
		return skip("exposure mode %q is neither internal nor external", e.Mode)
	}
	dns := normalizeHost(a.DNSName)
	if dns == "" || strings.HasPrefix(dns, "*.") || !vhostRE.MatchString(dns) {
		return skip("DNS name %q is not a valid host name", a.DNSName)
	}
	keys, err := hostKeys(e.VHosts, e.Paths, mode == appspec.ExposureExternal)
	if err != "" {
		return skip("%s", err)
	}
	keys = append([]routeKey{{Internal, dns, "/"}}, keys...)
	if a.Hidden {
		keys = nil
	}
	first := unit{id: a.ID, keys: dedupe(keys), backends: checkBackends(a.ID, a.Backends, &errs), opts: a.Options}
	units = append(units, first)
	for i := range a.Services {
		s := &a.Services[i]
		if s.Index == 0 {
			if !a.Hidden || s.Port != 0 {
				units[0].svc = s
			}
			continue
		}
		k, err := hostKeys(s.VHosts, s.Paths, s.External)
		if err != "" {
			errs = append(errs, &SkipError{App: a.ID, Reason: fmt.Sprintf("port index %d: %s", s.Index, err)})
			continue
		}
		if len(k) == 0 && s.Port == 0 {
			continue
		}
		units = append(units, unit{id: a.ID, index: s.Index, keys: dedupe(k), backends: checkBackends(a.ID, s.Backends, &errs), opts: s.Options, svc: s})
	}
	return units, errs
}

// hostKeys lists the vhost and path routes of one port: on the internal
// listener, and on the external one too when external. Without vhosts or
// paths there are none (the first port still has its DNS name).
func hostKeys(vhostsIn, paths []string, external bool) ([]routeKey, string) {
	vhosts := make([]string, 0, len(vhostsIn))
	for _, h := range vhostsIn {
		n := normalizeHost(h)
		if len(n) > 253 || !vhostRE.MatchString(n) {
			return nil, fmt.Sprintf("vhost %q is not a valid host name (DNS name, optionally starting with *.)", h)
		}
		vhosts = append(vhosts, n)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Sprintf("path %q does not start with /", p)
		}
	}
	if len(vhosts) == 0 && len(paths) == 0 {
		return nil, ""
	}
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	hosts := vhosts
	if len(hosts) == 0 {
		// Paths without vhosts (the exposure field's) apply to any host.
		hosts = []string{""}
	}
	var keys []routeKey
	for _, h := range hosts {
		for _, p := range paths {
			keys = append(keys, routeKey{Internal, h, p})
			if external {
				keys = append(keys, routeKey{External, h, p})
			}
		}
	}
	return keys, ""
}

func dedupe(keys []routeKey) []routeKey {
	seen := map[routeKey]bool{}
	out := keys[:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func checkBackends(app string, in []Backend, errs *[]error) []Backend {
	var backends []Backend
	taskSeen := map[string]bool{}
	for _, b := range in {
		switch {
		case b.TaskID == "":
			*errs = append(*errs, &SkipError{App: app, Task: "?", Reason: "backend has no task ID"})
		case taskSeen[b.TaskID]:
			*errs = append(*errs, &SkipError{App: app, Task: b.TaskID, Reason: "task appears twice"})
		case b.Host == "" || b.Port == 0 || b.Port > 65535:
			*errs = append(*errs, &SkipError{App: app, Task: b.TaskID, Reason: fmt.Sprintf("address %q port %d is not usable", b.Host, b.Port)})
		default:
			taskSeen[b.TaskID] = true
			backends = append(backends, b)
		}
	}
	return backends
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// requestHost reduces a Host header to the name routes are keyed by: no
// port, lower case, no trailing dot.
func requestHost(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return strings.ToLower(h[1:i])
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// Match returns the ID of the app a request for host and path goes to on
// listener l. Exact hosts are tried first, then wildcards from the most
// specific, then routes for any host; within a host the longest path prefix
// wins.
func (t *Table) Match(l Listener, host, path string) (appID string, ok bool) {
	if ar := t.match(l, requestHost(host), path); ar != nil {
		return ar.id, true
	}
	return "", false
}

func (t *Table) match(l Listener, host, path string) *appRoute {
	m := t.hosts[l]
	if ar := matchPrefix(m[host], path); ar != nil {
		return ar
	}
	if t.wildcard[l] {
		for h := host; ; {
			i := strings.IndexByte(h, '.')
			if i < 0 {
				break
			}
			h = h[i+1:]
			if ar := matchPrefix(m["*."+h], path); ar != nil {
				return ar
			}
		}
	}
	return matchPrefix(m[""], path)
}

func matchPrefix(rs []route, path string) *appRoute {
	for _, r := range rs {
		if r.plain && strings.HasPrefix(path, r.prefix) || pathHasPrefix(path, r.prefix) {
			return r.app
		}
	}
	return nil
}

// pathHasPrefix matches whole path segments, so "/api" takes "/api" and
// "/api/x" but not "/apiary": the exposure field's rule. Paths from
// marathon-lb's labels match as HAProxy's path_beg does, "/apiary" too
// (route.plain), so that apps moved over are routed exactly as before.
func pathHasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// AppIDs lists the routed apps, sorted.
func (t *Table) AppIDs() []string {
	seen := map[string]bool{}
	ids := make([]string, 0, len(t.apps))
	for _, ar := range t.apps {
		if !seen[ar.id] {
			seen[ar.id] = true
			ids = append(ids, ar.id)
		}
	}
	sort.Strings(ids)
	return ids
}

// ServicePorts lists the service ports the table serves, sorted.
func (t *Table) ServicePorts() []uint32 {
	ports := make([]uint32, 0, len(t.services))
	for p := range t.services {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	return ports
}
