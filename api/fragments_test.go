package api

import (
	"bytes"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/deploy"
)

// TestFragmentsStayCurrent: a kept fragment is used only while the app's
// record, deployment, last failure and tasks are those it was rendered
// from; a list of an unchanged snapshot is byte for byte the first one,
// and the group tree reuses what the app list kept.
func TestFragmentsStayCurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id": "/f/a", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2}`, 201)
	e.launch(nil)
	e.waitNoDeployments()

	lists := make([][]byte, 3)
	for i := range lists {
		lists[i] = e.mustDo("GET", "/v2/apps?embed=apps.tasks", "", 200).body
	}
	if !bytes.Equal(lists[0], lists[2]) || !bytes.Contains(lists[2], []byte(`"tasksRunning":2`)) {
		t.Fatalf("the list from kept fragments differs from the rendered one:\n%s\n%s", lists[0], lists[2])
	}
	if e.srv.frags.bytes.Load() == 0 {
		t.Fatal("no fragment kept after three lists of one snapshot")
	}
	tree := e.mustDo("GET", "/v2/groups?embed=group.groups&embed=group.apps.tasks", "", 200).body
	if !bytes.Contains(tree, bytes.TrimSuffix(bytes.TrimPrefix(lists[0], []byte(`{"apps":[`)), []byte("]}\n"))) {
		t.Errorf("the group tree's app differs from the list's:\n%s\n%s", tree, lists[0])
	}

	// A new record, a deployment, a last failure each make the fragment
	// stale.
	e2 := embed{tasks: true, lastTaskFailure: true}
	snap := e.srv.appsSnapshot()
	listed := func(m *deploy.Record, depID string) string {
		f, _ := e.srv.listedApp(nil, snap.Cursor(), m, e2, depID)
		return string(f)
	}
	old := e.dep.App("/f/a")
	first := listed(old, "")
	if f, _ := e.srv.keptFragment(old, snap.TasksOf("/f/a"), e2, ""); string(f) != first {
		t.Fatalf("the kept fragment differs from the rendered app:\n%s\n%s", first, f)
	}
	if got := listed(old, "dep-1"); !strings.Contains(got, `"deployments":[{"id":"dep-1"}]`) {
		t.Errorf("a new deployment is not shown: %s", got)
	}
	e.srv.lastTF.set(taskFailure{AppID: "/f/a", TaskID: "t-1", State: "TASK_FAILED"})
	if got := listed(old, ""); !strings.Contains(got, `"taskId":"t-1"`) {
		t.Errorf("a new last failure is not shown: %s", got)
	}
	e.mustDo("PUT", "/v2/apps/f/a", `{"labels": {"tier": "gold"}}`, 200)
	if got := listed(e.dep.App("/f/a"), ""); !strings.Contains(got, `"tier":"gold"`) {
		t.Errorf("a new record is not shown: %s", got)
	}
}

// TestFragmentsAcrossSnapshots: when one app's task changes, the next list
// (a new snapshot) renders that app again and copies the other's kept
// fragment; both show what a fresh rendering shows.
func TestFragmentsAcrossSnapshots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id": "/g/a", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 1}`, 201)
	e.mustDo("POST", "/v2/apps", `{"id": "/g/b", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 1}`, 201)
	e.launch(nil)
	e.waitNoDeployments()
	e.mustDo("GET", "/v2/apps?embed=apps.tasks", "", 200)
	e1 := embed{tasks: true}
	before := e.srv.appsSnapshot()
	kept := func(id string) []byte {
		f, _ := e.srv.keptFragment(e.dep.App(id), e.srv.appsSnapshot().TasksOf(id), e1, "")
		return f
	}
	keptB := kept("/g/b")
	if keptB == nil || kept("/g/a") == nil {
		t.Fatal("no fragments kept after a list")
	}
	ta := before.TasksOf("/g/a")
	e.update(ta[0].ID, mesos.TASK_FAILED, nil)
	e.eventually("/g/a's task to fail and be replaced", func() bool {
		ts := e.srv.appsSnapshot().TasksOf("/g/a")
		return len(ts) == 0 || ts[0].ID != ta[0].ID
	})
	if kept("/g/a") != nil {
		t.Error("/g/a's fragment is still used after its task changed")
	}
	if f := kept("/g/b"); f == nil || &f[0] != &keptB[0] {
		t.Error("/g/b's fragment is not reused though its tasks did not change")
	}
	list := e.mustDo("GET", "/v2/apps?embed=apps.tasks", "", 200).body
	e.srv.noFragments.Store(true)
	fresh := e.mustDo("GET", "/v2/apps?embed=apps.tasks", "", 200).body
	e.srv.noFragments.Store(false)
	if !bytes.Equal(list, fresh) || bytes.Contains(list, []byte(ta[0].ID)) {
		t.Errorf("the list from fragments differs from a fresh rendering, or shows the failed task:\n%s\n%s", list, fresh)
	}
}
