package api

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// stats digs taskStats.<category>.stats out of an app.
func stats(t *testing.T, app map[string]any, category string) map[string]any {
	t.Helper()
	ts, ok := app["taskStats"].(map[string]any)
	if !ok {
		t.Fatalf("no taskStats in %v", app)
	}
	c, ok := ts[category].(map[string]any)
	if !ok {
		return nil
	}
	return c["stats"].(map[string]any)
}

// TestEmbedTaskStats: embed=apps.taskStats gives Marathon's
// TaskStatsByVersion: counts and life times per category, categories
// without tasks left out; scaling and config changes move tasks between
// them.
func TestEmbedTaskStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id": "/s", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2}`, 201)
	e.launch(nil)
	e.waitNoDeployments()
	e.clk.Step(10 * time.Second)
	e.sync()

	app := e.mustDo("GET", "/v2/apps?embed=apps.taskStats", "", 200).json(t)["apps"].([]any)[0].(map[string]any)
	total := stats(t, app, "totalSummary")
	if got := fmt.Sprint(total["counts"]); got != "map[healthy:0 running:2 staged:0 unhealthy:0]" {
		t.Errorf("totalSummary counts %s", got)
	}
	if lt := total["lifeTime"].(map[string]any); lt["averageSeconds"] != float64(10) || lt["medianSeconds"] != float64(10) {
		t.Errorf("lifeTime %v, want 10 s (the clock moved 10 s since the tasks started)", lt)
	}
	if stats(t, app, "withLatestConfig") == nil || stats(t, app, "withOutdatedConfig") != nil {
		t.Errorf("every task runs the latest config: %v", app["taskStats"])
	}
	if app["tasks"] != nil {
		t.Error("taskStats alone embedded the tasks")
	}

	// A scale: only the new task started after it.
	e.mustDo("PUT", "/v2/apps/s", `{"instances": 3}`, 200)
	e.launch(nil)
	e.waitNoDeployments()
	app = e.mustDo("GET", "/v2/apps/s?embed=apps.taskStats", "", 200).json(t)["app"].(map[string]any)
	if got := stats(t, app, "startedAfterLastScaling")["counts"].(map[string]any)["running"]; got != float64(1) {
		t.Errorf("startedAfterLastScaling running %v, want 1", got)
	}
	if app["tasks"] == nil || len(app["tasks"].([]any)) != 3 {
		t.Errorf("GET /v2/apps/{id} always has the tasks: %v", app["tasks"])
	}

	// A config change: the running tasks are outdated until replaced.
	e.mustDo("PUT", "/v2/apps/s", `{"cmd": "sleep 2000"}`, 200)
	app = e.mustDo("GET", "/v2/apps/s?embed=apps.taskStats", "", 200).json(t)["app"].(map[string]any)
	if out := stats(t, app, "withOutdatedConfig"); out == nil || out["counts"].(map[string]any)["running"] != float64(3) {
		t.Errorf("withOutdatedConfig %v, want 3 running", out)
	}
	if stats(t, app, "withLatestConfig") != nil {
		t.Errorf("no task runs the new config yet: %v", app["taskStats"])
	}
}

// TestEmbedReadinessAndFailures: readinessCheckResults per task of an app
// with a readiness check; apps.failures (Marathon's deprecated embed) is
// the tasks and the last failure; the same embeds under group.apps. in
// GET /v2/groups; unknown embeds are ignored as Marathon ignores them.
func TestEmbedReadinessAndFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id": "/g/r", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16,
		"portDefinitions": [{"port": 0, "name": "http"}],
		"readinessChecks": [{"name": "ready-check", "portName": "http", "path": "/ready"}]}`, 201)
	ids := e.launch(nil)
	if len(ids) != 1 {
		t.Fatalf("launched %v", ids)
	}
	readiness := func(path string, app func(map[string]any) map[string]any) []any {
		t.Helper()
		a := app(e.mustDo("GET", path, "", 200).json(t))
		rs, ok := a["readinessCheckResults"].([]any)
		if !ok {
			t.Fatalf("GET %s: no readinessCheckResults in %v", path, a)
		}
		return rs
	}
	fromList := func(m map[string]any) map[string]any { return m["apps"].([]any)[0].(map[string]any) }
	fromGroup := func(m map[string]any) map[string]any {
		return m["groups"].([]any)[0].(map[string]any)["apps"].([]any)[0].(map[string]any)
	}
	rs := readiness("/v2/apps?embed=apps.readiness", fromList)
	if len(rs) != 1 || fmt.Sprint(rs[0]) != fmt.Sprintf("map[name:ready-check ready:false taskId:%s]", ids[0]) {
		t.Fatalf("readinessCheckResults %v", rs)
	}
	// The deployment waits for the check, and shows it as Marathon does.
	ds := e.deployments()
	if len(ds) != 1 {
		t.Fatalf("deployments %v, want the one waiting for readiness", ds)
	}
	ca := ds[0]["currentActions"].([]any)[0].(map[string]any)
	if got := fmt.Sprint(ca["readinessCheckResults"]); got != fmt.Sprintf("[map[name:ready-check ready:false taskId:%s]]", ids[0]) {
		t.Errorf("currentActions readinessCheckResults %s", got)
	}
	if err := e.sched.SetReadiness(ids[0], true); err != nil {
		t.Fatal(err)
	}
	e.sync()
	rs = readiness("/v2/groups?embed=group.groups&embed=group.apps.readiness", fromGroup)
	if len(rs) != 1 || rs[0].(map[string]any)["ready"] != true {
		t.Fatalf("readinessCheckResults after the check passed %v", rs)
	}
	e.waitNoDeployments()

	// A task fails: apps.failures embeds the tasks and the failure.
	e.update(ids[0], mesos.TASK_FAILED, nil)
	e.eventually("the failure to be recorded", func() bool { return e.srv.lastTF.get("/g/r") != nil })
	a := e.mustDo("GET", "/v2/apps?embed=apps.failures", "", 200).json(t)["apps"].([]any)[0].(map[string]any)
	f, ok := a["lastTaskFailure"].(map[string]any)
	if !ok || f["taskId"] != ids[0] || f["state"] != "TASK_FAILED" || a["tasks"] == nil {
		t.Fatalf("embed=apps.failures: lastTaskFailure %v, tasks %v", a["lastTaskFailure"], a["tasks"])
	}
	g := e.mustDo("GET", "/v2/groups?embed=group.groups&embed=group.apps.lastTaskFailure&embed=group.apps.counts&embed=group.apps.deployments&embed=group.apps.taskStats", "", 200).json(t)
	ga := fromGroup(g)
	if ga["lastTaskFailure"] == nil || ga["taskStats"] == nil || ga["tasksRunning"] == nil || ga["deployments"] == nil || ga["tasks"] != nil {
		t.Errorf("group app with lastTaskFailure, taskStats, counts and deployments embedded: %v", ga)
	}

	// Unknown embeds change nothing (Marathon logs and ignores them).
	plain := e.mustDo("GET", "/v2/apps", "", 200).body
	odd := e.mustDo("GET", "/v2/apps?embed=apps.pods&embed=nonsense", "", 200).body
	var p1, p2 any
	if json.Unmarshal(plain, &p1) != nil || json.Unmarshal(odd, &p2) != nil || fmt.Sprint(p1) != fmt.Sprint(p2) {
		t.Errorf("unknown embeds changed the answer:\n%s\n%s", plain, odd)
	}
	e.mustDo("GET", "/v2/groups?embed=group.pods&embed=group.apps.bogus", "", 200)
}
