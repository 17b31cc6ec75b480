package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/framework"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// TestTasksDelete: POST /v2/tasks/delete kills the listed tasks (replaced),
// or with scale=true shrinks the app by as many; a list naming an unknown
// task kills nothing, with wipe=true too (resident wipes: TestResidentApp).
func TestTasksDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", strings.Replace(simpleApp, `"instances": 2`, `"instances": 3`, 1), 201)
	ids := e.launch(nil)
	e.waitNoDeployments()
	if len(ids) != 3 {
		t.Fatalf("launched %v", ids)
	}

	r := e.do("POST", "/v2/tasks/delete", fmt.Sprintf(`{"ids": [%q, "prod_shop_web.instance-00000000-0000-4000-8000-000000000000._app.1"]}`, ids[0]))
	if r.status != 404 {
		t.Fatalf("an unknown task in the list: %d %s", r.status, r.body)
	}
	e.sync()
	if k := e.rec.Killed(); len(k) != 0 {
		t.Fatalf("a refused list killed %v", k)
	}
	if r := e.do("POST", "/v2/tasks/delete", `{"ids": ["nonsense"]}`); r.status != 422 || !strings.Contains(string(r.body), `"/ids/0"`) {
		t.Fatalf("a foreign id: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v2/tasks/delete?wipe=true", fmt.Sprintf(`{"ids": [%q, "prod_shop_web.instance-00000000-0000-4000-8000-000000000000._app.2"]}`, ids[0])); r.status != 404 {
		t.Fatalf("wipe of an unknown instance: %d %s", r.status, r.body)
	}
	e.sync()
	if k := e.rec.Killed(); len(k) != 0 {
		t.Fatalf("a refused wipe killed %v", k)
	}

	r = e.mustDo("POST", "/v2/tasks/delete", fmt.Sprintf(`{"ids": [%q]}`, ids[0]), 200)
	if !strings.Contains(string(r.body), ids[0]) {
		t.Errorf("answer names no killed task: %s", r.body)
	}
	e.confirmKills()
	if got := e.offer(); len(got) != 1 {
		t.Fatalf("replacements %v, want 1", got)
	}
	e.update(e.rec.Launched()[3].TaskID.Value, mesos.TASK_RUNNING, nil)

	r = e.mustDo("POST", "/v2/tasks/delete?scale=true", fmt.Sprintf(`{"ids": [%q, %q]}`, ids[1], ids[2]), 200)
	if r.header.Get("Marathon-Deployment-Id") == "" {
		t.Errorf("scale answer without a deployment id: %s", r.body)
	}
	e.confirmKills()
	e.waitNoDeployments()
	if app := e.app("/prod/shop/web"); app["instances"] != float64(1) || app["tasksRunning"] != float64(1) {
		t.Fatalf("after kill with scale: instances %v running %v", app["instances"], app["tasksRunning"])
	}
}

// TestResetDelay: DELETE /v2/queue/{id}/delay clears a failing app's
// backoff, so its waiting instance launches at once.
func TestResetDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id": "/crash", "cmd": "false", "cpus": 0.1, "mem": 16, "backoffSeconds": 600}`, 201)
	ids := e.offer()
	st := framework.TestStatus(ids[0], "a-1", mesos.TASK_FAILED, true)
	msg := "Container exited with status 1"
	st.Message = &msg
	e.send(framework.UpdateInput(st))
	if got := e.offer(); len(got) != 0 {
		t.Fatalf("launched %v during the backoff", got)
	}
	// The queue says why it waits: the backoff, and how the last one ended.
	e.eventually("the queue to name the last failure", func() bool {
		q := e.mustDo("GET", "/v2/queue", "", 200)
		return strings.Contains(string(q.body), "last task failure (TASK_FAILED): "+msg)
	})
	e.mustDo("DELETE", "/v2/queue/crash/delay", "", 204)
	if got := e.offer(); len(got) != 1 {
		t.Fatalf("after the reset launched %v, want one task", got)
	}
	e.mustDo("DELETE", "/v2/queue/nope/delay", "", 404)
}
