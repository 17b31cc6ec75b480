package api

import (
	"strings"
	"testing"
)

// TestRollbackByVersion: PUT {"version": V} is Marathon's rollback: the
// app as it was at V becomes current as a new deployment, named in the
// Marathon-Deployment-Id header; a version that does not exist is 404
// naming /version and changes nothing; a GET body PUT back (it carries
// "version" among other fields) is an ordinary update.
func TestRollbackByVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	e.launch(nil)
	e.waitNoDeployments()
	v1 := e.app("/prod/shop/web")["version"].(string)
	e.clk.Step(1e9)
	e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"cmd": "sleep 2000"}`, 200)
	e.launch(nil)
	e.confirmKills()
	e.waitNoDeployments()
	if got := e.app("/prod/shop/web")["cmd"]; got != "sleep 2000" {
		t.Fatalf("after the update cmd = %v", got)
	}

	e.clk.Step(1e9)
	r := e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"version": "`+v1+`"}`, 200)
	dep := r.json(t)["deploymentId"].(string)
	if r.header.Get("Marathon-Deployment-Id") != dep || dep == "" {
		t.Fatalf("deployment id %q, header %q", dep, r.header.Get("Marathon-Deployment-Id"))
	}
	e.launch(nil)
	e.confirmKills()
	e.waitNoDeployments()
	if got := e.app("/prod/shop/web")["cmd"]; got != "sleep 1000" {
		t.Fatalf("after the rollback cmd = %v, want v1's", got)
	}

	r = e.do("PUT", "/v2/apps/prod/shop/web", `{"id": "/prod/shop/web", "version": "2001-01-01T00:00:00.000Z"}`)
	if r.status != 404 || !strings.Contains(string(r.body), `"/version"`) {
		t.Fatalf("unknown version: %d %s", r.status, r.body)
	}
	// What GET returns, PUT back with a change: an update, not a rollback.
	body := strings.Replace(string(e.mustDo("GET", "/v2/apps/prod/shop/web", "", 200).body), `"instances":2`, `"instances":3`, 1)
	body = body[strings.Index(body, `{"id"`) : len(body)-2]
	e.mustDo("PUT", "/v2/apps/prod/shop/web", body, 200)
	if got := e.app("/prod/shop/web")["instances"]; got != float64(3) {
		t.Fatalf("PUT of a GET body: instances %v", got)
	}
}
