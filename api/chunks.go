package api

import (
	"sync"
	"sync/atomic"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
)

// Apps kept joined in chunks of chunkApps, with what each app was rendered
// from (record, deployment, last failure, task part: the rules of
// keptFragment). The large answers — the group tree (grouptree.go) and
// GET /v2/apps without filters — are written from chunks (pieces.go): a
// request checks each chunk against the snapshot in a loop of
// comparisons, instead of a locked map lookup per app, and builds again
// only the chunks whose apps changed, from the apps' kept fragments,
// rendering only the changed apps. The apps' kept fragments then become
// slices of the chunks, so within one cache the bytes are kept once. The
// two caches can each hold the same apps with the same embed (GET
// /v2/apps?embed=apps.tasks and the group tree with group.apps.tasks):
// up to twice the bytes, each cache bounded by maxChunkBytes.
//
// Chunks keep a change to one app from copying a whole large list again:
// under churn (a status update every 10 ms) a list rebuilds the few chunks
// whose tasks changed.
const chunkApps = 64

// maxChunkBytes bounds a cache's chunks as maxFragmentBytes bounds the
// fragments: past it, every chunk is dropped and built again when asked.
const maxChunkBytes = 160 << 20

// chunkCache is one answer kind's chunks: the group tree's, by group, or
// the app list's (group listChunks).
type chunkCache struct {
	// off builds the answer app by app instead: the benchmarks' A/B and
	// the tests that both answer the same.
	off atomic.Bool

	mu     sync.Mutex
	chunks map[chunkKey]*appChunk
	bytes  int
}

// listChunks is the group of GET /v2/apps's chunks (no group id is empty).
const listChunks = ""

type chunkKey struct {
	group string
	i     int
	e     embed
}

// appChunk is chunk i of a group's apps, joined by commas, with what each
// was rendered from.
type appChunk struct {
	recs []*deploy.Record
	deps []string
	tfs  [][]byte
	ts   [][]framework.Task
	b    []byte
}

func (c *appChunk) current(in *chunkInputs) bool {
	if len(c.recs) != len(in.recs) {
		return false
	}
	for j, r := range in.recs {
		if c.recs[j] != r || c.deps[j] != in.deps[j] || !sameBytes(c.tfs[j], in.tfs[j]) || !framework.SameTasks(c.ts[j], in.ts[j]) {
			return false
		}
	}
	return true
}

// chunkInputs is what the apps of a chunk are rendered from now; one per
// request, reused from chunk to chunk.
type chunkInputs struct {
	recs []*deploy.Record
	deps []string
	tfs  [][]byte
	ts   [][]framework.Task
}

func (c *chunkCache) load(k chunkKey) *appChunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chunks[k]
}

func (c *chunkCache) store(k chunkKey, ch *appChunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chunks == nil || c.bytes > maxChunkBytes {
		c.chunks, c.bytes = map[chunkKey]*appChunk{}, 0
	}
	if old := c.chunks[k]; old != nil {
		c.bytes -= len(old.b)
	}
	c.chunks[k] = ch
	c.bytes += len(ch.b)
}

// dropFrom drops group g's chunks for embed e from index i on: those past
// the end of a list that got shorter, which no request asks for again.
func (c *chunkCache) dropFrom(g string, e embed, i int) {
	c.dropIf(func(k chunkKey) bool { return k.group == g && k.e == e && k.i >= i })
}

// dropIf drops the chunks whose keys drop reports.
func (c *chunkCache) dropIf(drop func(chunkKey) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ch := range c.chunks {
		if drop(k) {
			delete(c.chunks, k)
			c.bytes -= len(ch.b)
		}
	}
}

// keptChunk is the chunk k of apps as they are now: cc's kept one when
// current, else built and kept. in is the request's, reused from chunk to
// chunk.
func (s *Server) keptChunk(cc *chunkCache, k chunkKey, apps []*deploy.Record, tasks *framework.TaskCursor, deps map[string]string, in *chunkInputs) []byte {
	in.recs, in.deps, in.tfs, in.ts = apps, in.deps[:0], in.tfs[:0], in.ts[:0]
	for _, r := range apps {
		// The counts (tasksRunning, …) come from the tasks whether or not
		// they are embedded.
		in.ts = append(in.ts, tasks.TasksOf(r.App.ID))
		depID := ""
		if len(deps) > 0 {
			depID = deps[r.App.ID]
		}
		in.deps = append(in.deps, depID)
		var tf []byte
		if k.e.lastTaskFailure {
			tf = s.lastTF.get(r.App.ID)
		}
		in.tfs = append(in.tfs, tf)
	}
	old := cc.load(k)
	if old != nil && old.current(in) {
		return old.b
	}
	return s.buildChunk(cc, k, in, old)
}

// buildChunk joins the apps of in from their kept fragments, rendering
// those that have none, keeps the result in cc, and makes each app's kept
// fragment a slice of it.
func (s *Server) buildChunk(cc *chunkCache, k chunkKey, in *chunkInputs, old *appChunk) []byte {
	var b []byte
	if old != nil {
		b = make([]byte, 0, len(old.b)+len(old.b)/4)
	}
	ends := make([]int, len(in.recs))
	for j, r := range in.recs {
		if j > 0 {
			b = append(b, ',')
		}
		f, tf := s.keptFragment(r, in.ts[j], k.e, in.deps[j])
		in.tfs[j] = tf
		if f != nil {
			b = append(b, f...)
		} else {
			b = s.appendAppFailure(b, r, in.ts[j], k.e, in.deps[j], tf)
		}
		ends[j] = len(b)
	}
	c := &appChunk{recs: append([]*deploy.Record(nil), in.recs...), deps: append([]string(nil), in.deps...),
		tfs: append([][]byte(nil), in.tfs...), ts: append([][]framework.Task(nil), in.ts...), b: b}
	cc.store(k, c)
	start := 0
	for j, r := range in.recs {
		// The full slice expression: nothing may append into the next app.
		s.frags.store(fragKey{r.App.ID, k.e}, &fragment{rec: r, depID: c.deps[j], tf: c.tfs[j], ts: c.ts[j], b: b[start:ends[j]:ends[j]]})
		start = ends[j] + 1
	}
	return b
}
