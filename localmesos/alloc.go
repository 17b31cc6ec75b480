package localmesos

import (
	"fmt"
	"sort"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// offersPerEvent keeps every OFFERS frame far below the 4 MiB RecordIO cap
// (an offer encodes to well under 2 KiB).
const offersPerEvent = 500

func (m *Master) allocatorLoop() {
	defer m.wg.Done()
	tick := m.clock.NewTicker(m.cfg.AllocationInterval)
	defer tick.Stop()
	for {
		select {
		case <-m.allocKick:
		case <-tick.C():
		case <-m.ctx.Done():
			return
		}
		m.allocate()
	}
}

// allocate offers every active agent's free resources, whole, to one
// subscribed, unsuppressed framework that has not filtered them, taking
// agents and frameworks round-robin. An agent has at most one outstanding
// offer.
func (m *Master) allocate() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !m.leader.self {
		return
	}
	var fws []*framework
	for _, f := range m.frameworks {
		if f.stream != nil && !f.removed && !f.allSuppressed() {
			fws = append(fws, f)
		}
	}
	if len(fws) == 0 || len(m.agentList) == 0 {
		return
	}
	sort.Slice(fws, func(i, j int) bool { return fws[i].id < fws[j].id })
	now := m.now()
	batches := map[*framework][]mesos.Offer{}
	n := len(m.agentList)
	start := m.rrNext % n
	fwNext := m.rrNext
	for i := 0; i < n; i++ {
		a := m.agentList[(start+i)%n]
		if a.state != agentActive || a.offer != nil || !a.free.offerable() {
			continue
		}
		var chosen *framework
		for j := 0; j < len(fws); j++ {
			f := fws[(fwNext+j)%len(fws)]
			if flt, ok := f.filters[a.id]; ok {
				if now.Before(flt.until) && flt.res.contains(a.free) {
					continue
				}
				delete(f.filters, a.id)
			}
			chosen = f
			fwNext += j + 1
			break
		}
		if chosen == nil {
			continue
		}
		o := &offer{id: fmt.Sprintf("%s-O%d", m.id, m.offerSeq), fw: chosen, agent: a, res: a.free.clone()}
		m.offerSeq++
		a.offer = o
		chosen.offers[o.id] = o
		m.offers[o.id] = o
		mo := mesos.Offer{
			ID:          mesos.OfferID{Value: o.id},
			FrameworkID: mesos.FrameworkID{Value: chosen.id},
			AgentID:     mesos.AgentID{Value: a.id},
			Hostname:    a.hostname,
			URL:         a.httpURL,
			Attributes:  a.attrs,
			Domain:      a.domain,
		}
		// allocation_info, on the offer and each resource, only for
		// MULTI_ROLE frameworks, as Mesos >= 1.3.2 (Master::offer strips
		// it for the others, MESOS-8237).
		if chosen.multiRole() {
			role := chosen.roles()[0]
			mo.Resources = o.res.toMesos(role)
			mo.AllocationInfo = &mesos.Resource_AllocationInfo{Role: strPtr(role)}
		} else {
			mo.Resources = o.res.toMesos("")
		}
		batches[chosen] = append(batches[chosen], mo)
	}
	m.rrNext++
	for f, offs := range batches {
		for len(offs) > 0 {
			k := len(offs)
			if k > offersPerEvent {
				k = offersPerEvent
			}
			f.send(&scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: offs[:k:k]}})
			offs = offs[k:]
		}
	}
}
