package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/framework"
)

// healthCheckResults: one entry per check with a result, in Marathon's
// shape, with the times and counts the scheduler recorded.
func TestHealthResultsShape(t *testing.T) {
	t.Parallel()
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := framework.CheckResult{}.Update(true, "", t1)
	bad := ok.Update(false, "503 Service Unavailable", t1.Add(time.Second)).Update(false, "503 Service Unavailable", t1.Add(2*time.Second))
	task := &framework.Task{ID: "web.i1._app.1", Checks: []framework.CheckResult{bad, {}, ok}}
	b := append(appendHealthResults([]byte{'['}, task), ']')
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(got) != 2 {
		t.Fatalf("%s: want 2 entries (the check without a result has none)", b)
	}
	want := map[string]any{"alive": false, "consecutiveFailures": 2.0, "firstSuccess": "2026-01-02T03:04:05.000Z",
		"lastSuccess": "2026-01-02T03:04:05.000Z", "lastFailure": "2026-01-02T03:04:07.000Z",
		"lastFailureCause": "503 Service Unavailable", "instanceId": "web.i1", "taskId": "web.i1._app.1"}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, got[0][k], v, b)
		}
	}
	if got[1]["alive"] != true || got[1]["lastFailure"] != nil || got[1]["lastFailureCause"] != nil || got[1]["consecutiveFailures"] != 0.0 {
		t.Errorf("passing check %v", got[1])
	}
}
