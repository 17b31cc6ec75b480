package framework

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"regexp"
	"slices"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

func TestTaskIDRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewSource(7))
	re := regexp.MustCompile(`^[a-z0-9_.-]+\.instance-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\._app\.1$`)
	tests := []struct{ app, prefix, name string }{
		{"/web", "web", "web"},
		{"/prod/shop/web", "prod_shop_web", "web.shop.prod"},
		{"/a.b/c-d", "a.b_c-d", "c-d.a.b"},
	}
	for _, tc := range tests {
		t.Run(tc.app, func(t *testing.T) {
			id := NewTaskID(tc.app, r)
			if !re.MatchString(id) || id[:len(tc.prefix)+1] != tc.prefix+"." {
				t.Errorf("task id %q does not follow the scheme", id)
			}
			if got, ok := AppIDFromTaskID(id); !ok || got != tc.app {
				t.Errorf("AppIDFromTaskID(%q) = %q, %v; want %q", id, got, ok, tc.app)
			}
			if got := TaskName(tc.app); got != tc.name {
				t.Errorf("TaskName = %q, want %q", got, tc.name)
			}
		})
	}
	// Incarnations above 1 are a resident instance's relaunches (resident.go).
	if got, ok := AppIDFromTaskID("web.instance-x._app.2"); !ok || got != "/web" {
		t.Errorf("AppIDFromTaskID of a relaunched resident task = %q, %v", got, ok)
	}
	for _, bad := range []string{"", "web", "web.1234", ".instance-x._app.1", "web.instance-x._app.0", "web.instance-x._app.02", "web.instance-x._app."} {
		if _, ok := AppIDFromTaskID(bad); ok {
			t.Errorf("AppIDFromTaskID(%q) accepted a foreign id", bad)
		}
	}
	a, b := NewTaskID("/x", rand.New(rand.NewSource(1))), NewTaskID("/x", rand.New(rand.NewSource(1)))
	if a != b {
		t.Errorf("task ids not reproducible from the seed: %s vs %s", a, b)
	}
}

// TestNewTaskIDAsSprintf: the ids appended by hand are the ones
// fmt.Sprintf gave (the same seed, the same ids), so ids of tasks launched
// before the change and after it follow one scheme.
func TestNewTaskIDAsSprintf(t *testing.T) {
	t.Parallel()
	ours, theirs := rand.New(rand.NewSource(17)), rand.New(rand.NewSource(17))
	for i, app := range []string{"/web", "/prod/shop/web", "/a.b/c-d", "/x"} {
		for range 1000 {
			var b [16]byte
			for k := 0; k < 16; k += 8 {
				binary.LittleEndian.PutUint64(b[k:], theirs.Uint64())
			}
			b[6] = b[6]&0x0f | 0x40
			b[8] = b[8]&0x3f | 0x80
			want := fmt.Sprintf("%s%s%x-%x-%x-%x-%x%s", TaskIDPrefix(app), instanceSep, b[0:4], b[4:6], b[6:8], b[8:10], b[10:16], appSuffix)
			if got := NewTaskID(app, ours); got != want {
				t.Fatalf("app %d (%s): NewTaskID = %q, Sprintf gave %q", i, app, got, want)
			}
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestBuildTaskInfo(t *testing.T) {
	t.Parallel()
	docker := &appspec.Container{Type: "DOCKER", Docker: &appspec.Docker{Image: "img:1", Network: "HOST",
		Parameters: []appspec.DockerParam{{Key: "label", Value: "x=y"}}, ForcePullImage: true}}
	ls := launchSpec{TaskID: "web.instance-1._app.1", AgentID: "a1", Host: "h1", Ports: []uint64{31000, 31005}}
	tests := []struct {
		name  string
		app   appspec.App
		check func(t *testing.T, ti mesos.TaskInfo)
	}{
		{"cmd runs in the shell", appspec.App{ID: "/web", Cmd: "echo hi"}, func(t *testing.T, ti mesos.TaskInfo) {
			if !ti.Command.GetShell() || ti.Command.GetValue() != "echo hi" || ti.Container != nil {
				t.Errorf("command %+v container %+v", ti.Command, ti.Container)
			}
		}},
		{"args without image exec argv", appspec.App{ID: "/web", Args: []string{"/bin/app", "-v"}}, func(t *testing.T, ti mesos.TaskInfo) {
			if ti.Command.GetShell() || ti.Command.GetValue() != "/bin/app" || !slices.Equal(ti.Command.Arguments, []string{"/bin/app", "-v"}) {
				t.Errorf("command %+v", ti.Command)
			}
		}},
		{"args with image go to the entrypoint", appspec.App{ID: "/web", Args: []string{"-v"}, Container: docker}, func(t *testing.T, ti mesos.TaskInfo) {
			if ti.Command.GetShell() || ti.Command.Value != nil || !slices.Equal(ti.Command.Arguments, []string{"-v"}) {
				t.Errorf("command %+v", ti.Command)
			}
		}},
		{"image default command", appspec.App{ID: "/web", Container: docker}, func(t *testing.T, ti mesos.TaskInfo) {
			if ti.Command.GetShell() || ti.Command.Value != nil {
				t.Errorf("command %+v, want shell=false and no value", ti.Command)
			}
			c := ti.Container
			if c.GetType() != mesos.ContainerInfo_DOCKER || c.Docker.Image != "img:1" || c.Docker.GetNetwork() != mesos.ContainerInfo_DockerInfo_HOST ||
				!c.Docker.GetForcePullImage() || len(c.Docker.Parameters) != 1 {
				t.Errorf("container %+v", c)
			}
		}},
		{"mesos containerizer with a docker image", appspec.App{ID: "/web", Container: &appspec.Container{Type: "MESOS", Docker: &appspec.Docker{Image: "img:2"}}}, func(t *testing.T, ti mesos.TaskInfo) {
			c := ti.Container
			if c.GetType() != mesos.ContainerInfo_MESOS || c.Mesos.Image.GetType() != mesos.Image_DOCKER || c.Mesos.Image.Docker.Name != "img:2" || c.Docker != nil {
				t.Errorf("container %+v", c)
			}
		}},
		{"env as Marathon sets it", appspec.App{ID: "/prod/web", Version: "2026-01-01T00:00:00Z", Cmd: "x", CPUs: 0.5, Mem: 64,
			PortDefinitions: []appspec.PortDefinition{{Port: 10000, Name: "http"}, {Port: 0}},
			Env:             map[string]appspec.EnvValue{"A": {Value: "1"}, "HOST": {Value: "user"}, "S": {Secret: "s"}},
			Labels:          map[string]string{"team": "core", "HAPROXY_GROUP": "external"}}, func(t *testing.T, ti mesos.TaskInfo) {
			env := envOf(ti)
			want := map[string]string{
				"A": "1", "PORT0": "31000", "PORT1": "31005", "PORT": "31000", "PORTS": "31000,31005",
				"PORT_10000": "31000", "PORT_HTTP": "31000", "HOST": "h1", "MARATHON_APP_ID": "/prod/web",
				"MARATHON_APP_VERSION": "2026-01-01T00:00:00Z", "MESOS_TASK_ID": "web.instance-1._app.1",
				"MARATHON_APP_RESOURCE_CPUS": "0.5", "MARATHON_APP_RESOURCE_MEM": "64",
				"MARATHON_APP_LABELS": "HAPROXY_GROUP TEAM", "MARATHON_APP_LABEL_TEAM": "core",
			}
			for k, v := range want {
				if env[k] != v {
					t.Errorf("env %s = %q, want %q", k, env[k], v)
				}
			}
			if _, ok := env["S"]; ok {
				t.Errorf("a secret reference reached the env")
			}
			if ti.Name != "web.prod" || len(ti.Labels.GetLabels()) != 2 {
				t.Errorf("name %q labels %+v", ti.Name, ti.Labels)
			}
		}},
		{"http health check on portIndex", appspec.App{ID: "/web", Cmd: "x", HealthChecks: []appspec.HealthCheck{{
			Protocol: "MESOS_HTTP", Path: "/health", PortIndex: ptrTo(1), GracePeriodSeconds: 30, IntervalSeconds: 5,
			TimeoutSeconds: 2, MaxConsecutiveFailures: 4, DelaySeconds: 1}}}, func(t *testing.T, ti mesos.TaskInfo) {
			hc := ti.HealthCheck
			if hc.Type != mesos.HealthCheck_HTTP || hc.HTTP.Port != 31005 || hc.HTTP.GetPath() != "/health" || hc.HTTP.GetScheme() != "http" ||
				hc.GetGracePeriodSeconds() != 30 || hc.GetIntervalSeconds() != 5 || hc.GetTimeoutSeconds() != 2 ||
				hc.GetConsecutiveFailures() != 4 || hc.GetDelaySeconds() != 1 {
				t.Errorf("health check %+v http %+v", hc, hc.HTTP)
			}
		}},
		{"tcp health check defaults to the first port", appspec.App{ID: "/web", Cmd: "x", HealthChecks: []appspec.HealthCheck{{Protocol: "MESOS_TCP"}}}, func(t *testing.T, ti mesos.TaskInfo) {
			hc := ti.HealthCheck
			if hc.Type != mesos.HealthCheck_TCP || hc.TCP.Port != 31000 || hc.IntervalSeconds != nil || hc.TimeoutSeconds != nil {
				t.Errorf("health check %+v (zero interval/timeout must leave Mesos's defaults)", hc)
			}
		}},
		{"https", appspec.App{ID: "/web", Cmd: "x", HealthChecks: []appspec.HealthCheck{{Protocol: "MESOS_HTTPS", Port: ptrTo(uint32(8443))}}}, func(t *testing.T, ti mesos.TaskInfo) {
			if hc := ti.HealthCheck; hc.HTTP.GetScheme() != "https" || hc.HTTP.Port != 8443 {
				t.Errorf("health check http %+v", hc.HTTP)
			}
		}},
		{"only the Mesos check goes to Mesos", appspec.App{ID: "/web", Cmd: "x", HealthChecks: []appspec.HealthCheck{
			{Protocol: "HTTP", Path: "/a"}, {Protocol: "TCP"}, {Protocol: "MESOS_TCP", PortIndex: ptrTo(1)}, {Protocol: "HTTPS", Path: "/b"}}},
			func(t *testing.T, ti mesos.TaskInfo) {
				if hc := ti.HealthCheck; hc == nil || hc.Type != mesos.HealthCheck_TCP || hc.TCP.Port != 31005 {
					t.Errorf("health check %+v, want the MESOS_TCP one on port index 1", hc)
				}
			}},
		{"checks run by the scheduler do not go to Mesos", appspec.App{ID: "/web", Cmd: "x", HealthChecks: []appspec.HealthCheck{
			{Protocol: "HTTP", Path: "/a"}, {Protocol: "TCP"}}},
			func(t *testing.T, ti mesos.TaskInfo) {
				if ti.HealthCheck != nil {
					t.Errorf("health check %+v sent to Mesos for HTTP and TCP checks", ti.HealthCheck)
				}
			}},
		{"command health check", appspec.App{ID: "/web", Cmd: "x", HealthChecks: []appspec.HealthCheck{{Protocol: "COMMAND", Command: &appspec.CommandCheck{Value: "true"}}}}, func(t *testing.T, ti mesos.TaskInfo) {
			if hc := ti.HealthCheck; hc.Type != mesos.HealthCheck_COMMAND || hc.Command.GetValue() != "true" {
				t.Errorf("health check %+v", hc)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ti := buildTaskInfo(&tc.app, ls)
			if ti.TaskID.Value != ls.TaskID || ti.AgentID.Value != "a1" {
				t.Fatalf("ids %+v %+v", ti.TaskID, ti.AgentID)
			}
			tc.check(t, ti)
		})
	}
}

func TestKillPolicy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.KillGracePeriod = 7_000_000_000 })
	h.s.PutApp(testApp("/web", 1))
	h.subscribe()
	calls := h.offer("h1")
	if len(calls) == 0 || len(calls[0].Launched()) != 1 {
		t.Fatalf("calls %+v, want one launch", calls)
	}
	ti := calls[0].Launched()[0]
	if ti.KillPolicy.GetGracePeriod().GetNanoseconds() != 7_000_000_000 {
		t.Errorf("kill policy %+v, want 7 s", ti.KillPolicy)
	}
	if err := h.s.KillAndScale("/web", []string{ti.TaskID.Value}, 0); err != nil {
		t.Fatal(err)
	}
	h.sync()
	k := h.rec.Of(CallKill)
	if len(k) != 1 || k[0].KillPolicy.GetGracePeriod().GetNanoseconds() != 7_000_000_000 || k[0].AgentID != "a-h1" {
		t.Errorf("kill %+v, want the policy and the agent", k)
	}
}

// TestKillPolicyPerApp: an app's taskKillGracePeriodSeconds wins over the
// scheduler's, at launch and in every kill.
func TestKillPolicyPerApp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.KillGracePeriod = 7_000_000_000 })
	app := testApp("/web", 1)
	g := 2.5
	app.TaskKillGracePeriodSeconds = &g
	h.s.PutApp(app)
	h.subscribe()
	calls := h.offer("h1")
	if len(calls) == 0 || len(calls[0].Launched()) != 1 {
		t.Fatalf("calls %+v, want one launch", calls)
	}
	ti := calls[0].Launched()[0]
	if got := ti.KillPolicy.GetGracePeriod().GetNanoseconds(); got != 2_500_000_000 {
		t.Errorf("launch kill policy %d ns, want 2.5 s", got)
	}
	if err := h.s.KillTasks("/web", []string{ti.TaskID.Value}); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if k := h.rec.Of(CallKill); len(k) != 1 || k[0].KillPolicy.GetGracePeriod().GetNanoseconds() != 2_500_000_000 {
		t.Errorf("kill %+v, want the app's 2.5 s", k)
	}
}

// TestHealthCheckNeverKill: Marathon's maxConsecutiveFailures 0 ("never
// kill") reaches Mesos as a count no task reaches, not as Mesos's default
// of 3.
func TestHealthCheckNeverKill(t *testing.T) {
	t.Parallel()
	app := testApp("/web", 1)
	app.HealthChecks = []appspec.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/", IntervalSeconds: 1, TimeoutSeconds: 1, MaxConsecutiveFailures: 0}}
	ti := buildTaskInfo(&app, launchSpec{TaskID: "t", AgentID: "a", Host: "h", Ports: []uint64{31000}})
	if got := ti.HealthCheck.GetConsecutiveFailures(); got != math.MaxUint32 {
		t.Errorf("consecutive_failures %d, want %d (never)", got, uint32(math.MaxUint32))
	}
	app.HealthChecks[0].MaxConsecutiveFailures = 5
	if got := buildTaskInfo(&app, launchSpec{TaskID: "t", AgentID: "a", Host: "h", Ports: []uint64{31000}}).HealthCheck.GetConsecutiveFailures(); got != 5 {
		t.Errorf("consecutive_failures %d, want 5", got)
	}
}

// BenchmarkNewTaskID is one task id (one per launch).
func BenchmarkNewTaskID(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for b.Loop() {
		_ = NewTaskID("/prod/shop/web", r)
	}
}
