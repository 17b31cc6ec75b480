package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// TestDevAutoscale runs the test image under the Docker executor: /burn
// pushes CPU over the target and the app grows; when the load stops it
// shrinks after the (shortened) scale-down window; the decision log says
// why at each step.
func TestDevAutoscale(t *testing.T) {
	t.Parallel()
	testbed.DockerSocket(t)
	env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), ports: [2]uint64{29000, 29299}})
	env.deploy(t, fmt.Sprintf(`{"id":"/worker","instances":1,"cpus":0.2,"mem":64,
	  "container":{"type":"DOCKER","docker":{"image":%q}},
	  "portDefinitions":[{"port":0}],
	  "autoscale":{"min":1,"max":3,"metric":"cpu","target":0.5,"intervalSeconds":1,
	    "scaleDownWindowSeconds":5,"cooldownSeconds":1}}`, testbed.Image))
	evs := openEvents(t, env, "autoscale_decision")
	waitFor(t, 60*time.Second, "the worker to run", func() bool { return env.app(t, "/worker").TasksRunning == 1 })
	tk := env.app(t, "/worker").Tasks[0]
	burn := fmt.Sprintf("http://%s:%d/burn?millicores=200&seconds=25", tk.Host, tk.Ports[0])
	waitFor(t, 20*time.Second, "the worker to answer", func() bool {
		resp, err := http.Get(burn)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// 200 millicores on a 0.2-cpu task is 100% of its limit, twice the
	// target: the autoscaler asks for ceil(1 × 1.0 / 0.5) = 2 or more.
	waitFor(t, 60*time.Second, "the worker to grow", func() bool { return env.app(t, "/worker").TasksRunning >= 2 })
	grown := env.app(t, "/worker").TasksRunning
	// The load ends with the burn (25 s); the app shrinks back to min after
	// the 5 s scale-down window.
	waitFor(t, 120*time.Second, "the worker to shrink back to 1", func() bool {
		a := env.app(t, "/worker")
		return a.TasksRunning == 1 && len(a.Deployments) == 0
	})
	var up, down bool
	for _, d := range decisions(t, env, "/worker") {
		if d["scaled"] != true {
			continue
		}
		cur, _ := d["current"].(float64)
		want, _ := d["desired"].(float64)
		if want > cur {
			up = true
		}
		if want < cur {
			down = true
		}
		if d["rule"] == nil && d["reason"] == nil {
			t.Errorf("a scaling decision without a rule or reason: %v", d)
		}
	}
	if !up || !down {
		t.Fatalf("decision log has scale-up %v, scale-down %v; want both: %v", up, down, decisions(t, env, "/worker"))
	}
	// Each scaling decision also went out on the event stream.
	var evUp, evDown bool
	evs.until(t, 10*time.Second, "autoscale_decision events for the scale-up and the scale-down", func(typ string, ev map[string]any) bool {
		d, _ := ev["decision"].(map[string]any)
		if typ != "autoscale_decision" || ev["appId"] != "/worker" || d == nil || (d["scaled"] != true && d["error"] == nil) {
			t.Fatalf("unexpected event %s %v: want only decisions that scaled /worker or failed to", typ, ev)
		}
		if d["scaled"] != true {
			return false // a failed scale, which the log also shows
		}
		cur, _ := d["current"].(float64)
		want, _ := d["desired"].(float64)
		evUp = evUp || want > cur
		evDown = evDown || want < cur
		return evUp && evDown
	})
	t.Logf("autoscale: grew to %d under load, back to 1 after it", grown)
}

// decisions reads GET /v2/apps/{id}/autoscale.
func decisions(t *testing.T, env *devEnv, id string) []map[string]any {
	t.Helper()
	code, b := env.do(t, "GET", "/v2/apps"+id+"/autoscale", "")
	if code != http.StatusOK {
		t.Fatalf("GET autoscale log: %d %s", code, b)
	}
	var v struct {
		Decisions []map[string]any `json:"decisions"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.Decisions
}
