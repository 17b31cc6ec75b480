package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
)

const healthApp = `{"id": "/web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "instances": 2,
  "env": {"COLOR": "blue"}, "progressDeadlineSeconds": 60,
  "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0}]}`

// collect subscribes to the API's events and returns a function that
// waits for one of a type (events of other types are skipped).
func (e *env) collect() func(typ string) map[string]any {
	sub := e.srv.hub.subscribe()
	e.t.Cleanup(func() { e.srv.hub.unsubscribe(sub) })
	return func(typ string) map[string]any {
		e.t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case ev, ok := <-sub.ch:
				if !ok {
					e.t.Fatalf("event subscription closed while waiting for %s", typ)
				}
				if ev.typ != typ {
					continue
				}
				var m map[string]any
				if err := json.Unmarshal(ev.data, &m); err != nil {
					e.t.Fatal(err)
				}
				return m
			case <-timeout:
				e.t.Fatalf("no %s event", typ)
			}
		}
	}
}

// A deployment lasts until every instance of the new version runs and is
// healthy; health checks that never pass hit the progress deadline, and
// the previous version comes back by itself.
func TestProgressDeadlineRollsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	next := e.collect()
	e.mustDo("POST", "/v2/apps", healthApp, 201)
	if ev := next(deploy.EventDeploymentInfo); ev["plan"].(map[string]any)["steps"].([]any)[0].(map[string]any)["actions"].([]any)[0].(map[string]any)["action"] != deploy.ActionStart {
		t.Errorf("deployment_info = %v", ev)
	}
	ids := e.launch(nil) // running, health unknown yet: not done
	if e.dep.DeploymentCount() != 1 {
		t.Fatalf("deployment finished before health checks passed")
	}
	for _, id := range ids {
		e.update(id, mesos.TASK_RUNNING, ptr(true))
	}
	next(deploy.EventDeploymentSuccess)
	e.waitNoDeployments()
	v1 := e.app("/web")["version"].(string)

	e.clk.Step(time.Second)
	r := e.mustDo("PUT", "/v2/apps/web", `{"env": {"COLOR": "green"}}`, 200)
	failing := r.json(t)["deploymentId"].(string)
	e.launch(ptr(false)) // the new version never gets healthy
	e.clk.Step(59 * time.Second)
	e.sync()
	if e.dep.Deployment(failing) == nil {
		t.Fatalf("deployment ended before its deadline")
	}
	e.clk.Step(2 * time.Second)
	failed := next(deploy.EventDeploymentFailed)
	if failed["id"] != failing || !strings.Contains(failed["reason"].(string), "progress deadline of 1m0s passed with 0 of 2 instances") ||
		!strings.Contains(failed["reason"].(string), "rolling back to version "+v1) {
		t.Fatalf("deployment_failed = %v", failed)
	}
	rb := next(deploy.EventDeploymentInfo)
	e.eventually("rollback deployment", func() bool { return e.dep.Deployment(rb["id"].(string)) != nil })
	if d := e.dep.Deployment(rb["id"].(string)); !d.Rollback || d.RollbackOf != failing {
		t.Errorf("rollback deployment = %+v", d)
	}
	app := e.app("/web")
	if app["env"].(map[string]any)["COLOR"] != "blue" || app["version"] == v1 {
		t.Fatalf("after rollback: env %v version %v (v1 %s)", app["env"], app["version"], v1)
	}
	// The old version's tasks never stopped (the roll kept them while the
	// new one was unhealthy): the rollback makes them current again, kills
	// the failed version's and launches nothing.
	if got := e.offer(); len(got) != 0 {
		t.Errorf("rollback launched %v; the old tasks should have been kept", got)
	}
	e.confirmKills()
	next(deploy.EventDeploymentSuccess)
	e.waitNoDeployments()
	app = e.app("/web")
	if app["tasksHealthy"].(float64) != 2 || app["tasksRunning"].(float64) != 2 {
		t.Errorf("after rollback: %v", app)
	}
	if vs, _ := e.st.ListVersions(e.ctx, "/web"); len(vs) != 3 {
		t.Errorf("versions %v, want create, update, rollback", vs)
	}
}

// A failing rollback is not rolled back again, and a failing create is
// rolled back by removing the app.
func TestDeadlineOfCreateRemovesApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *Config, _ *framework.Config, d *deploy.Config) { d.ProgressDeadline = time.Minute })
	next := e.collect()
	e.mustDo("POST", "/v2/apps", `{"id": "/never", "cmd": "x", "cpus": 1000}`, 201)
	e.clk.Step(61 * time.Second)
	failed := next(deploy.EventDeploymentFailed)
	if !strings.Contains(failed["reason"].(string), "did not exist before, so it is removed") {
		t.Errorf("reason = %v", failed["reason"])
	}
	e.eventually("app removed", func() bool { return e.dep.App("/never") == nil })
	e.mustDo("GET", "/v2/apps/never", "", 404)
	next(deploy.EventDeploymentSuccess) // the removal
	if _, err := e.st.GetApp(e.ctx, "/never"); err == nil {
		t.Errorf("store still holds the app")
	}
}

// One deployment per app: a second change is refused naming the blocking
// deployment, unless forced, which supersedes it.
func TestDeploymentConflictAndForce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	next := e.collect()
	r := e.mustDo("POST", "/v2/apps", simpleApp, 201)
	first := r.json(t)["deployments"].([]any)[0].(map[string]any)["id"].(string)

	tests := []struct {
		name, method, path, body string
	}{
		{"put", "PUT", "/v2/apps/prod/shop/web", `{"instances": 5}`},
		{"patch", "PATCH", "/v2/apps/prod/shop/web", `{"instances": 5}`},
		{"restart", "POST", "/v2/apps/prod/shop/web/restart", ""},
		{"delete", "DELETE", "/v2/apps/prod/shop/web", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body)
			if r.status != http.StatusConflict {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := r.json(t)
			if !strings.Contains(m["message"].(string), "/v2/deployments/"+first) || m["deployments"].([]any)[0].(map[string]any)["id"] != first {
				t.Errorf("409 body = %s", r.body)
			}
		})
	}
	r = e.mustDo("PUT", "/v2/apps/prod/shop/web?force=true", `{"instances": 3}`, 200)
	second := r.json(t)["deploymentId"].(string)
	if ev := next(deploy.EventDeploymentFailed); ev["id"] != first || !strings.Contains(ev["reason"].(string), "superseded by deployment "+second) {
		t.Errorf("superseded deployment event = %v", ev)
	}
	ds := e.deployments()
	if len(ds) != 1 || ds[0]["id"] != second {
		t.Fatalf("deployments = %v", ds)
	}
	if ids := e.launch(nil); len(ids) != 3 {
		t.Errorf("launched %d, want 3", len(ids))
	}
	e.waitNoDeployments()
}

// DELETE /v2/deployments/{id} rolls back as a new deployment; with
// force=true it only forgets the deployment.
func TestDeleteDeployment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	e.launch(nil)
	e.waitNoDeployments()

	e.clk.Step(time.Second)
	d := e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"cmd": "sleep 2"}`, 200).json(t)["deploymentId"].(string)
	r := e.mustDo("DELETE", "/v2/deployments/"+d, "", 200)
	rb := r.json(t)["deploymentId"].(string)
	if rb == "" || rb == d {
		t.Fatalf("rollback answer %s", r.body)
	}
	if app := e.app("/prod/shop/web"); app["cmd"] != "sleep 1000" {
		t.Errorf("cmd after rollback = %v", app["cmd"])
	}
	e.launch(nil)
	e.confirmKills()
	e.waitNoDeployments()

	e.clk.Step(time.Second)
	d = e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"cmd": "sleep 3"}`, 200).json(t)["deploymentId"].(string)
	e.mustDo("DELETE", "/v2/deployments/"+d+"?force=true", "", http.StatusAccepted)
	if n := e.dep.DeploymentCount(); n != 0 {
		t.Errorf("%d deployments after force delete", n)
	}
	if app := e.app("/prod/shop/web"); app["cmd"] != "sleep 3" {
		t.Errorf("force delete changed the app: cmd %v", app["cmd"])
	}
	if ds, _ := e.st.ListDeployments(e.ctx); len(ds) != 0 {
		t.Errorf("store keeps %d deployments", len(ds))
	}
	e.mustDo("DELETE", "/v2/deployments/nope", "", 404)
}

// What the framework's rolling upgrade looks like through the API: with
// minimumHealthCapacity 0.5 and no over-capacity, 4 healthy instances
// never drop below 2 healthy while the new version replaces them.
func TestRollingUpgradeKeepsCapacity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	next := e.collect()
	e.mustDo("POST", "/v2/apps", `{"id": "/roll", "cmd": "sleep 1", "cpus": 0.1, "mem": 16, "instances": 4,
		"upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
		"healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 0}]}`, 201)
	e.launch(ptr(true))
	next(deploy.EventDeploymentSuccess)

	minHealthy := 4
	observe := func() {
		n := 0
		for _, tk := range e.sched.Snapshot().Tasks {
			if tk.Active() && tk.IsHealthy() {
				n++
			}
		}
		minHealthy = min(minHealthy, n)
	}
	e.mustDo("PATCH", "/v2/apps/roll", `{"cmd": "sleep 2"}`, 200)
	for i := 0; i < 10 && e.dep.DeploymentCount() > 0; i++ {
		e.sync()
		observe()
		for _, id := range e.rec.Killed() {
			e.mu.Lock()
			done := e.killed[id]
			e.killed[id] = true
			e.mu.Unlock()
			if !done {
				e.update(id, mesos.TASK_KILLED, nil)
				observe()
			}
		}
		for _, id := range e.offer() {
			e.update(id, mesos.TASK_RUNNING, ptr(true))
			observe()
		}
		time.Sleep(5 * time.Millisecond) // let the API's loop judge the deployment
	}
	next(deploy.EventDeploymentSuccess)
	if minHealthy < 2 {
		t.Errorf("healthy instances fell to %d during the roll, want at least 2", minHealthy)
	}
	if app := e.app("/roll"); app["tasksHealthy"].(float64) != 4 || app["cmd"] != "sleep 2" {
		t.Errorf("after the roll: healthy %v cmd %v", app["tasksHealthy"], app["cmd"])
	}
	if n := len(e.rec.Killed()); n != 4 {
		t.Errorf("%d tasks killed, want the 4 old ones", n)
	}
}
