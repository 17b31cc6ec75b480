package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// settle runs launches and kill confirmations until no deployment is left.
func (e *env) settle(what string) {
	e.t.Helper()
	e.eventually(what, func() bool {
		e.launch(nil)
		return len(e.deployments()) == 0
	})
}

func (e *env) groupVersions(id string) []string {
	e.t.Helper()
	var vs []string
	if err := json.Unmarshal(e.mustDo("GET", "/v2/groups"+id+"/versions", "", 200).body, &vs); err != nil {
		e.t.Fatal(err)
	}
	return vs
}

// TestGroupVersionsRollback, on real ZooKeeper: the state a group change
// replaces stays a version of the group (also when it was reached through
// /v2/apps); GET …/versions/{v} shows it; PUT {"version": v} rolls the
// whole group back as one deployment; a version that holds an app whose
// history is gone, or a version that does not exist, is refused with the
// path and nothing is written; a new leader lists the same versions.
func TestGroupVersionsRollback(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zk, root := zkStore(t, "api-gv", "")
	e := newEnvWithStore(t, zk)

	e.mustDo("POST", "/v2/groups", `{"id": "/shop", "apps": [{"id": "web", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}],
		"groups": [{"id": "api", "apps": [{"id": "v1", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}]}]}`, 201)
	e.settle("the group to deploy")
	v1 := e.mustDo("GET", "/v2/groups/shop", "", 200).json(t)["version"].(string)
	if vs := e.groupVersions("/shop"); len(vs) != 1 || vs[0] != v1 {
		t.Fatalf("versions %v, want the current one %s", vs, v1)
	}

	// A group change (web changed, db added), then an app change.
	e.mustDo("PUT", "/v2/groups/shop", `{"apps": [{"id": "web", "cmd": "sleep 2", "cpus": 0.1, "mem": 16}, {"id": "db", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}]}`, 200)
	e.settle("the group change")
	e.mustDo("PUT", "/v2/apps/shop/api/v1", `{"instances": 2}`, 200)
	e.settle("the scale")
	v2 := e.mustDo("GET", "/v2/groups/shop", "", 200).json(t)["version"].(string)
	if vs := e.groupVersions("/shop"); len(vs) != 2 || vs[0] != v2 || vs[1] != v1 || v2 <= v1 {
		t.Fatalf("versions %v, want [%s %s]", vs, v2, v1)
	}

	// The old version as it was.
	old := e.mustDo("GET", "/v2/groups/shop/versions/"+v1, "", 200).json(t)
	apps := old["apps"].([]any)
	api := old["groups"].([]any)[0].(map[string]any)
	if old["version"] != v1 || len(apps) != 1 || apps[0].(map[string]any)["cmd"] != "sleep 1" ||
		api["id"] != "/shop/api" || api["apps"].([]any)[0].(map[string]any)["instances"] != float64(1) {
		t.Fatalf("version %s: %v", v1, old)
	}

	// Roll back: web as it was, db gone, api/v1 back to 1 instance.
	r := e.mustDo("PUT", "/v2/groups/shop", fmt.Sprintf(`{"version": %q}`, v1), 200)
	if r.json(t)["deploymentId"] == nil || r.header.Get("Marathon-Deployment-Id") == "" {
		t.Fatalf("rollback answer %s", r.body)
	}
	e.settle("the rollback")
	if web, v1app := e.app("/shop/web"), e.app("/shop/api/v1"); web["cmd"] != "sleep 1" || v1app["instances"] != float64(1) {
		t.Fatalf("after the rollback: web %v, api/v1 instances %v", web["cmd"], v1app["instances"])
	}
	e.mustDo("GET", "/v2/apps/shop/db", "", 404)

	// Rolling forward to v2 needs db's version, whose history went with
	// db: refused with the path, nothing written.
	vs := e.groupVersions("/shop")
	if !slices.Contains(vs, v2) {
		t.Fatalf("versions after the rollback %v lack %s", vs, v2)
	}
	before := e.mustDo("GET", "/v2/groups/shop?embed=group.groups&embed=group.apps", "", 200).body
	r = e.do("PUT", "/v2/groups/shop", fmt.Sprintf(`{"version": %q}`, v2))
	if r.status != 422 || !strings.Contains(string(r.body), "/shop/db") {
		t.Fatalf("roll forward to %s: %d %s", v2, r.status, r.body)
	}
	hasDetail("/apps/0")(t, r)
	r = e.do("PUT", "/v2/groups/shop", `{"version": "2001-01-01T00:00:00.000Z"}`)
	if r.status != 404 || !strings.Contains(string(r.body), "/v2/groups/shop/versions") {
		t.Fatalf("a version that does not exist: %d %s", r.status, r.body)
	}
	hasDetail("/version")(t, r)
	e.mustDo("PUT", "/v2/groups/nope", `{"version": "2001-01-01T00:00:00.000Z"}`, 404)
	e.mustDo("GET", "/v2/groups/shop/versions/2001-01-01T00:00:00.000Z", "", 404)
	e.mustDo("GET", "/v2/groups/nope/versions", "", 404)
	if after := e.mustDo("GET", "/v2/groups/shop?embed=group.groups&embed=group.apps", "", 200).body; string(after) != string(before) || len(e.deployments()) != 0 {
		t.Fatalf("a refused rollback changed something:\n%s\n%s", before, after)
	}

	// A new leader reads the same versions from ZooKeeper.
	zk2, _ := zkStore(t, "", root)
	next := newEnvWithStore(t, zk2)
	if err := next.dep.Restore(next.ctx); err != nil {
		t.Fatal(err)
	}
	if got := next.groupVersions("/shop"); strings.Join(got, " ") != strings.Join(vs, " ") {
		t.Errorf("a new leader lists %v, want %v", got, vs)
	}
	// Each kept version is a node of its own, holding references only.
	gv, err := zk2.GetGroupVersion(ctx, "/shop", v1)
	if err != nil || len(gv.Apps) != 1 || gv.Groups["/shop/api"] == "" {
		t.Errorf("stored version %s of /shop: %+v %v", v1, gv, err)
	}

	// Deleting the group forgets its versions, as an app's go with it.
	e.mustDo("DELETE", "/v2/groups/shop", "", 200)
	if _, err := zk2.ListGroupVersions(ctx, "/shop/api"); err == nil {
		t.Error("the versions of a deleted group are still kept")
	}
}

// TestRootGroupRollback: the root group's versions, and PUT /v2/groups
// {"version"} rolling back everything, including apps a bulk update
// added.
func TestRootGroupRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("PUT", "/v2/apps", `[{"id": "/r1", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}]`, 200)
	e.settle("the first app")
	v1 := e.groupVersions("")[0]
	e.mustDo("PUT", "/v2/apps", `[{"id": "/r1", "cmd": "sleep 2"}, {"id": "/x/r2", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}]`, 200)
	e.settle("the bulk change")
	if vs := e.groupVersions(""); len(vs) != 2 || vs[1] != v1 {
		t.Fatalf("root versions %v, want the current one and %s", vs, v1)
	}
	old := e.mustDo("GET", "/v2/groups/versions/"+v1, "", 200).json(t)
	if old["id"] != "/" || len(old["apps"].([]any)) != 1 || len(old["groups"].([]any)) != 0 {
		t.Fatalf("root at %s: %v", v1, old)
	}
	e.mustDo("PUT", "/v2/groups?dryRun=true", fmt.Sprintf(`{"version": %q}`, v1), 200)
	if e.app("/r1")["cmd"] != "sleep 2" {
		t.Fatal("a dry run rolled back")
	}
	e.mustDo("PUT", "/v2/groups", fmt.Sprintf(`{"version": %q}`, v1), 200)
	e.settle("the rollback")
	if got := e.app("/r1")["cmd"]; got != "sleep 1" {
		t.Errorf("/r1 cmd %v after the rollback", got)
	}
	e.mustDo("GET", "/v2/apps/x/r2", "", 404)
	e.mustDo("GET", "/v2/groups/x", "", 404)
}
