package offers

import (
	"slices"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// placeGroup places as many of g's requests as the offers take, best
// candidate first, and explains the rest.
func (p *placer) placeGroup(g *group) {
	p.start(g)
	next := 0
	for next < len(g.reqs) {
		hi, e, found := p.best(g)
		if !found {
			if !p.widen(g) {
				break
			}
			continue
		}
		r, temp := p.check(g, int(e.o))
		if r != ok {
			p.popEntry(g, hi)
			if temp {
				p.deferred = append(p.deferred, e.o)
			}
			continue
		}
		lift := p.take(g, g.reqs[next], int(e.o))
		next++
		hg := &p.hgs[hi]
		hg.h[0] = p.entryFor(g, e.o)
		siftDownE(hg.h, 0)
		p.changed(g, hi)
		if lift && len(p.deferred) > 0 {
			for _, o := range p.deferred {
				p.pushEntry(g, p.entryFor(g, o))
			}
			p.deferred = p.deferred[:0]
		}
	}
	if next < len(g.reqs) {
		p.explain(g, g.reqs[next:])
	}
}

// explain runs the whole chain over every offer, now that this call has
// placed what it could, and records the funnel for each unplaced request.
func (p *placer) explain(g *group, unplaced []int) {
	var declined [nReasons]int
	for o := range p.offers {
		if r, _ := p.check(g, o); r != ok {
			declined[r]++
		}
	}
	total := 0
	for _, d := range declined {
		total += d
	}
	if p.unplaced == nil {
		p.unplaced = map[string]Summary{}
	}
	for _, ri := range unplaced {
		s := Summary{ProcessedOffers: len(p.offers), UnusedOffers: total, Reasons: make([]ReasonCount, nReasons)}
		processed := len(p.offers)
		for i, reason := range funnel {
			s.Reasons[i] = ReasonCount{Reason: reason, Declined: declined[i], Processed: processed}
			processed -= declined[i]
		}
		p.unplaced[p.reqs[ri].ID] = s
	}
}

// take consumes request ri's resources from offer o (the request's own
// role first, then "*"), records the placement and counts the task for
// the app's constraints. It reports whether an offer GROUP_BY held back
// may now pass.
func (p *placer) take(g *group, ri, o int) bool {
	w := &p.work[o]
	n := &g.need
	var gotBuf [4]taken // offers rarely carry more than a few reservations
	got := gotBuf[:0]
	if len(w.roles) > len(gotBuf) {
		got = make([]taken, 0, len(w.roles))
	}
	got = got[:len(w.roles)]
	left := [4]int64{n.cpus, n.mem, n.disk, n.gpus}
	for pass := 0; pass < 2; pass++ {
		for i := range w.roles {
			r := &w.roles[i]
			if !p.inPass(g, r, pass) {
				continue
			}
			have := [4]*int64{&r.cpus, &r.mem, &r.disk, &r.gpus}
			for k, h := range have {
				t := min(left[k], *h)
				*h -= t
				left[k] -= t
				got[i].amount[k] = t
			}
		}
	}

	// which role each port came from, to write one ports resource per role
	ports := p.portArena.take(len(n.hostPorts) + int(n.ports))[:0]
	var fromBuf [16]uint16
	from := fromBuf[:0]
	for _, hp := range n.hostPorts {
		i := p.findPort(g, w, hp)
		w.roles[i].ports = removePort(w.roles[i].ports, hp)
		w.roles[i].nports--
		ports = append(ports, hp)
		from = append(from, uint16(i))
		got[i].nports++
	}
	k := n.ports
	for pass := 0; pass < 2 && k > 0; pass++ {
		for i := range w.roles {
			r := &w.roles[i]
			if k == 0 || !p.inPass(g, r, pass) {
				continue
			}
			m := min(k, r.nports)
			ports, r.ports = takeLowest(ports, r.ports, m)
			r.nports -= m
			k -= m
			for range m {
				from = append(from, uint16(i))
			}
			got[i].nports += int(m)
		}
	}

	off := &p.offers[o]
	pl := Placement{Request: &p.reqs[ri], OfferID: off.ID, AgentID: off.AgentID, Hostname: off.Hostname, Ports: ports}
	pl.Resources = p.resources(w, got, ports, from)
	p.placed = append(p.placed, placement{o: int32(o), p: pl})
	p.perOffer[o]++

	a := g.app
	a.total++
	lift := false
	for _, f := range a.tracked {
		if a.counters[f].inc(p.fields[f].ofVal[o]) {
			lift = true
		}
	}
	for i := range g.cons { // a GROUP_BY that just saw enough groups
		gc := &g.cons[i]
		if gc.op == opGroupBy && a.counters[gc.field].groups == gc.num && gc.num > 0 {
			lift = true
		}
	}
	return lift
}

// inPass orders roles: the reserved roles the request may use in pass 0,
// "*" (when accepted) in pass 1, so reservations are used up first.
func (p *placer) inPass(g *group, r *workRole, pass int) bool {
	if pass == 0 {
		return r.role != 0 && p.usable(g, r)
	}
	return r.role == 0 && p.usable(g, r)
}

// taken is what one placement took from one role: cpus, mem, disk (in
// thousandths), gpus, and how many ports.
type taken struct {
	amount [4]int64
	nports int
}

var scalarNames = [4]string{"cpus", "mem", "disk", "gpus"}

// resources writes what a placement took as mesos.Resources, in the
// offer's role order, with few allocations: one for all the scalars, one
// for the list, one per ports resource.
func (p *placer) resources(w *workOffer, got []taken, ports []uint64, from []uint16) []mesos.Resource {
	nScalar, nPorts := 0, 0
	for i := range got {
		for _, a := range got[i].amount {
			if a > 0 {
				nScalar++
			}
		}
		if got[i].nports > 0 {
			nPorts++
		}
	}
	out := p.resArena.take(nScalar + nPorts)[:0]
	scalars := p.scalarArena.take(nScalar)
	for i := range got {
		r := &w.roles[i]
		for k, a := range got[i].amount {
			if a <= 0 {
				continue
			}
			v := float64(a) / 1000
			if k == 3 {
				v = float64(a) // gpus are counted whole
			}
			sc := &scalars[0]
			scalars = scalars[1:]
			sc.Value = v
			out = out[:len(out)+1] // filled in place: copying a whole Resource costs write barriers
			res := &out[len(out)-1]
			res.Name, res.Type, res.Scalar = scalarNames[k], &p.types[0], sc
			p.decorate(r, res)
		}
		if got[i].nports > 0 {
			vr := &p.rangesArena.take(1)[0]
			vr.Range = p.portRanges(ports, from, uint16(i), got[i].nports)
			out = out[:len(out)+1]
			res := &out[len(out)-1]
			res.Name, res.Type, res.Ranges = "ports", &p.types[1], vr
			p.decorate(r, res)
		}
	}
	return out
}

// decorate gives res the role, reservation and allocation it came with.
func (p *placer) decorate(r *workRole, res *mesos.Resource) {
	res.Role = r.legacyRole
	res.Reservation = r.legacyResv
	res.Reservations = r.reserved
	res.AllocationInfo = r.alloc
}

// portRanges writes the n ports that came from role i as ranges, joining
// neighbours.
func (p *placer) portRanges(ports []uint64, from []uint16, i uint16, n int) []mesos.Value_Range {
	var buf [16]uint64
	mine := buf[:0]
	for j, pt := range ports {
		if from[j] == i {
			mine = append(mine, pt)
		}
	}
	slices.Sort(mine)
	runs := 0
	for j, pt := range mine {
		if j == 0 || mine[j-1]+1 != pt {
			runs++
		}
	}
	out := p.rangeArena.take(runs)[:0]
	for _, pt := range mine {
		if k := len(out); k > 0 && out[k-1].End+1 == pt {
			out[k-1].End = pt
			continue
		}
		out = append(out, mesos.Value_Range{Begin: pt, End: pt})
	}
	return out
}

// arena hands out small slices cut from big shared blocks, so a call
// allocates per few hundred placements instead of several times per
// placement. Each slice is capped at its length: appending to one never
// writes into its neighbour.
type arena[T any] struct{ free []T }

const arenaBlock = 512

func (a *arena[T]) take(n int) []T {
	if n > len(a.free) {
		a.free = make([]T, max(n, arenaBlock))
	}
	s := a.free[:n:n]
	a.free = a.free[n:]
	return s
}

// removePort takes port hp out of sorted disjoint ranges rs.
func removePort(rs []Range, hp uint64) []Range {
	for i, r := range rs {
		if hp < r.Begin || hp > r.End {
			continue
		}
		switch {
		case r.Begin == r.End:
			return append(rs[:i], rs[i+1:]...)
		case hp == r.Begin:
			rs[i].Begin++
		case hp == r.End:
			rs[i].End--
		default:
			rs = append(rs, Range{})
			copy(rs[i+2:], rs[i+1:])
			rs[i] = Range{Begin: r.Begin, End: hp - 1}
			rs[i+1] = Range{Begin: hp + 1, End: r.End}
		}
		return rs
	}
	return rs
}

// takeLowest appends the k lowest ports of rs to out and returns what is left.
func takeLowest(out []uint64, rs []Range, k uint64) ([]uint64, []Range) {
	for k > 0 && len(rs) > 0 {
		r := &rs[0]
		n := min(k, r.End-r.Begin+1)
		for i := uint64(0); i < n; i++ {
			out = append(out, r.Begin+i)
		}
		k -= n
		if n == r.End-r.Begin+1 {
			rs = rs[1:]
		} else {
			r.Begin += n
		}
	}
	return out, rs
}

func (p *placer) result() Result {
	res := Result{Unplaced: p.unplaced}
	if res.Unplaced == nil {
		res.Unplaced = map[string]Summary{}
	}
	// counting sort by offer, keeping placement order within an offer
	at := make([]int, len(p.offers)+1)
	for o, n := range p.perOffer {
		at[o+1] = at[o] + int(n)
		if n == 0 {
			res.UnusedOffers = append(res.UnusedOffers, p.offers[o].ID)
		}
	}
	res.Placements = make([]Placement, len(p.placed))
	for _, pl := range p.placed {
		res.Placements[at[pl.o]] = pl.p
		at[pl.o]++
	}
	return res
}

type placement struct {
	o int32
	p Placement
}
