package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// groupTreeQueries are the group answers compared on both paths: the
// tree with every embed the kept path serves, a group with more apps
// than one chunk, a subtree, and a group that does not exist.
var groupTreeQueries = []string{
	"/v2/groups",
	"/v2/groups?embed=group.groups&embed=group.apps.tasks",
	"/v2/groups?embed=group.groups,group.apps.tasks,group.apps.lastTaskFailure,group.apps.deployments,group.apps.counts",
	"/v2/groups?embed=group.groups",
	"/v2/groups/big?embed=group.apps.tasks",
	"/v2/groups/a?embed=group.groups&embed=group.apps",
	"/v2/groups/a/b/c?embed=group.apps.tasks&embed=group.apps.readiness",
	"/v2/groups/nope?embed=group.apps.tasks",
}

// seedGroupTree creates a seeded random tree: /big with more apps than
// two chunks, /a/b/c and /x/y nested with a few apps each, an empty
// group with dependencies; some apps with a Mesos health check, some with
// no instances. Every app runs when it returns.
func seedGroupTree(e *env, rng *rand.Rand) {
	app := func(name string) map[string]any {
		a := map[string]any{"id": name, "cmd": "sleep 1000", "cpus": 0.01, "mem": 1, "instances": rng.Intn(3),
			"labels": map[string]string{"n": fmt.Sprint(rng.Intn(1000))}}
		if rng.Intn(2) == 0 {
			a["healthChecks"] = []map[string]any{{"protocol": "MESOS_HTTP", "path": "/h", "portIndex": 0}}
		}
		return a
	}
	apps := func(n int) []map[string]any {
		var out []map[string]any
		for i := 0; i < n; i++ {
			out = append(out, app(fmt.Sprintf("app%d", i)))
		}
		return out
	}
	post := func(g map[string]any) {
		b, err := json.Marshal(g)
		if err != nil {
			e.t.Fatal(err)
		}
		e.mustDo("POST", "/v2/groups", string(b), 201)
	}
	post(map[string]any{"id": "/big", "apps": apps(2*chunkApps + 1 + rng.Intn(chunkApps))})
	post(map[string]any{"id": "/a", "apps": apps(rng.Intn(5)), "groups": []map[string]any{
		{"id": "b", "apps": apps(1 + rng.Intn(4)), "groups": []map[string]any{{"id": "c", "apps": apps(1 + rng.Intn(4))}}}}})
	post(map[string]any{"id": "/x", "groups": []map[string]any{{"id": "y", "apps": apps(1 + rng.Intn(6))}}})
	post(map[string]any{"id": "/deps", "dependencies": []string{"/a"}})
	settle(e)
}

// settle launches and runs (healthy) what the deployments wait for.
func settle(e *env) {
	for i := 0; i < 5 && e.dep.DeploymentCount() > 0; i++ {
		e.launch(ptr(true))
	}
	e.waitNoDeployments()
}

// sameOnBothPaths GETs each query from the kept tree (twice: built and
// written as one net.Buffers, then reused and written a piece at a time)
// and from the per-request path, and fails unless all answer the
// same bytes. The API's loop records last failures on its own goroutine,
// so a pair that differs is asked again until the deadline: a stale
// chunk stays stale, a race does not.
func sameOnBothPaths(t *testing.T, e *env, round string) {
	t.Helper()
	for _, q := range groupTreeQueries {
		deadline := time.Now().Add(10 * time.Second)
		for {
			e.srv.gtree.off.Store(false)
			kept1 := e.do("GET", q, "")
			// The second one written a Write per piece, the first as one
			// net.Buffers (writeTo): both must be the same bytes.
			e.srv.gtree.segWrites.Store(true)
			kept2 := e.do("GET", q, "")
			e.srv.gtree.segWrites.Store(false)
			e.srv.gtree.off.Store(true)
			slow := e.do("GET", q, "")
			e.srv.gtree.off.Store(false)
			if slow.status == 200 && kept1.header.Get("Content-Length") == "" {
				t.Fatalf("%s: GET %s did not take the kept path (no Content-Length)", round, q)
			}
			same := kept1.status == slow.status && bytes.Equal(kept1.body, slow.body) && bytes.Equal(kept2.body, slow.body)
			if same {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET %s: kept answers (status %d, %d bytes; %d bytes) differ from the per-request one (status %d, %d bytes) at byte %d:\nkept: %.600s\nslow: %.600s",
					round, q, kept1.status, len(kept1.body), len(kept2.body), slow.status, len(slow.body),
					firstDiff(kept1.body, slow.body), tail(kept1.body, slow.body), tail(slow.body, kept1.body))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func firstDiff(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// tail is a from a little before where it first differs from b.
func tail(a, b []byte) []byte {
	return a[max(0, firstDiff(a, b)-200):]
}

// TestGroupTreeKeptEqualsRendered: GET /v2/groups from the kept tree and
// chunks answers byte for byte what the per-request path answers, for a
// seeded random tree and after each of a seeded series of changes that
// must invalidate kept bytes: a task's health, a task failing (tasks and
// last failure), a scale (record and deployment), an app added to and
// removed from the large group (chunk boundaries move), a new group.
func TestGroupTreeKeptEqualsRendered(t *testing.T) {
	seededChanges(t, []int64{17, 1717, 4242}, 16, sameOnBothPaths)
}

// seededChanges runs check on a seeded random tree (seedGroupTree) and
// after each of rounds seeded changes (changeGroupTree), one parallel
// subtest per seed.
func seededChanges(t *testing.T, seeds []int64, rounds int, check func(t *testing.T, e *env, round string)) {
	t.Parallel()
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rng := rand.New(rand.NewSource(seed))
			seedGroupTree(e, rng)
			check(t, e, "seeded tree")
			for round := 0; round < rounds; round++ {
				what := changeGroupTree(t, e, rng)
				check(t, e, fmt.Sprintf("round %d (%s)", round, what))
			}
		})
	}
}

// changeGroupTree makes one seeded random change and says which.
func changeGroupTree(t *testing.T, e *env, rng *rand.Rand) string {
	t.Helper()
	tasks := e.sched.SnapshotByApp().Tasks
	if len(tasks) == 0 {
		tasks = e.sched.Snapshot().Tasks
	}
	switch k := rng.Intn(8); {
	case k == 0 && len(tasks) > 0:
		tk := tasks[rng.Intn(len(tasks))]
		e.update(tk.ID, mesos.TASK_RUNNING, ptr(false))
		return "task " + tk.ID + " unhealthy"
	case k == 1 && len(tasks) > 0:
		tk := tasks[rng.Intn(len(tasks))]
		e.update(tk.ID, mesos.TASK_FAILED, nil)
		e.eventually("the failure of "+tk.ID+" to be recorded", func() bool { return e.srv.lastTF.get(tk.AppID) != nil })
		return "task " + tk.ID + " failed"
	case k == 2:
		id := fmt.Sprintf("/big/app%d", rng.Intn(2*chunkApps))
		e.mustDo("PUT", "/v2/apps"+id, fmt.Sprintf(`{"instances": %d}`, 1+rng.Intn(3)), 200)
		// Compared while the deployment runs (its id in the app), then
		// settled by the next change or the end.
		return "scaled " + id
	case k == 3:
		id := fmt.Sprintf("/big/app%d0", rng.Intn(chunkApps))
		e.do("POST", "/v2/apps", fmt.Sprintf(`{"id": %q, "cmd": "sleep 1000", "cpus": 0.01, "mem": 1}`, id))
		settle(e)
		return "added " + id
	case k == 4:
		id := fmt.Sprintf("/big/app%d", rng.Intn(2*chunkApps))
		e.do("DELETE", "/v2/apps"+id, "")
		e.confirmKills()
		return "removed " + id
	case k == 5:
		// A last failure recorded after the snapshot that lost the task
		// (the API's loop records it on its own goroutine): nothing else
		// of the app changes.
		id := fmt.Sprintf("/big/app%d", rng.Intn(2*chunkApps))
		e.srv.lastTF.set(taskFailure{AppID: id, TaskID: fmt.Sprintf("t-%d", rng.Intn(1000)), State: "TASK_FAILED"})
		return "last failure of " + id
	case k == 6:
		// A deployment that ends (cancelled, forced) while the app's
		// record and tasks stay: only its id in the app changes.
		id := fmt.Sprintf("/big/app%d", rng.Intn(2*chunkApps))
		r := e.do("PUT", "/v2/apps"+id, `{"instances": 5}`)
		if r.status != 200 {
			return "no app " + id
		}
		sameOnBothPaths(t, e, "deployment of "+id)
		dep := r.json(t)["deploymentId"].(string)
		e.mustDo("DELETE", "/v2/deployments/"+dep+"?force=true", "", 202)
		e.eventually("deployment "+dep+" to end", func() bool { return e.dep.Deployment(dep) == nil })
		return "cancelled the deployment of " + id
	default:
		id := fmt.Sprintf("/x/new%d", rng.Intn(1000))
		e.do("POST", "/v2/groups", fmt.Sprintf(`{"id": %q, "apps": [{"id": "n", "cmd": "sleep 1000", "cpus": 0.01, "mem": 1}]}`, id))
		settle(e)
		return "group " + id
	}
}

// TestGroupTreeChunksReused: a list of an unchanged state reuses every
// kept chunk (the same bytes, not a copy); when one task of /big changes,
// only the chunk holding its app is built again, and the app's kept
// fragment is a slice of that chunk.
func TestGroupTreeChunksReused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedGroupTree(e, rand.New(rand.NewSource(7)))
	q := "/v2/groups?embed=group.groups&embed=group.apps.tasks"
	e.mustDo("GET", q, "", 200)
	te := embed{tasks: true}
	chunk := func(i int) *appChunk { return e.srv.gtree.load(chunkKey{"/big", i, te}) }
	c0, c1 := chunk(0), chunk(1)
	if c0 == nil || c1 == nil {
		t.Fatal("no chunks of /big kept after a list")
	}
	e.mustDo("GET", q, "", 200)
	if chunk(0) != c0 || chunk(1) != c1 {
		t.Fatal("an unchanged state's chunks were built again")
	}
	// A task of an app in chunk 1.
	var app string
	for _, r := range c1.recs {
		if ts := e.sched.SnapshotByApp().TasksOf(r.App.ID); len(ts) > 0 {
			app = r.App.ID
			e.update(ts[0].ID, mesos.TASK_RUNNING, ptr(false))
			break
		}
	}
	if app == "" {
		t.Fatal("no app with tasks in /big's second chunk")
	}
	after := e.mustDo("GET", q, "", 200).body
	if chunk(0) != c0 {
		t.Error("chunk 0 was built again though none of its apps changed")
	}
	n1 := chunk(1)
	if n1 == c1 {
		t.Fatalf("chunk 1 was kept though %s's task changed", app)
	}
	f, _ := e.srv.keptFragment(e.dep.App(app), e.srv.appsSnapshot().TasksOf(app), te, "")
	if off := bytes.Index(n1.b, f); f == nil || !bytes.Contains(after, f) || off < 0 || &n1.b[off] != &f[0] {
		t.Errorf("%s's kept fragment is not a slice of its new chunk", app)
	}
	if bytes.Contains(f, []byte(`"tasksUnhealthy":0`)) {
		t.Errorf("%s's fragment does not show its task unhealthy: %s", app, f)
	}
}
