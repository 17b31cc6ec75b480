package api

import (
	"net"
	"net/http"
	"reflect"
	"sort"
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
// apps of each group are kept joined in chunks (chunks.go). A request
// builds again only the chunks whose apps changed, knows the answer's
// length before it writes, and writes the chunks as they are (pieces.go).

// groupCache is the kept tree and its chunks (chunkCache.off sends
// GET /v2/groups down the per-request path, groupWriter: the benchmark's
// A/B and the test that both answer the same).
type groupCache struct {
	chunkCache
	// segWrites writes the kept answer a Write per piece instead of as
	// one net.Buffers (pieces.write): the benchmark's A/B.
	segWrites atomic.Bool
	tree      atomic.Pointer[keptTree]
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
	c.dropIf(func(k chunkKey) bool {
		n := t.nodes[k.group]
		return n == nil || k.i*chunkApps >= len(n.apps)
	})
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

// chunk is chunk i of n's apps as they are now (keptChunk).
func (a *treeAnswer) chunk(n *treeNode, i int) []byte {
	apps := n.apps[i*chunkApps : min(len(n.apps), (i+1)*chunkApps)]
	return a.s.keptChunk(&a.s.gtree.chunkCache, chunkKey{n.id, i, a.e.app}, apps, a.tasks, a.deps, &a.in)
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
