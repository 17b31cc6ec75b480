package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/miekg/dns"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/mesosdns"
)

func boolp(b bool) *bool { return &b }

func TestTasksPublishesOnlyRunningHealthyReadyTasks(t *testing.T) {
	t.Parallel()
	checked := &appspec.App{ID: "/web", HealthChecks: []appspec.HealthCheck{{Protocol: "MESOS_HTTP"}},
		PortDefinitions: []appspec.PortDefinition{{Name: "http"}, {Name: "dns", Protocol: "udp"}}}
	plain := &appspec.App{ID: "/prod/api"}
	snap := &framework.Snapshot{
		Apps: []*appspec.App{checked, plain},
		Tasks: []framework.Task{
			{ID: "a", AppID: "/web", Host: "127.0.0.1", Ports: []uint64{31000, 31001}, State: mesos.TASK_RUNNING, Healthy: boolp(true)},
			{ID: "b", AppID: "/web", Host: "127.0.0.1", State: mesos.TASK_RUNNING, Healthy: boolp(false)},
			{ID: "c", AppID: "/web", Host: "127.0.0.1", State: mesos.TASK_RUNNING}, // no result yet
			{ID: "d", AppID: "/web", Host: "127.0.0.1", State: mesos.TASK_RUNNING, Healthy: boolp(true), Killing: true},
			{ID: "e", AppID: "/prod/api", Host: "127.0.0.2", State: mesos.TASK_RUNNING},
			{ID: "f", AppID: "/prod/api", Host: "127.0.0.2", State: mesos.TASK_STAGING},
			{ID: "g", AppID: "/gone", Host: "127.0.0.2", State: mesos.TASK_RUNNING}, // app unknown
			{ID: "h", AppID: "/web", Host: "127.0.0.1", State: mesos.TASK_RUNNING, Healthy: boolp(true), Ready: boolp(false)},
			{ID: "i", AppID: "/web", Host: "127.0.0.1", State: mesos.TASK_RUNNING, Healthy: boolp(true), Ready: boolp(true)},
		},
	}
	at := time.Unix(100, 0)
	got := Tasks(snap, map[string]time.Time{"a": at}, map[string][]net.IP{"127.0.0.1": {net.IPv4(127, 0, 0, 1)}})
	published := map[string]bool{}
	for _, dt := range got {
		published[dt.ID] = dt.Published
	}
	want := map[string]bool{"a": true, "b": false, "c": false, "d": false, "e": true, "f": false, "g": false,
		"h": false, "i": true} // h: healthy but its readiness check has not passed
	for id, w := range want {
		if published[id] != w {
			t.Errorf("task %s published=%v, want %v", id, published[id], w)
		}
	}
	a := got[0]
	if a.Name != "web" || !a.Observed.Equal(at) || len(a.IPs) != 1 {
		t.Fatalf("task a = %+v", a)
	}
	if len(a.Ports) != 2 || a.Ports[0] != (mesosdns.Port{Number: 31000, Protocol: "tcp", Name: "http"}) ||
		a.Ports[1] != (mesosdns.Port{Number: 31001, Protocol: "udp", Name: "dns"}) {
		t.Fatalf("ports of a = %+v", a.Ports)
	}
	if got[4].Name != "api.prod" {
		t.Fatalf("nested app task name = %q, want api.prod (Marathon's reversed path)", got[4].Name)
	}
}

// TestFeedFollowsTheScheduler runs the real scheduler (with the recording
// fake of Mesos) and the real DNS server: records appear when tasks turn
// healthy and vanish when they die.
func TestFeedFollowsTheScheduler(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sched := framework.New(framework.Config{ReconcileSettle: -1})
	rec := &framework.Recorder{}
	in := make(chan framework.Input, 16)
	go sched.Run(ctx, in, rec)

	srv, err := mesosdns.New(mesosdns.Config{Addr: "127.0.0.1:0", Domain: "mesos", Framework: "flotilla"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	feed := New(Config{Scheduler: sched, DNS: srv})
	go feed.Run(ctx)

	app := appspec.App{ID: "/web", Instances: 2, CPUs: 0.1, Mem: 32, Cmd: "sleep 1000",
		PortDefinitions: []appspec.PortDefinition{{}},
		HealthChecks:    []appspec.HealthCheck{{Protocol: "MESOS_TCP"}}}
	sched.PutApp(app)
	in <- framework.SubscribedInput("fw-1")
	in <- framework.OffersInput(framework.TestOffer("o1", "s1", "127.0.0.1", 4, 4096, 31000, 31100, nil))
	var launched []mesos.TaskInfo
	for ctx.Err() == nil && len(launched) < 2 {
		launched = rec.Launched()
		time.Sleep(10 * time.Millisecond)
	}
	if len(launched) != 2 {
		t.Fatalf("launched %d tasks, want 2", len(launched))
	}
	for _, ti := range launched {
		st := framework.TestStatus(ti.TaskID.Value, "s1", mesos.TASK_RUNNING, true)
		in <- framework.UpdateInput(st)
		st.Healthy = boolp(true)
		st.Reason = mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum()
		in <- framework.UpdateInput(st)
	}
	addr := srv.UDPAddr().String()
	waitAnswers(ctx, t, addr, "_web._tcp.flotilla.mesos.", 2)

	in <- framework.UpdateInput(framework.TestStatus(launched[0].TaskID.Value, "s1", mesos.TASK_FAILED, true))
	waitAnswers(ctx, t, addr, "_web._tcp.flotilla.mesos.", 1)
}

// waitAnswers polls DNS until the SRV name has n answers.
func waitAnswers(ctx context.Context, t *testing.T, addr, name string, n int) {
	t.Helper()
	c := &dns.Client{Timeout: time.Second}
	var last []string
	for ctx.Err() == nil {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeSRV)
		r, _, err := c.Exchange(m, addr)
		if err == nil {
			last = last[:0]
			for _, rr := range r.Answer {
				if srv, ok := rr.(*dns.SRV); ok {
					last = append(last, srv.Target)
				}
			}
			if len(last) == n {
				sort.Strings(last)
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: got %d SRV answers %v, want %d", name, len(last), last, n)
}

func TestRoutesCarryOnlyPublishedBackendsAndExposure(t *testing.T) {
	t.Parallel()
	ext := &appspec.App{ID: "/shop/web", Exposure: &appspec.Exposure{Mode: "external", VHosts: []string{"shop.example.com"}}}
	internal := &appspec.App{ID: "/api"}
	snap := &framework.Snapshot{
		Apps: []*appspec.App{ext, internal},
		Tasks: []framework.Task{
			{ID: "w1", AppID: "/shop/web", Host: "127.0.0.2", Ports: []uint64{31000, 31001}, State: mesos.TASK_RUNNING},
			{ID: "w2", AppID: "/shop/web", Host: "127.0.0.3", Ports: []uint64{31500}, State: mesos.TASK_STAGING},
			{ID: "a1", AppID: "/api", Host: "127.0.0.1", State: mesos.TASK_RUNNING}, // no port: no backend
		},
	}
	got := Routes(snap, "mesos", "flotilla")
	if len(got) != 2 {
		t.Fatalf("got %d apps, want 2: %+v", len(got), got)
	}
	web := got[0]
	if web.ID != "/shop/web" || web.DNSName != "web-shop.flotilla.mesos" || web.Exposure.Mode != "external" {
		t.Fatalf("web route = %+v", web)
	}
	if len(web.Backends) != 1 || web.Backends[0] != (gateway.Backend{TaskID: "w1", Host: "127.0.0.2", Port: 31000}) {
		t.Fatalf("web backends = %+v, want only the running task's first port", web.Backends)
	}
	if api := got[1]; api.Exposure.Mode == "external" || len(api.Backends) != 0 {
		t.Fatalf("api route = %+v, want internal with no backends", api)
	}
}

func TestInGroups(t *testing.T) {
	snap := &framework.Snapshot{Apps: []*appspec.App{
		{ID: "/lb-ext", Labels: map[string]string{"HAPROXY_GROUP": "external"}},
		{ID: "/lb-both", Labels: map[string]string{"HAPROXY_GROUP": "internal, canary"}},
		{ID: "/field-ext", Exposure: &appspec.Exposure{Mode: "external", VHosts: []string{"x.example.com"}}},
		{ID: "/plain"},
	}}
	routes := Routes(snap, "mesos", "flotilla")
	ids := func(rs []gateway.App) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		groups []string
		want   string
	}{
		{nil, "/lb-ext /lb-both /field-ext /plain"},
		{[]string{"external"}, "/lb-ext /field-ext"},
		{[]string{"canary"}, "/lb-both"},
		{[]string{"internal", "external"}, "/lb-ext /lb-both /field-ext"},
		{[]string{"nobody"}, ""},
	} {
		if got := ids(InGroups(routes, snap, tc.groups)); got != tc.want {
			t.Errorf("groups %v: %q, want %q", tc.groups, got, tc.want)
		}
	}
}

func TestKnownPorts(t *testing.T) {
	local := &framework.Snapshot{Tasks: []framework.Task{
		{ID: "a", AgentID: "ag1", Host: "h1", Ports: []uint64{31000}},
		{ID: "b", AgentID: "ag1", Adopted: true}, // adopted without a record
		{ID: "c", AgentID: "ag2", Adopted: true}, // on another agent than the view says: not taken
		{ID: "d", AgentID: "ag3", Adopted: true}, // unknown to the view
	}}
	known := &framework.Snapshot{Tasks: []framework.Task{
		{ID: "a", AgentID: "ag1", Host: "h1", Ports: []uint64{39999}},
		{ID: "b", AgentID: "ag1", Host: "h1", Ports: []uint64{31001, 31002}},
		{ID: "c", AgentID: "ag9", Host: "h9", Ports: []uint64{31003}},
	}}
	out := KnownPorts(local, known)
	got := map[string]string{}
	for _, tk := range out.Tasks {
		got[tk.ID] = fmt.Sprint(tk.Host, tk.Ports)
	}
	want := map[string]string{"a": "h1[31000]", "b": "h1[31001 31002]", "c": "[]", "d": "[]"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("task %s: %q, want %q", id, got[id], w)
		}
	}
	if len(local.Tasks[1].Ports) != 0 {
		t.Errorf("the local snapshot was modified: %+v", local.Tasks[1])
	}
	if KnownPorts(local, &framework.Snapshot{}) != local {
		t.Errorf("nothing to fill in, yet a copy was made")
	}
}

func TestCovers(t *testing.T) {
	apps := []*appspec.App{{ID: "/a"}, {ID: "/b"}}
	run := func(id, app string, ports ...uint64) framework.Task {
		return framework.Task{ID: id, AppID: app, State: mesos.TASK_RUNNING, Ports: ports}
	}
	followed := &framework.Snapshot{Apps: apps, Tasks: []framework.Task{run("a1", "/a", 1), run("b1", "/b", 2)}}
	for _, tc := range []struct {
		name  string
		tasks []framework.Task
		want  bool
	}{
		{"same tasks", []framework.Task{run("a1", "/a", 1), run("b1", "/b", 2)}, true},
		{"other tasks of each app", []framework.Task{run("a2", "/a", 3), run("b2", "/b", 4)}, true},
		{"b not adopted yet", []framework.Task{run("a1", "/a", 1)}, false},
		{"b adopted without ports", []framework.Task{run("a1", "/a", 1), run("b1", "/b")}, false},
		{"b staging", []framework.Task{run("a1", "/a", 1), {ID: "b1", AppID: "/b", State: mesos.TASK_STAGING, Ports: []uint64{2}}}, false},
	} {
		if got := Covers(&framework.Snapshot{Apps: apps, Tasks: tc.tasks}, followed); got != tc.want {
			t.Errorf("%s: Covers = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestHostLookups: a failed agent-hostname lookup is retried after
// hostRetry (it used to be cached as nothing for ever), a good answer
// survives a passing failure, and hosts no task is on are forgotten.
func TestHostLookups(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	calls := map[string]int{}
	fail := map[string]bool{"bad.example": true}
	f := New(Config{Clock: clk, Resolve: func(_ context.Context, host string) ([]net.IP, error) {
		calls[host]++
		if fail[host] {
			return nil, errors.New("no such host")
		}
		return []net.IP{net.ParseIP("127.0.0.7")}, nil
	}})
	snap := &framework.Snapshot{Tasks: []framework.Task{{ID: "a", Host: "bad.example"}, {ID: "b", Host: "good.example"}, {ID: "c", Host: "127.0.0.1"}}}
	ips := f.resolveHosts(context.Background(), snap)
	if len(ips["bad.example"]) != 0 || len(ips["good.example"]) != 1 || ips["127.0.0.1"][0].String() != "127.0.0.1" {
		t.Fatalf("first lookups: %v", ips)
	}
	f.resolveHosts(context.Background(), snap)
	if calls["bad.example"] != 1 || calls["good.example"] != 1 {
		t.Fatalf("lookups repeated within their TTL: %v", calls)
	}
	clk.Step(hostRetry)
	fail["bad.example"], fail["good.example"] = false, true
	ips = f.resolveHosts(context.Background(), snap)
	if calls["bad.example"] != 2 || len(ips["bad.example"]) != 1 {
		t.Fatalf("a failed lookup was not retried after %v: calls %v, ips %v", hostRetry, calls, ips)
	}
	clk.Step(hostRefresh)
	ips = f.resolveHosts(context.Background(), snap)
	if calls["good.example"] != 2 || len(ips["good.example"]) != 1 {
		t.Fatalf("a failed refresh dropped the last good answer: calls %v, ips %v", calls, ips)
	}
	f.resolveHosts(context.Background(), &framework.Snapshot{Tasks: []framework.Task{{ID: "b", Host: "good.example"}}})
	if _, kept := f.hosts["bad.example"]; kept {
		t.Errorf("a host no task is on stays cached")
	}
}

// Every port index gets its own backends (task.Ports[n]) and what
// marathon-lb's HAPROXY_{n}_* labels say.
func TestRoutesFromLabelsPerPort(t *testing.T) {
	t.Parallel()
	app := &appspec.App{ID: "/shop", PortDefinitions: []appspec.PortDefinition{{Port: 10000}, {Port: 10001}, {Port: 10002}, {Port: 10003}},
		Labels: map[string]string{
			"HAPROXY_GROUP":   "internal",
			"HAPROXY_0_VHOST": "web.example.com", "HAPROXY_0_BALANCE": "leastconn", "HAPROXY_0_STICKY": "true",
			"HAPROXY_0_REDIRECT_TO_HTTPS": "true", "HAPROXY_0_USE_HSTS": "yes", "HAPROXY_0_BACKEND_WEIGHT": "3",
			"HAPROXY_1_PORT": "15001", "HAPROXY_1_GROUP": "external", "HAPROXY_1_MODE": "tcp", "HAPROXY_1_BALANCE": "source",
			"HAPROXY_1_SSL_CERT": "/etc/certs/db.pem",
			"HAPROXY_2_ENABLED":  "false",
			"HAPROXY_3_VHOST":    "admin.example.com", "HAPROXY_3_PATH": "/admin",
		}}
	snap := &framework.Snapshot{Apps: []*appspec.App{app}, Tasks: []framework.Task{
		{ID: "s1", AppID: "/shop", Host: "127.0.0.2", Ports: []uint64{31000, 31001, 31002, 31003}, State: mesos.TASK_RUNNING},
	}}
	got := Routes(snap, "mesos", "flotilla")
	if len(got) != 1 {
		t.Fatalf("%d apps", len(got))
	}
	r := got[0]
	be := func(p uint32) []gateway.Backend { return []gateway.Backend{{TaskID: "s1", Host: "127.0.0.2", Port: p}} }
	first := gateway.Options{Balance: "leastconn", Sticky: true, RedirectToHTTPS: true, UseHSTS: true, PlainPaths: true, Weight: 3}
	want := gateway.App{ID: "/shop", DNSName: "shop.flotilla.mesos",
		Exposure: appspec.Exposure{Mode: "internal", VHosts: []string{"web.example.com"}},
		Backends: be(31000), Options: first,
		Services: []gateway.Service{
			{Index: 0, Port: 10000, Mode: "http", Options: first, Backends: be(31000)},
			{Index: 1, Port: 15001, Mode: "tcp", External: true, CertFile: "/etc/certs/db.pem",
				Options: gateway.Options{Balance: "source", PlainPaths: true}, Backends: be(31001)},
			// index 2 is disabled: absent
			{Index: 3, Port: 10003, Mode: "http", VHosts: []string{"admin.example.com"}, Paths: []string{"/admin"},
				Options: gateway.Options{Balance: "roundrobin", PlainPaths: true, Weight: 1}, Backends: be(31003)},
		}}
	if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", want) {
		t.Fatalf("route\n got %+v\nwant %+v", r, want)
	}

	// --gateway-groups external: only port 1 (HAPROXY_1_GROUP) is served;
	// the first port, in group internal, is hidden.
	ext := InGroups(got, snap, []string{"external"})
	if len(ext) != 1 || !ext[0].Hidden || len(ext[0].Services) != 1 || ext[0].Services[0].Index != 1 {
		t.Fatalf("external group: %+v; want /shop hidden with port index 1 only", ext)
	}
	if all := InGroups(got, snap, []string{"*"}); len(all) != 1 || all[0].Hidden || len(all[0].Services) != 3 {
		t.Fatalf("group *: %+v; want everything", all)
	}
}

// TestPodRoutesAndRecords: a pod's endpoints are its ports: an SRV
// record per endpoint name, published only once every health-checked
// container is healthy; the gateway routes the endpoint whose labels say
// external, on the external listener, and no other.
func TestPodRoutesAndRecords(t *testing.T) {
	t.Parallel()
	p, err := appspec.DecodePod(strings.NewReader(`{"id": "/shop",
		"containers": [
			{"name": "app", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "web", "hostPort": 0, "labels": {"HAPROXY_GROUP": "external", "HAPROXY_VHOST": "shop.example.com"}}],
			 "healthCheck": {"http": {"endpoint": "web"}}},
			{"name": "admin", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "admin", "hostPort": 0}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	app := p.App()
	task := framework.Task{ID: "shop.instance-1", AppID: "/shop", Host: "127.0.0.2", Ports: []uint64{31000, 31001}, State: mesos.TASK_RUNNING, Healthy: boolp(false)}
	snap := &framework.Snapshot{Apps: []*appspec.App{app}, Tasks: []framework.Task{task}}
	if ts := Tasks(snap, nil, nil); ts[0].Published {
		t.Fatal("an instance whose checked container is not healthy is published")
	}
	snap.Tasks[0].Healthy = boolp(true)
	ts := Tasks(snap, nil, nil)
	if !ts[0].Published || len(ts[0].Ports) != 2 || ts[0].Ports[0].Name != "web" || ts[0].Ports[1].Name != "admin" {
		t.Fatalf("dns task %+v: want published with ports web and admin", ts[0])
	}
	routes := Routes(snap, "mesos", "flotilla")
	if len(routes) != 1 {
		t.Fatalf("%d routes", len(routes))
	}
	r := routes[0]
	if r.Exposure.Mode != appspec.ExposureExternal || len(r.Exposure.VHosts) != 1 || r.Exposure.VHosts[0] != "shop.example.com" {
		t.Fatalf("exposure %+v: want the web endpoint external on shop.example.com", r.Exposure)
	}
	for _, s := range r.Services {
		if s.Index == 1 && s.External {
			t.Fatalf("the admin endpoint is external: %+v", s)
		}
	}
	ext := InGroups(routes, snap, []string{"external"})
	if len(ext) != 1 || ext[0].Hidden || len(ext[0].Services) != 1 || ext[0].Services[0].Index != 0 {
		t.Fatalf("external group: %+v; want the web endpoint only", ext)
	}
}
