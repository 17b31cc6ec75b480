package deploy

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// TestReached judges deployments from snapshots, as a table: the
// decision is pure, so every case is a snapshot and an answer.
func TestReached(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	app := func(instances int, version string) *appspec.App {
		return &appspec.App{ID: "/web", Instances: instances, Version: version}
	}
	task := func(n int, version string, state mesos.TaskState, healthy *bool, killing bool) framework.Task {
		return framework.Task{ID: framework.TaskIDPrefix("/web") + ".instance-" + string(rune('a'+n)) + "._app.1", AppID: "/web",
			AppVersion: version, State: state, Healthy: healthy, Killing: killing}
	}
	run := mesos.TASK_RUNNING
	tests := []struct {
		name   string
		d      Deployment
		health bool
		apps   []*appspec.App
		tasks  []framework.Task
		want   Progress
	}{
		{"all new, running", Deployment{AppID: "/web", Target: "v2"}, false,
			[]*appspec.App{app(2, "v2")}, []framework.Task{task(0, "v2", run, nil, false), task(1, "v2", run, nil, false)}, Progress{Done: true, Ready: 2, All: 2}},
		{"one still old", Deployment{AppID: "/web", Target: "v2"}, false,
			[]*appspec.App{app(2, "v2")}, []framework.Task{task(0, "v2", run, nil, false), task(1, "v1", run, nil, false)}, Progress{Ready: 1, All: 2}},
		{"unhealthy does not count", Deployment{AppID: "/web", Target: "v2"}, true,
			[]*appspec.App{app(2, "v2")}, []framework.Task{task(0, "v2", run, &yes, false), task(1, "v2", run, &no, false)}, Progress{Ready: 1, All: 2}},
		{"health unknown does not count", Deployment{AppID: "/web", Target: "v2"}, true,
			[]*appspec.App{app(1, "v2")}, []framework.Task{task(0, "v2", run, nil, false)}, Progress{Ready: 0, All: 1}},
		{"one being killed is not done", Deployment{AppID: "/web", Target: "v2"}, false,
			[]*appspec.App{app(1, "v2")}, []framework.Task{task(0, "v2", run, nil, false), task(1, "v2", run, nil, true)}, Progress{Ready: 1, All: 1}},
		{"staging is not done", Deployment{AppID: "/web", Target: "v2"}, false,
			[]*appspec.App{app(1, "v2")}, []framework.Task{task(0, "v2", mesos.TASK_STAGING, nil, false)}, Progress{All: 1}},
		{"scheduler not yet at the target", Deployment{AppID: "/web", Target: "v2"}, false,
			[]*appspec.App{app(1, "v1")}, []framework.Task{task(0, "v2", run, nil, false)}, Progress{Ready: 1, All: 1}},
		{"stop with a task left", Deployment{AppID: "/web", Action: ActionStop}, false,
			nil, []framework.Task{task(0, "v1", run, nil, true)}, Progress{All: 1}},
		{"stop done", Deployment{AppID: "/web", Action: ActionStop}, false, nil, nil, Progress{Done: true}},
		{"scale to zero", Deployment{AppID: "/web", Target: "v1"}, false, []*appspec.App{app(0, "v1")}, nil, Progress{Done: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := &framework.Snapshot{Apps: tc.apps, Tasks: tc.tasks}
			if got := Reached(snap, &tc.d, tc.health); got != tc.want {
				t.Errorf("Reached = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestCountKillable: the kill-and-scale count, decided once here, counts
// only active tasks not already being killed.
func TestCountKillable(t *testing.T) {
	t.Parallel()
	id := func(s string) string { return framework.TaskIDPrefix("/web") + ".instance-" + s + "._app.1" }
	snap := &framework.Snapshot{Tasks: []framework.Task{
		{ID: id("a"), AppID: "/web", State: mesos.TASK_RUNNING},
		{ID: id("b"), AppID: "/web", State: mesos.TASK_RUNNING, Killing: true},
		{ID: id("c"), AppID: "/web", State: mesos.TASK_FINISHED},
		{ID: id("d"), AppID: "/web", State: mesos.TASK_STAGING},
	}}
	if n := countKillable(snap, "/web", []string{id("a"), id("b"), id("c"), id("d"), id("zz")}); n != 2 {
		t.Errorf("countKillable = %d, want 2 (a and d)", n)
	}
}

func TestIndexServicePorts(t *testing.T) {
	t.Parallel()
	var x index
	x.init()
	rec := func(id string, ports ...uint32) *Record {
		a := &appspec.App{ID: id, Cmd: "x"}
		for _, p := range ports {
			a.PortDefinitions = append(a.PortDefinitions, appspec.PortDefinition{Port: p})
		}
		a.Normalize()
		return newRecord(a, 1, "v", "v")
	}
	x.put(rec("/a", 10000, 10001))
	x.put(rec("/b", 10002))
	if h := x.servicePortHolder(10001, "/b"); h != "/a" {
		t.Errorf("holder of 10001 = %q", h)
	}
	if h := x.servicePortHolder(10001, "/a"); h != "" {
		t.Errorf("an app holds its own port against itself: %q", h)
	}
	x.put(rec("/a", 10005)) // an update frees what it no longer uses
	if h := x.servicePortHolder(10000, "/b"); h != "" {
		t.Errorf("10000 still held by %q after /a moved", h)
	}
	x.remove("/b")
	if h := x.servicePortHolder(10002, "/a"); h != "" || x.len() != 1 {
		t.Errorf("after remove: holder %q, len %d", h, x.len())
	}
	x.replaceAll([]*Record{rec("/c", 10002)})
	if h := x.servicePortHolder(10005, "/x"); h != "" || x.servicePortHolder(10002, "/x") != "/c" {
		t.Error("replaceAll did not rebuild the port set")
	}
}
