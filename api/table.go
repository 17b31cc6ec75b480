package api

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flotilla-sched/flotilla/appspec"
)

// route is one entry of the route table: a method on a path pattern.
//
// Patterns are written as the docs write them. "{id}" is an app id, one or
// more segments (/prod/shop/web), at most one per pattern: Marathon
// recognises the suffixes /restart, /tasks[/{taskId}] and
// /versions[/{version}] at the end of the path, and so does the table,
// because it tries patterns in order and the suffixed ones come first. Any
// other "{name}" is one segment, and "{rest...}" at the end is any tail
// (a mounted handler's own paths).
type route struct {
	method  string // "" answers every method (the handler says 405 itself)
	pattern string
	// open routes are served without credentials. The list is short and
	// documented (docs/operating.md, Security): only /ping, which load
	// balancers probe without credentials, as they do Marathon's.
	open bool
	// local routes are served by a standby itself rather than forwarded to
	// the leader: they describe this replica (its metrics, its DNS view).
	local bool
	serve func(w http.ResponseWriter, r *http.Request, a routeArgs)

	segs []string
}

// routeArgs are the values of a pattern's wildcards.
type routeArgs struct {
	id  string // {id}, with its leading slash: "/prod/web"
	arg string // the one-segment wildcard, if any
}

type routeTable []*route

func newRouteTable(rs ...*route) routeTable {
	for _, r := range rs {
		r.segs = strings.Split(strings.TrimPrefix(r.pattern, "/"), "/")
	}
	return rs
}

// match returns the route for a request, or, when the path is known but
// not the method, the methods it takes.
func (t routeTable) match(method, path string) (*route, []string, routeArgs) {
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var allow []string
	var matched string
	for _, r := range t {
		if matched != "" && r.pattern != matched {
			break // one pattern's methods are adjacent
		}
		args, ok := r.matchPath(segs)
		if !ok {
			continue
		}
		if r.method == "" || r.method == method {
			return r, nil, args
		}
		matched = r.pattern
		allow = append(allow, r.method)
	}
	slices.Sort(allow)
	return nil, allow, routeArgs{}
}

func (r *route) matchPath(segs []string) (routeArgs, bool) {
	var a routeArgs
	ps := r.segs
	for i, p := range ps {
		switch {
		case p == "{rest...}":
			return a, true
		case p == "{id}":
			tail := ps[i+1:]
			n := len(segs) - i - len(tail) // segments the id takes
			if n < 1 {
				return a, false
			}
			a.id = "/" + strings.Join(segs[i:i+n], "/")
			for j, q := range tail {
				if !matchSeg(q, segs[i+n+j], &a) {
					return a, false
				}
			}
			return a, true
		case i >= len(segs) || !matchSeg(p, segs[i], &a):
			return a, false
		}
	}
	return a, len(segs) == len(ps)
}

func matchSeg(p, s string, a *routeArgs) bool {
	if strings.HasPrefix(p, "{") {
		a.arg = s
		return s != ""
	}
	return p == s
}

// routes is every endpoint the API serves. serve checks credentials for all
// of them but the open ones before anything is matched further, so this
// table is the whole answer to "what does this listener serve, and to whom".
func (s *Server) routes() routeTable {
	metrics := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
	h := func(f func(w http.ResponseWriter, r *http.Request) error) func(http.ResponseWriter, *http.Request, routeArgs) {
		return func(w http.ResponseWriter, r *http.Request, _ routeArgs) { s.do(w, r, f) }
	}
	byID := func(f func(w http.ResponseWriter, r *http.Request, id string) error) func(http.ResponseWriter, *http.Request, routeArgs) {
		return func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return f(w, r, a.id) })
		}
	}
	rs := []*route{
		{method: "", pattern: "/ping", open: true, local: true, serve: func(w http.ResponseWriter, _ *http.Request, _ routeArgs) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("pong\n")) // the client's loss alone
		}},
		{method: "", pattern: "/metrics", local: true, serve: func(w http.ResponseWriter, r *http.Request, _ routeArgs) {
			metrics.ServeHTTP(w, r)
		}},
		// Marathon 1.9+'s Prometheus path; the same metrics.
		{method: "", pattern: "/metrics/prometheus", local: true, serve: func(w http.ResponseWriter, r *http.Request, _ routeArgs) {
			metrics.ServeHTTP(w, r)
		}},
	}
	// Sorted, so the table (and its order of matching) is the same each run.
	for _, p := range slices.Sorted(maps.Keys(s.cfg.Mounts)) {
		mh := s.cfg.Mounts[p]
		rs = append(rs, &route{pattern: strings.TrimSuffix(p, "/") + "/{rest...}", local: true,
			serve: func(w http.ResponseWriter, r *http.Request, _ routeArgs) { mh.ServeHTTP(w, r) }})
	}
	rs = append(rs,
		&route{method: http.MethodGet, pattern: "/v2/apps", serve: h(s.listApps)},
		&route{method: http.MethodPost, pattern: "/v2/apps", serve: h(s.createApp)},
		&route{method: http.MethodPut, pattern: "/v2/apps", serve: h(func(w http.ResponseWriter, r *http.Request) error { return s.bulkUpdate(w, r, false) })},
		&route{method: http.MethodPatch, pattern: "/v2/apps", serve: h(func(w http.ResponseWriter, r *http.Request) error { return s.bulkUpdate(w, r, true) })},
	)
	for _, n := range slices.Sorted(maps.Keys(s.cfg.AppHandlers)) {
		ah := s.cfg.AppHandlers[n]
		rs = append(rs, &route{pattern: "/v2/apps/{id}/" + n, serve: func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			id := appspec.CanonicalID(a.id)
			if s.dep.App(id) == nil {
				writeJSON(w, http.StatusNotFound, notFoundApp(id))
				return
			}
			ah(w, r, id)
		}})
	}
	rs = append(rs,
		&route{method: http.MethodPost, pattern: "/v2/apps/{id}/restart", serve: byID(s.restartApp)},
		&route{method: http.MethodGet, pattern: "/v2/apps/{id}/tasks", serve: byID(s.appTasks)},
		&route{method: http.MethodDelete, pattern: "/v2/apps/{id}/tasks", serve: byID(func(w http.ResponseWriter, r *http.Request, id string) error {
			return s.killTasks(w, r, id, nil)
		})},
		&route{method: http.MethodGet, pattern: "/v2/apps/{id}/tasks/ended", serve: byID(s.endedTasks)},
		&route{method: http.MethodGet, pattern: "/v2/apps/{id}/tasks/{taskId}/logs", serve: func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error {
				return s.taskLogs(w, r, appspec.CanonicalID(a.id), a.arg)
			})
		}},
		&route{method: http.MethodDelete, pattern: "/v2/apps/{id}/tasks/{taskId}", serve: func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.killTasks(w, r, a.id, []string{a.arg}) })
		}},
		&route{method: http.MethodGet, pattern: "/v2/apps/{id}/versions", serve: byID(s.appVersions)},
		&route{method: http.MethodGet, pattern: "/v2/apps/{id}/versions/{version}", serve: func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.appVersion(w, r, a.id, a.arg) })
		}},
		&route{method: http.MethodGet, pattern: "/v2/apps/{id}", serve: byID(s.getApp)},
		&route{method: http.MethodPut, pattern: "/v2/apps/{id}", serve: byID(func(w http.ResponseWriter, r *http.Request, id string) error {
			return s.putApp(w, r, id, false)
		})},
		&route{method: http.MethodPatch, pattern: "/v2/apps/{id}", serve: byID(func(w http.ResponseWriter, r *http.Request, id string) error {
			return s.putApp(w, r, id, true)
		})},
		&route{method: http.MethodDelete, pattern: "/v2/apps/{id}", serve: byID(s.deleteApp)},
		&route{method: http.MethodGet, pattern: "/v2/groups", serve: h(func(w http.ResponseWriter, r *http.Request) error { return s.getGroup(w, r, "/") })},
		&route{method: http.MethodPost, pattern: "/v2/groups", serve: h(s.postGroup)},
		&route{method: http.MethodPut, pattern: "/v2/groups", serve: h(func(w http.ResponseWriter, r *http.Request) error { return s.putGroup(w, r, "/") })},
		&route{method: http.MethodDelete, pattern: "/v2/groups", serve: h(func(w http.ResponseWriter, r *http.Request) error { return s.deleteGroup(w, r, "/") })},
		// The root group's versions, as Marathon serves them (a group
		// named /versions is not addressable, as there).
		&route{method: http.MethodGet, pattern: "/v2/groups/versions", serve: h(func(w http.ResponseWriter, r *http.Request) error { return s.groupVersions(w, r, "/") })},
		&route{method: http.MethodGet, pattern: "/v2/groups/versions/{version}", serve: func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.groupVersion(w, r, "/", a.arg) })
		}},
		&route{method: http.MethodGet, pattern: "/v2/groups/{id}/versions", serve: byID(s.groupVersions)},
		&route{method: http.MethodGet, pattern: "/v2/groups/{id}/versions/{version}", serve: func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.groupVersion(w, r, a.id, a.arg) })
		}},
		&route{method: http.MethodGet, pattern: "/v2/groups/{id}", serve: byID(s.getGroup)},
		&route{method: http.MethodPut, pattern: "/v2/groups/{id}", serve: byID(s.putGroup)},
		&route{method: http.MethodPatch, pattern: "/v2/groups/{id}", serve: byID(s.putGroup)},
		&route{method: http.MethodDelete, pattern: "/v2/groups/{id}", serve: byID(s.deleteGroup)},
		&route{method: http.MethodGet, pattern: "/v2/tasks", serve: h(s.listTasks)},
		&route{method: http.MethodGet, pattern: "/v2/deployments", serve: h(s.listDeployments)},
		&route{method: http.MethodDelete, pattern: "/v2/deployments/{deploymentId}", serve: func(w http.ResponseWriter, r *http.Request, a routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.deleteDeployment(w, r, a.arg) })
		}},
		&route{method: http.MethodGet, pattern: "/v2/queue", serve: h(s.queue)},
		&route{method: http.MethodDelete, pattern: "/v2/queue/{id}/delay", serve: byID(s.resetDelay)},
		&route{method: http.MethodPost, pattern: "/v2/tasks/delete", serve: h(s.deleteTasks)},
		&route{method: http.MethodGet, pattern: "/v2/info", serve: h(s.info)},
		// A standby answers who leads itself; abdicating is the leader's.
		&route{method: http.MethodGet, pattern: "/v2/leader", local: true, serve: h(s.leader)},
		&route{method: http.MethodDelete, pattern: "/v2/leader", serve: h(s.abdicate)},
		&route{method: http.MethodGet, pattern: "/v2/events", serve: func(w http.ResponseWriter, r *http.Request, _ routeArgs) { s.events(w, r) }},
		&route{method: http.MethodGet, pattern: ViewPath, serve: h(s.view)},
	)
	rs = append(rs, s.podRoutes()...) // pods.go: /v2/pods
	rs = append(rs, s.uiRoutes()...)  // ui.go: the web UI, behind the same check
	return newRouteTable(rs...)
}
