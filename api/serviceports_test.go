package api

import (
	"fmt"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func servicePortsOf(t *testing.T, app map[string]any) []int {
	t.Helper()
	var out []int
	if c, ok := app["container"].(map[string]any); ok {
		if pms, ok := c["portMappings"].([]any); ok && len(pms) > 0 {
			for _, pm := range pms {
				out = append(out, int(pm.(map[string]any)["servicePort"].(float64)))
			}
			return out
		}
	}
	for _, pd := range app["portDefinitions"].([]any) {
		out = append(out, int(pd.(map[string]any)["port"].(float64)))
	}
	return out
}

const bridgeApp = `{"id": "/shop/web", "instances": 1, "cpus": 0.1, "mem": 32,
	"networks": [{"mode": "container/bridge"}],
	"container": {"type": "DOCKER", "docker": {"image": "flotilla/testapp:dev"},
		"portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"}, {"containerPort": 9000, "hostPort": 0}]}}`

// TestServicePorts: service ports are assigned, unique, kept across
// updates, shown on tasks, a taken one is refused naming its holder, and
// they survive a new leader reading the ZooKeeper store.
func TestServicePorts(t *testing.T) {
	t.Parallel()
	zk, root := zkStore(t, "serviceports-test", "")
	e := newEnvWithStore(t, zk)
	e.mustDo("POST", "/v2/apps", bridgeApp, 201)
	e.mustDo("POST", "/v2/apps", `{"id": "/api", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "portDefinitions": [{"port": 0}, {"port": 0}]}`, 201)
	web, api := servicePortsOf(t, e.app("/shop/web")), servicePortsOf(t, e.app("/api"))
	seen := map[int]bool{}
	for _, p := range append(append([]int{}, web...), api...) {
		if p < 10000 || p > 20000 || seen[p] {
			t.Fatalf("service ports web %v api %v: want unique ports in 10000-20000", web, api)
		}
		seen[p] = true
	}

	// A fixed port held by another app: 422 naming the holder, nothing
	// created.
	r := e.do("POST", "/v2/apps", fmt.Sprintf(`{"id": "/other", "cmd": "x", "portDefinitions": [{"port": %d}]}`, web[1]))
	if r.status != 422 || !strings.Contains(string(r.body), fmt.Sprintf("Requested service port %d conflicts with a service port in app /shop/web", web[1])) ||
		!strings.Contains(string(r.body), `"/portDefinitions/0/port"`) {
		t.Fatalf("taken service port: %d %s", r.status, r.body)
	}
	e.mustDo("GET", "/v2/apps/other", "", 404)

	// An update that leaves ports at 0 keeps them, and is a scale.
	e.mustDo("PUT", "/v2/apps/shop/web?partialUpdate=false&force=true", strings.Replace(bridgeApp, `"instances": 1`, `"instances": 2`, 1), 200)
	if got := servicePortsOf(t, e.app("/shop/web")); fmt.Sprint(got) != fmt.Sprint(web) {
		t.Fatalf("after update: %v, want %v", got, web)
	}
	scaled := false
	for _, d := range e.deployments() {
		if fmt.Sprint(d["affectedApps"]) == "[/shop/web]" {
			scaled = strings.Contains(fmt.Sprint(d["currentActions"]), "ScaleApplication")
		}
	}
	if !scaled {
		t.Fatalf("the update should be a scale: %v", e.deployments())
	}
	// Tasks carry them.
	ids := e.offer()
	if len(ids) == 0 {
		t.Fatal("nothing launched")
	}
	for _, id := range ids {
		e.update(id, mesos.TASK_RUNNING, nil)
	}
	tasks := e.mustDo("GET", "/v2/apps/shop/web/tasks", "", 200).json(t)["tasks"].([]any)
	if len(tasks) == 0 || fmt.Sprint(tasks[0].(map[string]any)["servicePorts"]) != fmt.Sprint([]any{float64(web[0]), float64(web[1])}) {
		t.Fatalf("task servicePorts: %v, want %v", tasks, web)
	}

	// A new leader reads the same ports and keeps refusing them.
	zk2, _ := zkStore(t, "", root)
	next := newEnvWithStore(t, zk2)
	if err := next.dep.Restore(next.ctx); err != nil {
		t.Fatal(err)
	}
	if got := servicePortsOf(t, next.app("/shop/web")); fmt.Sprint(got) != fmt.Sprint(web) {
		t.Fatalf("after restore: %v, want %v", got, web)
	}
	r = next.do("POST", "/v2/apps", fmt.Sprintf(`{"id": "/other", "cmd": "x", "portDefinitions": [{"port": %d}]}`, api[0]))
	if r.status != 422 || !strings.Contains(string(r.body), "conflicts with a service port in app /api") {
		t.Fatalf("after restore, taken port: %d %s", r.status, r.body)
	}
	// Deleting an app frees its ports.
	next.mustDo("DELETE", "/v2/apps/api", "", 200)
	next.mustDo("POST", "/v2/apps", fmt.Sprintf(`{"id": "/other", "cmd": "x", "portDefinitions": [{"port": %d}]}`, api[0]), 201)
}
