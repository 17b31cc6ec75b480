package framework

import (
	"github.com/flotilla-sched/flotilla/appspec"
	"slices"
	"sort"
	"strings"
	"time"
)

// Snapshots are built incrementally. With 10,000 apps and 100,000 tasks,
// copying and sorting every task for each new generation took tens of
// milliseconds under the scheduler's lock, and a status update every
// 10 ms makes a new generation for nearly every reader. So each app's
// tasks are kept as an immutable part (sorted by id) that a snapshot
// shares with the previous one; a step marks the apps whose tasks it
// changed (touch), and the next snapshot rebuilds only those parts. The
// apps, their status and the queue are compared with the previous
// snapshot's and copied only when one of them changed.
//
// The flat, sorted Snapshot.Tasks is built from the parts outside the
// lock, once per generation, only for readers that ask for it
// (Scheduler.Snapshot); Scheduler.SnapshotByApp skips it.

// appTasks is one app's tasks in a snapshot, sorted by id. A part is never
// changed once published: a change builds a new one, so two snapshots
// that share a part share its array, and a reader may compare parts by
// identity (SameTasks) to know an app's tasks did not change.
type appTasks struct {
	appID string
	tasks []Task
}

// snapParts is what the core keeps between two snapshots.
type snapParts struct {
	// order is every app state sorted by id (appSetChanged keeps it);
	// nil before the first snapshot.
	order []*appState
	// dirty holds the app ids whose task part must be rebuilt.
	dirty map[string]struct{}
	// tasks is the parts of the last snapshot, sorted by app id.
	tasks []appTasks
}

// touch marks an app's tasks changed for the next snapshot. Every write
// of a task's published value (core.setTask, addTask, removeTask) calls
// it.
func (c *core) touch(appID string) {
	if c.parts.dirty == nil {
		c.parts.dirty = map[string]struct{}{}
	}
	c.parts.dirty[appID] = struct{}{}
}

// appSetChanged notes that as was added to or dropped from c.apps
// (as.gone): it is put into or taken out of the sorted order at its
// place, where re-sorting every app for each new one made 10,000 PUTs
// sort 10,000 ids each.
func (c *core) appSetChanged(as *appState) {
	if c.parts.order == nil {
		return // built at the next snapshot
	}
	cmpID := func(a *appState, id string) int { return strings.Compare(a.id, id) }
	i, found := slices.BinarySearchFunc(c.parts.order, as.id, cmpID)
	switch {
	case as.gone && found && c.parts.order[i] == as:
		c.parts.order = slices.Delete(c.parts.order, i, i+1)
	case !as.gone && !found:
		c.parts.order = slices.Insert(c.parts.order, i, as)
	default:
		c.parts.order = nil // not as expected: rebuilt
	}
}

func (c *core) snapshot(now time.Time) *Snapshot {
	if c.snap != nil && c.snapGen == c.gen {
		return c.snap
	}
	prev := c.snap
	if prev == nil {
		prev = &Snapshot{}
	}
	s := &Snapshot{At: now, Connected: c.connected, Suppressed: c.suppressed, Generation: c.gen,
		Settled: c.connected && c.settleUntil.IsZero()}
	if c.parts.order == nil {
		c.parts.order = make([]*appState, 0, len(c.apps))
		for _, as := range c.apps {
			c.parts.order = append(c.parts.order, as)
		}
		slices.SortFunc(c.parts.order, func(a, b *appState) int { return strings.Compare(a.id, b.id) })
	}
	// Apps and Status: the previous snapshot's slices while every entry is
	// the same, a copy from the first difference on.
	var apps cow[*appspec.App]
	var status cow[AppStatus]
	apps.prev, status.prev = prev.Apps, prev.Status
	for _, as := range c.parts.order {
		if as.app != nil {
			apps.add(as.app, len(c.apps))
			status.add(statusOf(as), len(c.apps))
		}
	}
	s.Apps, s.Status = apps.done(), status.done()
	s.Queue = c.snapQueue(now, prev.Queue)
	s.byApp = c.taskParts()
	c.snap, c.snapGen = s, c.gen
	return s
}

// cow builds a slice equal to prev while the values added are prev's,
// copying it from the first one that is not.
type cow[T comparable] struct {
	prev, out []T
	n         int
	copied    bool
}

func (w *cow[T]) add(v T, capacity int) {
	if !w.copied {
		if w.n < len(w.prev) && w.prev[w.n] == v {
			w.n++
			return
		}
		w.copied = true
		w.out = append(make([]T, 0, max(capacity, w.n+1)), w.prev[:w.n]...)
	}
	w.out = append(w.out, v)
	w.n++
}

func (w *cow[T]) done() []T {
	switch {
	case w.n == 0:
		return nil
	case !w.copied:
		return w.prev[:w.n:w.n]
	}
	return w.out
}

// taskParts returns the task parts of the current state: the last ones
// with the touched apps' rebuilt.
func (c *core) taskParts() []appTasks {
	if len(c.parts.dirty) == 0 && c.parts.tasks != nil {
		return c.parts.tasks
	}
	if c.parts.tasks == nil {
		// First snapshot: every app is touched.
		for id := range c.apps {
			c.touch(id)
		}
	}
	ids := make([]string, 0, len(c.parts.dirty))
	for id := range c.parts.dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	clear(c.parts.dirty)
	old := c.parts.tasks
	out := make([]appTasks, 0, len(old)+len(ids))
	i := 0
	for _, id := range ids {
		j := i + sort.Search(len(old)-i, func(k int) bool { return old[i+k].appID >= id })
		out = append(out, old[i:j]...)
		i = j
		if i < len(old) && old[i].appID == id {
			i++
		}
		if ts := c.appTaskList(id); len(ts) > 0 {
			out = append(out, appTasks{appID: id, tasks: ts})
		}
	}
	out = append(out, old[i:]...)
	c.parts.tasks = out
	return out
}

// appTaskList is one app's tasks sorted by id, in a new array.
func (c *core) appTaskList(appID string) []Task {
	as := c.apps[appID]
	if as == nil || len(as.tasks) == 0 {
		return nil
	}
	ts := make([]Task, 0, len(as.tasks))
	for _, t := range as.tasks {
		ts = append(ts, t.t)
	}
	slices.SortFunc(ts, func(a, b Task) int { return strings.Compare(a.ID, b.ID) })
	return ts
}

// withTasks returns a copy of s whose Tasks holds every part's tasks,
// sorted by id. Parts are taken in the order of their first task id, so
// for ids of NewTaskID's scheme (an app's ids share a prefix no other
// app's ids have) the concatenation is already sorted; a last pass
// checks it and sorts when ids of two apps interleave.
func (s *Snapshot) withTasks() *Snapshot {
	full := *s
	parts := slices.Clone(s.byApp)
	slices.SortFunc(parts, func(a, b appTasks) int { return strings.Compare(a.tasks[0].ID, b.tasks[0].ID) })
	n := 0
	for _, p := range parts {
		n += len(p.tasks)
	}
	full.Tasks = make([]Task, 0, n)
	for _, p := range parts {
		full.Tasks = append(full.Tasks, p.tasks...)
	}
	if !slices.IsSortedFunc(full.Tasks, func(a, b Task) int { return strings.Compare(a.ID, b.ID) }) {
		slices.SortFunc(full.Tasks, func(a, b Task) int { return strings.Compare(a.ID, b.ID) })
	}
	full.tasksOf = full.Tasks
	return &full
}

// part is the task part of an app in a snapshot the scheduler built.
func (s *Snapshot) part(appID string) ([]Task, bool) {
	ps := s.byApp
	i := sort.Search(len(ps), func(i int) bool { return ps[i].appID >= appID })
	if i < len(ps) && ps[i].appID == appID {
		return ps[i].tasks, true
	}
	return nil, false
}

// SameTasks reports whether a and b are the same task part: the tasks of
// one app in two snapshots the scheduler built, unchanged between them.
// A reader that rendered an app from a can reuse that for b. Empty parts
// are the same.
func SameTasks(a, b []Task) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// TaskCursor reads the tasks of many apps of one snapshot, as TasksOf
// does, in O(1) per app when the ids come in ascending order (a list of
// every app: a binary search per app was a tenth of GET /v2/apps with
// 10,000 apps). An id out of order is searched.
type TaskCursor struct {
	s *Snapshot
	i int
}

// Cursor returns a TaskCursor at the snapshot's first app.
func (s *Snapshot) Cursor() *TaskCursor { return &TaskCursor{s: s} }

// TasksOf is Snapshot.TasksOf.
func (c *TaskCursor) TasksOf(appID string) []Task {
	ps := c.s.byApp
	// ps[:c.i] are below every id asked so far.
	if ps == nil || !SameTasks(c.s.Tasks, c.s.tasksOf) || (c.i > 0 && appID <= ps[c.i-1].appID) {
		return c.s.TasksOf(appID)
	}
	for c.i < len(ps) && ps[c.i].appID < appID {
		c.i++
	}
	if c.i < len(ps) && ps[c.i].appID == appID {
		ts := ps[c.i].tasks
		c.i++
		return ts[:len(ts):len(ts)]
	}
	return nil
}

// snapQueue is a snapshot's queue: an entry for every app with instances
// to launch, by app id. Its backoff reads now, so it is always computed,
// but only for the queued apps (due.go), not every app, and the previous
// snapshot's slice is kept while every entry is the same: 10,000 waiting
// apps made each snapshot allocate its queue anew (a quarter of all bytes
// allocated while 10,000 apps were put).
func (c *core) snapQueue(now time.Time, prev []QueueEntry) []QueueEntry {
	apps := c.snapSpare[:0]
	for _, as := range c.queuedApps() {
		if as.need > 0 {
			apps = append(apps, as)
		}
	}
	slices.SortFunc(apps, func(a, b *appState) int { return strings.Compare(a.id, b.id) })
	var out []QueueEntry
	n, copied := 0, false
	for _, as := range apps {
		q := c.queueEntry(now, as)
		if q.Count == 0 {
			continue
		}
		if !copied && n < len(prev) && queueEqual(prev[n], q) {
			n++
			continue
		}
		if !copied {
			copied = true
			out = append(make([]QueueEntry, 0, len(apps)), prev[:n]...)
		}
		out = append(out, q)
		n++
	}
	clear(apps)
	c.snapSpare = apps[:0]
	switch {
	case n == 0:
		return nil
	case !copied:
		return prev[:n:n]
	}
	return out
}

// SnapshotOf is a snapshot of the named apps only: their apps, status,
// queue entries and tasks (TasksOf), nothing of any other app. It costs
// what those apps hold, where SnapshotByApp costs every app's entry: the
// deploy service judges the few deployments an event batch touched, and
// with 10,000 apps a snapshot per batch held the scheduler's lock for
// half of its time.
func (s *Scheduler) SnapshotOf(appIDs []string) *Snapshot {
	var snap *Snapshot
	s.locked(func(c *core, now time.Time) { snap = c.snapshotOf(now, appIDs) })
	return snap
}

func (c *core) snapshotOf(now time.Time, appIDs []string) *Snapshot {
	ids := slices.Compact(slices.Sorted(slices.Values(appIDs)))
	s := &Snapshot{At: now, Connected: c.connected, Suppressed: c.suppressed, Generation: c.gen,
		Settled: c.connected && c.settleUntil.IsZero(), byApp: []appTasks{}}
	for _, id := range ids {
		as := c.apps[id]
		if as == nil {
			continue
		}
		if as.app != nil {
			s.Apps = append(s.Apps, as.app)
			s.Status = append(s.Status, statusOf(as))
		}
		if as.need > 0 {
			if q := c.queueEntry(now, as); q.Count > 0 {
				s.Queue = append(s.Queue, q)
			}
		}
		if ts := c.appTaskList(id); len(ts) > 0 {
			s.byApp = append(s.byApp, appTasks{appID: id, tasks: ts})
		}
	}
	return s
}
