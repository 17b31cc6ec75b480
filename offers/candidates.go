package offers

import "slices"

// entry is one candidate offer for a group. Within a bucket the best
// entry is the one on the host with the fewest tasks of the app (hc, 0
// for Binpack), then the highest Score, then the first offer.
type entry struct {
	o     int32
	hc    int32
	score float64
}

func lessEntry(a, b entry) bool {
	if a.hc != b.hc {
		return a.hc < b.hc
	}
	if a.score != b.score {
		return a.score > b.score
	}
	return a.o < b.o
}

// bucket holds the candidates sharing one value of the group's first
// GROUP_BY field (or all candidates, without one), as a heap. Buckets sit in a heap of their own ordered by the app's task count
// for their value, so the least used group or host comes first and a
// placement reorders one bucket, not every offer that shares its value.
type bucket struct {
	v   int32
	h   []entry
	pos int32 // index in placer.top; -1 when empty
}

func siftDownE(h []entry, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && lessEntry(h[r], h[l]) {
			m = r
		}
		if !lessEntry(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func siftUpE(h []entry, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !lessEntry(h[i], h[parent]) {
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
	return lessEntry(a.h[0], b.h[0])
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
	p.downTop(g, i)
}

func (p *placer) downTop(g *group, i int) {
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

func (p *placer) addTop(g *group, bi int32) {
	p.top = append(p.top, bi)
	p.buckets[bi].pos = int32(len(p.top) - 1)
	p.fixTop(g, len(p.top)-1)
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

// popEntry drops the best entry of bucket bi.
func (p *placer) popEntry(g *group, bi int32) {
	b := &p.buckets[bi]
	last := len(b.h) - 1
	b.h[0] = b.h[last]
	b.h = b.h[:last]
	if len(b.h) == 0 {
		p.removeTop(g, int(b.pos))
		return
	}
	siftDownE(b.h, 0)
	p.fixTop(g, int(b.pos))
}

// pushEntry adds a candidate to its bucket, making the bucket if needed.
func (p *placer) pushEntry(g *group, e entry) {
	bi := p.bucketFor(g, e.o)
	b := &p.buckets[bi]
	b.h = append(b.h, e)
	siftUpE(b.h, len(b.h)-1)
	if b.pos < 0 {
		p.addTop(g, bi)
		return
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
		b.v, b.h, b.pos = v, b.h[:0], -1
	} else {
		p.buckets = append(p.buckets, bucket{v: v, pos: -1})
	}
	p.bucketOf[v] = bi
	return bi
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
	if p.opt.Strategy != Binpack {
		e.hc = g.hostCount.get(p.hostVal[o])
	}
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
