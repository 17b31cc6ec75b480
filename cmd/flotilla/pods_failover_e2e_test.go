package main

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// TestDevPodsFailover: replicas on real ZooKeeper, one after the other,
// against one master that keeps running. A new leader reads the pod from
// the store, restores its instances from their records, reconciles them
// by their containers' task ids and adopts them: the same instances stay
// stable, every container still runs on the master, nothing is
// relaunched; then it scales the pod like its own.
func TestDevPodsFailover(t *testing.T) {
	t.Parallel()
	zkAddr := testbed.ZooKeeper(t)
	root := "/flotilla-e2e-" + randomString(t)
	o := devOpts{executor: "simulated", upstream: fakeUpstream(t), zk: "zk://" + zkAddr + root, ports: [2]uint64{21900, 21999}}
	log := testLog(t, nil)
	m := startMaster(t, o, log)

	a, stopA := startPlatform(t, o, m.URL(), log)
	waitLeading(t, a)
	pod := `{"id": "/shop/web",
		"containers": [
			{"name": "app", "exec": {"command": {"shell": "sleep 100000"}}, "resources": {"cpus": 0.01, "mem": 8}, "endpoints": [{"name": "http", "hostPort": 0}]},
			{"name": "sidecar", "exec": {"command": {"shell": "sleep 100000"}}, "resources": {"cpus": 0.01, "mem": 8}}],
		"executorResources": {"cpus": 0.01, "mem": 32, "disk": 1},
		"scaling": {"kind": "fixed", "instances": 2}}`
	if code, b := a.do(t, "POST", "/v2/pods", pod); code != http.StatusCreated {
		t.Fatalf("POST /v2/pods: %d %s", code, b)
	}
	var before podStatusView
	waitFor(t, 30*time.Second, "2 stable instances", func() bool {
		before = a.podStatus(t, "/shop/web")
		return before.stable() == 2 && before.Status == "STABLE"
	})
	ids := func(v podStatusView) []string {
		var out []string
		for _, in := range v.Instances {
			out = append(out, in.ID)
		}
		slices.Sort(out)
		return out
	}
	stopA()

	b, _ := startPlatform(t, o, m.URL(), log)
	waitLeading(t, b)
	settled(t, b, "/probe")
	var after podStatusView
	waitFor(t, 30*time.Second, "the new leader to adopt the 2 instances", func() bool {
		after = b.podStatus(t, "/shop/web")
		return after.stable() == 2 && slices.Equal(ids(after), ids(before))
	})
	running := masterRunning(t, m.URL())
	for _, id := range ids(before) {
		for _, c := range []string{".app", ".sidecar"} {
			if !running[id+c] {
				t.Fatalf("container %s no longer runs on the master after failover (running: %v)", id+c, running)
			}
		}
	}
	// Nothing extra launched: 2 instances × 2 containers and the probe.
	if len(running) != 5 {
		t.Fatalf("%d tasks run on the master after failover, want 5: %v", len(running), running)
	}
	if code, body := b.do(t, "PUT", "/v2/pods/shop/web", pod[:len(pod)-len(`"instances": 2}}`)]+`"instances": 3}}`); code != http.StatusOK {
		t.Fatalf("scale on the new leader: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "3 stable instances, the first 2 kept", func() bool {
		v := b.podStatus(t, "/shop/web")
		got := ids(v)
		return v.stable() == 3 && len(got) == 3 && slices.Contains(got, before.Instances[0].ID) && slices.Contains(got, before.Instances[1].ID)
	})
}
