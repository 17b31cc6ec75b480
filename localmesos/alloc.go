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
// agents and frameworks round-robin: the unreserved resources and those
// reserved to the role the offer is allocated to (offerRole). An agent has
// at most one outstanding offer.
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
		var role string
		var res rset
		for j := 0; j < len(fws); j++ {
			f := fws[(fwNext+j)%len(fws)]
			r, free, worth := offerRole(f, a)
			if !worth {
				continue
			}
			if flt, ok := f.filters[a.id]; ok {
				if now.Before(flt.until) && flt.res.contains(free) {
					continue
				}
				delete(f.filters, a.id)
			}
			chosen, role, res = f, r, free
			fwNext += j + 1
			break
		}
		if chosen == nil {
			continue
		}
		o := &offer{id: fmt.Sprintf("%s-O%d", m.id, m.offerSeq), fw: chosen, agent: a, res: res, role: role}
		m.offerSeq++
		a.offer = o
		chosen.offers[o.id] = o
		m.offers[o.id] = o
		refine := hasCapability(&chosen.info, mesos.FrameworkInfo_Capability_RESERVATION_REFINEMENT)
		// allocation_info goes only to MULTI_ROLE frameworks: Mesos ≥ 1.3.2
		// strips it, on the offer and on each resource, for the others
		// (Master::offer, MESOS-8237).
		allocRole := ""
		if hasCapability(&chosen.info, mesos.FrameworkInfo_Capability_MULTI_ROLE) {
			allocRole = role
		}
		mo := mesos.Offer{
			ID:          mesos.OfferID{Value: o.id},
			FrameworkID: mesos.FrameworkID{Value: chosen.id},
			AgentID:     mesos.AgentID{Value: a.id},
			Hostname:    a.hostname,
			URL:         a.httpURL,
			Resources:   o.res.toMesos(allocRole, refine),
			Attributes:  a.attrs,
			Domain:      a.domain,
		}
		if allocRole != "" {
			mo.AllocationInfo = &mesos.Resource_AllocationInfo{Role: strPtr(allocRole)}
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
