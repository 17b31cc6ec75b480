package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The memory store skips the JSON encode when taskFitsNode vouches for a
// record; every record it vouches for must encode within the limit, and
// records that cannot be encoded or are too large must still be refused.
func TestTaskFitsNodeAgreesWithEncoding(t *testing.T) {
	now := time.Date(2026, 12, 7, 1, 2, 3, 999999999, time.FixedZone("x", -(23*3600+59*60)))
	base := TaskRecord{TaskID: "app.1", AppID: "/app", AgentID: "a1", AppVersion: "v1", State: "TASK_RUNNING",
		Host: "h", Ports: []uint64{^uint64(0)}, StagedAt: now, StartedAt: now}
	cases := map[string]func(r *TaskRecord){
		"plain":          func(*TaskRecord) {},
		"year 10000":     func(r *TaskRecord) { r.StartedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year -1":        func(r *TaskRecord) { r.StagedAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"zone 24h":       func(r *TaskRecord) { r.StagedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("y", 24*3600)) },
		"zone seconds":   func(r *TaskRecord) { r.StagedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("y", 3601)) },
		"control chars":  func(r *TaskRecord) { r.Host = strings.Repeat("\x01", 1000) },
		"too large":      func(r *TaskRecord) { r.Host = strings.Repeat("\x01", MaxNodeBytes/6+1) },
		"large but fits": func(r *TaskRecord) { r.Host = strings.Repeat("h", MaxNodeBytes/6-100) },
		"many ports":     func(r *TaskRecord) { r.Ports = make([]uint64, MaxNodeBytes/2) },
	}
	for name, change := range cases {
		r := base
		change(&r)
		b, err := encodeNode("task", r.TaskID, r)
		if taskFitsNode(&r) && err != nil {
			t.Errorf("%s: taskFitsNode vouched for a record whose encoding fails: %v", name, err)
		}
		if taskFitsNode(&r) && len(b) >= MaxNodeBytes {
			t.Errorf("%s: taskFitsNode vouched for a record of %d bytes", name, len(b))
		}
		perr := NewMemory(nil, 0).PutTask(context.Background(), r)
		if (err == nil) != (perr == nil) {
			t.Errorf("%s: encoding says %v, PutTask says %v", name, err, perr)
		}
	}
	r := base
	r.Host = strings.Repeat("x", MaxNodeBytes)
	if err := NewMemory(nil, 0).PutTask(context.Background(), r); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a record over the limit: PutTask returned %v, want ErrTooLarge", err)
	}
	if !taskFitsNode(&base) {
		t.Errorf("an ordinary record was not vouched for: the memory store would encode every record")
	}
}
