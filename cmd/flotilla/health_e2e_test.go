package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// healthTask is a task as /v2/apps/{id}/tasks and /v2/tasks show it, with
// Marathon's healthCheckResults.
type healthTask struct {
	ID      string   `json:"id"`
	AppID   string   `json:"appId"`
	Host    string   `json:"host"`
	Ports   []uint64 `json:"ports"`
	State   string   `json:"state"`
	Results []struct {
		Alive               bool    `json:"alive"`
		ConsecutiveFailures int     `json:"consecutiveFailures"`
		FirstSuccess        *string `json:"firstSuccess"`
		LastSuccess         *string `json:"lastSuccess"`
		LastFailure         *string `json:"lastFailure"`
		LastFailureCause    *string `json:"lastFailureCause"`
		InstanceID          string  `json:"instanceId"`
		TaskID              string  `json:"taskId"`
	} `json:"healthCheckResults"`
}

func (e *devEnv) healthTasks(t *testing.T, path string) []healthTask {
	t.Helper()
	code, b := e.do(t, "GET", path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	var v struct{ Tasks []healthTask }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v.Tasks
}

// TestDevHealthChecks runs the test application with two health checks:
// an HTTP one that Flotilla's leader probes and a MESOS_TCP one the agent
// runs. Both results show in the task JSON with real times; when the
// task's /health starts failing, the task turns unhealthy (with Marathon's
// events), the leader kills it after maxConsecutiveFailures and a new
// task takes its place, healthy again.
func TestDevHealthChecks(t *testing.T) {
	t.Parallel()
	bin := testappBinary(t)
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{21000, 21099}})
	ev := openEvents(t, env, "health_status_changed_event", "failed_health_check_event", "unhealthy_instance_kill_event")
	env.deploy(t, fmt.Sprintf(`{"id":"/hc","cmd":"%s","instances":1,"cpus":0.05,"mem":32,
	  "portDefinitions":[{"port":0}],
	  "healthChecks":[
	    {"protocol":"HTTP","path":"/health","portIndex":0,"delaySeconds":0,"gracePeriodSeconds":10,
	     "intervalSeconds":1,"timeoutSeconds":1,"maxConsecutiveFailures":3},
	    {"protocol":"MESOS_TCP","portIndex":0,"delaySeconds":0,"gracePeriodSeconds":10,
	     "intervalSeconds":1,"timeoutSeconds":1,"maxConsecutiveFailures":3}]}`, bin))

	var first healthTask
	waitFor(t, 60*time.Second, "a task with both health checks alive", func() bool {
		ts := env.healthTasks(t, "/v2/apps/hc/tasks")
		if len(ts) != 1 || len(ts[0].Results) != 2 {
			return false
		}
		first = ts[0]
		return first.Results[0].Alive && first.Results[1].Alive
	})
	for i, r := range first.Results {
		if r.FirstSuccess == nil || r.LastSuccess == nil || r.LastFailure != nil || r.ConsecutiveFailures != 0 ||
			r.TaskID != first.ID || r.InstanceID == "" {
			t.Errorf("healthy check %d: %+v, want first and last success set, no failure, the task's ids", i, r)
		}
	}
	if a := env.app(t, "/hc"); a.TasksHealthy != 1 {
		t.Errorf("tasksHealthy %d, want 1", a.TasksHealthy)
	}
	var inList bool
	for _, tk := range env.healthTasks(t, "/v2/tasks") {
		inList = inList || tk.ID == first.ID && len(tk.Results) == 2
	}
	if !inList {
		t.Errorf("/v2/tasks does not show task %s with its 2 health check results", first.ID)
	}

	// The HTTP check starts failing; TCP still passes.
	addr := net.JoinHostPort(first.Host, strconv.FormatUint(first.Ports[0], 10))
	resp, err := http.Post("http://"+addr+"/health?healthy=false", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	failedAt := time.Now()

	var sawUnhealthy, sawFailed bool
	ev.until(t, 30*time.Second, "the task to turn unhealthy and fail its HTTP check", func(typ string, e map[string]any) bool {
		if e["taskId"] != first.ID {
			return false
		}
		switch typ {
		case "health_status_changed_event":
			if alive, _ := e["alive"].(bool); !alive {
				sawUnhealthy = true
			}
		case "failed_health_check_event":
			hc, _ := e["healthCheck"].(map[string]any)
			if hc["protocol"] != "HTTP" || e["appId"] != "/hc" || e["instanceId"] == nil {
				t.Errorf("failed_health_check_event %v: want the HTTP check, the app and the instance", e)
			}
			sawFailed = true
		case "unhealthy_instance_kill_event":
			t.Fatalf("killed before the failures were seen: %v", e)
		}
		return sawUnhealthy && sawFailed
	})
	// While unhealthy (not yet killed: maxConsecutiveFailures 3 gives
	// about 3 s): the HTTP result says why, the TCP one is alive.
	ts := env.healthTasks(t, "/v2/apps/hc/tasks")
	if len(ts) == 1 && ts[0].ID == first.ID && len(ts[0].Results) == 2 {
		h, tcp := ts[0].Results[0], ts[0].Results[1]
		if h.Alive || h.ConsecutiveFailures < 1 || h.LastFailure == nil || h.LastFailureCause == nil || *h.LastFailureCause != "503 Service Unavailable" {
			t.Errorf("failing HTTP check result %+v, want not alive, failures counted, cause 503", h)
		}
		if !tcp.Alive {
			t.Errorf("TCP check result %+v, want alive (the port still accepts)", tcp)
		}
	} else {
		t.Logf("the task was gone before it could be read while unhealthy (slow machine): %+v", ts)
	}
	if a := env.app(t, "/hc"); a.TasksHealthy != 0 && len(a.Tasks) == 1 && a.Tasks[0].ID == first.ID {
		t.Errorf("tasksHealthy %d while the only task fails its HTTP check, want 0", a.TasksHealthy)
	}

	ev.until(t, 30*time.Second, "unhealthy_instance_kill_event for the failing task", func(typ string, e map[string]any) bool {
		if typ != "unhealthy_instance_kill_event" || e["taskId"] != first.ID {
			return false
		}
		if e["reason"] != "503 Service Unavailable" || e["appId"] != "/hc" || e["host"] != first.Host || e["slaveId"] == nil || e["version"] == nil {
			t.Errorf("unhealthy_instance_kill_event %v", e)
		}
		return true
	})
	// Three failures at 1 s intervals are recorded before the fourth kills.
	if d := time.Since(failedAt); d < 3*time.Second {
		t.Errorf("killed %v after /health started failing: before 3 failures could be counted", d)
	}
	waitFor(t, 60*time.Second, "a replacement task with both checks alive", func() bool {
		ts := env.healthTasks(t, "/v2/apps/hc/tasks")
		return len(ts) == 1 && ts[0].ID != first.ID && len(ts[0].Results) == 2 && ts[0].Results[0].Alive && ts[0].Results[1].Alive
	})
}
