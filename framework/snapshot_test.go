package framework

import (
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// fullSnapshotRef is the snapshot rebuilt from nothing, the way it was
// built before it became incremental: every app sorted, every task copied
// and sorted. The incremental one must equal it.
func (c *core) fullSnapshotRef(now time.Time) *Snapshot {
	s := &Snapshot{At: now, Connected: c.connected, Suppressed: c.suppressed, Generation: c.gen,
		Settled: c.connected && c.settleUntil.IsZero()}
	for _, id := range slices.Sorted(maps.Keys(c.apps)) {
		as := c.apps[id]
		if as.app != nil {
			s.Apps = append(s.Apps, as.app)
			s.Status = append(s.Status, statusOf(as))
		}
		if q := c.queueEntry(now, as); q.Count > 0 {
			s.Queue = append(s.Queue, q)
		}
	}
	s.Tasks = make([]Task, 0, len(c.tasks))
	for _, ts := range c.tasks {
		s.Tasks = append(s.Tasks, ts.t)
	}
	sort.Slice(s.Tasks, func(i, j int) bool { return s.Tasks[i].ID < s.Tasks[j].ID })
	return s
}

// TestSnapshotIncrementalEqualsFull drives a scheduler through seeded
// random steps (apps and a pod put, scaled and removed, offers, status
// updates of every kind, kills, time passing) and, after a random number of them,
// checks that the incremental snapshot equals a full rebuild of the same
// state: apps, status, queue, the flat task list of Snapshot, and every
// app's tasks through TasksOf in both Snapshot and SnapshotByApp.
func TestSnapshotIncrementalEqualsFull(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			r := rand.New(rand.NewSource(seed))
			ops := newRandomOps(t, h, r)
			checks := 0
			h.subscribe()
			for i := 0; i < 400; i++ {
				if !ops.do() {
					continue
				}
				h.sync()
				if r.Intn(3) > 0 {
					continue // let changes pile up between snapshots too
				}
				checks++
				checkSnapshot(t, h.s, i)
			}
			checkSnapshot(t, h.s, -1)
			if checks < 50 {
				t.Fatalf("only %d checks", checks)
			}
			if n := len(h.s.Snapshot().Tasks); n == 0 {
				t.Fatal("the random steps left no task: the check compared little")
			}
		})
	}
}

// randomOps drives a harness through seeded random steps: apps and a pod
// put, scaled and removed, offers, status updates of every kind, kills,
// time passing. The checks of incremental state run between them.
type randomOps struct {
	t       *testing.T
	h       *harness
	r       *rand.Rand
	ids     []string
	version int
}

func newRandomOps(t *testing.T, h *harness, r *rand.Rand) *randomOps {
	// Ids with dots and a shared prefix: their task ids share a prefix
	// too, and must not mix in TasksOf or in the order.
	return &randomOps{t: t, h: h, r: r, ids: []string{"/a", "/a/b", "/a/b.c", "/a-b", "/z/y", "/b.instance", "/c", "/pod"}}
}

// do makes one random step; false when it did nothing (no task to
// update), in which case the loop was not even asked.
func (o *randomOps) do() bool {
	h, r, ids := o.h, o.r, o.ids
	switch r.Intn(10) {
	case 0, 1:
		o.version++
		app := testApp(ids[r.Intn(len(ids))], r.Intn(4))
		if r.Intn(4) == 0 {
			// A pod: its instances' tasks change with their containers'
			// updates (pods.go).
			app = testPod(o.t, "/pod", r.Intn(3))
		}
		if r.Intn(2) == 0 {
			app.Version = fmt.Sprint("v", o.version)
		}
		h.s.PutApp(app)
	case 2:
		_ = h.s.Scale(ids[r.Intn(len(ids))], r.Intn(5)) // unknown apps fail: nothing changes
	case 3:
		_ = h.s.RemoveApp(ids[r.Intn(len(ids))])
	case 4:
		h.offer(fmt.Sprint("h", r.Intn(5)))
	case 5, 6, 7:
		snap := h.s.Snapshot()
		if len(snap.Tasks) == 0 {
			return false
		}
		tk := snap.Tasks[r.Intn(len(snap.Tasks))]
		states := []mesos.TaskState{mesos.TASK_RUNNING, mesos.TASK_RUNNING, mesos.TASK_STARTING,
			mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_UNREACHABLE, mesos.TASK_LOST}
		healthy := r.Intn(2) == 0
		id := tk.ID
		if len(tk.Containers) > 0 {
			id = tk.Containers[r.Intn(len(tk.Containers))].TaskID
		}
		h.update(id, states[r.Intn(len(states))], func(st *mesos.TaskStatus) { st.Healthy = &healthy })
	case 8:
		snap := h.s.Snapshot()
		if len(snap.Tasks) > 0 {
			tk := snap.Tasks[r.Intn(len(snap.Tasks))]
			_ = h.s.KillTasks(tk.AppID, []string{tk.ID})
		}
	case 9:
		h.step(time.Duration(r.Intn(5000)) * time.Millisecond)
	}
	return true
}

func checkSnapshot(t *testing.T, s *Scheduler, step int) {
	t.Helper()
	var inc, ref, of *Snapshot
	s.locked(func(c *core, now time.Time) {
		inc = c.snapshot(now)
		ref = c.fullSnapshotRef(inc.At)
		// SnapshotOf every app (and one unknown, twice): the same as the
		// full one, app by app.
		ids := []string{"/none", "/none"}
		for id := range c.apps {
			ids = append(ids, id)
		}
		of = c.snapshotOf(inc.At, ids)
	})
	full := s.Snapshot()
	if full.Generation != inc.Generation {
		t.Fatalf("step %d: Snapshot generation %d, SnapshotByApp %d (nothing changed between)", step, full.Generation, inc.Generation)
	}
	if inc.Tasks != nil {
		t.Fatalf("step %d: SnapshotByApp has a flat task list of %d", step, len(inc.Tasks))
	}
	for _, cmp := range []struct {
		what      string
		got, want any
	}{
		{"apps", inc.Apps, ref.Apps},
		{"status", inc.Status, ref.Status},
		{"queue", inc.Queue, ref.Queue},
		{"SnapshotOf apps", of.Apps, ref.Apps},
		{"SnapshotOf status", of.Status, ref.Status},
		{"SnapshotOf queue", of.Queue, ref.Queue},
		{"tasks", full.Tasks, ref.Tasks},
		{"flags", []any{inc.Connected, inc.Suppressed, inc.Settled, inc.Generation},
			[]any{ref.Connected, ref.Suppressed, ref.Settled, ref.Generation}},
	} {
		if !reflect.DeepEqual(cmp.got, cmp.want) {
			t.Fatalf("step %d: %s differ from a full rebuild:\n got %+v\nwant %+v", step, cmp.what, cmp.got, cmp.want)
		}
	}
	appIDs := map[string]bool{"/none": true}
	for _, tk := range ref.Tasks {
		appIDs[tk.AppID] = true
	}
	for _, a := range ref.Apps {
		appIDs[a.ID] = true
	}
	sorted := make([]string, 0, len(appIDs))
	for id := range appIDs {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	// A cursor reads them in order; a second one out of order.
	cur, back := inc.Cursor(), full.Cursor()
	for _, id := range sorted {
		want := ref.TasksOf(id)
		if got := cur.TasksOf(id); !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("step %d: Cursor().TasksOf(%s) = %+v, a full rebuild has %+v", step, id, got, want)
		}
	}
	for i := len(sorted) - 1; i >= 0; i-- {
		if got, want := back.TasksOf(sorted[i]), ref.TasksOf(sorted[i]); !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("step %d: Cursor().TasksOf(%s) in reverse = %+v, a full rebuild has %+v", step, sorted[i], got, want)
		}
	}
	for id := range appIDs {
		want := ref.TasksOf(id) // hand-built: binary search of the flat list
		for name, got := range map[string][]Task{"SnapshotByApp": inc.TasksOf(id), "Snapshot": full.TasksOf(id), "SnapshotOf": of.TasksOf(id)} {
			if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
				t.Fatalf("step %d: %s.TasksOf(%s) = %d tasks %+v, a full rebuild has %d %+v", step, name, id, len(got), got, len(want), want)
			}
		}
	}
}

// TestSnapshotSharesUnchangedParts: a status update of one task rebuilds
// that app's tasks only; every other app's part is the same array, so a
// reader can keep what it rendered from it (SameTasks).
func TestSnapshotSharesUnchangedParts(t *testing.T) {
	h := newHarness(t, nil)
	h.subscribe()
	h.s.PutApp(testApp("/one", 2))
	h.s.PutApp(testApp("/two", 2))
	h.offer("h1", "h2")
	before := h.s.SnapshotByApp()
	one, two := before.TasksOf("/one"), before.TasksOf("/two")
	if len(one) != 2 || len(two) != 2 {
		t.Fatalf("tasks: /one %d, /two %d, want 2 each", len(one), len(two))
	}
	h.update(one[0].ID, mesos.TASK_RUNNING)
	after := h.s.SnapshotByApp()
	if after.Generation == before.Generation {
		t.Fatal("the update made no new generation")
	}
	if !SameTasks(after.TasksOf("/two"), two) {
		t.Error("/two's tasks were rebuilt though no task of it changed")
	}
	if SameTasks(after.TasksOf("/one"), one) || after.TasksOf("/one")[0].State != mesos.TASK_RUNNING {
		t.Errorf("/one's tasks not rebuilt: %+v", after.TasksOf("/one"))
	}
	if &after.Apps[0] != &before.Apps[0] {
		t.Error("the apps list was copied though no app changed")
	}
	// A copy whose Tasks was replaced (discovery.KnownPorts does so) is
	// searched in its own Tasks, not in the parts it was built with.
	full := *h.s.Snapshot()
	full.Tasks = append([]Task(nil), full.Tasks...)
	for i := range full.Tasks {
		full.Tasks[i].Host = "changed.example"
	}
	if got := full.TasksOf("/two"); len(got) != 2 || got[0].Host != "changed.example" {
		t.Errorf("TasksOf of a copy with its own tasks: %+v", got)
	}
}
