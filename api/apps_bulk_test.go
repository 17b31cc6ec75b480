package api

import (
	"fmt"
	"strings"
	"testing"
)

// TestBulkAppUpdate: PUT /v2/apps with an array changes several apps as
// one deployment; partialUpdate merges by default and replaces with
// partialUpdate=false; PATCH never creates; a bad update refuses the
// whole request with the update's index in the path, and nothing is
// written.
func TestBulkAppUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	next := e.collect()
	e.mustDo("POST", "/v2/apps", `{"id": "/a", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2, "labels": {"team": "x"}}`, 201)
	e.mustDo("POST", "/v2/apps", `{"id": "/b", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16}`, 201)
	e.mustDo("POST", "/v2/apps", `{"id": "/g/h", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16}`, 201)
	e.launch(nil)
	e.waitNoDeployments()
	bVersion := e.app("/b")["version"].(string)

	r := e.mustDo("PUT", "/v2/apps", `[{"id": "/a", "instances": 3}, {"id": "b", "cmd": "sleep 2000"}, {"id": "/c", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16}]`, 200)
	m := r.json(t)
	dep, _ := m["deploymentId"].(string)
	if dep == "" || r.header.Get("Marathon-Deployment-Id") != dep || m["version"] == nil {
		t.Fatalf("answer %s, header %q", r.body, r.header.Get("Marathon-Deployment-Id"))
	}
	if ev := next(eventGroupChangeSuccess); ev["groupId"] != "/" || ev["version"] != m["version"] {
		t.Errorf("group_change_success = %v, want groupId / and version %v", ev, m["version"])
	}
	ds := e.deployments()
	if len(ds) != 1 || ds[0]["id"] != dep || fmt.Sprint(ds[0]["affectedApps"]) != "[/a /b /c]" {
		t.Fatalf("one deployment %s for the three apps, got %v", dep, ds)
	}
	a, b := e.app("/a"), e.app("/b")
	if a["instances"] != float64(3) || a["cmd"] != "sleep 1000" || fmt.Sprint(a["labels"]) != "map[team:x]" {
		t.Errorf("partial update of /a lost fields: %v", a)
	}
	if b["cmd"] != "sleep 2000" {
		t.Errorf("/b cmd %v", b["cmd"])
	}
	e.eventually("the bulk deployment to end", func() bool {
		e.launch(nil)
		return e.dep.DeploymentCount() == 0 && len(e.deployments()) == 0
	})

	// partialUpdate=false: the update is the whole app.
	e.mustDo("PUT", "/v2/apps?partialUpdate=false", `[{"id": "/a", "cmd": "sleep 3000", "cpus": 0.1, "mem": 16}]`, 200)
	if a := e.app("/a"); a["instances"] != float64(1) || a["labels"] != nil && len(a["labels"].(map[string]any)) != 0 {
		t.Errorf("a full replace kept old fields: instances %v labels %v", a["instances"], a["labels"])
	}
	e.eventually("the replace to end", func() bool {
		e.launch(nil)
		return len(e.deployments()) == 0
	})

	// {"id", "version"} rolls one app back inside a bulk update.
	e.mustDo("PATCH", "/v2/apps", fmt.Sprintf(`[{"id": "/b", "version": %q}]`, bVersion), 200)
	if got := e.app("/b")["cmd"]; got != "sleep 1000" {
		t.Errorf("rollback in a bulk update: cmd %v", got)
	}
	e.eventually("the rollback to end", func() bool {
		e.launch(nil)
		return len(e.deployments()) == 0
	})

	before := e.mustDo("GET", "/v2/apps", "", 200).body
	tests := []struct {
		name, method, body string
		status             int
		path, msg          string
	}{
		{"patch never creates", "PATCH", `[{"id": "/a", "instances": 2}, {"id": "/nope", "cmd": "x"}]`, 404, "", "/nope"},
		{"invalid field", "PUT", `[{"id": "/a", "instances": 2}, {"id": "/b", "cpus": -1}]`, 422, "/1/cpus", ""},
		{"unknown field", "PUT", `[{"id": "/a", "instancez": 2}]`, 422, "/0/instancez", ""},
		{"no id", "PUT", `[{"instances": 2}]`, 422, "/0/id", ""},
		{"twice", "PUT", `[{"id": "/a", "instances": 2}, {"id": "a", "instances": 3}]`, 422, "/1/id", ""},
		{"no such version", "PUT", `[{"id": "/b", "version": "2001-01-01T00:00:00.000Z"}]`, 404, "/0/version", ""},
		{"not an array", "PUT", `{"id": "/a"}`, 400, "/", ""},
		{"empty", "PUT", `[]`, 422, "/", ""},
		{"root id", "PUT", `[{"id": "/", "cmd": "x"}]`, 422, "/0/id", ""},
		{"app id is a group", "PUT", `[{"id": "/a", "instances": 2}, {"id": "/g", "cmd": "x", "cpus": 0.1, "mem": 16}]`, 422, "/1/id", "/g is a group"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, "/v2/apps", tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.path != "" {
				hasDetail(tc.path)(t, r)
			}
			if tc.msg != "" && !strings.Contains(string(r.body), tc.msg) {
				t.Errorf("answer %s does not name %s", r.body, tc.msg)
			}
		})
	}
	if after := e.mustDo("GET", "/v2/apps", "", 200).body; string(after) != string(before) || len(e.deployments()) != 0 {
		t.Errorf("a refused bulk update changed something:\nbefore %s\nafter  %s", before, after)
	}

	// A deployment in progress locks its apps unless forced.
	e.mustDo("PUT", "/v2/apps/a", `{"instances": 4}`, 200)
	r = e.do("PUT", "/v2/apps", `[{"id": "/a", "instances": 5}]`)
	if r.status != 409 || !strings.Contains(string(r.body), "force=true") {
		t.Fatalf("bulk update of a locked app: %d %s", r.status, r.body)
	}
	if ev := next(eventGroupChangeFailed); ev["groupId"] != "/" || !strings.Contains(fmt.Sprint(ev["reason"]), "locked") {
		t.Errorf("group_change_failed = %v, want the lock", ev)
	}
	e.mustDo("PUT", "/v2/apps?force=true", `[{"id": "/a", "instances": 5}]`, 200)
	if got := e.app("/a")["instances"]; got != float64(5) {
		t.Errorf("forced bulk update: instances %v", got)
	}
}
