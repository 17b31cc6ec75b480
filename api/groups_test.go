package api

import (
	"fmt"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

const shopGroup = `{"id": "/prod/shop", "dependencies": [],
	"apps": [
		{"id": "web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "dependencies": ["api"]},
		{"id": "db", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16}
	],
	"groups": [{"id": "api", "dependencies": ["/prod/shop/db"],
		"apps": [{"id": "v1", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2}]}]}`

// appIDsOf lists the apps of the tasks an offer launched.
func (e *env) launchedApps(ids []string) string {
	var apps []string
	for _, id := range ids {
		apps = append(apps, strings.SplitN(id, ".instance-", 2)[0])
	}
	return strings.Join(apps, ",")
}

// TestGroupDeployment: a nested group with dependencies is one
// deployment of steps: db first, then the api group (it depends on db),
// then web (it depends on the api group); each step starts only once the
// one before runs. GET /v2/groups shows the tree; /v2/deployments shows
// the one plan with its steps.
func TestGroupDeployment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.mustDo("POST", "/v2/groups", shopGroup, 201)
	dep := r.json(t)["deploymentId"].(string)
	if r.header.Get("Marathon-Deployment-Id") != dep || r.header.Get("Location") != "/v2/groups/prod/shop" {
		t.Fatalf("headers %v", r.header)
	}
	ds := e.deployments()
	if len(ds) != 1 || ds[0]["id"] != dep || ds[0]["totalSteps"] != float64(3) || ds[0]["currentStep"] != float64(1) {
		t.Fatalf("deployments %v", ds)
	}
	if got := fmt.Sprint(ds[0]["affectedApps"]); got != "[/prod/shop/api/v1 /prod/shop/db /prod/shop/web]" {
		t.Errorf("affected apps %s", got)
	}
	for i, want := range []string{"prod_shop_db", "prod_shop_api_v1,prod_shop_api_v1", "prod_shop_web"} {
		var ids []string
		e.eventually(fmt.Sprintf("step %d to launch", i+1), func() bool {
			ids = append(ids, e.offer()...)
			return len(ids) > 0
		})
		if got := e.launchedApps(ids); got != want {
			t.Fatalf("step %d launched %q, want %q", i+1, got, want)
		}
		if got := e.offer(); len(got) != 0 {
			t.Fatalf("step %d: the next step started before this one ran: %v", i+1, got)
		}
		for _, id := range ids {
			e.update(id, mesos.TASK_RUNNING, nil)
		}
		e.sync()
		if i < 2 {
			e.eventually(fmt.Sprintf("step %d to start", i+2), func() bool {
				ds := e.deployments()
				return len(ds) == 1 && ds[0]["currentStep"] == float64(i+2)
			})
		}
	}
	e.waitNoDeployments()

	tree := e.mustDo("GET", "/v2/groups", "", 200).json(t)
	prod := tree["groups"].([]any)[0].(map[string]any)
	shop := prod["groups"].([]any)[0].(map[string]any)
	if shop["id"] != "/prod/shop" || len(shop["apps"].([]any)) != 2 || shop["groups"].([]any)[0].(map[string]any)["id"] != "/prod/shop/api" {
		t.Fatalf("tree %v", shop)
	}
	// The apps in the tree carry their task counts without their tasks
	// embedded, as GET /v2/apps does (the UI's tree shows them).
	for _, a := range shop["apps"].([]any) {
		if a := a.(map[string]any); a["tasksRunning"] != float64(1) || a["tasks"] != nil {
			t.Errorf("app %v in the tree: tasksRunning %v, tasks %v; want 1 and no tasks", a["id"], a["tasksRunning"], a["tasks"])
		}
	}
	api := e.mustDo("GET", "/v2/groups/prod/shop/api", "", 200).json(t)
	if fmt.Sprint(api["dependencies"]) != "[/prod/shop/db]" || api["apps"].([]any)[0].(map[string]any)["id"] != "/prod/shop/api/v1" {
		t.Fatalf("group /prod/shop/api %v", api)
	}
	e.mustDo("POST", "/v2/groups", shopGroup, 409)

	// scaleBy doubles every app inside.
	e.mustDo("PUT", "/v2/groups/prod/shop", `{"scaleBy": 2}`, 200)
	// In dependency order too: three steps, each started by the deploy
	// loop once the one before runs.
	e.eventually("the scale's three steps", func() bool {
		e.launch(nil)
		return len(e.deployments()) == 0
	})
	if got := e.app("/prod/shop/api/v1")["instances"]; got != float64(4) || e.app("/prod/shop/web")["tasksRunning"] != float64(2) {
		t.Fatalf("after scaleBy 2: api/v1 instances %v, web running %v", got, e.app("/prod/shop/web")["tasksRunning"])
	}

	// A dry run says what would happen and changes nothing.
	r = e.mustDo("PUT", "/v2/groups/prod/shop?dryRun=true", `{"apps": [{"id": "web", "cmd": "sleep 2000", "cpus": 0.1, "mem": 16}]}`, 200)
	if !strings.Contains(string(r.body), `"StopApplication","app":"/prod/shop/db"`) || !strings.Contains(string(r.body), `"/prod/shop/web"`) {
		t.Fatalf("dry run %s", r.body)
	}
	if e.app("/prod/shop/web")["cmd"] != "sleep 1000" || len(e.deployments()) != 0 {
		t.Fatal("a dry run changed something")
	}

	// DELETE removes everything inside.
	e.mustDo("DELETE", "/v2/groups/prod/shop", "", 200)
	e.confirmKills()
	e.waitNoDeployments()
	e.mustDo("GET", "/v2/apps/prod/shop/web", "", 404)
	e.mustDo("GET", "/v2/groups/prod/shop", "", 404)
}

// TestGroupBadInput: a cycle, an id used twice, an app outside its group
// → 422 with the path, and nothing created.
func TestGroupBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct{ name, body, path, substr string }{
		{"cycle", `{"id": "/c", "apps": [{"id": "a", "cmd": "x", "dependencies": ["b"]}, {"id": "b", "cmd": "x", "dependencies": ["a"]}]}`, "/dependencies", "dependency cycle"},
		{"same id", `{"id": "/c", "apps": [{"id": "x", "cmd": "x"}], "groups": [{"id": "x"}]}`, "/groups/0", "used twice"},
		{"outside", `{"id": "/c", "apps": [{"id": "/elsewhere/x", "cmd": "x"}]}`, "/apps/0/id", "is not in group /c"},
		{"dependency on nothing", `{"id": "/c", "apps": [{"id": "a", "cmd": "x", "dependencies": ["/ghost"]}]}`, "/dependencies", "no app or group"},
		{"group version", ``, "", ""},
	}
	for _, tc := range tests[:4] {
		r := e.do("POST", "/v2/groups", tc.body)
		if r.status != 422 || !strings.Contains(string(r.body), `"`+tc.path+`"`) || !strings.Contains(string(r.body), tc.substr) {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	if n := e.dep.AppCount(); n != 0 || len(e.deployments()) != 0 {
		t.Fatalf("refused groups left %d apps and %v", n, e.deployments())
	}
	e.mustDo("PUT", "/v2/groups/nope", `{"scaleBy": 2}`, 404)
	e.mustDo("DELETE", "/v2/groups/nope", "", 404)
}

// TestGroupDeploymentResumes: a new leader reading the store goes on with
// a group deployment's later steps.
func TestGroupDeploymentResumes(t *testing.T) {
	t.Parallel()
	first := newEnv(t)
	first.mustDo("POST", "/v2/groups", shopGroup, 201)
	db := first.offer()
	if first.launchedApps(db) != "prod_shop_db" {
		t.Fatalf("first step launched %v", db)
	}

	next := newEnvWithStore(t, first.st)
	if err := next.dep.Restore(next.ctx); err != nil {
		t.Fatal(err)
	}
	// The db task runs on; the new leader adopts it and moves on.
	next.update(db[0], mesos.TASK_RUNNING, nil)
	next.sync()
	next.eventually("the api step on the new leader", func() bool {
		ds := next.deployments()
		return len(ds) == 1 && ds[0]["currentStep"] == float64(2)
	})
	if got := next.launchedApps(next.offer()); got != "prod_shop_api_v1,prod_shop_api_v1" {
		t.Fatalf("the new leader launched %q", got)
	}
}

// TestGroupPutUnchanged: a group PUT back as it runs starts nothing.
func TestGroupPutUnchanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"id": "/u", "apps": [{"id": "a", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16}]}`
	e.mustDo("POST", "/v2/groups", body, 201)
	e.eventually("the app to run", func() bool { e.launch(nil); return len(e.deployments()) == 0 })
	ports := fmt.Sprint(e.app("/u/a")["portDefinitions"])
	r := e.mustDo("PUT", "/v2/groups/u?dryRun=true", body, 200)
	if strings.Contains(string(r.body), `"/u/a"`) {
		t.Fatalf("an unchanged app is in the plan: %s", r.body)
	}
	e.mustDo("PUT", "/v2/groups/u", body, 200)
	if n := len(e.deployments()); n != 0 || fmt.Sprint(e.app("/u/a")["portDefinitions"]) != ports {
		t.Fatalf("%d deployments, ports %v (were %s)", n, e.app("/u/a")["portDefinitions"], ports)
	}
}

// TestGroupServicePorts: an app added to a group next to one that runs
// gets a port of its own; the running app keeps its port; two apps of one
// change asking for the same port, or one held outside, are refused
// naming the holder.
func TestGroupServicePorts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/groups", `{"id": "/s", "apps": [{"id": "a", "cmd": "x", "cpus": 0.1, "mem": 16}]}`, 201)
	kept := fmt.Sprint(e.app("/s/a")["portDefinitions"])
	e.mustDo("PUT", "/v2/groups/s?force=true", `{"apps": [{"id": "a", "cmd": "x", "cpus": 0.1, "mem": 16, "instances": 2}, {"id": "0b", "cmd": "x", "cpus": 0.1, "mem": 16}]}`, 200)
	// (0b sorts before a: it is given a port before a keeps its own.)
	e.eventually("0b to exist", func() bool { return e.do("GET", "/v2/apps/s/0b", "").status == 200 })
	if got := fmt.Sprint(e.app("/s/a")["portDefinitions"]); got != kept {
		t.Fatalf("a's ports moved from %s to %s", kept, got)
	}
	if a, b := servicePortsOf(t, e.app("/s/a")), servicePortsOf(t, e.app("/s/0b")); a[0] == b[0] {
		t.Fatalf("a and b share service port %d", a[0])
	}
	held := servicePortsOf(t, e.app("/s/a"))[0]
	r := e.do("POST", "/v2/groups", fmt.Sprintf(`{"id": "/t", "apps": [{"id": "c", "cmd": "x", "portDefinitions": [{"port": %d}]}]}`, held))
	if r.status != 422 || !strings.Contains(string(r.body), "conflicts with a service port in app /s/a") {
		t.Fatalf("a port held outside the group: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v2/groups", `{"id": "/u", "apps": [{"id": "c", "cmd": "x", "portDefinitions": [{"port": 15000}]}, {"id": "d", "cmd": "x", "portDefinitions": [{"port": 15000}]}]}`)
	if r.status != 422 || !strings.Contains(string(r.body), "conflicts with a service port in app /u/c") {
		t.Fatalf("one port asked twice: %d %s", r.status, r.body)
	}
}
