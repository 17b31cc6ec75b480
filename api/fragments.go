package api

import (
	"sync"
	"sync/atomic"

	"github.com/flotilla-sched/flotilla/deploy"
)

// Rendered apps are kept per snapshot, so that repeated lists of the same
// state — GET /v2/apps and the group tree GET /v2/groups, which show the
// same apps — copy bytes instead of encoding 100,000 tasks again (28 ms
// of a 60 ms answer for 10,000 apps, measured under load). A fragment
// belongs to one task index (one snapshot): when tasks change, the index
// and its fragments are replaced whole. Within it, a fragment is used
// only while the app's record, its deployment and its last failure are
// the ones it was rendered from. taskStats is never kept: its life times
// move with the clock.
//
// A snapshot listed once is not kept (under churn every list sees a new
// snapshot, and copying would only cost): fragments are stored from the
// second list of a snapshot on, up to maxFragmentBytes per snapshot.
const maxFragmentBytes = 96 << 20

type fragments struct {
	m     sync.Map // fragKey → *fragment
	bytes atomic.Int64
	mu    sync.Mutex
	lists map[embed]int // lists rendered per embed
}

type fragKey struct {
	id string
	e  embed
}

type fragment struct {
	rec   *deploy.Record
	depID string
	tf    []byte
	b     []byte
}

// keep reports whether lists with e should store their fragments, and
// counts this list.
func (f *fragments) keep(e embed) bool {
	if e.taskStats {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lists == nil {
		f.lists = map[embed]int{}
	}
	f.lists[e]++
	return f.lists[e] > 1 && f.bytes.Load() < maxFragmentBytes
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// keptFragment is m's kept fragment when it is current; otherwise nil,
// and the last failure to render m with.
func (s *Server) keptFragment(ti *taskIndex, m *deploy.Record, e embed, depID string) (frag, tf []byte) {
	if e.lastTaskFailure {
		tf = s.lastTF.get(m.App.ID)
	}
	if e.taskStats || s.noFragments.Load() {
		return nil, tf
	}
	if v, ok := ti.frags.m.Load(fragKey{m.App.ID, e}); ok {
		if f := v.(*fragment); f.rec == m && f.depID == depID && sameBytes(f.tf, tf) {
			return f.b, tf
		}
	}
	return nil, tf
}

// renderListed renders m with its last failure tf and keeps the result
// when store says so.
func (s *Server) renderListed(b []byte, ti *taskIndex, m *deploy.Record, e embed, depID string, tf []byte, store bool) []byte {
	start := len(b)
	b = s.appendAppFailure(b, m, ti.byApp[m.App.ID], e, depID, tf)
	if store && !e.taskStats && !s.noFragments.Load() {
		f := &fragment{rec: m, depID: depID, tf: tf, b: append([]byte(nil), b[start:]...)}
		ti.frags.m.Store(fragKey{m.App.ID, e}, f)
		ti.frags.bytes.Add(int64(len(f.b)))
	}
	return b
}
