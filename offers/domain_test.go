package offers

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// domainOffer is an offer of agent id on host in zone, with plenty of
// resources, as a Mesos master sends it.
func domainOffer(id, host, zone string) Offer {
	scalar := func(name string, v float64) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
	}
	mo := &mesos.Offer{
		ID: mesos.OfferID{Value: "o-" + id}, AgentID: mesos.AgentID{Value: id}, Hostname: host,
		Resources: []mesos.Resource{scalar("cpus", 8), scalar("mem", 8192)},
		Domain: &mesos.DomainInfo{FaultDomain: &mesos.DomainInfo_FaultDomain{
			Region: mesos.DomainInfo_FaultDomain_RegionInfo{Name: "eu"},
			Zone:   mesos.DomainInfo_FaultDomain_ZoneInfo{Name: zone},
		}},
	}
	return FromMesos(mo)
}

// TestFaultDomainConstraints: Marathon's @region, @zone and @hostname
// fields place tasks by the agents' fault domains and hostnames.
func TestFaultDomainConstraints(t *testing.T) {
	t.Parallel()
	ofs := []Offer{domainOffer("a1", "h1", "z1"), domainOffer("a2", "h2", "z1"), domainOffer("a3", "h3", "z2")}
	if got := ofs[2].Attributes; got["@region"] != "eu" || got["@zone"] != "z2" {
		t.Fatalf("attributes of a domain offer: %v", got)
	}
	place := func(cs [][]string, n int) map[string]int {
		t.Helper()
		k, err := ParseConstraints(cs)
		if err != nil {
			t.Fatal(err)
		}
		var reqs []Request
		for i := 0; i < n; i++ {
			reqs = append(reqs, Request{ID: string(rune('a' + i)), App: "/web", CPUs: 0.1, Mem: 16, Constraints: k})
		}
		byAgent := map[string]int{}
		for _, p := range Place(ofs, reqs, nil, Options{}).Placements {
			byAgent[p.AgentID]++
		}
		return byAgent
	}
	if got := place([][]string{{"@zone", "GROUP_BY", "2"}}, 2); got["a3"] != 1 || got["a1"]+got["a2"] != 1 {
		t.Errorf("GROUP_BY @zone placed %v, want one task in each zone", got)
	}
	if got := place([][]string{{"@zone", "IS", "z2"}}, 1); got["a3"] != 1 {
		t.Errorf("@zone IS z2 placed %v", got)
	}
	if got := place([][]string{{"@region", "IS", "us"}}, 1); len(got) != 0 {
		t.Errorf("@region IS us placed %v on agents of region eu", got)
	}
	if got := place([][]string{{"@hostname", "UNIQUE"}}, 3); len(got) != 3 {
		t.Errorf("@hostname UNIQUE placed %v, want one per host", got)
	}
}
