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
// ready task's first port.
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
	Exposure appspec.Exposure // the app's effective exposure
	Backends []Backend
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
	apps map[string]*appRoute
	// hosts maps, per listener, a host ("" for any host, "*.x" for a
	// wildcard) to its routes, longest prefix first.
	hosts [2]map[string][]route
	// wildcard says whether a listener has any "*." host, so lookups of
	// exact hosts skip building wildcard keys.
	wildcard [2]bool
}

type route struct {
	prefix string
	app    *appRoute
}

type appRoute struct {
	id       string
	backends []Backend
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
// backend is dropped from its app, which keeps its other backends.
//
// When two apps claim the same host and path, the app with the smaller ID
// keeps it. The Gateway refines this: an app that already holds a route
// keeps it, so deploying a new app can never take traffic from a live one.
func BuildRoutes(apps []App) (*Table, []error) { return buildRoutes(apps, nil) }

func buildRoutes(apps []App, prev *Table) (*Table, []error) {
	t := &Table{apps: map[string]*appRoute{}}
	for l := range t.hosts {
		t.hosts[l] = map[string][]route{}
	}
	order := make([]int, len(apps))
	for i := range order {
		order[i] = i
	}
	incumbent := func(i int) bool { return prev != nil && prev.apps[apps[i].ID] != nil }
	sort.SliceStable(order, func(a, b int) bool {
		ia, ib := incumbent(order[a]), incumbent(order[b])
		if ia != ib {
			return ia
		}
		return apps[order[a]].ID < apps[order[b]].ID
	})

	var errs []error
	owner := map[routeKey]string{}
	for _, i := range order {
		a := &apps[i]
		keys, backends, appErrs := compile(a)
		errs = append(errs, appErrs...)
		if keys == nil {
			continue
		}
		if t.apps[a.ID] != nil {
			errs = append(errs, &SkipError{App: a.ID, Reason: "the app ID appears twice in the input"})
			continue
		}
		if k, other, taken := firstTaken(keys, owner); taken {
			errs = append(errs, &SkipError{App: a.ID, Reason: fmt.Sprintf(
				"%s host %q path %q is already routed to app %q; give this app another vhost or path", k.l, displayHost(k.host), k.prefix, other)})
			continue
		}
		ar := &appRoute{id: a.ID, backends: backends}
		t.apps[a.ID] = ar
		for _, k := range keys {
			owner[k] = a.ID
			t.hosts[k.l][k.host] = append(t.hosts[k.l][k.host], route{prefix: k.prefix, app: ar})
			if strings.HasPrefix(k.host, "*.") {
				t.wildcard[k.l] = true
			}
		}
	}
	for l := range t.hosts {
		for _, rs := range t.hosts[l] {
			sort.Slice(rs, func(i, j int) bool { return len(rs[i].prefix) > len(rs[j].prefix) })
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

// compile validates one app and lists the routes it claims. keys is nil
// when the whole app is skipped.
func compile(a *App) (keys []routeKey, backends []Backend, errs []error) {
	skip := func(format string, args ...any) ([]routeKey, []Backend, []error) {
		return nil, nil, []error{&SkipError{App: a.ID, Reason: fmt.Sprintf(format, args...)}}
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
	vhosts := make([]string, 0, len(e.VHosts))
	for _, h := range e.VHosts {
		n := normalizeHost(h)
		if len(n) > 253 || !vhostRE.MatchString(n) {
			return skip("vhost %q is not a valid host name (DNS name, optionally starting with *.)", h)
		}
		vhosts = append(vhosts, n)
	}
	for _, p := range e.Paths {
		if !strings.HasPrefix(p, "/") {
			return skip("path %q does not start with /", p)
		}
	}
	dns := normalizeHost(a.DNSName)
	if dns == "" || strings.HasPrefix(dns, "*.") || !vhostRE.MatchString(dns) {
		return skip("DNS name %q is not a valid host name", a.DNSName)
	}
	if mode == appspec.ExposureExternal && len(vhosts) == 0 && len(e.Paths) == 0 {
		return skip("an external app needs at least one vhost or path for the external listener")
	}

	seen := map[routeKey]bool{}
	add := func(k routeKey) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	add(routeKey{Internal, dns, "/"})
	// Without vhosts or paths an app is reached by its DNS name only.
	if len(vhosts) > 0 || len(e.Paths) > 0 {
		paths := e.Paths
		if len(paths) == 0 {
			paths = []string{"/"}
		}
		hosts := vhosts
		if len(hosts) == 0 {
			// Paths without vhosts apply to any host, as in marathon-lb.
			hosts = []string{""}
		}
		for _, h := range hosts {
			for _, p := range paths {
				add(routeKey{Internal, h, p})
				if mode == appspec.ExposureExternal {
					add(routeKey{External, h, p})
				}
			}
		}
	}

	taskSeen := map[string]bool{}
	for _, b := range a.Backends {
		switch {
		case b.TaskID == "":
			errs = append(errs, &SkipError{App: a.ID, Task: "?", Reason: "backend has no task ID"})
		case taskSeen[b.TaskID]:
			errs = append(errs, &SkipError{App: a.ID, Task: b.TaskID, Reason: "task appears twice"})
		case b.Host == "" || b.Port == 0 || b.Port > 65535:
			errs = append(errs, &SkipError{App: a.ID, Task: b.TaskID, Reason: fmt.Sprintf("address %q port %d is not usable", b.Host, b.Port)})
		default:
			taskSeen[b.TaskID] = true
			backends = append(backends, b)
		}
	}
	return keys, backends, errs
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
		if pathHasPrefix(path, r.prefix) {
			return r.app
		}
	}
	return nil
}

// pathHasPrefix matches whole path segments, so "/api" takes "/api" and
// "/api/x" but not "/apiary". marathon-lb's path_beg would take "/apiary"
// too; that surprise is not worth copying.
func pathHasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// AppIDs lists the routed apps, sorted.
func (t *Table) AppIDs() []string {
	ids := make([]string, 0, len(t.apps))
	for id := range t.apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
