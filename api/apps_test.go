package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/secrets"
	"github.com/flotilla-sched/flotilla/store"
)

// The life of one app through the API, against a real scheduler: create,
// tasks come up and the deployment ends, a scale replaces no task, a
// config change replaces all, delete.
func TestAppLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.mustDo("POST", "/v2/apps", simpleApp, http.StatusCreated)
	if loc := r.header.Get("Location"); loc != "/v2/apps/prod/shop/web" {
		t.Errorf("Location = %q", loc)
	}
	created := r.json(t)
	for _, f := range []string{"id", "cmd", "cpus", "mem", "instances", "version", "versionInfo", "tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy", "deployments", "portDefinitions", "upgradeStrategy", "backoffFactor"} {
		if _, ok := created[f]; !ok {
			t.Errorf("POST response lacks %q: %s", f, r.body)
		}
	}
	deps := created["deployments"].([]any)
	if len(deps) != 1 {
		t.Fatalf("deployments = %v, want one", deps)
	}
	depID := deps[0].(map[string]any)["id"].(string)
	if got := e.deployments(); len(got) != 1 || got[0]["id"] != depID || got[0]["affectedApps"].([]any)[0] != "/prod/shop/web" {
		t.Fatalf("GET /v2/deployments = %v", got)
	}
	e.mustDo("POST", "/v2/apps", simpleApp, http.StatusConflict)

	first := e.launch(nil)
	if len(first) != 2 {
		t.Fatalf("launched %d tasks, want 2", len(first))
	}
	e.waitNoDeployments()
	app := e.app("/prod/shop/web")
	if app["tasksRunning"].(float64) != 2 || len(app["tasks"].([]any)) != 2 || len(app["deployments"].([]any)) != 0 {
		t.Fatalf("app after launch: %v", app)
	}
	task := app["tasks"].([]any)[0].(map[string]any)
	for _, f := range []string{"id", "appId", "host", "ports", "startedAt", "stagedAt", "version", "state", "healthCheckResults", "slaveId"} {
		if _, ok := task[f]; !ok {
			t.Errorf("task lacks %q: %v", f, task)
		}
	}
	if task["state"] != "TASK_RUNNING" || task["appId"] != "/prod/shop/web" || !strings.HasPrefix(task["id"].(string), "prod_shop_web.instance-") {
		t.Errorf("task = %v", task)
	}
	v1 := app["version"].(string)
	vi := app["versionInfo"].(map[string]any)
	if vi["lastConfigChangeAt"] != v1 || vi["lastScalingAt"] != v1 {
		t.Errorf("versionInfo = %v, version %s", vi, v1)
	}

	// Scale with Marathon's partial PUT: a new version, no task replaced.
	e.clk.Step(1000000000)
	r = e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"instances": 3}`, http.StatusOK)
	res := r.json(t)
	if res["deploymentId"] == "" || res["version"] == v1 {
		t.Fatalf("PUT answer = %s", r.body)
	}
	e.launch(nil)
	e.waitNoDeployments()
	app = e.app("/prod/shop/web")
	if app["tasksRunning"].(float64) != 3 || len(e.rec.Killed()) != 0 {
		t.Fatalf("after scale: running %v, killed %v", app["tasksRunning"], e.rec.Killed())
	}
	vi = app["versionInfo"].(map[string]any)
	if vi["lastConfigChangeAt"] != v1 || vi["lastScalingAt"] != app["version"] || app["cmd"] != "sleep 1000" {
		t.Errorf("after scale: version %v versionInfo %v cmd %v", app["version"], vi, app["cmd"])
	}

	// A config change with PATCH replaces every task.
	e.clk.Step(1000000000)
	e.mustDo("PATCH", "/v2/apps/prod/shop/web", `{"cmd": "sleep 2000"}`, http.StatusOK)
	e.launch(nil)
	e.confirmKills()
	e.waitNoDeployments()
	app = e.app("/prod/shop/web")
	if app["cmd"] != "sleep 2000" || app["instances"].(float64) != 3 || app["tasksRunning"].(float64) != 3 || len(e.rec.Killed()) != 3 {
		t.Fatalf("after patch: %v, killed %v", app, e.rec.Killed())
	}

	vs := e.mustDo("GET", "/v2/apps/prod/shop/web/versions", "", 200).json(t)["versions"].([]any)
	if len(vs) != 3 || vs[2] != v1 {
		t.Errorf("versions = %v", vs)
	}
	old := e.mustDo("GET", "/v2/apps/prod/shop/web/versions/"+v1, "", 200).json(t)
	if old["instances"].(float64) != 2 || old["cmd"] != "sleep 1000" {
		t.Errorf("version %s = %v", v1, old)
	}

	r = e.mustDo("DELETE", "/v2/apps/prod/shop/web", "", http.StatusOK)
	if r.json(t)["deploymentId"] == "" {
		t.Errorf("DELETE answer %s", r.body)
	}
	e.mustDo("GET", "/v2/apps/prod/shop/web", "", http.StatusNotFound)
	e.confirmKills()
	e.waitNoDeployments()
	if n := len(e.sched.Snapshot().Tasks); n != 0 {
		t.Errorf("%d tasks left after delete", n)
	}
}

// Read endpoints against one prepared state, as a table.
func TestReadEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id": "/prod/shop/web", "cmd": "sleep 1", "cpus": 0.1, "mem": 32, "instances": 2, "labels": {"tier": "web"}}`, 201)
	e.mustDo("POST", "/v2/apps", `{"id": "/prod/db", "cmd": "sleep 1", "cpus": 0.1, "mem": 32, "instances": 1, "labels": {"tier": "db"}}`, 201)
	e.launch(nil)
	e.waitNoDeployments()
	e.mustDo("POST", "/v2/apps", `{"id": "/huge", "cmd": "sleep 1", "cpus": 1000, "mem": 32}`, 201)
	e.offer() // refused for cpus: /v2/queue says so
	v := e.app("/prod/db")["version"].(string)

	tests := []struct {
		name, method, path string
		status             int
		check              func(t *testing.T, r resp)
	}{
		{name: "ping", method: "GET", path: "/ping", status: 200, check: bodyIs("pong\n")},
		{name: "list", method: "GET", path: "/v2/apps", status: 200, check: appIDs("/huge", "/prod/db", "/prod/shop/web")},
		{name: "id filter", method: "GET", path: "/v2/apps?id=shop", status: 200, check: appIDs("/prod/shop/web")},
		{name: "label equals", method: "GET", path: "/v2/apps?label=tier==db", status: 200, check: appIDs("/prod/db")},
		{name: "label exists", method: "GET", path: "/v2/apps?label=tier", status: 200, check: appIDs("/prod/db", "/prod/shop/web")},
		{name: "label in", method: "GET", path: "/v2/apps?label=" + urlq("tier in (web, cache)"), status: 200, check: appIDs("/prod/shop/web")},
		{name: "label notin", method: "GET", path: "/v2/apps?label=" + urlq("tier notin (web)"), status: 200, check: appIDs("/huge", "/prod/db")},
		{name: "bad label", method: "GET", path: "/v2/apps?label=" + urlq("tier in web"), status: 400, check: hasDetail("label")},
		{name: "no tasks unless embedded", method: "GET", path: "/v2/apps?id=db", status: 200, check: func(t *testing.T, r resp) {
			a := r.json(t)["apps"].([]any)[0].(map[string]any)
			if _, ok := a["tasks"]; ok || a["tasksRunning"].(float64) != 1 {
				t.Errorf("app = %v", a)
			}
		}},
		{name: "embed tasks", method: "GET", path: "/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure", status: 200, check: func(t *testing.T, r resp) {
			for _, a := range r.json(t)["apps"].([]any) {
				a := a.(map[string]any)
				if len(a["tasks"].([]any)) != int(a["tasksRunning"].(float64)) {
					t.Errorf("%v: tasks %v running %v", a["id"], a["tasks"], a["tasksRunning"])
				}
			}
		}},
		{name: "get unknown", method: "GET", path: "/v2/apps/nope", status: 404, check: messageHas("'/nope' does not exist")},
		{name: "app tasks", method: "GET", path: "/v2/apps/prod/shop/web/tasks", status: 200, check: func(t *testing.T, r resp) {
			if n := len(r.json(t)["tasks"].([]any)); n != 2 {
				t.Errorf("%d tasks", n)
			}
		}},
		{name: "versions", method: "GET", path: "/v2/apps/prod/db/versions", status: 200, check: bodyIs(`{"versions":["` + v + `"]}` + "\n")},
		{name: "one version", method: "GET", path: "/v2/apps/prod/db/versions/" + v, status: 200, check: func(t *testing.T, r resp) {
			if r.json(t)["id"] != "/prod/db" {
				t.Errorf("%s", r.body)
			}
		}},
		{name: "unknown version", method: "GET", path: "/v2/apps/prod/db/versions/2001-01-01T00:00:00.000Z", status: 404, check: messageHas("no version")},
		{name: "all tasks", method: "GET", path: "/v2/tasks", status: 200, check: func(t *testing.T, r resp) {
			if n := len(r.json(t)["tasks"].([]any)); n != 3 {
				t.Errorf("%d tasks", n)
			}
		}},
		{name: "staging tasks", method: "GET", path: "/v2/tasks?status=staging", status: 200, check: bodyIs(`{"tasks":[]}` + "\n")},
		{name: "queue", method: "GET", path: "/v2/queue", status: 200, check: func(t *testing.T, r resp) {
			q := r.json(t)["queue"].([]any)
			if len(q) != 1 {
				t.Fatalf("queue = %s", r.body)
			}
			entry := q[0].(map[string]any)
			sum := entry["processedOffersSummary"].(map[string]any)
			if entry["app"].(map[string]any)["id"] != "/huge" || entry["count"].(float64) != 1 || sum["processedOffersCount"].(float64) < 1 {
				t.Errorf("queue entry = %v", entry)
			}
			if !strings.Contains(string(r.body), `"reason":"InsufficientCpus"`) {
				t.Errorf("queue does not say the cpus did not fit: %s", r.body)
			}
		}},
		{name: "info", method: "GET", path: "/v2/info", status: 200, check: func(t *testing.T, r resp) {
			m := r.json(t)
			if m["name"] != "flotilla" || m["elected"] != true || m["version"] != "test" {
				t.Errorf("info = %v", m)
			}
		}},
		{name: "leader", method: "GET", path: "/v2/leader", status: 200, check: func(t *testing.T, r resp) {
			if r.json(t)["leader"] == "" {
				t.Errorf("%s", r.body)
			}
		}},
		{name: "abdicate without election", method: "DELETE", path: "/v2/leader", status: 400, check: messageHas("without leader election")},
		{name: "metrics", method: "GET", path: "/metrics", status: 200, check: func(t *testing.T, r resp) {
			for _, m := range []string{"flotilla_api_requests_total", "flotilla_api_apps 3", "flotilla_api_deployments 1"} {
				if !strings.Contains(string(r.body), m) {
					t.Errorf("metrics lack %q", m)
				}
			}
		}},
		{name: "unknown endpoint", method: "GET", path: "/v2/nothing", status: 404, check: messageHas("no such endpoint")},
		{name: "wrong method", method: "POST", path: "/v2/tasks", status: 405, check: messageHas("use GET")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(tc.method, tc.path, "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			tc.check(t, r)
		})
	}
}

func urlq(s string) string {
	return strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", ",", "%2C").Replace(s)
}

func bodyIs(want string) func(*testing.T, resp) {
	return func(t *testing.T, r resp) {
		t.Helper()
		if string(r.body) != want {
			t.Errorf("body = %q, want %q", r.body, want)
		}
	}
}

func messageHas(sub string) func(*testing.T, resp) {
	return func(t *testing.T, r resp) {
		t.Helper()
		if msg, _ := r.json(t)["message"].(string); !strings.Contains(msg, sub) {
			t.Errorf("message %q lacks %q", msg, sub)
		}
	}
}

func hasDetail(path string) func(*testing.T, resp) {
	return func(t *testing.T, r resp) {
		t.Helper()
		var body struct {
			Details []struct {
				Path   string   `json:"path"`
				Errors []string `json:"errors"`
			} `json:"details"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		for _, d := range body.Details {
			if d.Path == path && len(d.Errors) > 0 {
				return
			}
		}
		t.Errorf("no detail for %s in %s", path, r.body)
	}
}

func appIDs(want ...string) func(*testing.T, resp) {
	return func(t *testing.T, r resp) {
		t.Helper()
		var got []string
		for _, a := range r.json(t)["apps"].([]any) {
			got = append(got, a.(map[string]any)["id"].(string))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("apps = %v, want %v", got, want)
		}
	}
}

// Bad app definitions are refused with Marathon's error shape naming the
// field, and nothing is stored or scheduled.
func TestValidationErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"id": "/big", "cmd": "` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		path2                    string // detail path expected
		text                     string // in that detail's errors
	}{
		{name: "malformed", method: "POST", path: "/v2/apps", body: `{"id": "/a",`, status: 400, path2: "/", text: "unexpected end"},
		{name: "wrong type", method: "POST", path: "/v2/apps", body: `{"id": "/a", "cmd": "x", "cpus": "lots"}`, status: 400, path2: "/cpus", text: "expected a number"},
		{name: "unknown field", method: "POST", path: "/v2/apps", body: `{"id": "/a", "cmd": "x", "Cpus": 1}`, status: 422, path2: "/Cpus", text: "did you mean \"cpus\""},
		{name: "cpus zero", method: "POST", path: "/v2/apps", body: `{"id": "/a", "cmd": "x", "cpus": 0}`, status: 422, path2: "/cpus", text: "greater than 0"},
		{name: "bad id", method: "POST", path: "/v2/apps", body: `{"id": "/Bad_Id", "cmd": "x"}`, status: 422, path2: "/id", text: "invalid"},
		{name: "no id", method: "POST", path: "/v2/apps", body: `{"cmd": "x"}`, status: 422, path2: "/id", text: "required"},
		{name: "unsupported", method: "POST", path: "/v2/apps", body: `{"id": "/a", "cmd": "x", "storeUrls": ["http://x"]}`, status: 422, path2: "/storeUrls", text: "not supported"},
		{name: "too large", method: "POST", path: "/v2/apps", body: big, status: 413, path2: "/", text: "1 MiB"},
		{name: "secret without vault", method: "POST", path: "/v2/apps",
			body:   `{"id": "/a", "cmd": "x", "env": {"DB_PASSWORD": {"secret": "db"}}, "secrets": {"db": {"source": "secret/db#password"}}}`,
			status: 422, path2: "/secrets/db/source", text: "db"},
		{name: "put id mismatch", method: "PUT", path: "/v2/apps/a", body: `{"id": "/b", "cmd": "x"}`, status: 422, path2: "/id", text: "differs"},
		{name: "put bad path id", method: "PUT", path: "/v2/apps/Bad", body: `{"cmd": "x"}`, status: 422, path2: "/id", text: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.body)
			}
			var body struct {
				Message string `json:"message"`
				Details []struct {
					Path   string   `json:"path"`
					Errors []string `json:"errors"`
				} `json:"details"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil || body.Message == "" {
				t.Fatalf("not Marathon's error shape: %v: %.300s", err, r.body)
			}
			for _, d := range body.Details {
				if d.Path == tc.path2 && strings.Contains(strings.Join(d.Errors, " "), tc.text) {
					return
				}
			}
			t.Errorf("no detail %s containing %q: %.500s", tc.path2, tc.text, r.body)
		})
	}
	t.Cleanup(func() {
		if n := e.dep.AppCount(); n != 0 {
			t.Errorf("%d apps in the API after refused writes", n)
		}
		if apps, err := e.st.ListApps(e.ctx); err != nil || len(apps) != 0 {
			t.Errorf("store holds %d apps after refused writes (%v)", len(apps), err)
		}
		if n := len(e.sched.Snapshot().Apps); n != 0 {
			t.Errorf("scheduler holds %d apps after refused writes", n)
		}
	})
}

// Marathon's own documents: each is accepted with Marathon's response
// fields, or refused with field-precise details.
func TestMarathonDocuments(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../appspec/testdata/marathon/*.json")
	if err != nil || len(files) == 0 {
		t.Skip("no Marathon documents in appspec/testdata/marathon")
	}
	sort.Strings(files)
	e := newEnv(t)
	accepted := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := e.do("POST", "/v2/apps?force=true", string(body))
			switch r.status {
			case http.StatusCreated:
				accepted++
				m := r.json(t)
				for _, k := range []string{"id", "version", "versionInfo", "tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy", "deployments", "instances", "cpus", "mem", "upgradeStrategy", "healthChecks", "env", "labels"} {
					if _, ok := m[k]; !ok {
						t.Errorf("response lacks Marathon's %q", k)
					}
				}
				// Several documents share an id; make room for the next.
				e.mustDo("DELETE", "/v2/apps"+m["id"].(string)+"?force=true", "", 200)
			case http.StatusBadRequest, http.StatusUnprocessableEntity:
				hasAnyDetail(t, r)
			default:
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
	if accepted == 0 {
		t.Errorf("no Marathon document was accepted")
	}
}

func hasAnyDetail(t *testing.T, r resp) {
	t.Helper()
	var body struct {
		Details []struct {
			Path   string   `json:"path"`
			Errors []string `json:"errors"`
		} `json:"details"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Details) == 0 || body.Details[0].Path == "" {
		t.Errorf("refusal without field details: %s", r.body)
	}
}

// Killing a task with scale=true shrinks the app, in the store too;
// without it the task is replaced.
func TestKillTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	ids := e.launch(nil)
	e.waitNoDeployments()

	r := e.mustDo("DELETE", "/v2/apps/prod/shop/web/tasks/"+ids[0], "", 200)
	if r.json(t)["task"].(map[string]any)["id"] != ids[0] {
		t.Errorf("kill answer %s", r.body)
	}
	e.confirmKills()
	if got := e.offer(); len(got) != 1 {
		t.Fatalf("replacement launches = %v, want 1", got)
	}
	e.update(e.rec.Launched()[2].TaskID.Value, mesos.TASK_RUNNING, nil)

	r = e.mustDo("DELETE", "/v2/apps/prod/shop/web/tasks/"+ids[1]+"?scale=true", "", 200)
	if r.json(t)["deploymentId"] == "" {
		t.Errorf("kill with scale answer %s", r.body)
	}
	e.confirmKills()
	e.waitNoDeployments()
	app := e.app("/prod/shop/web")
	stored, err := e.st.GetApp(e.ctx, "/prod/shop/web")
	if err != nil {
		t.Fatal(err)
	}
	if app["instances"].(float64) != 1 || app["tasksRunning"].(float64) != 1 || stored.App.Instances != 1 {
		t.Errorf("after kill with scale: instances %v running %v stored %d", app["instances"], app["tasksRunning"], stored.App.Instances)
	}
	e.mustDo("DELETE", "/v2/apps/prod/shop/web/tasks/nope.instance-x._app.1", "", 404)
}

// A restart replaces every task under a new version with the same config.
func TestRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	first := e.launch(nil)
	e.waitNoDeployments()
	e.clk.Step(1000000000)
	r := e.mustDo("POST", "/v2/apps/prod/shop/web/restart", "", 200)
	if r.json(t)["deploymentId"] == "" {
		t.Fatalf("restart answer %s", r.body)
	}
	second := e.launch(nil)
	e.confirmKills()
	e.waitNoDeployments()
	if len(second) != 2 || fmt.Sprint(e.rec.Killed()) != fmt.Sprint(sorted(first)) {
		t.Errorf("restart launched %v and killed %v (first %v)", second, e.rec.Killed(), first)
	}
	e.mustDo("POST", "/v2/apps/nope/restart", "", 404)
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

type acceptAllSecrets struct{}

func (acceptAllSecrets) Check(context.Context, *appspec.App) ([]secrets.Problem, error) {
	return nil, nil
}

// A task that cannot launch for a reason other than resources (here its
// secret cannot be resolved) says why in /v2/queue, with no value.
func TestQueueShowsLaunchReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, f *framework.Config, _ *deploy.Config) {
		c.Secrets = acceptAllSecrets{}
		f.ResolveEnv = func(context.Context, *appspec.App, string) ([]mesos.Environment_Variable, error) {
			return nil, errors.New("secret db: permission denied at secret/db")
		}
	})
	e.mustDo("POST", "/v2/apps", `{"id": "/db-user", "cmd": "x", "cpus": 0.1, "mem": 16,
		"env": {"DB_PASSWORD": {"secret": "db"}}, "secrets": {"db": {"source": "secret/db#password"}}}`, 201)
	if got := e.offer(); len(got) != 0 {
		t.Fatalf("launched %v without its secret", got)
	}
	r := e.mustDo("GET", "/v2/queue", "", 200)
	q := r.json(t)["queue"].([]any)
	if len(q) != 1 || !strings.Contains(q[0].(map[string]any)["reason"].(string), "secret db: permission denied at secret/db") {
		t.Fatalf("queue = %s", r.body)
	}
	app := e.app("/db-user")
	if env := app["env"].(map[string]any)["DB_PASSWORD"].(map[string]any); env["secret"] != "db" {
		t.Errorf("secret env shown as %v, want the reference", env)
	}
}

// The autoscaler's path: Server.Scale is a normal scale deployment, and
// it never overrides one in progress; AppHandlers serve app sub-resources.
func TestScaleAndAppHandlers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.AppHandlers = map[string]AppHandler{"autoscale": func(w http.ResponseWriter, r *http.Request, id string) {
			writeJSON(w, 200, map[string]string{"app": id})
		}}
	})
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	if _, err := e.dep.Scale(e.ctx, "/prod/shop/web", 3); !errors.Is(err, deploy.ErrDeploymentInProgress) {
		t.Fatalf("scale during the create: %v", err)
	}
	e.launch(nil)
	e.waitNoDeployments()
	dep, err := e.dep.Scale(e.ctx, "prod/shop/web", 3)
	if err != nil || dep == "" {
		t.Fatalf("scale: %q %v", dep, err)
	}
	if got := e.launch(nil); len(got) != 1 {
		t.Errorf("scale launched %d, want 1", len(got))
	}
	e.waitNoDeployments()
	if st, _ := e.st.GetApp(e.ctx, "/prod/shop/web"); st.App.Instances != 3 || len(e.rec.Killed()) != 0 {
		t.Errorf("stored instances %d, killed %v", st.App.Instances, e.rec.Killed())
	}
	if _, err := e.dep.Scale(e.ctx, "/nope", 1); !errors.Is(err, framework.ErrUnknownApp) {
		t.Errorf("scale of an unknown app: %v", err)
	}
	tests := []struct {
		name, path string
		status     int
		body       string
	}{
		{"known app", "/v2/apps/prod/shop/web/autoscale", 200, `{"app":"/prod/shop/web"}` + "\n"},
		{"unknown app", "/v2/apps/nope/autoscale", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.do("GET", tc.path, "")
			if r.status != tc.status || (tc.body != "" && string(r.body) != tc.body) {
				t.Errorf("status %d body %s", r.status, r.body)
			}
		})
	}
}

// With ListSnapshotMaxAge, lists may show tasks up to that old while a
// fresh snapshot is taken in the background; app specs are always fresh.
func TestListSnapshotMaxAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) { c.ListSnapshotMaxAge = time.Second })
	running := func() float64 {
		apps := e.mustDo("GET", "/v2/apps", "", 200).json(t)["apps"].([]any)
		if len(apps) != 1 {
			t.Fatalf("apps = %v", apps)
		}
		return apps[0].(map[string]any)["tasksRunning"].(float64)
	}
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	if n := running(); n != 0 {
		t.Fatalf("running %v before launch", n)
	}
	e.launch(nil)
	if n := running(); n != 0 {
		t.Errorf("running %v within the max age: the snapshot was not reused", n)
	}
	if n := e.app("/prod/shop/web")["tasksRunning"].(float64); n != 2 {
		t.Errorf("GET of one app is always fresh: running %v", n)
	}
	e.clk.Step(1500 * time.Millisecond)
	running() // past the max age but under twice it: stale answer, starts the refresh
	e.eventually("fresh snapshot after the max age", func() bool { return running() == 2 })

	// After a quiet spell the first list is fresh, not the old snapshot.
	e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"instances": 1}`, 200)
	e.eventually("the scale-down's kill", func() bool { return len(e.rec.Killed()) == 1 })
	e.confirmKills()
	e.eventually("the scale-down to reach the scheduler", func() bool {
		n := 0
		for _, tk := range e.sched.Snapshot().TasksOf("/prod/shop/web") {
			if !tk.Killing && tk.State == mesos.TASK_RUNNING {
				n++
			}
		}
		return n == 1
	})
	e.clk.Step(time.Minute)
	if n := running(); n != 1 {
		t.Errorf("first list after a minute's pause shows %v running, want 1: a snapshot older than twice the max age was served", n)
	}
}

// A write the store refuses (the app changed behind this replica's back)
// is a 409 and changes nothing in the scheduler.
func TestStoreConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	e.launch(nil)
	e.waitNoDeployments()
	cur, err := e.st.GetApp(e.ctx, "/prod/shop/web")
	if err != nil {
		t.Fatal(err)
	}
	other := *cur.App
	other.Cmd = "written elsewhere"
	if _, err := e.st.PutApp(e.ctx, &other, store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	r := e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"cmd": "sleep 5"}`, http.StatusConflict)
	if !strings.Contains(r.json(t)["message"].(string), "re-read it and retry") {
		t.Errorf("409 body %s", r.body)
	}
	if a := e.sched.Snapshot().App("/prod/shop/web"); a.Cmd != "sleep 1000" {
		t.Errorf("scheduler got %q after a refused write", a.Cmd)
	}
	if e.dep.DeploymentCount() != 0 {
		t.Errorf("a deployment was started for a refused write")
	}
}
