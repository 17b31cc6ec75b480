package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
)

// examplePath fills a route pattern's wildcards with values that reach it.
func examplePath(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		switch {
		case s == "{id}":
			segs[i] = "walk/app" // two segments, as app ids with groups have
		case s == "{rest...}":
			segs[i] = "version"
		case strings.HasPrefix(s, "{"):
			segs[i] = "x1"
		}
	}
	return strings.Join(segs, "/")
}

// openRoutes is the documented list (docs/operating.md, Security) of what
// is served without credentials when --auth-* is set.
var openRoutes = []string{"/ping"}

// Every route in the table, taken from the table itself so a route added
// later is walked too: without credentials 401 (unless documented open),
// with them anything but 401.
func TestAuthCoversEveryRoute(t *testing.T) {
	t.Parallel()
	stub := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.Auth = Auth{Username: "ops", Password: "s3cret", Token: "tok-123"}
		c.Mounts = map[string]http.Handler{"/v1/": stub}
		c.AppHandlers = map[string]AppHandler{"autoscale": func(w http.ResponseWriter, _ *http.Request, _ string) {
			w.WriteHeader(http.StatusTeapot)
		}}
	})
	var open []string
	seen := map[string]bool{}
	for _, rt := range e.srv.table {
		if rt.open {
			open = append(open, rt.pattern)
		}
		seen[rt.pattern] = true
	}
	if strings.Join(open, " ") != strings.Join(openRoutes, " ") {
		t.Fatalf("open routes %v, documented %v", open, openRoutes)
	}
	for _, want := range []string{"/metrics", "/v1/{rest...}", "/v2/apps/{id}/autoscale", "/v2/events"} {
		if !seen[want] {
			t.Fatalf("route %s is not in the table", want)
		}
	}

	status := func(t *testing.T, method, path string, hdr ...string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, e.hs.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := e.hs.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		// Closed after the head: /v2/events would stream forever.
		if err := res.Body.Close(); err != nil {
			t.Logf("close %s %s: %v", method, path, err)
		}
		return res.StatusCode
	}

	for _, rt := range e.srv.table {
		method := rt.method
		if method == "" {
			method = http.MethodGet
		}
		path := examplePath(rt.pattern)
		t.Run(method+" "+rt.pattern, func(t *testing.T) {
			if got, _, _ := e.srv.table.match(method, path); got != rt {
				t.Fatalf("%s %s does not reach its own route", method, path)
			}
			got := status(t, method, path)
			switch {
			case rt.open && got == http.StatusUnauthorized:
				t.Errorf("open route answered 401 without credentials")
			case !rt.open && got != http.StatusUnauthorized:
				t.Errorf("without credentials: %d, want 401", got)
			}
			for _, cred := range [][]string{{"Authorization", "Bearer tok-123"}, {"Authorization", "Basic b3BzOnMzY3JldA=="}} {
				if got := status(t, method, path, cred...); got == http.StatusUnauthorized {
					t.Errorf("with %s: 401", strings.Fields(cred[1])[0])
				}
			}
		})
	}

	// What no route serves is not described to a stranger either.
	for _, c := range []struct{ method, path string }{{"GET", "/nowhere"}, {"PUT", "/v2/queue"}} {
		if got := status(t, c.method, c.path); got != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials: %d, want 401", c.method, c.path, got)
		}
	}
}

// The table answers what the switch it replaced answered.
func TestRouteMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.AppHandlers = map[string]AppHandler{"autoscale": func(http.ResponseWriter, *http.Request, string) {}}
	})
	tests := []struct {
		name, method, path string
		pattern, id, arg   string
		allow              string
	}{
		{"list", "GET", "/v2/apps", "/v2/apps", "", "", ""},
		{"list trailing slash", "GET", "/v2/apps/", "/v2/apps", "", "", ""},
		{"app with groups", "GET", "/v2/apps/prod/shop/web", "/v2/apps/{id}", "/prod/shop/web", "", ""},
		{"app trailing slash", "PUT", "/v2/apps/web/", "/v2/apps/{id}", "/web", "", ""},
		{"restart", "POST", "/v2/apps/prod/web/restart", "/v2/apps/{id}/restart", "/prod/web", "", ""},
		{"restart wrong method", "GET", "/v2/apps/web/restart", "", "", "", "POST"},
		{"tasks", "DELETE", "/v2/apps/web/tasks", "/v2/apps/{id}/tasks", "/web", "", ""},
		{"one task", "DELETE", "/v2/apps/a/b/tasks/t-1", "/v2/apps/{id}/tasks/{taskId}", "/a/b", "t-1", ""},
		{"version", "GET", "/v2/apps/web/versions/2026-01-01", "/v2/apps/{id}/versions/{version}", "/web", "2026-01-01", ""},
		{"app handler", "GET", "/v2/apps/a/b/autoscale", "/v2/apps/{id}/autoscale", "/a/b", "", ""},
		{"an app named tasks", "GET", "/v2/apps/tasks", "/v2/apps/{id}", "/tasks", "", ""},
		{"deployment", "DELETE", "/v2/deployments/d-1", "/v2/deployments/{deploymentId}", "", "d-1", ""},
		{"leader methods", "POST", "/v2/leader", "", "", "", "DELETE GET"},
		{"unknown", "GET", "/v3/apps", "", "", "", ""},
		{"root is the UI", "GET", "/", "/", "", "", ""},
		{"ui asset", "GET", "/ui/app.js", "/ui/{rest...}", "", "", ""},
		{"task logs", "GET", "/v2/apps/a/b/tasks/t-1/logs", "/v2/apps/{id}/tasks/{taskId}/logs", "/a/b", "t-1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt, allow, a := e.srv.table.match(tc.method, tc.path)
			pattern := ""
			if rt != nil {
				pattern = rt.pattern
			}
			if pattern != tc.pattern || a.id != tc.id || a.arg != tc.arg || strings.Join(allow, " ") != tc.allow {
				t.Fatalf("got %q id %q arg %q allow %v; want %q id %q arg %q allow %q",
					pattern, a.id, a.arg, allow, tc.pattern, tc.id, tc.arg, tc.allow)
			}
		})
	}
}
