package api

import (
	"net"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// GET /v2/groups from kept bytes. With 10,000 apps and 100,000 tasks the
// tree with its tasks is 76 MiB, the same bytes as GET /v2/apps?embed=
// apps.tasks inside 101 groups (a task with its healthCheckResults is
// ~680 bytes, 100,000 of them are 65 MiB). Rendering the tree per request
// from the apps' kept fragments still cost, per answer: the tree and the
// groups' versions built again (GroupVersions walks every app), a locked
// map lookup per app to find its fragment, a copy of every fragment into
// the response buffer, and chunked transfer encoding on both sides.
//
// Here the tree is kept while deploy's apps and group records are the same
// (compared by identity: a record is replaced, never changed), and the
// apps of each group are kept joined, in chunks of chunkApps apps, with
// what each app was rendered from (record, deployment, last failure, task
// part: the rules of keptFragment). A request checks each chunk against
// the snapshot in a loop of comparisons, builds again only the chunks
// whose apps changed (from the apps' kept fragments, rendering only the
// changed apps), knows the answer's length before it writes, and writes
// the chunks as they are (pieces.go). The apps' kept fragments are
// then slices of the chunks, so the bytes are kept once.
//
// Chunks keep a change to one app from copying a whole large group again:
// under churn (a status update every 10 ms) a list rebuilds the few chunks
// whose tasks changed.
const chunkApps = 64

// maxChunkBytes bounds the kept chunks as maxFragmentBytes bounds the
// fragments: past it, every chunk is dropped and built again when asked.
const maxChunkBytes = 160 << 20

type groupCache struct {
	// off sends GET /v2/groups down the per-request path (groupWriter): the
	// benchmark's A/B and the test that both answer the same.
	off atomic.Bool
	// segWrites writes the kept answer a Write per piece instead of as
	// one net.Buffers (pieces.write): the benchmark's A/B.
	segWrites atomic.Bool
	tree      atomic.Pointer[keptTree]

	mu     sync.Mutex
	chunks map[chunkKey]*appChunk
	bytes  int
}

// keptTree is the group tree of one state of deploy's apps and groups.
type keptTree struct {
	recs   []*deploy.Record
	groups map[string]store.StoredGroup
	nodes  map[string]*treeNode
}

type treeNode struct {
	*groupNode
	head []byte      // appendGroupHead
	kids []*treeNode // by id
}

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

// keptGroupTree is the tree of deploy's current apps and groups, built
// again only when one of them changed.
func (s *Server) keptGroupTree() (*keptTree, error) {
	groups := s.dep.Groups()
	recs := s.dep.Apps()
	if t := s.gtree.tree.Load(); t != nil && sameRecords(t.recs, recs) && reflect.DeepEqual(t.groups, groups) {
		return t, nil
	}
	t := &keptTree{recs: recs, groups: groups, nodes: map[string]*treeNode{}}
	for id, n := range groupTreeOf(groups, recs, s.dep.GroupVersions()) {
		head, err := appendGroupHead(nil, n)
		if err != nil {
			return nil, err
		}
		t.nodes[id] = &treeNode{groupNode: n, head: head}
	}
	for _, tn := range t.nodes {
		for id := range tn.children {
			tn.kids = append(tn.kids, t.nodes[id])
		}
		sort.Slice(tn.kids, func(i, j int) bool { return tn.kids[i].id < tn.kids[j].id })
	}
	s.gtree.tree.Store(t)
	s.gtree.prune(t)
	return t, nil
}

func sameRecords(a, b []*deploy.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// prune drops the chunks of groups t does not have, and those past the
// end of a group's apps.
func (c *groupCache) prune(t *keptTree) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ch := range c.chunks {
		if n := t.nodes[k.group]; n == nil || k.i*chunkApps >= len(n.apps) {
			delete(c.chunks, k)
			c.bytes -= len(ch.b)
		}
	}
}

func (c *groupCache) load(k chunkKey) *appChunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chunks[k]
}

func (c *groupCache) store(k chunkKey, ch *appChunk) {
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

// treeAnswer is a group answer as the pieces it is written from: kept
// chunks, and ranges of small, per-request bytes (small).
type treeAnswer struct {
	s     *Server
	e     groupEmbed
	deps  map[string]string
	tasks *framework.TaskCursor
	in    chunkInputs
	small []byte
	segs  []segment
}

// segment is a kept chunk (b), or small[off:end] when b is nil.
type segment struct {
	b        []byte
	off, end int
}

func (a *treeAnswer) addSmall(p []byte) {
	off := len(a.small)
	a.small = append(a.small, p...)
	if k := len(a.segs) - 1; k >= 0 && a.segs[k].b == nil && a.segs[k].end == off {
		a.segs[k].end = len(a.small)
		return
	}
	a.segs = append(a.segs, segment{off: off, end: len(a.small)})
}

func (a *treeAnswer) addKept(b []byte) {
	a.segs = append(a.segs, segment{b: b})
}

func (a *treeAnswer) group(n *treeNode) {
	a.addSmall(n.head)
	if a.e.apps {
		for i := 0; i*chunkApps < len(n.apps); i++ {
			if i > 0 {
				a.addSmall(comma)
			}
			a.addKept(a.chunk(n, i))
		}
	}
	a.addSmall([]byte(`],"groups":[`))
	if a.e.groups {
		for i, k := range n.kids {
			if i > 0 {
				a.addSmall(comma)
			}
			a.group(k)
		}
	}
	a.addSmall([]byte("]}"))
}

// chunk is chunk i of n's apps as they are now: the kept one when
// current, else built and kept.
func (a *treeAnswer) chunk(n *treeNode, i int) []byte {
	apps := n.apps[i*chunkApps : min(len(n.apps), (i+1)*chunkApps)]
	in := &a.in
	in.recs, in.deps, in.tfs, in.ts = apps, in.deps[:0], in.tfs[:0], in.ts[:0]
	for _, r := range apps {
		// The counts (tasksRunning, …) come from the tasks whether or not
		// they are embedded, as in GET /v2/apps.
		in.ts = append(in.ts, a.tasks.TasksOf(r.App.ID))
		depID := ""
		if len(a.deps) > 0 {
			depID = a.deps[r.App.ID]
		}
		in.deps = append(in.deps, depID)
		var tf []byte
		if a.e.app.lastTaskFailure {
			tf = a.s.lastTF.get(r.App.ID)
		}
		in.tfs = append(in.tfs, tf)
	}
	k := chunkKey{n.id, i, a.e.app}
	old := a.s.gtree.load(k)
	if old != nil && old.current(in) {
		return old.b
	}
	return a.s.buildChunk(k, in, old)
}

// buildChunk joins the apps of in from their kept fragments, rendering
// those that have none, keeps the result, and makes each app's kept
// fragment a slice of it.
func (s *Server) buildChunk(k chunkKey, in *chunkInputs, old *appChunk) []byte {
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
	s.gtree.store(k, c)
	start := 0
	for j, r := range in.recs {
		// The full slice expression: nothing may append into the next app.
		s.frags.store(fragKey{r.App.ID, k.e}, &fragment{rec: r, depID: c.deps[j], tf: c.tfs[j], ts: c.ts[j], b: b[start:ends[j]:ends[j]]})
		start = ends[j] + 1
	}
	return b
}

// getKeptGroup serves GET /v2/groups[/{id}] from the kept tree and chunks
// (see the top of this file). It answers false when the request needs the
// per-request path: taskStats (its life times move with the clock) or
// kept fragments turned off.
func (s *Server) getKeptGroup(w http.ResponseWriter, r *http.Request, id string) (bool, error) {
	ge, unknown := parseGroupEmbed(r.URL.Query()["embed"])
	if s.gtree.off.Load() || s.noFragments.Load() || ge.app.taskStats {
		return false, nil
	}
	t, err := s.keptGroupTree()
	if err != nil {
		return true, err
	}
	n := t.nodes[id]
	if n == nil {
		return true, errorf(http.StatusNotFound, "Group '%s' does not exist; list the groups with GET /v2/groups", id)
	}
	s.unknownEmbeds(r, unknown)
	a := &treeAnswer{s: s, e: ge}
	if ge.apps {
		a.deps = s.dep.DeploymentsByApp()
		a.tasks = s.appsSnapshot().Cursor()
	}
	a.group(n)
	a.addSmall([]byte("\n"))
	p := pieces{bufs: make(net.Buffers, 0, len(a.segs))}
	for _, sg := range a.segs {
		b := sg.b
		if b == nil {
			b = a.small[sg.off:sg.end]
		}
		p.add(b)
	}
	// An error here is the client gone; nothing more can be said to it.
	_ = p.write(w, s.gtree.segWrites.Load())
	return true, nil
}
