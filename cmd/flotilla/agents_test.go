package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAgentsHandler: GET /flotilla/v1/agents reads the agents' total and
// used resources from the master's JSON and works out the free ones;
// /master/slaves first, /master/state from a master without it; a master
// that does not answer, or none known, is a 502 that says so.
func TestAgentsHandler(t *testing.T) {
	t.Parallel()
	const slaves = `{"slaves":[{"id":"a1","hostname":"h1","active":true,
	  "resources":{"cpus":2,"mem":1024,"disk":4096,"gpus":0,"ports":"[31900-31909, 31950-31950]"},
	  "used_resources":{"cpus":0.15,"mem":48,"disk":0,"gpus":0,"ports":"[31900-31901]"},
	  "unreserved_resources":{"cpus":1.5,"mem":1024,"disk":4096,"ports":"[31900-31909, 31950-31950]"}}]}`
	const frameworks = `{"frameworks":[{"id":"fw-1","name":"flotilla","role":"*","active":true,"connected":true,
	  "tasks":[{"id":"t1"},{"id":"t2"}],"unreachable_tasks":[]}]}`
	var stateOnly atomic.Bool
	var asked atomic.Int32
	master := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.URL.Path == "/master/frameworks" && !stateOnly.Load() {
			_, _ = w.Write([]byte(frameworks))
			return
		}
		if r.URL.Path == "/master/state" {
			// /master/state holds both.
			_, _ = w.Write([]byte(slaves[:len(slaves)-1] + "," + frameworks[1:]))
			return
		}
		if r.URL.Path == "/master/slaves" && stateOnly.Load() || r.URL.Path != "/master/slaves" && r.URL.Path != "/master/state" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(slaves))
	}))
	defer master.Close()
	h := agentsHandler(func(context.Context) (string, error) { return master.URL + "/api/v1/scheduler", nil }, &http.Client{Timeout: 5 * time.Second})

	get := func(h http.Handler, path string) (int, map[string]any) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("GET %s: %d, not JSON: %q", path, rec.Code, rec.Body)
		}
		return rec.Code, v
	}
	for _, tc := range []struct {
		name, source string
		stateOnly    bool
	}{{"a master with /master/slaves", "/master/slaves", false}, {"a master with /master/state only", "/master/state", true}} {
		stateOnly.Store(tc.stateOnly)
		h := h
		if tc.stateOnly {
			h = agentsHandler(func(context.Context) (string, error) { return master.URL, nil }, &http.Client{Timeout: 5 * time.Second})
		}
		code, v := get(h, "/flotilla/v1/agents")
		if code != http.StatusOK || v["source"] != tc.source || v["master"] != master.URL {
			t.Fatalf("%s: %d %v", tc.name, code, v)
		}
		if f := v["frameworks"].([]any); len(f) != 1 || f[0].(map[string]any)["name"] != "flotilla" || f[0].(map[string]any)["tasks"] != float64(2) || f[0].(map[string]any)["active"] != true {
			t.Fatalf("%s: frameworks %v", tc.name, v["frameworks"])
		}
		a := v["agents"].([]any)[0].(map[string]any)
		b, err := json.Marshal(a) // keys sorted
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"free":{"cpus":1.85,"disk":4096,"mem":976,"ports":9}`, `"used":{"cpus":0.15,"disk":0,"mem":48,"ports":2}`,
			`"total":{"cpus":2,"disk":4096,"mem":1024,"ports":11}`, `"reserved":{"cpus":0.5,"disk":0,"mem":0,"ports":0}`, `"hostname":"h1"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s: agent %s lacks %s", tc.name, b, want)
			}
		}
	}
	// Once a master said it has no /master/slaves, it is not asked again.
	before := asked.Load()
	stateOnly.Store(true)
	hs := agentsHandler(func(context.Context) (string, error) { return master.URL, nil }, &http.Client{Timeout: 5 * time.Second})
	get(hs, "/flotilla/v1/agents")
	get(hs, "/flotilla/v1/agents")
	if n := asked.Load() - before; n != 3 {
		t.Errorf("two reads from a /master/state-only master asked it %d times, want 3 (one 404, then /master/state twice)", n)
	}

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there now
	code, v := get(agentsHandler(func(context.Context) (string, error) { return down.URL, nil }, &http.Client{Timeout: 5 * time.Second}), "/flotilla/v1/agents")
	if msg, _ := v["message"].(string); code != http.StatusBadGateway || !strings.Contains(msg, "did not answer GET /master/") {
		t.Errorf("a master that does not answer: %d %v, want 502 saying so", code, v)
	}
	code, v = get(agentsHandler(func(context.Context) (string, error) { return "", errors.New("context deadline exceeded") }, http.DefaultClient), "/flotilla/v1/agents")
	if msg, _ := v["message"].(string); code != http.StatusBadGateway || !strings.Contains(msg, "no leading Mesos master is known") {
		t.Errorf("no master known: %d %v, want 502 saying so", code, v)
	}
	if code, _ := get(h, "/flotilla/v1/agents/x"); code != http.StatusNotFound {
		t.Errorf("GET /flotilla/v1/agents/x: %d, want 404", code)
	}
}
