package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
)

// limitDetail fails unless r is a 422 in Marathon's shape with a detail at
// path whose errors contain every one of texts.
func limitDetail(t *testing.T, r resp, path string, texts ...string) {
	t.Helper()
	if r.status != 422 {
		t.Fatalf("status %d, want 422: %.500s", r.status, r.body)
	}
	var body struct {
		Message string           `json:"message"`
		Details []appspec.Detail `json:"details"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Message != "Object is not valid" {
		t.Fatalf("not Marathon's error shape: %v: %.500s", err, r.body)
	}
	for _, d := range body.Details {
		msg := strings.Join(d.Errors, " ")
		if d.Path != path {
			continue
		}
		for _, x := range texts {
			if !strings.Contains(msg, x) {
				t.Fatalf("detail %s = %q, want it to contain %q", path, msg, x)
			}
		}
		return
	}
	t.Fatalf("no detail at %s: %.500s", path, r.body)
}

// The request of issue 22 that took a cluster down: 10^9 instances are
// refused at submit with the limit named, and nothing is stored or
// scheduled.
func TestBillionInstancesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/v2/apps", `{"id":"/big","cmd":"x","instances":1000000000,"cpus":0.001,"mem":1}`)
	limitDetail(t, r, "/instances", "at most 100000", "--max-instances", "got 1000000000")
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	r = e.do("PUT", "/v2/apps/prod/shop/web", `{"instances":1000000000}`)
	limitDetail(t, r, "/instances", "at most 100000")
	if _, err := e.st.GetApp(e.ctx, "/big"); err == nil {
		t.Error("the refused app was stored")
	}
	for _, a := range e.sched.Snapshot().Apps {
		if a.ID == "/big" || a.Instances != 2 {
			t.Errorf("scheduler holds %s with %d instances", a.ID, a.Instances)
		}
	}
}

// A configured limit (--max-instances) is what create, PUT and Scale (the
// autoscaler's path) enforce: at the limit accepted, one past refused.
func TestConfiguredInstanceLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *Config, _ *framework.Config, d *deploy.Config) { d.Limits = appspec.Limits{MaxInstances: 3} })
	limitDetail(t, e.do("POST", "/v2/apps", `{"id":"/w","cmd":"x","cpus":0.1,"mem":1,"instances":4}`), "/instances", "at most 3", "--max-instances")
	e.mustDo("POST", "/v2/apps", `{"id":"/w","cmd":"x","cpus":0.1,"mem":1,"instances":3}`, 201)
	e.launch(nil)
	e.waitNoDeployments()
	limitDetail(t, e.do("PUT", "/v2/apps/w", `{"instances":4}`), "/instances", "at most 3")
	limitDetail(t, e.do("PUT", "/v2/apps/w", `{"autoscale":{"min":1,"max":4,"metric":"cpu","target":0.5}}`), "/autoscale/max", "at most 3")
	if _, err := e.dep.Scale(e.ctx, "/w", 4); err == nil || !strings.Contains(err.Error(), "limit of instances per app") {
		t.Fatalf("Scale past the limit: %v", err)
	}
	if _, err := e.dep.Scale(e.ctx, "/w", 2); err != nil {
		t.Fatalf("Scale within the limit: %v", err)
	}
}

// Every other limit reaches the client the same way; one request per kind
// of field shows the path and the limit's name survive the HTTP layer.
func TestLimitsThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	long := strings.Repeat("a", 64)
	tests := []struct{ name, body, path, text string }{
		{"id segment", `{"id":"/` + long + `","cmd":"x"}`, "/id", "at most 63"},
		{"port definitions", `{"id":"/p","cmd":"x","portDefinitions":[` + strings.Repeat(`{"port":0},`, 1000) + `{"port":0}]}`, "/portDefinitions", "at most 1000"},
		{"command check interval 0", `{"id":"/h","cmd":"x","healthChecks":[{"protocol":"COMMAND","command":{"value":"true"},"intervalSeconds":0}]}`,
			"/healthChecks/0/intervalSeconds", "1 or more"},
		{"backoff", `{"id":"/b","cmd":"x","backoffSeconds":1e18,"backoffFactor":1.5}`, "/backoffSeconds", "at most 2147483647 seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			limitDetail(t, e.do("POST", "/v2/apps", tc.body), tc.path, tc.text)
		})
	}
}
