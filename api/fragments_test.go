package api

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/deploy"
)

// TestFragmentsStayCurrent: a kept fragment is used only while the app's
// record, deployment and last failure are those it was rendered from; a
// list of an unchanged snapshot is byte for byte the first one, and the
// group tree reuses what the app list kept.
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
	ti := e.srv.taskIndex(e.srv.listSnapshot())
	if ti.frags.bytes.Load() == 0 {
		t.Fatal("no fragment kept after three lists of one snapshot")
	}
	tree := e.mustDo("GET", "/v2/groups?embed=group.groups&embed=group.apps.tasks", "", 200).body
	if !bytes.Contains(tree, bytes.TrimSuffix(bytes.TrimPrefix(lists[0], []byte(`{"apps":[`)), []byte("]}\n"))) {
		t.Errorf("the group tree's app differs from the list's:\n%s\n%s", tree, lists[0])
	}

	// On the same index: a new record, a deployment, a last failure each
	// make the fragment stale.
	e2 := embed{tasks: true, lastTaskFailure: true}
	// What the list and the tree do per app.
	listed := func(m *deploy.Record, depID string) string {
		f, tf := e.srv.keptFragment(ti, m, e2, depID)
		if f == nil {
			f = e.srv.renderListed(nil, ti, m, e2, depID, tf, true)
		}
		return string(f)
	}
	ti.frags.keep(e2)
	old := e.dep.App("/f/a")
	first := listed(old, "")
	if f, _ := e.srv.keptFragment(ti, old, e2, ""); string(f) != first {
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
