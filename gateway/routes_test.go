package gateway

import (
	"errors"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
)

func ext(vhosts []string, paths ...string) appspec.Exposure {
	return appspec.Exposure{Mode: appspec.ExposureExternal, VHosts: vhosts, Paths: paths}
}

func internal(vhosts []string, paths ...string) appspec.Exposure {
	return appspec.Exposure{Mode: appspec.ExposureInternal, VHosts: vhosts, Paths: paths}
}

var routingApps = []App{
	{ID: "/prod/shop/web", DNSName: "web-shop-prod.flotilla.mesos", Exposure: ext([]string{"shop.example.com"})},
	{ID: "/prod/shop/api", DNSName: "api-shop-prod.flotilla.mesos", Exposure: ext([]string{"shop.example.com"}, "/api", "/v2/")},
	{ID: "/ops/admin", DNSName: "admin-ops.flotilla.mesos", Exposure: internal([]string{"admin.example.com"})},
	{ID: "/wild", DNSName: "wild.flotilla.mesos", Exposure: ext([]string{"*.example.org"})},
	{ID: "/deep", DNSName: "deep.flotilla.mesos", Exposure: ext([]string{"*.b.example.org"})},
	{ID: "/static", DNSName: "static.flotilla.mesos", Exposure: ext(nil, "/static")},
	{ID: "/db", DNSName: "db.flotilla.mesos"}, // zero Exposure: internal
}

func TestMatch(t *testing.T) {
	t.Parallel()
	table, errs := BuildRoutes(routingApps)
	if len(errs) != 0 {
		t.Fatalf("BuildRoutes: %v", errs)
	}
	cases := []struct {
		name string
		l    Listener
		host string
		path string
		want string // "" means no route
	}{
		{"external vhost", External, "shop.example.com", "/", "/prod/shop/web"},
		{"port, case and trailing dot ignored", External, "SHOP.Example.com.:8000", "/cart", "/prod/shop/web"},
		{"longest prefix wins", External, "shop.example.com", "/api/v1/items", "/prod/shop/api"},
		{"prefix matches whole segment only", External, "shop.example.com", "/apiary", "/prod/shop/web"},
		{"prefix itself", External, "shop.example.com", "/api", "/prod/shop/api"},
		{"prefix with trailing slash", External, "shop.example.com", "/v2/apps", "/prod/shop/api"},
		{"prefix with trailing slash needs the slash", External, "shop.example.com", "/v2", "/prod/shop/web"},
		{"internal app vhost not external", External, "admin.example.com", "/", ""},
		{"internal app dns name not external", External, "admin-ops.flotilla.mesos", "/", ""},
		{"internal app vhost internal", Internal, "admin.example.com", "/x", "/ops/admin"},
		{"internal app dns name internal", Internal, "admin-ops.flotilla.mesos", "/", "/ops/admin"},
		{"external app dns name only internal", External, "web-shop-prod.flotilla.mesos", "/", ""},
		{"external app dns name internal", Internal, "web-shop-prod.flotilla.mesos", "/", "/prod/shop/web"},
		{"external app vhost on internal too", Internal, "shop.example.com", "/api", "/prod/shop/api"},
		{"app without exposure", Internal, "db.flotilla.mesos", "/any/thing", "/db"},
		{"app without exposure not external", External, "db.flotilla.mesos", "/", ""},
		{"wildcard", External, "x.example.org", "/", "/wild"},
		{"wildcard two labels deep", External, "x.y.example.org", "/", "/wild"},
		{"more specific wildcard first", External, "x.b.example.org", "/", "/deep"},
		{"wildcard needs a label", External, "example.org", "/", ""},
		{"path on any host", External, "whatever.test", "/static/logo.png", "/static"},
		{"path on any host, internal listener", Internal, "whatever.test", "/static", "/static"},
		{"host routes before any-host routes", External, "shop.example.com", "/static/x", "/prod/shop/web"},
		{"any-host path does not match elsewhere", External, "whatever.test", "/", ""},
		{"unknown host", Internal, "nope.flotilla.mesos", "/", ""},
		{"ipv6 literal host", External, "[::1]:8000", "/", ""},
		{"empty host", External, "", "/static", "/static"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := table.Match(tc.l, tc.host, tc.path)
			if ok != (tc.want != "") || got != tc.want {
				t.Fatalf("Match(%s, %q, %q) = %q, %v; want %q", tc.l, tc.host, tc.path, got, ok, tc.want)
			}
		})
	}
}

func TestBuildRoutesSkipsBadItems(t *testing.T) {
	t.Parallel()
	good := App{ID: "/good", DNSName: "good.flotilla.mesos", Exposure: ext([]string{"good.example.com"}),
		Backends: []Backend{{TaskID: "g1", Host: "127.0.0.1", Port: 1}}, Services: []Service{{Index: 0, Port: 10001}}}
	cases := []struct {
		name         string
		bad          App
		wantErr      string // substring of the one error
		wantTask     string // SkipError.Task
		wantRoute    bool   // the bad app is still routed (only a backend was dropped)
		wantBackends int    // backends it keeps then
	}{
		{"no id", App{DNSName: "x.flotilla.mesos"}, "has no ID", "", false, 0},
		{"bad mode", App{ID: "/x", DNSName: "x.flotilla.mesos", Exposure: appspec.Exposure{Mode: "public"}}, `mode "public"`, "", false, 0},
		{"bad vhost", App{ID: "/x", DNSName: "x.flotilla.mesos", Exposure: ext([]string{"bad_host"})}, `vhost "bad_host"`, "", false, 0},
		{"relative path", App{ID: "/x", DNSName: "x.flotilla.mesos", Exposure: ext([]string{"x.example.com"}, "api")}, `path "api"`, "", false, 0},
		{"taken service port", App{ID: "/x", DNSName: "x.flotilla.mesos", Services: []Service{{Index: 0, Port: 10001}}}, `service port 10001 is already served for app "/good"`, "", true, 0},
		{"no dns name", App{ID: "/x"}, `DNS name ""`, "", false, 0},
		{"taken vhost", App{ID: "/z", DNSName: "z.flotilla.mesos", Exposure: ext([]string{"good.example.com"})}, `already routed to app "/good"`, "", false, 0},
		{"taken dns name", App{ID: "/x", DNSName: "good.flotilla.mesos"}, `already routed to app "/good"`, "", false, 0},
		{"duplicate id", App{ID: "/good", DNSName: "other.flotilla.mesos"}, "appears twice", "", false, 0},
		{"port zero", App{ID: "/x", DNSName: "x.flotilla.mesos", Backends: []Backend{{TaskID: "t1", Host: "127.0.0.1"}}}, "not usable", "t1", true, 0},
		{"backend without host", App{ID: "/x", DNSName: "x.flotilla.mesos", Backends: []Backend{{TaskID: "t1", Port: 80}}}, "not usable", "t1", true, 0},
		{"duplicate task", App{ID: "/x", DNSName: "x.flotilla.mesos", Backends: []Backend{
			{TaskID: "t1", Host: "127.0.0.1", Port: 80}, {TaskID: "t1", Host: "127.0.0.1", Port: 81}}}, "twice", "t1", true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The bad app comes first in the input, to show order does not
			// let it block the good one.
			in := []App{tc.bad, good}
			if tc.bad.ID == good.ID {
				in = []App{good, tc.bad} // of two equal IDs the first wins
			}
			table, errs := BuildRoutes(in)
			if len(errs) != 1 {
				t.Fatalf("errors = %v; want exactly one", errs)
			}
			var se *SkipError
			if !errors.As(errs[0], &se) || !strings.Contains(se.Error(), tc.wantErr) || se.Task != tc.wantTask {
				t.Fatalf("error = %#v; want a SkipError with task %q containing %q", errs[0], tc.wantTask, tc.wantErr)
			}
			if id, ok := table.Match(External, "good.example.com", "/"); !ok || id != "/good" {
				t.Fatalf("good app not routed: %q %v", id, ok)
			}
			if len(table.apps["/good"].backends) != 1 {
				t.Fatalf("good app backends = %v", table.apps["/good"].backends)
			}
			id, ok := table.Match(Internal, tc.bad.DNSName, "/")
			if routed := ok && id == tc.bad.ID; routed != tc.wantRoute {
				t.Fatalf("bad app routed = %v; want %v (apps %v)", routed, tc.wantRoute, table.AppIDs())
			}
			if tc.wantRoute {
				if got := len(table.apps[tc.bad.ID].backends); got != tc.wantBackends {
					t.Fatalf("bad app has %d backends; want %d", got, tc.wantBackends)
				}
			}
		})
	}
}

func TestConflictKeepsIncumbent(t *testing.T) {
	t.Parallel()
	b := App{ID: "/b", DNSName: "b.flotilla.mesos", Exposure: ext([]string{"x.example.com"})}
	a := App{ID: "/a", DNSName: "a.flotilla.mesos", Exposure: ext([]string{"x.example.com"})}

	// Pure build: the smaller ID wins.
	table, errs := BuildRoutes([]App{b, a})
	if id, _ := table.Match(External, "x.example.com", "/"); id != "/a" || len(errs) != 1 {
		t.Fatalf("pure build: x.example.com → %q, errs %v; want /a and one error", id, errs)
	}

	// The gateway: /b holds the vhost first, so deploying /a cannot take it.
	g := newTestGateway(t, Config{})
	g.Update([]App{b})
	g.Update([]App{a, b})
	if id, _ := g.Table().Match(External, "x.example.com", "/"); id != "/b" {
		t.Fatalf("after update x.example.com → %q; want the incumbent /b", id)
	}
	if p := g.Problems(); len(p) != 1 || !strings.Contains(p[0].Error(), `"/a" skipped`) {
		t.Fatalf("problems = %v; want /a skipped", p)
	}
}

func TestPathHasPrefix(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path, prefix string
		want               bool
	}{
		{"root", "/anything", "/", true},
		{"equal", "/api", "/api", true},
		{"below", "/api/x", "/api", true},
		{"sibling", "/apiary", "/api", false},
		{"shorter", "/ap", "/api", false},
		{"slash prefix below", "/v2/x", "/v2/", true},
		{"slash prefix without slash", "/v2", "/v2/", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := pathHasPrefix(tc.path, tc.prefix); got != tc.want {
				t.Fatalf("pathHasPrefix(%q, %q) = %v", tc.path, tc.prefix, got)
			}
		})
	}
}

// HAPROXY_{n}_BACKEND_WEIGHT: of two apps on the same host and path, the
// heavier wins, whichever holds it already.
func TestWeightDecidesSharedRoute(t *testing.T) {
	t.Parallel()
	light := App{ID: "/a-light", DNSName: "a.flotilla.mesos", Exposure: ext([]string{"x.example.com"})}
	heavy := App{ID: "/b-heavy", DNSName: "b.flotilla.mesos", Exposure: ext([]string{"x.example.com"}), Options: Options{Weight: 5}}
	first, _ := BuildRoutes([]App{light})
	table, errs := buildRoutes([]App{light, heavy}, first)
	if id, _ := table.Match(External, "x.example.com", "/"); id != "/b-heavy" {
		t.Fatalf("x.example.com goes to %q; want the heavier /b-heavy (errors %v)", id, errs)
	}
}

// Paths from labels match as HAProxy's path_beg (plain prefix); the
// exposure field's on segment boundaries.
func TestPlainPathsFromLabels(t *testing.T) {
	t.Parallel()
	labels := App{ID: "/lb", DNSName: "lb.flotilla.mesos", Exposure: ext([]string{"x.example.com"}, "/api"), Options: Options{PlainPaths: true}}
	field := App{ID: "/f", DNSName: "f.flotilla.mesos", Exposure: ext([]string{"y.example.com"}, "/api")}
	table, errs := BuildRoutes([]App{labels, field})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if id, ok := table.Match(External, "x.example.com", "/apiary"); !ok || id != "/lb" {
		t.Fatalf("label path /api on /apiary: %q %v; want /lb (path_beg)", id, ok)
	}
	if _, ok := table.Match(External, "y.example.com", "/apiary"); ok {
		t.Fatal("exposure path /api took /apiary")
	}
}

// A later port index with a vhost of its own is routed to that port's
// backends, on the external listener only when that port is external.
func TestLaterPortVHost(t *testing.T) {
	t.Parallel()
	a := App{ID: "/multi", DNSName: "multi.flotilla.mesos", Backends: []Backend{{TaskID: "t", Host: "127.0.0.1", Port: 31000}},
		Services: []Service{
			{Index: 1, VHosts: []string{"admin.example.com"}, Backends: []Backend{{TaskID: "t", Host: "127.0.0.1", Port: 31001}}},
			{Index: 2, VHosts: []string{"pub.example.com"}, External: true, Backends: []Backend{{TaskID: "t", Host: "127.0.0.1", Port: 31002}}},
		}}
	table, errs := BuildRoutes([]App{a})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	for _, tc := range []struct {
		l    Listener
		host string
		port uint32 // 0: no route
	}{
		{Internal, "multi.flotilla.mesos", 31000},
		{Internal, "admin.example.com", 31001},
		{External, "admin.example.com", 0},
		{External, "pub.example.com", 31002},
	} {
		ar := table.match(tc.l, tc.host, "/")
		switch {
		case tc.port == 0 && ar != nil:
			t.Errorf("%s %s routed to %s; want none", tc.l, tc.host, ar.key)
		case tc.port != 0 && (ar == nil || ar.id != "/multi" || ar.backends[0].Port != tc.port):
			t.Errorf("%s %s: route %+v; want /multi's port %d", tc.l, tc.host, ar, tc.port)
		}
	}
}
