package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// runningTasks is every running task of an app by id, with its ports.
func runningTasks(t *testing.T, env *devEnv, id string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for _, tk := range env.app(t, id).Tasks {
		if tk.State == "TASK_RUNNING" {
			out[tk.ID] = tk.Ports
		}
	}
	return out
}

func taskIDs(m map[string][]uint64) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func sameIDs(a, b map[string][]uint64) bool {
	return strings.Join(taskIDs(a), ",") == strings.Join(taskIDs(b), ",")
}

// TestFailoverKeepsScaledAndPoisoned: replicas on real ZooKeeper, one after
// the other, against one master that keeps running.
//   - After a scale, a new leader adopts every running task: none is
//     restarted, lastConfigChangeAt does not move (the config version
//     the tasks run is stored with the app, not only in a leader's memory).
//   - With an undecodable app znode and an undecodable task record beside
//     the good app, a new leader starts, leads, kills no running task (not
//     even the broken app's), keeps the good app scheduled with its ports,
//     and names the broken items in /v2/info; replacing the broken app
//     with PUT ends the hold.
func TestFailoverKeepsScaledAndPoisoned(t *testing.T) {
	t.Parallel()
	zkAddr := testbed.ZooKeeper(t)
	root := "/flotilla-e2e-" + randomString(t)
	o := devOpts{executor: "simulated", upstream: fakeUpstream(t), zk: "zk://" + zkAddr + root, ports: [2]uint64{31100, 31399}}
	log := testLog(t, nil)
	m := startMaster(t, o, log)

	a, stopA := startPlatform(t, o, m.URL(), log)
	waitLeading(t, a)
	a.deploy(t, `{"id":"/shop/web","cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":2,"portDefinitions":[{"port":0,"name":"http"}]}`)
	a.deploy(t, `{"id":"/other","cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":1}`)
	waitFor(t, 30*time.Second, "2 running tasks of /shop/web", func() bool { return len(runningTasks(t, a, "/shop/web")) == 2 })
	// The deployment ends just after its tasks run; a scale before that is
	// refused (409, the app is locked), as Marathon refuses it.
	waitFor(t, 30*time.Second, "/shop/web's deployment to end", func() bool { return len(a.app(t, "/shop/web").Deployments) == 0 })
	if code, b := a.do(t, "PUT", "/v2/apps/shop/web", `{"instances":4}`); code != http.StatusOK {
		t.Fatalf("scale: %d %s", code, b)
	}
	waitFor(t, 30*time.Second, "4 running tasks of /shop/web", func() bool { return len(runningTasks(t, a, "/shop/web")) == 4 })
	waitFor(t, 30*time.Second, "1 running task of /other", func() bool { return len(runningTasks(t, a, "/other")) == 1 })
	before, otherBefore := runningTasks(t, a, "/shop/web"), runningTasks(t, a, "/other")
	configBefore := lastConfigChange(t, a, "/shop/web")
	stopA()

	// A new leader after the scale: the same four tasks, nothing restarted.
	b, stopB := startPlatform(t, o, m.URL(), log)
	waitLeading(t, b)
	waitFor(t, 30*time.Second, "the new leader to adopt the 4 tasks", func() bool { return sameIDs(runningTasks(t, b, "/shop/web"), before) })
	if got := lastConfigChange(t, b, "/shop/web"); got != configBefore {
		t.Errorf("lastConfigChangeAt after failover %q, before %q: a failover must not rewrite it", got, configBefore)
	}
	// Once reconciliation was answered, still the same tasks, on the
	// master too: a scale did not become a restart.
	settled(t, b, "/probe-b")
	if after := runningTasks(t, b, "/shop/web"); !sameIDs(after, before) {
		t.Fatalf("tasks after failover %v, before %v: a scale became a restart", taskIDs(after), taskIDs(before))
	}
	running := masterRunning(t, m.URL())
	for _, id := range taskIDs(before) {
		if !running[id] {
			t.Fatalf("task %s no longer runs on the master after failover (running: %v): a scale became a restart", id, running)
		}
	}
	if code, body := b.do(t, "DELETE", "/v2/apps/probe-b", ""); code != http.StatusOK {
		t.Fatalf("DELETE /probe-b: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "/probe-b's task to end on the master", func() bool { return len(masterRunning(t, m.URL())) == 5 })
	stopB()

	// Poison the store: a truncated app znode, and a task record that
	// cannot be decoded, beside the good ones.
	conn, _, err := zk.Connect([]string{zkAddr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	acl := zk.WorldACL(zk.PermAll)
	if _, err := conn.Create(root+"/apps/bi-poison", []byte(`{"id":"/bi-poison","cmd":"sle`), 0, acl); err != nil {
		t.Fatal(err)
	}
	// The broken app is /other's node: its task keeps running on the master
	// while no leader can read it.
	data, st, err := conn.Get(root + "/apps/other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Set(root+"/apps/other", data[:len(data)/2], st.Version); err != nil {
		t.Fatal(err)
	}
	kids, _, err := conn.Children(root + "/tasks/shop_web")
	if err != nil || len(kids) == 0 {
		t.Fatalf("task records of /shop/web: %v %v", kids, err)
	}
	if _, err := conn.Create(root+"/tasks/shop_web/shop_web.garbage", []byte(`{"taskId":`), 0, acl); err != nil {
		t.Fatal(err)
	}

	c, _ := startPlatform(t, o, m.URL(), log)
	waitLeading(t, c)
	waitFor(t, 30*time.Second, "the leader after the poison to serve /shop/web's 4 tasks", func() bool {
		return sameIDs(runningTasks(t, c, "/shop/web"), before)
	})
	var info struct {
		Problems []struct{ Kind, Key, AppID, Error string } `json:"store_problems"`
	}
	code, body := c.do(t, "GET", "/v2/info", "")
	if code != http.StatusOK || json.Unmarshal(body, &info) != nil {
		t.Fatalf("GET /v2/info: %d %s", code, body)
	}
	var names []string
	for _, p := range info.Problems {
		names = append(names, p.Kind+":"+p.AppID)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "app:/bi-poison,app:/other" {
		t.Errorf("store problems %v (%s); want the two broken apps", names, body)
	}
	if code, body := c.do(t, "GET", "/v2/apps/other", ""); code != http.StatusConflict || !strings.Contains(string(body), "cannot be read") {
		t.Errorf("GET a broken app: %d %s; want 409 saying it cannot be read", code, body)
	}
	// Tasks keep their ports (from their records) and nothing was killed:
	// the master still runs /other's task, which no leader could read.
	for id, ports := range runningTasks(t, c, "/shop/web") {
		if len(ports) != 1 || ports[0] == 0 || ports[0] != before[id][0] {
			t.Errorf("task %s ports %v after restore, before %v", id, ports, before[id])
		}
	}
	settled(t, c, "/probe")
	running = masterRunning(t, m.URL())
	for _, id := range append(taskIDs(before), taskIDs(otherBefore)...) {
		if !running[id] {
			t.Errorf("task %s no longer runs on the master: a poisoned store killed it (running: %v)", id, running)
		}
	}
	if len(running) != 6 {
		t.Errorf("the master runs %d tasks %v; want 6 (4 of /shop/web, /other's, /probe's)", len(running), running)
	}
	// Replacing the broken app ends the hold; its running task is adopted.
	if code, body := c.do(t, "PUT", "/v2/apps/other", `{"cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":1}`); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("PUT the broken app: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "/other to run 1 task again", func() bool { return len(runningTasks(t, c, "/other")) == 1 })
}

func lastConfigChange(t *testing.T, env *devEnv, id string) string {
	t.Helper()
	code, b := env.do(t, "GET", "/v2/apps"+id, "")
	var v struct {
		App struct {
			VersionInfo struct {
				LastConfigChangeAt string `json:"lastConfigChangeAt"`
			} `json:"versionInfo"`
		} `json:"app"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &v) != nil {
		t.Fatalf("GET %s: %d %s", id, code, b)
	}
	return v.App.VersionInfo.LastConfigChangeAt
}

// masterRunning is the set of tasks the master reports TASK_RUNNING.
func masterRunning(t *testing.T, master string) map[string]bool {
	t.Helper()
	resp, err := http.Get(master + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Frameworks []struct {
			Tasks []struct{ ID, State string } `json:"tasks"`
		} `json:"frameworks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range st.Frameworks {
		for _, tk := range f.Tasks {
			if tk.State == "TASK_RUNNING" {
				out[tk.ID] = true
			}
		}
	}
	return out
}

// waitLeading waits until env's replica leads: it serves the app list
// itself instead of answering 503.
func waitLeading(t *testing.T, env *devEnv) {
	t.Helper()
	var code int
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, body = env.do(t, "GET", "/v2/apps", ""); code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not lead within 30 s: GET /v2/apps answers %d %s", env.api, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settled deploys a one-task app and waits for it to run: proof that the
// leader subscribed and handled the reconciliation answers it asked for
// first, on the same stream, before the offers that launched it.
func settled(t *testing.T, env *devEnv, id string) {
	t.Helper()
	env.deploy(t, `{"id":"`+id+`","cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":1}`)
	waitFor(t, 30*time.Second, id+" to run", func() bool { return len(runningTasks(t, env, id)) == 1 })
}
