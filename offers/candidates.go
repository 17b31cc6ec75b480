package offers

import "slices"

// Candidates are kept in three levels, each a heap: buckets (one per value
// of the group's first GROUP_BY field, or one), hosts within a bucket, and
// offers within a host. Spread ranks hosts by the app's task count on them
// (hc), and a placement raises that count for every offer of the host at
// once: with the offers of a host under one key that is one re-sort, not
// one per offer. (localmesos runs all its agents on one host; with a flat
// heap of offers, 100,000 tasks on 1,000 agents of one host took 4.2 s
// instead of 50 ms.)
//
// A bucket's heap holds keys of its hosts that may be stale, but only ever
// optimistic: a host's key can only get worse (its count rises, its best
// offer is used up), and when a new offer makes a host better a new key is
// pushed beside the old. So the key on top is checked against its host
// before use, and refreshed and re-sorted when it has aged; the first key
// that checks out is the best there is. That saves tracking each host's
// place in the heap.

// entry is one candidate offer of a host: the best has the highest Score,
// then the first offer.
type entry struct {
	o     int32
	score float64
}

func (a entry) before(b entry) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.o < b.o
}

// hostGroup holds one bucket's candidates on one host, as a heap.
type hostGroup struct {
	host   int32
	bucket int32
	h      []entry
}

// hostKey is a host group's key in its bucket's heap: the host's count
// and its best entry when the key was made (the entry's offer leads to
// the host group through placer.groupOf, keeping keys at 16 bytes).
type hostKey struct {
	hc    int32
	o     int32
	score float64
}

func (a hostKey) before(b hostKey) bool {
	if a.hc != b.hc {
		return a.hc < b.hc
	}
	if a.score != b.score {
		return a.score > b.score
	}
	return a.o < b.o
}

func keyOf(hc int32, e entry) hostKey { return hostKey{hc: hc, o: e.o, score: e.score} }

func (k hostKey) entry() entry { return entry{o: k.o, score: k.score} }

// bucket holds the hosts sharing one value of the group's first GROUP_BY
// field (or all hosts, without one). Buckets sit in a heap of their own
// ordered by the app's task count for their value, so the least used
// group comes first and a placement reorders one bucket, not every offer
// that shares its value.
type bucket struct {
	v     int32
	hosts []hostKey // heap
	pos   int32     // index in placer.top; -1 when empty
}

// The sifts are written out per type: as generic functions their
// comparisons went through the shape dictionary, were not inlined, and
// cost a fifth of Place's time.

func siftDownE(h []entry, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			m = r
		}
		if !h[m].before(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func siftUpE(h []entry, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func siftDownK(h []hostKey, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			m = r
		}
		if !h[m].before(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func siftUpK(h []hostKey, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (p *placer) bucketCount(g *group, b *bucket) int32 {
	if g.bucket < 0 {
		return 0
	}
	return g.app.counters[g.bucket].get(b.v)
}

func (p *placer) lessBucket(g *group, i, j int32) bool {
	a, b := &p.buckets[i], &p.buckets[j]
	ca, cb := p.bucketCount(g, a), p.bucketCount(g, b)
	if ca != cb {
		return ca < cb
	}
	return a.hosts[0].before(b.hosts[0])
}

func (p *placer) swapTop(i, j int) {
	p.top[i], p.top[j] = p.top[j], p.top[i]
	p.buckets[p.top[i]].pos = int32(i)
	p.buckets[p.top[j]].pos = int32(j)
}

// fixTop restores the bucket heap after the bucket at index i changed.
func (p *placer) fixTop(g *group, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !p.lessBucket(g, p.top[i], p.top[parent]) {
			break
		}
		p.swapTop(i, parent)
		i = parent
	}
	for {
		l := 2*i + 1
		if l >= len(p.top) {
			return
		}
		m := l
		if r := l + 1; r < len(p.top) && p.lessBucket(g, p.top[r], p.top[l]) {
			m = r
		}
		if !p.lessBucket(g, p.top[m], p.top[i]) {
			return
		}
		p.swapTop(i, m)
		i = m
	}
}

func (p *placer) removeTop(g *group, i int) {
	last := len(p.top) - 1
	p.buckets[p.top[i]].pos = -1
	if i != last {
		p.top[i] = p.top[last]
		p.buckets[p.top[i]].pos = int32(i)
	}
	p.top = p.top[:last]
	if i != last {
		p.fixTop(g, i)
	}
}

// hostCount is the app's tasks on hg's host, as Spread ranks it; Binpack
// ranks offers by score alone.
func (p *placer) hostCount(g *group, hg *hostGroup) int32 {
	if p.opt.Strategy == Binpack {
		return 0
	}
	return g.hostCount.get(hg.host)
}

// best returns the best host group and its best entry, after refreshing
// aged keys on top; ok is false when no candidate is left.
func (p *placer) best(g *group) (hi int32, e entry, ok bool) {
	for len(p.top) > 0 {
		b := &p.buckets[p.top[0]]
		k := &b.hosts[0]
		hi = p.groupOf[k.o]
		hg := &p.hgs[hi]
		if len(hg.h) == 0 {
			p.dropKey(g, b)
			continue
		}
		if hc := p.hostCount(g, hg); k.hc != hc || k.entry() != hg.h[0] {
			*k = keyOf(hc, hg.h[0])
			siftDownK(b.hosts, 0)
			p.fixTop(g, int(b.pos))
			continue
		}
		return hi, k.entry(), true
	}
	return 0, entry{}, false
}

// dropKey removes the top key of bucket b, the top bucket, and the bucket
// once it has no keys left.
func (p *placer) dropKey(g *group, b *bucket) {
	last := len(b.hosts) - 1
	b.hosts[0] = b.hosts[last]
	b.hosts = b.hosts[:last]
	if len(b.hosts) == 0 {
		p.removeTop(g, int(b.pos))
		return
	}
	siftDownK(b.hosts, 0)
	p.fixTop(g, int(b.pos))
}

// changed re-sorts host group hi, whose best entry best() just returned,
// after that entry was used or dropped.
func (p *placer) changed(g *group, hi int32) {
	hg := &p.hgs[hi]
	b := &p.buckets[hg.bucket]
	if len(hg.h) == 0 {
		p.dropKey(g, b)
		return
	}
	b.hosts[0] = keyOf(p.hostCount(g, hg), hg.h[0])
	siftDownK(b.hosts, 0)
	p.fixTop(g, int(b.pos))
}

// popEntry drops the best entry of host group hi, the best host group.
func (p *placer) popEntry(g *group, hi int32) {
	hg := &p.hgs[hi]
	last := len(hg.h) - 1
	hg.h[0] = hg.h[last]
	hg.h = hg.h[:last]
	siftDownE(hg.h, 0)
	p.changed(g, hi)
}

// pushEntry adds a candidate to its host group and bucket, making them if
// needed.
func (p *placer) pushEntry(g *group, e entry) {
	bi := p.bucketFor(g, e.o)
	hi := p.hostGroupFor(bi, e.o)
	p.groupOf[e.o] = hi
	hg := &p.hgs[hi]
	hg.h = append(hg.h, e)
	siftUpE(hg.h, len(hg.h)-1)
	if hg.h[0] != e {
		return // the host's keys already rank it at least this well
	}
	b := &p.buckets[bi]
	b.hosts = append(b.hosts, keyOf(p.hostCount(g, hg), e))
	siftUpK(b.hosts, len(b.hosts)-1)
	if b.pos < 0 {
		p.top = append(p.top, bi)
		b.pos = int32(len(p.top) - 1)
	}
	p.fixTop(g, int(b.pos))
}

// bucketFor returns the bucket of offer o, reusing the storage of an
// earlier group's bucket so a call allocates buckets once.
func (p *placer) bucketFor(g *group, o int32) int32 {
	v := p.bucketValue(g, o)
	bi := p.bucketOf[v]
	if bi >= 0 {
		return bi
	}
	bi = int32(len(p.buckets))
	if len(p.buckets) < cap(p.buckets) {
		p.buckets = p.buckets[:bi+1]
		b := &p.buckets[bi]
		b.v, b.hosts, b.pos = v, b.hosts[:0], -1
	} else {
		p.buckets = append(p.buckets, bucket{v: v, pos: -1})
	}
	p.bucketOf[v] = bi
	return bi
}

// hostGroupFor returns the host group of offer o in bucket bi. A host's
// agents normally share a bucket; when their attributes differ, the other
// buckets' groups of the host are found through hgMore.
func (p *placer) hostGroupFor(bi, o int32) int32 {
	host := p.hostVal[o]
	if p.hgGen[host] == p.gen {
		hi := p.hgOf[host]
		if p.hgs[hi].bucket == bi {
			return hi
		}
		if hi, found := p.hgMore[[2]int32{bi, host}]; found {
			return hi
		}
	}
	hi := int32(len(p.hgs))
	p.hgs = append(p.hgs, hostGroup{host: host, bucket: bi})
	if p.hgGen[host] != p.gen {
		p.hgGen[host], p.hgOf[host] = p.gen, hi
		// The host's first group takes the host's room: no allocation.
		at, end := p.hostAt[host], p.hostAt[host+1]
		p.hgs[hi].h = p.hostRoom[at:at:end]
	} else {
		if p.hgMore == nil {
			p.hgMore = map[[2]int32]int32{}
		}
		p.hgMore[[2]int32{bi, host}] = hi
	}
	return hi
}

// layoutHosts gives each host a room in hostRoom as large as its number
// of offers, which is as many entries as its host groups can hold at once
// (an offer is a candidate at most once at a time).
func (p *placer) layoutHosts() {
	n := len(p.fields[hostField].vals)
	p.hostAt = make([]int32, n+1)
	for _, h := range p.hostVal {
		p.hostAt[h+1]++
	}
	for i := 1; i <= n; i++ {
		p.hostAt[i] += p.hostAt[i-1]
	}
	p.hostRoom = make([]entry, len(p.hostVal))
	p.groupOf = make([]int32, len(p.hostVal))
}

func (p *placer) bucketValue(g *group, o int32) int32 {
	if g.bucket < 0 {
		return 0
	}
	return p.fields[g.bucket].ofVal[o]
}

func (p *placer) entryFor(g *group, o int32) entry {
	var cpus, mem int64
	w := &p.work[o]
	for i := range w.roles {
		if r := &w.roles[i]; p.usable(g, r) {
			cpus += r.cpus
			mem += r.mem
		}
	}
	return p.entryOf(g, o, cpus, mem)
}

func (p *placer) entryOf(g *group, o int32, cpus, mem int64) entry {
	e := entry{o: o}
	e.score = Score(p.opt.Strategy, float64(g.need.cpus)/1000, float64(g.need.mem)/1000,
		float64(cpus)/1000, float64(mem)/1000)
	return e
}

// start readies the scan for group g. Candidates come in windows of
// offers, like Nomad's limit iterator, so a group's cost follows its size,
// not the number of offers; the window widens whenever the candidates run
// out, so a request stays unplaced only after every offer refused it.
// Spread starts each group where the previous one stopped, so apps spread
// over the cluster; Binpack always starts at the first offer, to fill it.
func (p *placer) start(g *group) {
	nb := 1
	if g.bucket >= 0 {
		nb = len(p.fields[g.bucket].vals)
	}
	p.bucketOf = slices.Grow(p.bucketOf[:0], nb)[:nb]
	for i := range p.bucketOf {
		p.bucketOf[i] = -1
	}
	p.buckets = p.buckets[:0]
	p.hgs = p.hgs[:0]
	clear(p.hgMore)
	p.gen++
	if n := len(p.fields[hostField].vals); len(p.hgGen) < n {
		p.hgGen = slices.Grow(p.hgGen[:0], n)[:n]
		clear(p.hgGen) // generation 0 is never current
		p.hgOf = slices.Grow(p.hgOf[:0], n)[:n]
	}
	p.top = p.top[:0]
	p.deferred = p.deferred[:0]
	p.scanned = 0
	if p.opt.Strategy == Binpack {
		p.cursor = 0
	}
	p.window = max(minWindow, windowFactor*len(g.reqs))
}

const (
	minWindow    = 64
	windowFactor = 4
)

// widen scans up to one more window of offers for candidates and reports
// whether there was anything left to scan.
func (p *placer) widen(g *group) bool {
	n := len(p.offers)
	if p.scanned >= n {
		return false
	}
	for added := 0; added < p.window && p.scanned < n; p.scanned++ {
		o := p.cursor
		if p.cursor++; p.cursor == n {
			p.cursor = 0
		}
		e, r, temp := p.candidate(g, o)
		if r == ok {
			p.pushEntry(g, e)
			added++
		} else if temp {
			p.deferred = append(p.deferred, int32(o))
		}
	}
	return true
}

// candidate runs the chain on offer o and, when it passes, returns its entry.
func (p *placer) candidate(g *group, o int) (e entry, r reason, temp bool) {
	r, temp = p.checkStatic(g, o)
	if r != ok {
		return e, r, temp
	}
	var cpus, mem int64
	if r, cpus, mem = p.resourcesOK(g, &p.work[o]); r != ok {
		return e, r, false
	}
	return p.entryOf(g, int32(o), cpus, mem), ok, false
}
