package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	marathon "github.com/gambol99/go-marathon"
)

// TestGoMarathonBulkStatsEvents drives flotilla dev with go-marathon's
// event stream and types: a bulk PUT /v2/apps is one deployment whose
// group_change_success go-marathon decodes; embed=apps.taskStats decodes
// into go-marathon's TaskStats; a second bulk update is rolled back with
// PUT /v2/groups/{id} {"version"}, and the tasks run the first config
// again.
func TestGoMarathonBulkStatsEvents(t *testing.T) {
	t.Parallel()
	bin := testappBinary(t)
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{23500, 23599}, servicePorts: [2]uint32{23600, 23699}})
	cfg := marathon.NewDefaultConfig()
	cfg.URL = env.api
	cfg.EventsTransport = marathon.EventsTransportSSE
	// One client for calls and the event stream (go-marathon 0.7 has no
	// other): no overall timeout, which would cut the stream, but a bound
	// on every answer's header.
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}
	client, err := marathon.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	events, err := client.AddEventsListener(marathon.EventIDGroupChangeSuccess)
	if err != nil {
		t.Fatalf("AddEventsListener: %v", err)
	}
	defer client.RemoveEventsListener(events)

	app := func(id, extra string) string {
		return fmt.Sprintf(`{"id": %q, "cmd": %q, "cpus": 0.05, "mem": 32, "portDefinitions": [{"port": 0}]%s}`, id, bin, extra)
	}
	code, b := env.do(t, "PUT", "/v2/apps", "["+app("/bulk/a", "")+","+app("/bulk/b", "")+"]")
	if code != http.StatusOK {
		t.Fatalf("bulk PUT /v2/apps: %d %s", code, b)
	}
	var res struct {
		Version      string `json:"version"`
		DeploymentID string `json:"deploymentId"`
	}
	if err := json.Unmarshal(b, &res); err != nil || res.DeploymentID == "" {
		t.Fatalf("bulk answer %s: %v", b, err)
	}
	select {
	case ev := <-events:
		gc, ok := ev.Event.(*marathon.EventGroupChangeSuccess)
		if !ok || gc.GroupID != "/" || gc.Version != res.Version {
			t.Fatalf("go-marathon decoded %s as %+v, want group / at %s", ev.Name, ev.Event, res.Version)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("go-marathon saw no group_change_success")
	}
	running := func(id string) bool {
		a := env.app(t, id)
		return a.TasksRunning == 1 && len(a.Deployments) == 0
	}
	waitFor(t, 60*time.Second, "both apps running", func() bool { return running("/bulk/a") && running("/bulk/b") })

	got, err := client.ApplicationBy("/bulk/a", &marathon.GetAppOpts{Embed: []string{"apps.taskStats"}})
	if err != nil {
		t.Fatalf("ApplicationBy with taskStats: %v", err)
	}
	total, ok := got.TaskStats["totalSummary"]
	if !ok || total.Stats.Counts["running"] != 1 || total.Stats.LifeTime["averageSeconds"] < 0 {
		t.Fatalf("taskStats as go-marathon reads them: %+v", got.TaskStats)
	}
	if _, ok := got.TaskStats["withLatestConfig"]; !ok {
		t.Errorf("taskStats without withLatestConfig: %+v", got.TaskStats)
	}

	// A second bulk update, then the group /bulk rolled back to before it.
	code, b = env.do(t, "GET", "/v2/groups/bulk", "")
	var g struct {
		Version string `json:"version"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &g) != nil || g.Version == "" {
		t.Fatalf("GET /v2/groups/bulk: %d %s", code, b)
	}
	code, b = env.do(t, "PATCH", "/v2/apps", `[{"id": "/bulk/a", "env": {"V": "2"}}, {"id": "/bulk/b", "env": {"V": "2"}}]`)
	if code != http.StatusOK {
		t.Fatalf("bulk PATCH: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "the env change to roll out", func() bool {
		return env.app(t, "/bulk/a").Env["V"] == "2" && running("/bulk/a") && running("/bulk/b")
	})
	code, b = env.do(t, "PUT", "/v2/groups/bulk", fmt.Sprintf(`{"version": %q}`, g.Version))
	if code != http.StatusOK {
		t.Fatalf("group rollback: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "the rollback to roll out", func() bool {
		a, b := env.app(t, "/bulk/a"), env.app(t, "/bulk/b")
		return a.Env["V"] == nil && b.Env["V"] == nil && running("/bulk/a") && running("/bulk/b")
	})
	a, err := client.Application("/bulk/a")
	if err != nil || a.Env != nil && len(*a.Env) != 0 {
		t.Fatalf("after the rollback go-marathon reads /bulk/a env %v (%v)", a.Env, err)
	}
}
