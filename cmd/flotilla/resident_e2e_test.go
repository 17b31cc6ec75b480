package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// residentSpec is Marathon's stateful app (persistent-volumes.md) on the
// Mesos containerizer: each task copies what the volume holds into its
// sandbox (seen), appends its own task id to the volume, and only then
// writes done, so a test that saw done may kill it. Only busybox's
// applets the test image has (sh, cat, echo, sleep).
const residentSpec = `{"id":"/stateful","cpus":0.1,"mem":32,"disk":0,"instances":1,
 "cmd":"cat data/log > seen 2>/dev/null; echo $MESOS_TASK_ID >> data/log && echo ok > done; sleep 1000",
 "container":{"type":"MESOS","volumes":[{"containerPath":"data","mode":"RW","persistent":{"type":"root","size":10}}]},
 "residency":{"taskLostBehavior":"WAIT_FOREVER"}}`

// masterReservations is every agent's reserved_resources_full in the
// master's /master/state, by agent hostname (agents without any left out).
func masterReservations(t *testing.T, env *devEnv) map[string]string {
	t.Helper()
	resp, err := http.Get(env.mesos + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Slaves []struct {
			Hostname string                     `json:"hostname"`
			Full     map[string]json.RawMessage `json:"reserved_resources_full"`
		} `json:"slaves"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range st.Slaves {
		if len(s.Full) > 0 {
			b, _ := json.Marshal(s.Full)
			out[s.Hostname] = string(b)
		}
	}
	return out
}

type residentTask struct{ id, host string }

// runningTask waits until app runs exactly one task, none of not
// (ids already seen), and returns it.
func runningTask(t *testing.T, env *devEnv, id string, not map[string]bool) residentTask {
	t.Helper()
	var got residentTask
	waitFor(t, 60*time.Second, id+" to run a new task", func() bool {
		a := env.app(t, id)
		n := 0
		for _, tk := range a.Tasks {
			if tk.State == "TASK_RUNNING" && !not[tk.ID] {
				got = residentTask{tk.ID, tk.Host}
				n++
			}
		}
		return n == 1 && len(a.Tasks) == 1
	})
	return got
}

// seenBy waits for the file a task wrote into its sandbox, naming the
// tasks it found in its volume.
func seenBy(t *testing.T, work, taskID string) string {
	t.Helper()
	var out string
	waitFor(t, 30*time.Second, "task "+taskID+" to copy its volume's log into its sandbox", func() bool {
		matches, _ := filepath.Glob(filepath.Join(work, "localmesos-*", "slaves", "*", "frameworks", "*", "executors", taskID, "runs", "latest", "done"))
		for _, f := range matches {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(f), "seen"))
			if err == nil {
				out = strings.TrimSpace(string(b))
				return true
			}
		}
		return false
	})
	return out
}

// killAndRelaunch kills the first task of /stateful and checks that its
// instance is relaunched as ._app.2 on the same agent, finding in its
// volume what the first task wrote.
func killAndRelaunch(t *testing.T, env *devEnv, work string, first residentTask, seen map[string]bool) residentTask {
	t.Helper()
	if code, b := env.do(t, "DELETE", "/v2/apps/stateful/tasks/"+first.id, ""); code != http.StatusOK {
		t.Fatalf("kill: %d %s", code, b)
	}
	second := runningTask(t, env, "/stateful", seen)
	seen[second.id] = true
	if want := strings.TrimSuffix(first.id, "._app.1") + "._app.2"; second.id != want || second.host != first.host {
		t.Fatalf("relaunch: %+v, want %s on %s", second, want, first.host)
	}
	if got := seenBy(t, work, second.id); got != first.id {
		t.Fatalf("the relaunched task found %q in its volume, want %q", got, first.id)
	}
	return second
}

// scaleUpOnto scales the suspended /stateful to 1 and checks that its
// instance comes back as ._app.3 on its agent, finding in its volume what
// the two tasks before wrote.
func scaleUpOnto(t *testing.T, env *devEnv, work string, first, second residentTask, seen map[string]bool) residentTask {
	t.Helper()
	if code, b := env.do(t, "PUT", "/v2/apps/stateful", `{"instances":1}`); code != http.StatusOK {
		t.Fatalf("scale to 1: %d %s", code, b)
	}
	third := runningTask(t, env, "/stateful", seen)
	if want := strings.TrimSuffix(first.id, "._app.1") + "._app.3"; third.id != want || third.host != first.host {
		t.Fatalf("scale up: %+v, want %s on %s", third, want, first.host)
	}
	if got := seenBy(t, work, third.id); got != first.id+"\n"+second.id {
		t.Fatalf("after scaling up the volume held %q, want both earlier tasks", got)
	}
	return third
}

// TestResidentApp: a resident app on flotilla dev (process executor,
// --mesos-role stateful). The first task reserves and creates its volume
// and writes into it; killed, it is relaunched on the same agent and
// reservation (._app.2) and reads what its predecessor wrote; scaled to 0
// the reservation is kept (Marathon's suspended instance) and scaling up
// brings the instance back on it with its data, as does a restart (a new
// version); updates of its resources or volume are refused; a kill with wipe=true
// destroys the volume (the replacement is a new instance), a suspended
// instance is listed with its volumes and wiped by its id, and deleting
// the app destroys the volume and unreserves: the master shows no
// reservation any more.
func TestResidentApp(t *testing.T) {
	t.Parallel()
	work := testbed.OpenTempDir(t)
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), role: "stateful", workDir: work,
		ports: [2]uint64{23300, 23349}, noServicePorts: true})

	env.deploy(t, residentSpec)
	seen := map[string]bool{}
	first := runningTask(t, env, "/stateful", seen)
	seen[first.id] = true
	if !strings.HasSuffix(first.id, "._app.1") {
		t.Fatalf("first task id %s, want incarnation 1", first.id)
	}
	instance := strings.TrimSuffix(first.id, "._app.1")
	if got := seenBy(t, work, first.id); got != "" {
		t.Fatalf("the new volume held %q, want nothing", got)
	}
	res := masterReservations(t, env)
	if len(res) != 1 || !strings.Contains(res[first.host], instance) || !strings.Contains(res[first.host], `"stateful#data#`) {
		t.Fatalf("master's reservations %v: want the instance's on %s, with its volume", res, first.host)
	}

	// Its reservation holds its resources and volume: they cannot change.
	for body, want := range map[string]string{
		`{"cpus":0.2}`: "Resident Tasks may not change resource requirements!",
		`{"container":{"type":"MESOS","volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":20}}]}}`: "Persistent volumes can not be changed!",
	} {
		if code, b := env.do(t, "PUT", "/v2/apps/stateful", body); code != http.StatusUnprocessableEntity || !strings.Contains(string(b), want) {
			t.Fatalf("PUT %s to a resident app: %d %s, want 422 %s", body, code, b, want)
		}
	}
	group := `{"id":"/","apps":[` + strings.Replace(residentSpec, `"cpus":0.1`, `"cpus":0.2`, 1) + `]}`
	if code, b := env.do(t, "PUT", "/v2/groups/", group); code != http.StatusUnprocessableEntity || !strings.Contains(string(b), "Resident Tasks may not change resource requirements!") {
		t.Fatalf("group PUT changing the resident app's cpus: %d %s, want 422", code, b)
	}

	// Killed: relaunched on the same agent and reservation, and the
	// volume holds what the first task wrote.
	second := killAndRelaunch(t, env, work, first, seen)

	// Scaled to 0: the reservation and volume stay; scaled up, the same
	// instance returns on them.
	if code, b := env.do(t, "PUT", "/v2/apps/stateful", `{"instances":0}`); code != http.StatusOK {
		t.Fatalf("scale to 0: %d %s", code, b)
	}
	waitFor(t, 30*time.Second, "the task to be killed", func() bool { return len(env.app(t, "/stateful").Tasks) == 0 })
	if res := masterReservations(t, env); !strings.Contains(res[first.host], instance) {
		t.Fatalf("scaled to 0, the master's reservations are %v: want the instance's kept", res)
	}
	third := scaleUpOnto(t, env, work, first, second, seen)

	seen[third.id] = true

	// Restarted (a new version): the old task is killed first and the
	// instance comes back on its reservation, data kept.
	if code, b := env.do(t, "POST", "/v2/apps/stateful/restart", ""); code != http.StatusOK {
		t.Fatalf("restart: %d %s", code, b)
	}
	fourth := runningTask(t, env, "/stateful", seen)
	seen[fourth.id] = true
	if fourth.id != instance+"._app.4" || fourth.host != first.host {
		t.Fatalf("restart: %+v, want %s._app.4 on %s", fourth, instance, first.host)
	}
	if got := seenBy(t, work, fourth.id); got != first.id+"\n"+second.id+"\n"+third.id {
		t.Fatalf("after a restart the volume held %q, want the three earlier tasks", got)
	}

	// Wiped: the instance's volume is destroyed and its reservation freed;
	// its replacement is a new instance with a new, empty volume.
	if code, b := env.do(t, "DELETE", "/v2/apps/stateful/tasks/"+fourth.id+"?wipe=true", ""); code != http.StatusOK {
		t.Fatalf("kill with wipe: %d %s", code, b)
	}
	fresh := runningTask(t, env, "/stateful", seen)
	seen[fresh.id] = true
	if strings.HasPrefix(fresh.id, instance) || !strings.HasSuffix(fresh.id, "._app.1") {
		t.Fatalf("after a wipe the app runs %s, want a new instance", fresh.id)
	}
	if got := seenBy(t, work, fresh.id); got != "" {
		t.Fatalf("the new instance's volume held %q, want nothing", got)
	}
	waitFor(t, 30*time.Second, "the wiped instance's reservation to go", func() bool {
		all := ""
		for _, r := range masterReservations(t, env) {
			all += r
		}
		return !strings.Contains(all, instance) && strings.Contains(all, strings.TrimSuffix(fresh.id, "._app.1"))
	})

	// Scaled to 0, the instance is listed as Marathon lists a suspended
	// one (no state, its volumes), and a wipe by its id frees it.
	if code, b := env.do(t, "PUT", "/v2/apps/stateful", `{"instances":0}`); code != http.StatusOK {
		t.Fatalf("scale to 0: %d %s", code, b)
	}
	waitFor(t, 30*time.Second, "the task to be killed", func() bool { return len(env.app(t, "/stateful").Tasks) == 0 })
	code, b := env.do(t, "GET", "/v2/apps/stateful/tasks", "")
	var list struct {
		Tasks []struct {
			ID           string `json:"id"`
			State        string `json:"state"`
			Host         string `json:"host"`
			LocalVolumes []struct {
				ContainerPath string `json:"containerPath"`
				PersistenceID string `json:"persistenceId"`
			} `json:"localVolumes"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(b, &list); code != http.StatusOK || err != nil || len(list.Tasks) != 1 || list.Tasks[0].ID != fresh.id ||
		list.Tasks[0].State != "" || len(list.Tasks[0].LocalVolumes) != 1 || list.Tasks[0].LocalVolumes[0].ContainerPath != "data" ||
		!strings.HasPrefix(list.Tasks[0].LocalVolumes[0].PersistenceID, "stateful#data#") {
		t.Fatalf("GET tasks of the scaled-down app: %d %s, want the suspended instance %s with its volume", code, b, fresh.id)
	}
	if code, b := env.do(t, "POST", "/v2/tasks/delete?wipe=true", `{"ids":["`+fresh.id+`"]}`); code != http.StatusOK {
		t.Fatalf("wipe of the suspended instance: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "the master to hold no reservation after the wipe", func() bool { return len(masterReservations(t, env)) == 0 })

	// Deleted: the volume is destroyed and the resources unreserved.
	if code, b := env.do(t, "PUT", "/v2/apps/stateful", `{"instances":1}`); code != http.StatusOK {
		t.Fatalf("scale to 1: %d %s", code, b)
	}
	last := runningTask(t, env, "/stateful", seen)
	waitFor(t, 30*time.Second, "the new instance's reservation", func() bool {
		return strings.Contains(masterReservations(t, env)[last.host], strings.TrimSuffix(last.id, "._app.1"))
	})
	if code, b := env.do(t, "DELETE", "/v2/apps/stateful", ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "the master to hold no reservation", func() bool { return len(masterReservations(t, env)) == 0 })
	waitFor(t, 30*time.Second, "the volumes' directories to be deleted", func() bool {
		vols, _ := filepath.Glob(filepath.Join(work, "localmesos-*", "volumes", "roles", "stateful", "*"))
		return len(vols) == 0
	})
}

// TestResidentFailover: the reservation of a resident instance survives
// leader changes through ZooKeeper's task records. Replica A launches the
// instance; replica B adopts its task, and when it is killed relaunches it
// on the same reservation, which finds A's data; B scales to 0 and stops;
// replica C, knowing the suspended instance only from the store, scales up
// onto the same reservation, and deleting the app frees it.
func TestResidentFailover(t *testing.T) {
	t.Parallel()
	zkAddr := testbed.ZooKeeper(t)
	work := testbed.OpenTempDir(t)
	o := devOpts{executor: "process", upstream: fakeUpstream(t), role: "stateful", workDir: work, zk: "zk://" + zkAddr + "/flotilla-e2e-" + randomString(t),
		ports: [2]uint64{23400, 23499}, noServicePorts: true}
	log := testLog(t, nil)
	m := startMaster(t, o, log)

	a, stopA := startPlatform(t, o, m.URL(), log)
	waitLeading(t, a)
	a.deploy(t, residentSpec)
	seen := map[string]bool{}
	first := runningTask(t, a, "/stateful", seen)
	seen[first.id] = true
	seenBy(t, work, first.id)
	stopA()

	b, stopB := startPlatform(t, o, m.URL(), log)
	waitLeading(t, b)
	settled(t, b, "/probe-b")
	if got := runningTask(t, b, "/stateful", nil); got.id != first.id {
		t.Fatalf("the new leader runs %s, want the adopted %s", got.id, first.id)
	}
	second := killAndRelaunch(t, b, work, first, seen)
	if code, body := b.do(t, "PUT", "/v2/apps/stateful", `{"instances":0}`); code != http.StatusOK {
		t.Fatalf("scale to 0: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "the task to be killed", func() bool { return len(b.app(t, "/stateful").Tasks) <= 1 && len(runningTasks(t, b, "/stateful")) == 0 })
	stopB()

	c, _ := startPlatform(t, o, m.URL(), log)
	waitLeading(t, c)
	settled(t, c, "/probe-c")
	scaleUpOnto(t, c, work, first, second, seen)
	if code, body := c.do(t, "DELETE", "/v2/apps/stateful", ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	waitFor(t, 60*time.Second, "the master to hold no reservation", func() bool { return len(masterReservations(t, c)) == 0 })
}

// TestResidentAppDocker: the same volume on the Docker executor (a DOCKER
// container, as Marathon's postgres example runs): bound into the
// container's sandbox, its data outlives the container killed.
func TestResidentAppDocker(t *testing.T) {
	t.Parallel()
	work := testbed.OpenTempDir(t)
	env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), role: "stateful", workDir: work,
		ports: [2]uint64{23350, 23399}, noServicePorts: true})
	env.deploy(t, strings.Replace(residentSpec, `"type":"MESOS"`, `"type":"DOCKER","docker":{"image":"flotilla/busybox:dev"}`, 1))
	seen := map[string]bool{}
	first := runningTask(t, env, "/stateful", seen)
	seen[first.id] = true
	if got := seenBy(t, work, first.id); got != "" {
		t.Fatalf("the new volume held %q, want nothing", got)
	}
	killAndRelaunch(t, env, work, first, seen)
	if code, b := env.do(t, "DELETE", "/v2/apps/stateful", ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "the master to hold no reservation", func() bool { return len(masterReservations(t, env)) == 0 })
}
