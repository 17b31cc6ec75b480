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

// appendListed appends app m for a list over ti: a kept fragment when it
// is current, else rendered (and kept when store says so).
func (s *Server) appendListed(b []byte, ti *taskIndex, m *deploy.Record, e embed, depID string, store bool) []byte {
	if e.taskStats || s.noFragments.Load() {
		return s.appendApp(b, m, ti.byApp[m.App.ID], e, depID)
	}
	var tf []byte
	if e.lastTaskFailure {
		tf = s.lastTF.get(m.App.ID)
	}
	k := fragKey{m.App.ID, e}
	if v, ok := ti.frags.m.Load(k); ok {
		if f := v.(*fragment); f.rec == m && f.depID == depID && sameBytes(f.tf, tf) {
			return append(b, f.b...)
		}
	}
	start := len(b)
	b = s.appendAppFailure(b, m, ti.byApp[m.App.ID], e, depID, tf)
	if store {
		f := &fragment{rec: m, depID: depID, tf: tf, b: append([]byte(nil), b[start:]...)}
		ti.frags.m.Store(k, f)
		ti.frags.bytes.Add(int64(len(f.b)))
	}
	return b
}
