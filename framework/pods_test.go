package framework

import (
	"context"
	"errors"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/store"
)

func testPod(t *testing.T, id string, n int) appspec.App {
	t.Helper()
	p, err := appspec.DecodePod(strings.NewReader(`{"id": "` + id + `",
		"containers": [
			{"name": "app", "exec": {"command": {"shell": "./testapp"}}, "resources": {"cpus": 0.5, "mem": 64},
			 "endpoints": [{"name": "http", "hostPort": 0}],
			 "healthCheck": {"http": {"endpoint": "http", "path": "/health"}, "intervalSeconds": 1, "timeoutSeconds": 0.5}},
			{"name": "sidecar", "exec": {"command": {"argv": ["./testapp", "-sidecar"]}}, "resources": {"cpus": 0.25, "mem": 32},
			 "endpoints": [{"name": "metrics", "hostPort": 0}],
			 "environment": {"UPSTREAM": "http://127.0.0.1:$ENDPOINT_HTTP/"}}
		],
		"scaling": {"kind": "fixed", "instances": ` + itoa(n) + `},
		"scheduling": {"backoff": {"backoff": 2, "backoffFactor": 2, "maxLaunchDelay": 60}}}`))
	if err != nil {
		t.Fatal(err)
	}
	p.Version = "v1"
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return *p.App()
}

func itoa(n int) string { return strconv.Itoa(n) }

type launchedGroup struct {
	offer string
	g     mesos.Offer_Operation_LaunchGroup
}

func launchedGroups(calls []Call) []launchedGroup {
	var out []launchedGroup
	for _, c := range calls {
		for _, op := range c.Ops {
			if op.Type == mesos.Offer_Operation_LAUNCH_GROUP {
				out = append(out, launchedGroup{offer: c.OfferIDs[0], g: *op.LaunchGroup})
			}
		}
	}
	return out
}

func scalarOf(rs []mesos.Resource, name string) float64 {
	v := 0.0
	for _, r := range rs {
		if r.Name == name {
			v += r.GetScalar().GetValue()
		}
	}
	return v
}

func portsOf(rs []mesos.Resource) []uint64 {
	var out []uint64
	for _, r := range rs {
		if r.Name == "ports" {
			for _, rg := range r.GetRanges().GetRange() {
				for p := rg.Begin; p <= rg.End; p++ {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// TestPodLaunchGroup: a pod instance is one LAUNCH_GROUP: the default
// executor with the pod's executor resources, one task per container with
// its own resources and the host ports of its endpoints, ids in
// Marathon's pod scheme, endpoints in the environment, health checks on
// the endpoint's host port.
func TestPodLaunchGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.s.PutApp(testPod(t, "/shop/web", 2))
	h.subscribe()
	calls := h.offer("h1")
	if countCalls(calls, CallAccept) != 1 {
		t.Fatalf("want one ACCEPT, calls %v", callTypes(calls))
	}
	groups := launchedGroups(calls)
	if len(groups) != 2 {
		t.Fatalf("launched %d groups, want 2", len(groups))
	}
	seenPorts := map[uint64]bool{}
	for _, lg := range groups {
		ex := lg.g.Executor
		if ex.Type != mesos.ExecutorInfo_DEFAULT || !strings.HasPrefix(ex.ExecutorID.Value, "instance-shop_web.instance-") {
			t.Fatalf("executor %s %q, want DEFAULT instance-<instance id>", ex.Type, ex.ExecutorID.Value)
		}
		if c, m, d := scalarOf(ex.Resources, "cpus"), scalarOf(ex.Resources, "mem"), scalarOf(ex.Resources, "disk"); c < 0.099 || c > 0.101 || m != 32 || d != 10 {
			t.Fatalf("executor resources cpus %v mem %v disk %v, want Marathon's 0.1/32/10", c, m, d)
		}
		tasks := lg.g.TaskGroup.Tasks
		if len(tasks) != 2 || tasks[0].Name != "app" || tasks[1].Name != "sidecar" {
			t.Fatalf("group tasks %+v, want app and sidecar", tasks)
		}
		inst := strings.TrimPrefix(ex.ExecutorID.Value, "instance-")
		for _, ti := range tasks {
			if ti.TaskID.Value != inst+"."+ti.Name {
				t.Fatalf("task id %q, want %s.%s", ti.TaskID.Value, inst, ti.Name)
			}
			if ti.Executor != nil {
				t.Fatalf("task %s carries an executor; a group's tasks must not", ti.Name)
			}
			ps := portsOf(ti.Resources)
			if len(ps) != 1 || seenPorts[ps[0]] {
				t.Fatalf("task %s ports %v: want one port of its own", ti.Name, ps)
			}
			seenPorts[ps[0]] = true
		}
		app, side := tasks[0], tasks[1]
		if c, m := scalarOf(app.Resources, "cpus"), scalarOf(app.Resources, "mem"); c != 0.5 || m != 64 {
			t.Fatalf("app resources cpus %v mem %v", c, m)
		}
		if c, m := scalarOf(side.Resources, "cpus"), scalarOf(side.Resources, "mem"); c != 0.25 || m != 32 {
			t.Fatalf("sidecar resources cpus %v mem %v", c, m)
		}
		httpPort := portsOf(app.Resources)[0]
		env := envOf(side)
		if env["ENDPOINT_HTTP"] != itoaU(httpPort) || env["ENDPOINT_METRICS"] != itoaU(portsOf(side.Resources)[0]) || env["UPSTREAM"] == "" {
			t.Fatalf("sidecar env %v: want ENDPOINT_HTTP=%d, ENDPOINT_METRICS, UPSTREAM", env, httpPort)
		}
		if env["MARATHON_APP_ID"] != "/shop/web" || env["MESOS_TASK_ID"] != side.TaskID.Value {
			t.Fatalf("sidecar env %v", env)
		}
		hc := app.HealthCheck
		if hc == nil || hc.Type != mesos.HealthCheck_HTTP || hc.HTTP.Port != uint32(httpPort) || hc.HTTP.GetPath() != "/health" {
			t.Fatalf("app health check %+v, want HTTP on port %d /health", hc, httpPort)
		}
		if side.HealthCheck != nil || side.GetCommand().GetShell() || len(side.GetCommand().Arguments) != 2 {
			t.Fatalf("sidecar command %+v health %+v", side.GetCommand(), side.HealthCheck)
		}
	}
	snap := h.s.Snapshot()
	tasks := snap.TasksOf("/shop/web")
	if len(tasks) != 2 || len(tasks[0].Containers) != 2 || tasks[0].Healthy == nil || *tasks[0].Healthy {
		t.Fatalf("instances %+v: want 2, with 2 containers each, not yet healthy", tasks)
	}
}

func itoaU(p uint64) string { return strconv.FormatUint(p, 10) }

// TestPodInstanceLifecycle: per-container updates make the instance's
// state (running when all run, healthy when every checked container is);
// one container failing ends the instance, kills the rest of its group
// and brings a replacement after the pod's backoff; scaling down kills
// every container of the instance it picks; reconciliation asks Mesos
// about the containers, which are what it knows.
func TestPodInstanceLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.s.PutApp(testPod(t, "/web", 1))
	h.subscribe()
	groups := launchedGroups(h.offer("h1"))
	if len(groups) != 1 {
		t.Fatalf("launched %d groups, want 1", len(groups))
	}
	inst := strings.TrimPrefix(groups[0].g.Executor.ExecutorID.Value, "instance-")
	app, side := inst+".app", inst+".sidecar"
	state := func() Task {
		t.Helper()
		ts := h.tasks("/web")
		if len(ts) != 1 {
			t.Fatalf("%d instances, want 1: %+v", len(ts), ts)
		}
		return ts[0]
	}
	if got := state(); got.ID != inst || got.State != mesos.TASK_STAGING {
		t.Fatalf("instance %s %s, want %s STAGING", got.ID, got.State, inst)
	}
	h.update(app, mesos.TASK_RUNNING)
	if got := state(); got.State != mesos.TASK_STAGING {
		t.Fatalf("instance %s with one container running, want STAGING until both run", got.State)
	}
	h.update(side, mesos.TASK_RUNNING)
	if got := state(); got.State != mesos.TASK_RUNNING || got.IsHealthy() {
		t.Fatalf("instance %s healthy %v, want RUNNING and not yet healthy", got.State, got.IsHealthy())
	}
	yes := true
	h.update(app, mesos.TASK_RUNNING, func(st *mesos.TaskStatus) { st.Healthy = &yes })
	if got := state(); !got.IsHealthy() || got.Containers[0].Healthy == nil || !*got.Containers[0].Healthy {
		t.Fatalf("instance %+v, want healthy once its only checked container is", got)
	}
	if st, _ := h.s.Snapshot().StatusOf("/web"); !st.Done {
		t.Fatalf("deployment not done with the instance healthy: %+v", st)
	}

	// The sidecar dies: the instance ends, the app container is killed
	// with it, a new instance follows after the backoff (2 s).
	h.rec.Take()
	h.update(side, mesos.TASK_FAILED)
	if ts := h.tasks("/web"); len(ts) != 0 {
		t.Fatalf("instances %+v after a container failed, want none until the replacement", ts)
	}
	killed := h.rec.Killed()
	if len(killed) != 1 || killed[0] != app {
		t.Fatalf("killed %v, want the app container %s", killed, app)
	}
	if q := h.s.Snapshot().Queue; len(q) != 1 || q[0].Delay != 2*time.Second {
		t.Fatalf("queue %+v, want one instance waiting 2 s", q)
	}
	if g := launchedGroups(h.offer("h1")); len(g) != 0 {
		t.Fatalf("launched %d groups during the backoff", len(g))
	}
	h.step(2 * time.Second)
	groups = launchedGroups(h.offer("h1"))
	if len(groups) != 1 {
		t.Fatalf("launched %d groups after the backoff, want 1", len(groups))
	}
	inst2 := strings.TrimPrefix(groups[0].g.Executor.ExecutorID.Value, "instance-")
	if inst2 == inst {
		t.Fatal("the replacement reused the instance id")
	}
	// The killed container's update arrives late: it changes nothing.
	h.update(app, mesos.TASK_KILLED)
	if ts := h.tasks("/web"); len(ts) != 1 || ts[0].ID != inst2 {
		t.Fatalf("instances %+v, want only %s", ts, inst2)
	}

	// Reconciliation after a new subscription names the containers.
	h.rec.Take()
	h.subscribe()
	var asked []string
	for _, c := range h.rec.Of(CallReconcile) {
		for _, rt := range c.Reconcile {
			asked = append(asked, rt.TaskID.Value)
		}
	}
	if len(asked) != 2 || asked[0] != inst2+".app" || asked[1] != inst2+".sidecar" {
		t.Fatalf("reconciled %v, want the two containers of %s", asked, inst2)
	}

	// Scale to 0: both containers are killed.
	h.update(inst2+".app", mesos.TASK_RUNNING)
	h.update(inst2+".sidecar", mesos.TASK_RUNNING)
	h.rec.Take()
	if err := h.s.Scale("/web", 0); err != nil {
		t.Fatal(err)
	}
	h.sync()
	killed = h.rec.Killed()
	if len(killed) != 2 || killed[0] != inst2+".app" || killed[1] != inst2+".sidecar" {
		t.Fatalf("killed %v, want both containers of %s", killed, inst2)
	}
	h.update(inst2+".app", mesos.TASK_KILLED)
	h.update(inst2+".sidecar", mesos.TASK_KILLED)
	if ts := h.tasks("/web"); len(ts) != 0 {
		t.Fatalf("instances %+v after scaling to 0", ts)
	}
	if q := h.s.Snapshot().Queue; len(q) != 0 {
		t.Fatalf("queue %+v: a killed instance must not be replaced or back off", q)
	}
}

// TestPodAdoption: a new leader learns of a container through
// reconciliation and adopts its instance; a container of an unknown pod
// is killed.
func TestPodAdoption(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.s.PutApp(testPod(t, "/web", 1))
	h.subscribe()
	h.rec.Take()
	inst := "web.instance-00000000-0000-4000-8000-000000000001"
	h.update(inst+".app", mesos.TASK_RUNNING)
	ts := h.tasks("/web")
	if len(ts) != 1 || ts[0].ID != inst || !ts[0].Adopted || len(ts[0].Containers) != 2 {
		t.Fatalf("instances %+v, want %s adopted with its 2 containers", ts, inst)
	}
	h.update("gone.instance-00000000-0000-4000-8000-000000000002.app", mesos.TASK_RUNNING)
	if k := h.rec.Killed(); len(k) != 1 || k[0] != "gone.instance-00000000-0000-4000-8000-000000000002.app" {
		t.Fatalf("killed %v, want the unknown pod's container", k)
	}
}

func TestPodTaskID(t *testing.T) {
	t.Parallel()
	cases := []struct{ id, inst, pod, ctr string }{
		{"prod_web.instance-abc.app", "prod_web.instance-abc", "/prod/web", "app"},
		{"web.v2.instance-abc.side-car", "web.v2.instance-abc", "/web.v2", "side-car"},
		{"web.instance-abc._app.1", "", "", ""},
		{"web.instance-abc", "", "", ""},
		{"nothing", "", "", ""},
	}
	for _, c := range cases {
		inst, pod, ctr, ok := PodTaskID(c.id)
		if ok != (c.inst != "") || inst != c.inst || pod != c.pod || ctr != c.ctr {
			t.Errorf("PodTaskID(%q) = %q %q %q %v", c.id, inst, pod, ctr, ok)
		}
	}
}

// TestPodSecrets: a pod's secret reaches every container's environment
// at launch, resolved once per instance; an unresolvable one keeps the
// instance waiting with the resolver's error and a backoff, and the
// offer is handed back.
func TestPodSecrets(t *testing.T) {
	t.Parallel()
	fail := true
	var asked []string
	h := newHarness(t, func(c *Config) {
		c.ResolveEnv = func(ctx context.Context, app *appspec.App, taskID string) ([]mesos.Environment_Variable, error) {
			asked = append(asked, taskID)
			if fail {
				return nil, errors.New("vault sealed")
			}
			// What a resolver gives: each variable of the app's env that
			// names a secret, with that secret's value.
			var out []mesos.Environment_Variable
			for k, e := range app.Env {
				if e.Secret != "" {
					v := "s3cr3t-" + e.Secret
					out = append(out, mesos.Environment_Variable{Name: k, Value: &v})
				}
			}
			return out, nil
		}
	})
	app := testPod(t, "/web", 1)
	app.Env = map[string]appspec.EnvValue{"DB_PASSWORD": {Secret: "db"}}
	app.Secrets = map[string]appspec.Secret{"db": {Source: "secret/db#password"}, "api": {Source: "secret/api#key"}}
	// The sidecar's own secret: in its environment only.
	app.Pod.Containers[1].Environment["API_KEY"] = appspec.EnvValue{Secret: "api"}
	h.s.PutApp(app)
	h.subscribe()
	calls := h.offer("h1")
	if n := len(launchedGroups(calls)); n != 0 || countCalls(calls, CallDecline) != 1 {
		t.Fatalf("launched %d groups with an unresolvable secret, calls %v; want none and the offer declined", n, callTypes(calls))
	}
	q := h.s.Snapshot().Queue
	if len(q) != 1 || !strings.Contains(q[0].Reason, "vault sealed") || q[0].Delay == 0 || len(h.s.Snapshot().Tasks) != 0 {
		t.Fatalf("queue %+v: want the instance waiting with the resolver's error and a backoff", q)
	}
	fail = false
	h.step(q[0].Delay)
	groups := launchedGroups(h.offer("h1"))
	if len(groups) != 1 {
		t.Fatalf("launched %d groups after the secret resolved", len(groups))
	}
	for _, ti := range groups[0].g.TaskGroup.Tasks {
		env := envOf(ti)
		if env["DB_PASSWORD"] != "s3cr3t-db" {
			t.Errorf("container %s lacks the pod's resolved secret", ti.Name) // never print the value
		}
		if _, has := env["API_KEY"]; has != (ti.Name == "sidecar") {
			t.Errorf("container %s has API_KEY: %v; want it in the sidecar only", ti.Name, has)
		} else if has && env["API_KEY"] != "s3cr3t-api" {
			t.Errorf("the sidecar's API_KEY is not its resolved secret")
		}
	}
	if last := asked[len(asked)-1]; last != strings.TrimPrefix(groups[0].g.Executor.ExecutorID.Value, "instance-") {
		t.Errorf("resolved for %q, want the instance id", last)
	}
}

// TestPodBridgeGroup: on container/bridge networking the instance's
// namespace is the executor's: its NetworkInfo maps each endpoint's host
// port to its container port; the containers see their endpoints'
// container ports (ENDPOINT_<NAME>, health checks), and still hold the
// host ports as resources.
func TestPodBridgeGroup(t *testing.T) {
	t.Parallel()
	p, err := appspec.DecodePod(strings.NewReader(`{"id": "/web", "networks": [{"mode": "container/bridge"}],
		"containers": [
			{"name": "app", "exec": {"command": {"shell": "x"}}, "resources": {"cpus": 0.1, "mem": 16},
			 "endpoints": [{"name": "http", "containerPort": 8080, "hostPort": 0, "labels": {"HAPROXY_GROUP": "external"}}],
			 "healthCheck": {"http": {"endpoint": "http", "path": "/health"}}},
			{"name": "admin", "exec": {"command": {"shell": "x"}}, "resources": {"cpus": 0.1, "mem": 16},
			 "endpoints": [{"name": "admin", "containerPort": 9090, "hostPort": 0}, {"name": "local", "containerPort": 9091}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p.Version = "v1"
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil)
	h.s.PutApp(*p.App())
	h.subscribe()
	groups := launchedGroups(h.offer("h1"))
	if len(groups) != 1 {
		t.Fatalf("launched %d groups", len(groups))
	}
	g := groups[0].g
	nis := g.Executor.GetContainer().GetNetworkInfos()
	if len(nis) != 1 || nis[0].GetName() != "mesos-bridge" || len(nis[0].PortMappings) != 2 {
		t.Fatalf("executor networks %+v: want mesos-bridge with the 2 endpoints that have host ports", nis)
	}
	app, admin := g.TaskGroup.Tasks[0], g.TaskGroup.Tasks[1]
	httpHost, adminHost := portsOf(app.Resources), portsOf(admin.Resources)
	if len(httpHost) != 1 || len(adminHost) != 1 {
		t.Fatalf("host ports as resources: app %v admin %v", httpHost, adminHost)
	}
	want := map[uint32]uint32{uint32(httpHost[0]): 8080, uint32(adminHost[0]): 9090}
	for _, pm := range nis[0].PortMappings {
		if want[pm.HostPort] != pm.ContainerPort || pm.GetProtocol() != "tcp" {
			t.Fatalf("mapping %+v, want %v", pm, want)
		}
	}
	env := envOf(admin)
	if env["ENDPOINT_HTTP"] != "8080" || env["ENDPOINT_ADMIN"] != "9090" || env["ENDPOINT_LOCAL"] != "9091" {
		t.Fatalf("endpoint env %v: want the container ports", env)
	}
	if hc := app.HealthCheck; hc.GetHTTP().Port != 8080 {
		t.Fatalf("health check port %d, want the container port 8080", hc.GetHTTP().Port)
	}
	if got := h.tasks("/web")[0].Ports; len(got) != 2 || got[0] != httpHost[0] {
		t.Fatalf("instance ports %v: want the host ports, http first", got)
	}
}

// TestPodUnreachableAndConstraints: an instance whose agent is
// unreachable is replaced after inactiveAfterSeconds, reconciled by its
// containers' ids meanwhile; when it comes back the surplus instance is
// killed whole. Constraints hold per instance (UNIQUE hostname).
func TestPodUnreachableAndConstraints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	app := testPod(t, "/web", 2)
	app.Constraints = [][]string{{"hostname", "UNIQUE"}}
	app.UnreachableStrategy = appspec.UnreachableStrategy{InactiveAfterSeconds: 60, ExpungeAfterSeconds: 120}
	h.s.PutApp(app)
	h.subscribe()
	if g := launchedGroups(h.offer("h1")); len(g) != 1 {
		t.Fatalf("launched %d instances on one host with UNIQUE hostname, want 1", len(g))
	}
	if g := launchedGroups(h.offer("h2")); len(g) != 1 {
		t.Fatalf("launched %d on the second host, want 1", len(g))
	}
	var orig string
	for _, in := range h.tasks("/web") {
		h.update(in.ID+".app", mesos.TASK_RUNNING)
		h.update(in.ID+".sidecar", mesos.TASK_RUNNING)
		if in.Host == "h1" {
			orig = in.ID
		}
	}
	h.update(orig+".app", mesos.TASK_UNREACHABLE)
	h.update(orig+".sidecar", mesos.TASK_UNREACHABLE)
	h.rec.Take()
	h.step(5 * time.Second)
	var asked []string
	for _, c := range h.rec.Of(CallReconcile) {
		for _, rt := range c.Reconcile {
			asked = append(asked, rt.TaskID.Value)
		}
	}
	if len(asked) != 2 || asked[0] != orig+".app" || asked[1] != orig+".sidecar" {
		t.Fatalf("reconciled %v, want the unreachable instance's containers", asked)
	}
	h.step(55 * time.Second)
	repl := launchedGroups(h.offer("h3"))
	if len(repl) != 1 {
		t.Fatalf("launched %d at inactiveAfterSeconds, want a replacement", len(repl))
	}
	newInst := strings.TrimPrefix(repl[0].g.Executor.ExecutorID.Value, "instance-")
	h.update(newInst+".app", mesos.TASK_RUNNING)
	h.update(newInst+".sidecar", mesos.TASK_RUNNING)
	// The original comes back: the youngest instance is the surplus.
	h.rec.Take()
	h.update(orig+".app", mesos.TASK_RUNNING)
	h.update(orig+".sidecar", mesos.TASK_RUNNING)
	killed := h.rec.Killed()
	if len(killed) != 2 || killed[0] != newInst+".app" || killed[1] != newInst+".sidecar" {
		t.Fatalf("killed %v, want both containers of the replacement %s", killed, newInst)
	}
}

// TestPodRestore: a new leader restores a pod's instances from their
// records and asks Mesos about their containers, by the containers' ids;
// the containers' answers bring the instances back running, and nothing
// is launched twice.
func TestPodRestore(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(nil, 0)
	app := testPod(t, "/web", 2)
	a := newHarness(t, func(c *Config) { c.Tasks = st })
	a.s.PutApp(app)
	a.subscribe()
	if g := launchedGroups(a.offer("h1")); len(g) != 2 {
		t.Fatalf("launched %d instances", len(g))
	}
	insts := a.tasks("/web")
	for _, in := range insts {
		a.update(in.ID+".app", mesos.TASK_RUNNING)
		a.update(in.ID+".sidecar", mesos.TASK_RUNNING)
	}
	a.sync()

	b := newHarness(t, func(c *Config) { c.Tasks = st })
	b.s.PutApp(app)
	if n, err := b.s.Restore(context.Background()); err != nil || n != 2 {
		t.Fatalf("restore: %d, %v; want the 2 instances", n, err)
	}
	b.subscribe()
	var asked []string
	for _, c := range b.rec.Of(CallReconcile) {
		for _, rt := range c.Reconcile {
			asked = append(asked, rt.TaskID.Value)
		}
	}
	slices.Sort(asked)
	var want []string
	for _, in := range insts {
		want = append(want, in.ID+".app", in.ID+".sidecar")
	}
	slices.Sort(want)
	if !slices.Equal(asked, want) {
		t.Fatalf("reconciled %v, want the containers %v", asked, want)
	}
	for _, id := range want {
		b.send(UpdateInput(TestStatus(id, "a-h1", mesos.TASK_RUNNING, false)))
	}
	if g := launchedGroups(b.offer("h1", "h2")); len(g) != 0 {
		t.Fatalf("the new leader launched %d instances; the restored ones run", len(g))
	}
	for _, in := range b.tasks("/web") {
		if in.State != mesos.TASK_RUNNING || len(in.Containers) != 2 || in.IsHealthy() {
			t.Fatalf("restored instance %+v, want running with its 2 containers, not healthy until its checked container says so", in)
		}
		yes := true
		st := TestStatus(in.ID+".app", "a-h1", mesos.TASK_RUNNING, false)
		st.Healthy = &yes
		b.send(UpdateInput(st))
	}
	for _, in := range b.tasks("/web") {
		if !in.IsHealthy() {
			t.Fatalf("instance %+v not healthy after its app container reported healthy", in)
		}
	}
}

// TestPodRestoreOldVersion: a new leader restores an instance of an
// older version of the pod, whose containers differ from the current
// spec's: the container Mesos does not know is forgotten (not taken for
// the instance's end), the one the spec no longer names is tracked, and
// the instance runs; it is then replaced by the roll like any old one.
func TestPodRestoreOldVersion(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(nil, 0)
	v1 := testPod(t, "/web", 1)
	a := newHarness(t, func(c *Config) { c.Tasks = st })
	a.s.PutApp(v1)
	a.subscribe()
	g := launchedGroups(a.offer("h1"))
	if len(g) != 1 {
		t.Fatalf("launched %d", len(g))
	}
	inst := strings.TrimPrefix(g[0].g.Executor.ExecutorID.Value, "instance-")
	a.update(inst+".app", mesos.TASK_RUNNING)
	a.update(inst+".sidecar", mesos.TASK_RUNNING)
	a.sync()

	// Version 2 renames the sidecar; the new leader starts with it.
	v2 := testPod(t, "/web", 1)
	v2.Version = "v2"
	v2.Pod.Containers[1].Name = "proxy"
	// Another seed: the new leader must not draw the old one's ids.
	b := newHarness(t, func(c *Config) { c.Tasks, c.Rand = st, rand.New(rand.NewSource(2)) })
	b.s.PutApp(v2)
	if n, err := b.s.Restore(context.Background()); err != nil || n != 1 {
		t.Fatalf("restore: %d, %v", n, err)
	}
	b.subscribe()
	// The master's answers: app and sidecar run (implicit), proxy is
	// unknown (explicit).
	gone := TestStatus(inst+".proxy", "a-h1", mesos.TASK_GONE, false)
	gone.Reason = mesos.REASON_RECONCILIATION.Enum()
	b.send(UpdateInput(gone))
	b.send(UpdateInput(TestStatus(inst+".app", "a-h1", mesos.TASK_RUNNING, false)))
	b.send(UpdateInput(TestStatus(inst+".sidecar", "a-h1", mesos.TASK_RUNNING, false)))
	early := b.rec.Take() // an old instance that is not healthy may go at once
	var old *Task
	for _, in := range b.tasks("/web") {
		if in.ID == inst {
			in := in
			old = &in
		}
	}
	if old == nil || len(old.Containers) != 2 || old.Containers[1].Name != "sidecar" || old.Containers[0].State != mesos.TASK_RUNNING || old.Containers[1].State != mesos.TASK_RUNNING {
		t.Fatalf("restored instance %+v, want it with app and sidecar running (proxy, unknown to Mesos, forgotten)", old)
	}
	// The roll replaces it: a v2 instance; the old one, not healthy
	// under this leader, is killed whole, the sidecar it reported after
	// the kill went out included.
	offerCalls := b.offer("h2")
	groups := launchedGroups(offerCalls)
	if len(groups) != 1 || groups[0].g.TaskGroup.Tasks[1].Name != "proxy" {
		t.Fatalf("roll launched %+v, want one v2 instance with proxy", groups)
	}
	yes := true
	b.update(newInst(groups)+".app", mesos.TASK_RUNNING, func(s *mesos.TaskStatus) { s.Healthy = &yes })
	b.update(newInst(groups)+".proxy", mesos.TASK_RUNNING)
	var killed []string
	for _, c := range append(append(early, offerCalls...), b.rec.Take()...) {
		if c.Type == CallKill {
			killed = append(killed, c.TaskID)
		}
	}
	// proxy may be asked too (the spec named it when the kill went out):
	// Mesos answers that it does not know it.
	if !slices.Contains(killed, inst+".app") || !slices.Contains(killed, inst+".sidecar") {
		t.Fatalf("killed %v, want the old instance's app and sidecar", killed)
	}
}

func newInst(groups []launchedGroup) string {
	return strings.TrimPrefix(groups[0].g.Executor.ExecutorID.Value, "instance-")
}
