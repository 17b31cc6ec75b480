package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestDevReadiness runs the test application as processes that answer
// /health at once and /ready only after 15 s. Between the two the tasks are
// healthy but not ready: the deployment is not over and the gateway has no
// backend for the app (503); once the readiness check passes, both change.
func TestDevReadiness(t *testing.T) {
	t.Parallel()
	bin := testappBinary(t)
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{29900, 29999}})
	start := time.Now()
	env.deploy(t, fmt.Sprintf(`{"id":"/slow","cmd":"%s -ready-after 15s","instances":2,"cpus":0.05,"mem":32,
	  "portDefinitions":[{"port":0,"name":"http-api"}],
	  "healthChecks":[{"protocol":"MESOS_HTTP","path":"/health","portIndex":0,"delaySeconds":0,
	    "gracePeriodSeconds":3,"intervalSeconds":1,"timeoutSeconds":1,"maxConsecutiveFailures":3}],
	  "readinessChecks":[{"name":"ready","protocol":"HTTP","path":"/ready","portName":"http-api",
	    "intervalSeconds":1,"timeoutSeconds":0.5}],
	  "exposure":{"mode":"external","vhosts":["slow.example.com"]}}`, bin))
	waitFor(t, 30*time.Second, "2 healthy tasks", func() bool { return env.app(t, "/slow").TasksHealthy == 2 })
	client := &http.Client{Timeout: 5 * time.Second}
	if since := time.Since(start); since < 12*time.Second {
		// Healthy, not ready yet (ready after 15 s; 3 s of margin, and
		// room for a slow start under -race and the other tests).
		if n := len(env.app(t, "/slow").Deployments); n != 1 {
			t.Errorf("%d deployments while the tasks are not ready, want 1 (still going)", n)
		}
		code, body, err := get(client, env.external, "slow.example.com", "/")
		if err != nil || code != http.StatusServiceUnavailable {
			t.Errorf("gateway before readiness: %d %q %v, want 503 (no ready backend)", code, body, err)
		}
	} else {
		t.Errorf("the tasks took %v to become healthy: too late to see them not ready (ready after 15 s)", since)
	}
	waitFor(t, 30*time.Second, "the deployment to finish once the tasks are ready", func() bool {
		return len(env.app(t, "/slow").Deployments) == 0
	})
	if since := time.Since(start); since < 15*time.Second {
		t.Errorf("deployment finished after %v, before the tasks could be ready (15 s)", since)
	}
	waitFor(t, 10*time.Second, "the gateway to route to the ready tasks", func() bool {
		code, _, err := get(client, env.external, "slow.example.com", "/")
		return err == nil && code == http.StatusOK
	})
}
