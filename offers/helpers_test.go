package offers

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

var defaultPorts = []Range{{31000, 31009}}

// mkOffer builds an offer with unreserved resources; attrs are "k=v".
func mkOffer(id string, cpus, mem float64, attrs ...string) Offer {
	o := Offer{ID: id, AgentID: "A-" + id, Hostname: id, Attributes: map[string]string{}}
	for _, kv := range attrs {
		k, v, _ := strings.Cut(kv, "=")
		o.Attributes[k] = v
	}
	o.Resources = []RoleResources{{Role: "*", CPUs: cpus, Mem: mem, Disk: 1000, Ports: defaultPorts}}
	return o
}

func mkReqs(app string, n int, cpus, mem float64, cons ...[]string) []Request {
	var cs []Constraint
	for _, c := range cons {
		k, err := ParseConstraint(c)
		if err != nil {
			panic(err)
		}
		cs = append(cs, k)
	}
	out := make([]Request, n)
	for i := range out {
		out[i] = Request{ID: fmt.Sprintf("%s.%d", app, i), App: app, CPUs: cpus, Mem: mem, Constraints: cs}
	}
	return out
}

// hostsOf returns the hostname of every placement, sorted.
func hostsOf(res Result) []string {
	var hs []string
	for _, p := range res.Placements {
		hs = append(hs, p.Hostname)
	}
	sort.Strings(hs)
	return hs
}

func unplacedIDs(res Result) []string {
	var ids []string
	for id := range res.Unplaced {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func declined(s Summary, r Reason) int {
	for _, rc := range s.Reasons {
		if rc.Reason == r {
			return rc.Declined
		}
	}
	return -1
}

func mustEqual[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
