package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"testing"
	"time"

	marathon "github.com/gambol99/go-marathon"
)

// TestGoMarathonGroups drives flotilla dev with go-marathon, a third-party
// Marathon client, as a Marathon shop's scripts do: a nested group with
// dependencies is created, read, updated, scaled and deleted; the app that
// depends on another starts only once that one runs healthy; a version is
// rolled back with SetApplicationVersion; KillTasks and DeleteQueueDelay
// work.
func TestGoMarathonGroups(t *testing.T) {
	t.Parallel()
	bin := testappBinary(t)
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{27800, 27899}})
	cfg := marathon.NewDefaultConfig()
	cfg.URL = env.api
	cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	client, err := marathon.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	app := func(id string, deps ...string) *marathon.Application {
		a := marathon.NewDockerApplication().Name(id).CPU(0.05).Memory(32).Count(1)
		a.Container = nil
		a.Cmd = &bin
		a.AddPortDefinition(marathon.PortDefinition{}.SetPort(0))
		hc := marathon.NewDefaultHealthCheck().SetPath("/health")
		hc.IntervalSeconds, hc.TimeoutSeconds = 1, 1
		a.AddHealthCheck(hc)
		if len(deps) > 0 {
			a.DependsOn(deps...)
		}
		return a
	}
	group := &marathon.Group{ID: "/gm/shop",
		Apps:   []*marathon.Application{app("/gm/shop/web", "/gm/shop/db")},
		Groups: []*marathon.Group{{ID: "/gm/shop/db", Apps: []*marathon.Application{app("/gm/shop/db/pg")}}},
	}
	if err := client.CreateGroup(group); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	// web is created by the deployment's second step, once pg runs
	// healthy: until then it does not exist.
	waitFor(t, 90*time.Second, "web and pg to run healthy", func() bool {
		if code, _ := env.do(t, "GET", "/v2/apps/gm/shop/web", ""); code != http.StatusOK {
			return false
		}
		return env.app(t, "/gm/shop/web").TasksHealthy == 1 && env.app(t, "/gm/shop/db/pg").TasksHealthy == 1
	})
	// The dependent started after its dependency was healthy: web's task
	// was staged after pg's first health check passed, which takes at
	// least the check's first interval after pg started.
	pgStarted, webStaged := taskTime(t, env, "/gm/shop/db/pg", "startedAt"), taskTime(t, env, "/gm/shop/web", "stagedAt")
	if !webStaged.After(pgStarted) {
		t.Fatalf("web staged at %v, pg started at %v: web did not wait for its dependency", webStaged, pgStarted)
	}

	got, err := client.Group("/gm/shop")
	if err != nil {
		t.Fatalf("Group: %v", err)
	}
	if len(got.Apps) != 1 || len(got.Groups) != 1 || got.Groups[0].ID != "/gm/shop/db" || len(got.Groups[0].Apps) != 1 {
		t.Fatalf("Group /gm/shop: %+v", got)
	}
	if deps := got.Apps[0].Dependencies; len(deps) != 1 || deps[0] != "/gm/shop/db" {
		t.Fatalf("web's dependencies %v", deps)
	}

	// Scale, then roll the scale back to the first version.
	first, err := client.Application("/gm/shop/web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ScaleApplicationInstances("/gm/shop/web", 2, false); err != nil {
		t.Fatalf("ScaleApplicationInstances: %v", err)
	}
	waitFor(t, 60*time.Second, "2 healthy web tasks", func() bool { return env.app(t, "/gm/shop/web").TasksHealthy == 2 })
	waitFor(t, 30*time.Second, "the scale to finish", func() bool { return len(env.app(t, "/gm/shop/web").Deployments) == 0 })
	if _, err := client.SetApplicationVersion("/gm/shop/web", &marathon.ApplicationVersion{Version: first.Version}); err != nil {
		t.Fatalf("SetApplicationVersion: %v", err)
	}
	waitFor(t, 60*time.Second, "the rollback to 1 instance", func() bool {
		a := env.app(t, "/gm/shop/web")
		return a.TasksRunning == 1 && len(a.Deployments) == 0
	})

	// KillTasks with scale: the app shrinks by the task killed.
	tasks, err := client.Tasks("/gm/shop/db/pg")
	if err != nil || len(tasks.Tasks) != 1 {
		t.Fatalf("Tasks: %v %v", tasks, err)
	}
	if err := client.KillTasks([]string{tasks.Tasks[0].ID}, &marathon.KillTaskOpts{Scale: true}); err != nil {
		t.Fatalf("KillTasks: %v", err)
	}
	waitFor(t, 60*time.Second, "pg scaled to 0", func() bool {
		a := env.app(t, "/gm/shop/db/pg")
		return a.TasksRunning == 0 && len(a.Deployments) == 0
	})
	var apiErr *marathon.APIError
	if err := client.DeleteQueueDelay("/gm/shop/web"); err != nil && !(errors.As(err, &apiErr) && apiErr.ErrCode == marathon.ErrCodeNotFound) {
		t.Fatalf("DeleteQueueDelay: %v", err)
	}

	// Update the group: pg gone from the list means pg removed.
	if _, err := client.UpdateGroup("/gm/shop/db", &marathon.Group{ID: "/gm/shop/db", Apps: []*marathon.Application{}}, true); err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	waitFor(t, 60*time.Second, "pg removed", func() bool {
		code, _ := env.do(t, "GET", "/v2/apps/gm/shop/db/pg", "")
		return code == http.StatusNotFound
	})
	if _, err := client.DeleteGroup("/gm/shop", true); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	waitFor(t, 60*time.Second, "the group gone", func() bool {
		ok, err := client.HasGroup("/gm/shop")
		return err == nil && !ok
	})
}

// taskTime reads a time field of an app's first task.
func taskTime(t *testing.T, env *devEnv, id, field string) time.Time {
	t.Helper()
	_, b := env.do(t, "GET", "/v2/apps"+id+"/tasks", "")
	var v struct {
		Tasks []map[string]any `json:"tasks"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Tasks) == 0 {
		t.Fatalf("tasks of %s: %s", id, b)
	}
	sort.Slice(v.Tasks, func(i, j int) bool { return v.Tasks[i]["id"].(string) < v.Tasks[j]["id"].(string) })
	s, _ := v.Tasks[0][field].(string)
	ts, err := time.Parse("2006-01-02T15:04:05.000Z", s)
	if err != nil {
		t.Fatalf("%s of %s: %q", field, id, s)
	}
	return ts
}
