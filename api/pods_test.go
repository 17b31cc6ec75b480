package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/framework"
)

const podJSON = `{"id": "/shop/web",
	"containers": [
		{"name": "app", "exec": {"command": {"shell": "./testapp"}}, "resources": {"cpus": 0.5, "mem": 64},
		 "endpoints": [{"name": "http", "hostPort": 0}],
		 "healthCheck": {"http": {"endpoint": "http", "path": "/health"}, "intervalSeconds": 1, "timeoutSeconds": 0.5}},
		{"name": "sidecar", "exec": {"command": {"shell": "./testapp"}}, "resources": {"cpus": 0.25, "mem": 32},
		 "endpoints": [{"name": "metrics", "hostPort": 0}]}
	],
	"scaling": {"kind": "fixed", "instances": 1}}`

// podOffer sends one big offer and returns the container task ids of the
// task groups launched, by instance.
func (e *env) podOffer() map[string][]string {
	e.t.Helper()
	e.mu.Lock()
	e.offerSeq++
	n := e.offerSeq
	e.mu.Unlock()
	before := len(e.rec.Calls())
	e.send(framework.OffersInput(framework.TestOffer("o-"+strconv.Itoa(n), "a-1", "host-1", 64, 65536, 31000, 32000, nil)))
	out := map[string][]string{}
	for _, c := range e.rec.Calls()[before:] {
		for _, op := range c.Ops {
			if op.LaunchGroup == nil {
				continue
			}
			inst := strings.TrimPrefix(op.LaunchGroup.Executor.ExecutorID.Value, "instance-")
			for _, ti := range op.LaunchGroup.TaskGroup.Tasks {
				out[inst] = append(out[inst], ti.TaskID.Value)
			}
		}
	}
	return out
}

// runPods offers and reports every launched container RUNNING, the app
// containers healthy; kills asked for are confirmed.
func (e *env) runPods() map[string][]string {
	e.t.Helper()
	got := e.podOffer()
	for _, ids := range got {
		for _, id := range ids {
			var h *bool
			if strings.HasSuffix(id, ".app") {
				h = ptr(true)
			}
			e.update(id, mesos.TASK_RUNNING, h)
		}
	}
	e.confirmKills()
	return got
}

func TestPodsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.mustDo("POST", "/v2/pods", podJSON, http.StatusCreated)
	if r.header.Get("Location") != "/v2/pods/shop/web" || r.header.Get("Marathon-Deployment-Id") == "" {
		t.Fatalf("headers %v", r.header)
	}
	created := r.json(t)
	if created["id"] != "/shop/web" || created["scaling"].(map[string]any)["instances"].(float64) != 1 || created["version"] == "" {
		t.Fatalf("created pod %v", created)
	}
	e.mustDo("POST", "/v2/pods", podJSON, http.StatusConflict)
	// A pod is not an app.
	e.mustDo("GET", "/v2/apps/shop/web", "", http.StatusNotFound)
	if apps := e.mustDo("GET", "/v2/apps", "", http.StatusOK).json(t)["apps"].([]any); len(apps) != 0 {
		t.Fatalf("GET /v2/apps lists the pod: %v", apps)
	}
	e.mustDo("PUT", "/v2/apps/shop/web", `{"cmd": "sleep 1"}`, http.StatusConflict)
	e.mustDo("PUT", "/v2/apps", `[{"id": "/shop/web", "cmd": "sleep 1"}]`, http.StatusConflict)
	e.mustDo("DELETE", "/v2/apps/shop/web", "", http.StatusConflict)

	first := e.runPods()
	if len(first) != 1 {
		t.Fatalf("launched %d instances, want 1", len(first))
	}
	e.waitNoDeployments()
	st := e.mustDo("GET", "/v2/pods/shop/web::status", "", http.StatusOK).json(t)
	if st["status"] != "STABLE" {
		t.Fatalf("pod status %v, want STABLE", st)
	}
	insts := st["instances"].([]any)
	in := insts[0].(map[string]any)
	cts := in["containers"].([]any)
	if in["status"] != "STABLE" || len(cts) != 2 {
		t.Fatalf("instance %v", in)
	}
	app := cts[0].(map[string]any)
	if app["name"] != "app" || app["status"] != "TASK_RUNNING" || app["endpoints"].([]any)[0].(map[string]any)["allocatedHostPort"].(float64) < 31000 {
		t.Fatalf("app container %v", app)
	}
	if all := e.mustDo("GET", "/v2/pods/::status", "", http.StatusOK); !strings.Contains(string(all.body), `"/shop/web"`) {
		t.Fatalf("all statuses %s", all.body)
	}

	// Groups show the pod under "pods", not "apps"; a group write that
	// lists the group's apps leaves its pods alone (Marathon: pods are
	// read-only at /v2/groups).
	g := e.mustDo("GET", "/v2/groups/shop", "", http.StatusOK).json(t)
	if pods := g["pods"].([]any); len(pods) != 1 || pods[0].(map[string]any)["id"] != "/shop/web" || len(g["apps"].([]any)) != 0 {
		t.Fatalf("group /shop: %v", g)
	}
	e.mustDo("PUT", "/v2/groups/shop", `{"id": "/shop", "apps": [{"id": "/shop/other", "cmd": "sleep 1", "instances": 0}]}`, http.StatusOK)
	e.waitNoDeployments()
	e.mustDo("GET", "/v2/pods/shop/web", "", http.StatusOK)

	// Scale with PUT: a scale, the running instance stays.
	scaled := strings.Replace(podJSON, `"instances": 1`, `"instances": 2`, 1)
	e.mustDo("PUT", "/v2/pods/shop/web", scaled, http.StatusOK)
	more := e.runPods()
	if len(more) != 1 || e.rec.Killed() != nil && len(e.rec.Killed()) > 0 {
		t.Fatalf("scale launched %v, killed %v; want one new instance and no kill", more, e.rec.Killed())
	}
	e.waitNoDeployments()

	// A changed pod rolls: new instances, the old ones killed once the
	// new are healthy.
	changed := strings.Replace(scaled, `"mem": 32`, `"mem": 48`, 1)
	e.mustDo("PUT", "/v2/pods/shop/web", changed, http.StatusOK)
	for i := 0; i < 4 && len(e.dep.Deployments()) > 0; i++ {
		e.runPods()
	}
	e.waitNoDeployments()
	st = e.mustDo("GET", "/v2/pods/shop/web::status", "", http.StatusOK).json(t)
	if n := len(st["instances"].([]any)); n != 2 || st["status"] != "STABLE" {
		t.Fatalf("after the roll: %d instances, status %v", n, st["status"])
	}
	for _, x := range st["instances"].([]any) {
		id := x.(map[string]any)["id"].(string)
		if _, old := first[id]; old {
			t.Fatalf("old instance %s survived the roll", id)
		}
	}
	vs := e.mustDo("GET", "/v2/pods/shop/web::versions", "", http.StatusOK)
	var versions []string
	if err := json.Unmarshal(vs.body, &versions); err != nil || len(versions) < 2 {
		t.Fatalf("versions %s (%v)", vs.body, err)
	}
	old := e.mustDo("GET", "/v2/pods/shop/web::versions/"+versions[0], "", http.StatusOK).json(t)
	if old["id"] != "/shop/web" {
		t.Fatalf("old version %v", old)
	}

	// Kill one instance: it is replaced.
	victim := st["instances"].([]any)[0].(map[string]any)["id"].(string)
	e.mustDo("DELETE", "/v2/pods/shop/web::instances/"+victim, "", http.StatusOK)
	e.confirmKills()
	if again := e.runPods(); len(again) != 1 {
		t.Fatalf("killed instance replaced by %v, want one", again)
	}
	e.mustDo("DELETE", "/v2/pods/shop/web::instances/nope", "", http.StatusNotFound)

	e.mustDo("DELETE", "/v2/pods/shop/web", "", http.StatusAccepted)
	e.confirmKills()
	e.waitNoDeployments()
	e.mustDo("GET", "/v2/pods/shop/web", "", http.StatusNotFound)
	e.mustDo("GET", "/v2/pods/shop/web::status", "", http.StatusNotFound)
}

func TestPodsAPIValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.mustDo("POST", "/v2/pods", `{"id": "/p", "containers": [
		{"name": "a", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "web", "hostPort": 80}], "volumeMounts": [{"name": "v", "mountPath": "d"}]},
		{"name": "a", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "web", "hostPort": 80}]}]}`, http.StatusUnprocessableEntity)
	body := string(r.body)
	for _, want := range []string{
		`"/containers/1/name"`, "container names are not unique",
		`"/containers/1/endpoints/0/name"`, "endpoint names are not unique",
		`"/containers/1/endpoints/0/hostPort"`, "host ports are not unique",
		`"/containers/0/volumeMounts/0/name"`, "Referenced Volume in VolumeMount should exist",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("422 body lacks %s: %s", want, body)
		}
	}
	e.mustDo("POST", "/v2/pods", `{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "bogus": 1}]}`, http.StatusUnprocessableEntity)
	e.mustDo("POST", "/v2/pods", `{"containers": [{"name": "a", "exec": {"command": {"shell": "x"}}}]}`, http.StatusUnprocessableEntity)
	e.mustDo("GET", "/v2/pods/nope", "", http.StatusNotFound)
	e.mustDo("PATCH", "/v2/pods/nope", "", http.StatusMethodNotAllowed)
}

// TestPodEvents: pod_created_event, pod_updated_event, pod_deleted_event
// (Marathon's fields: clientIp, uri) and instance_changed_event as an
// instance's containers start, on the event stream.
func TestPodEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	evs, closeEvs := openStream(t, e, "?event_type=pod_created_event&event_type=pod_updated_event&event_type=pod_deleted_event&event_type=instance_changed_event")
	defer closeEvs()
	e.eventually("the stream attached", func() bool { return e.srv.hub.count() == 1 })
	next := func(typ string) sseEv {
		t.Helper()
		return waitEvOfType(t, evs, typ)
	}
	e.mustDo("POST", "/v2/pods", podJSON, http.StatusCreated)
	if ev := next(eventPodCreated); ev.data["uri"] != "/v2/pods/shop/web" || ev.data["clientIp"] == nil {
		t.Fatalf("pod_created_event %v", ev.data)
	}
	insts := e.runPods()
	var inst string
	for id := range insts {
		inst = id
	}
	for {
		ev := next(eventInstanceChanged)
		if ev.data["instanceId"] != inst || ev.data["runSpecId"] != "/shop/web" {
			t.Fatalf("instance_changed_event %v, want instance %s of /shop/web", ev.data, inst)
		}
		if ev.data["condition"] == "Running" {
			break
		}
	}
	e.waitNoDeployments()
	e.mustDo("PUT", "/v2/pods/shop/web", strings.Replace(podJSON, `"instances": 1`, `"instances": 0`, 1), http.StatusOK)
	next(eventPodUpdated)
	e.confirmKills()
	e.waitNoDeployments() // the scale to 0 ends at the deploy loop's next check; until then the pod is locked
	e.mustDo("DELETE", "/v2/pods/shop/web", "", http.StatusAccepted)
	if ev := next(eventPodDeleted); ev.data["uri"] != "/v2/pods/shop/web" {
		t.Fatalf("pod_deleted_event %v", ev.data)
	}
}
