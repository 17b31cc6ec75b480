package api

import (
	"sync"
	"sync/atomic"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
)

// Rendered apps are kept, so that lists — GET /v2/apps and the group tree
// GET /v2/groups, which show the same apps — copy bytes instead of
// encoding 100,000 tasks again (28 ms of a 60 ms answer for 10,000 apps,
// measured under load). A fragment is used only while the app's record,
// its deployment, its last failure and its tasks are the ones it was
// rendered from. The tasks are compared by identity: the scheduler's
// snapshots share an app's task part until one of its tasks changes
// (framework.SameTasks), so under churn — a new snapshot for nearly
// every list — only the apps whose tasks changed are rendered again.
// taskStats is never kept: its life times move with the clock.
//
// Fragments of removed apps are not looked for: when the kept bytes pass
// maxFragmentBytes, every fragment is dropped and the next lists keep
// what they render again.
const maxFragmentBytes = 96 << 20

type fragments struct {
	// A plain map under a lock, not a sync.Map: boxing the key for a
	// sync.Map allocated once per app per list.
	mu    sync.RWMutex
	m     map[fragKey]*fragment
	bytes atomic.Int64
}

type fragKey struct {
	id string
	e  embed
}

type fragment struct {
	rec   *deploy.Record
	depID string
	tf    []byte
	ts    []framework.Task
	b     []byte
}

// store keeps f for k.
func (f *fragments) store(k fragKey, fr *fragment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || f.bytes.Load() > maxFragmentBytes {
		f.m = map[fragKey]*fragment{}
		f.bytes.Store(0)
	}
	if old := f.m[k]; old != nil {
		f.bytes.Add(-int64(len(old.b)))
	}
	f.m[k] = fr
	f.bytes.Add(int64(len(fr.b)))
}

func (f *fragments) load(k fragKey) *fragment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.m[k]
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// keptFragment is m's kept fragment when it is current for the tasks ts;
// otherwise nil, and the last failure to render m with.
func (s *Server) keptFragment(m *deploy.Record, ts []framework.Task, e embed, depID string) (frag, tf []byte) {
	if e.lastTaskFailure {
		tf = s.lastTF.get(m.App.ID)
	}
	if e.taskStats || s.noFragments.Load() {
		return nil, tf
	}
	if f := s.frags.load(fragKey{m.App.ID, e}); f != nil {
		if f.rec == m && f.depID == depID && sameBytes(f.tf, tf) && framework.SameTasks(f.ts, ts) {
			return f.b, tf
		}
	}
	return nil, tf
}

// renderListed renders m with its tasks ts and last failure tf, and keeps
// the result.
func (s *Server) renderListed(b []byte, m *deploy.Record, ts []framework.Task, e embed, depID string, tf []byte) []byte {
	start := len(b)
	b = s.appendAppFailure(b, m, ts, e, depID, tf)
	if !e.taskStats && !s.noFragments.Load() {
		s.frags.store(fragKey{m.App.ID, e}, &fragment{rec: m, depID: depID, tf: tf, ts: ts, b: append([]byte(nil), b[start:]...)})
	}
	return b
}

// listedApp is m as a list shows it: its kept fragment when current
// (rendered false), else rendered into buf[:0] and kept (rendered true:
// the result is buf, perhaps grown, to be reused for the next app).
func (s *Server) listedApp(buf []byte, tasks *framework.TaskCursor, m *deploy.Record, e embed, depID string) (b []byte, rendered bool) {
	ts := tasks.TasksOf(m.App.ID)
	f, tf := s.keptFragment(m, ts, e, depID)
	if f != nil {
		return f, false
	}
	return s.renderListed(buf[:0], m, ts, e, depID, tf), true
}

// keptListed is m as a list shows it, as a kept fragment: the current one,
// else rendered (in scratch, reused from app to app) and kept as an
// exact-size copy. Nothing appends to it: it is written as it is.
func (s *Server) keptListed(scratch *[]byte, tasks *framework.TaskCursor, m *deploy.Record, e embed, depID string) []byte {
	ts := tasks.TasksOf(m.App.ID)
	f, tf := s.keptFragment(m, ts, e, depID)
	if f != nil {
		return f
	}
	*scratch = s.appendAppFailure((*scratch)[:0], m, ts, e, depID, tf)
	f = append([]byte(nil), *scratch...)
	s.frags.store(fragKey{m.App.ID, e}, &fragment{rec: m, depID: depID, tf: tf, ts: ts, b: f})
	return f
}
