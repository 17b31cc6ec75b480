package offers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
)

// randomCase builds a small messy cluster: hosts with several offers,
// missing attributes, reserved roles, overlapping port ranges, fixed ports
// that collide, running tasks, apps with constraints.
func randomCase(seed uint64) ([]Offer, []Request, []Placed) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// one case in 8 is big enough for the candidate windows to widen
	nOffers, nHosts, perApp := 1+rng.IntN(15), 8, 10
	if seed%8 == 0 {
		nOffers, nHosts, perApp = 100+rng.IntN(200), 60, 80
	}
	attrs := func() map[string]string {
		m := map[string]string{}
		if rng.IntN(5) > 0 {
			m["rack"] = fmt.Sprintf("r%d", rng.IntN(4))
		}
		if rng.IntN(3) > 0 {
			m["zone"] = fmt.Sprintf("z%d", rng.IntN(2))
		}
		return m
	}
	ranges := func(base int) []Range { // overlapping within a role; Mesos never offers a port twice across roles
		var rs []Range
		for range 1 + rng.IntN(3) {
			b := uint64(base + rng.IntN(20))
			rs = append(rs, Range{b, b + uint64(rng.IntN(4))})
		}
		return rs
	}
	var offers []Offer
	for i := range nOffers {
		host := fmt.Sprintf("h%d", rng.IntN(nHosts))
		o := Offer{ID: fmt.Sprintf("o%d", i), AgentID: "a-" + host, Hostname: host, Attributes: attrs()}
		o.Resources = append(o.Resources, RoleResources{Role: "*", CPUs: float64(rng.IntN(40)) / 10, Mem: float64(rng.IntN(4096)), Disk: float64(rng.IntN(2000)), GPUs: rng.IntN(2), Ports: ranges(31000)})
		if rng.IntN(3) == 0 {
			o.Resources = append(o.Resources, RoleResources{Role: "web", AllocationRole: "web", CPUs: float64(rng.IntN(20)) / 10, Mem: float64(rng.IntN(2048)), Ports: ranges(32000)})
		}
		offers = append(offers, o)
	}
	constraints := [][]string{
		{"hostname", "UNIQUE"}, {"rack", "MAX_PER", "2"}, {"rack", "GROUP_BY"}, {"zone", "GROUP_BY", "2"},
		{"rack", "CLUSTER", "r1"}, {"zone", "CLUSTER"}, {"hostname", "LIKE", "h[0-5]"}, {"rack", "UNLIKE", "r0"},
		{"zone", "IS", "z1"}, {"rack", "UNIQUE"},
	}
	var reqs []Request
	var placed []Placed
	for a := range 1 + rng.IntN(4) {
		app := fmt.Sprintf("app%d", a)
		var cs []Constraint
		for range rng.IntN(3) {
			c, err := ParseConstraint(constraints[rng.IntN(len(constraints))])
			if err != nil {
				panic(err)
			}
			cs = append(cs, c)
		}
		role := ""
		if rng.IntN(3) == 0 {
			role = "web"
		}
		for i := range 1 + rng.IntN(perApp) {
			r := Request{ID: fmt.Sprintf("%s.%d", app, i), App: app, Role: role, Constraints: cs,
				CPUs: float64(1+rng.IntN(10)) / 10, Mem: float64(rng.IntN(512)), Disk: float64(rng.IntN(100)),
				Ports: rng.IntN(3)}
			if rng.IntN(4) == 0 {
				r.HostPorts = []uint64{uint64(31000 + 1000*rng.IntN(2) + rng.IntN(24))}
			}
			if rng.IntN(8) == 0 {
				r.GPUs = 1
			}
			reqs = append(reqs, r)
		}
		for range rng.IntN(3) {
			placed = append(placed, Placed{App: app, Hostname: fmt.Sprintf("h%d", rng.IntN(nHosts)), Attributes: attrs()})
		}
	}
	return offers, reqs, placed
}

// checkInvariants fails t if res breaks a promise of Place, judged from
// the inputs alone by naive code.
func checkInvariants(t *testing.T, offers []Offer, reqs []Request, placed []Placed, res Result) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range res.Placements {
		if seen[p.Request.ID] {
			t.Fatalf("request %s placed twice", p.Request.ID)
		}
		seen[p.Request.ID] = true
	}
	for id, s := range res.Unplaced {
		if seen[id] {
			t.Fatalf("request %s both placed and unplaced", id)
		}
		seen[id] = true
		if s.ProcessedOffers != len(offers) || s.Reasons[0].Processed != len(offers) {
			t.Fatalf("%s: processed %d, want %d", id, s.ProcessedOffers, len(offers))
		}
		sum := 0
		for i, rc := range s.Reasons {
			sum += rc.Declined
			if i > 0 && rc.Processed != s.Reasons[i-1].Processed-s.Reasons[i-1].Declined {
				t.Fatalf("%s: funnel broken at %s: %+v", id, rc.Reason, s)
			}
		}
		if sum != len(offers) {
			t.Fatalf("%s unplaced but only %d of %d offers refused it: %+v", id, sum, len(offers), s)
		}
	}
	if len(seen) != len(reqs) {
		t.Fatalf("%d requests accounted for, want %d", len(seen), len(reqs))
	}

	byID := map[string]int{}
	for i, o := range offers {
		byID[o.ID] = i
	}
	used := make([]bool, len(offers))
	last := -1
	type key struct {
		offer int
		role  string
	}
	usedMilli := map[key][4]int64{}
	usedPorts := map[int]map[uint64]bool{}
	for _, p := range res.Placements {
		oi, found := byID[p.OfferID]
		if !found {
			t.Fatalf("placement on unknown offer %s", p.OfferID)
		}
		if oi < last {
			t.Fatalf("placements not in offer order")
		}
		last = oi
		used[oi] = true
		o := offers[oi]
		if p.AgentID != o.AgentID || p.Hostname != o.Hostname {
			t.Fatalf("placement agent/host %s/%s, offer has %s/%s", p.AgentID, p.Hostname, o.AgentID, o.Hostname)
		}
		req := p.Request
		wantRole := req.Role
		if wantRole == "" {
			wantRole = "*"
		}
		var got [4]int64
		var ports []uint64
		for _, r := range p.Resources {
			role := "*"
			if r.Role != nil {
				role = *r.Role
			}
			if role != "*" && role != wantRole {
				t.Fatalf("%s got resources of role %s", req.ID, role)
			}
			k := key{oi, role}
			u := usedMilli[k]
			switch r.Name {
			case "cpus", "mem", "disk", "gpus":
				i := slices.Index([]string{"cpus", "mem", "disk", "gpus"}, r.Name)
				v := int64(math.Round(r.Scalar.Value * 1000))
				u[i] += v
				got[i] += v
			case "ports":
				if usedPorts[oi] == nil {
					usedPorts[oi] = map[uint64]bool{}
				}
				for _, rg := range r.Ranges.Range {
					for pt := rg.Begin; pt <= rg.End; pt++ {
						if usedPorts[oi][pt] {
							t.Fatalf("port %d of offer %s assigned twice", pt, o.ID)
						}
						usedPorts[oi][pt] = true
						ports = append(ports, pt)
						if !roleHasPort(o, role, pt) {
							t.Fatalf("port %d not offered by role %s of %s", pt, role, o.ID)
						}
					}
				}
			}
			usedMilli[k] = u
		}
		want := [4]int64{toMilli(req.CPUs), toMilli(req.Mem), toMilli(req.Disk), int64(req.GPUs) * 1000}
		if got != want {
			t.Fatalf("%s got %v (milli), asked %v", req.ID, got, want)
		}
		if len(p.Ports) != len(req.HostPorts)+req.Ports || !slices.Equal(p.Ports[:len(req.HostPorts)], req.HostPorts) {
			t.Fatalf("%s ports %v for hostPorts %v + %d", req.ID, p.Ports, req.HostPorts, req.Ports)
		}
		slices.Sort(ports)
		if !slices.Equal(ports, slices.Sorted(slices.Values(p.Ports))) {
			t.Fatalf("%s ports %v but resources carry %v", req.ID, p.Ports, ports)
		}
	}
	for k, u := range usedMilli {
		var have [4]int64
		for _, rr := range offers[k.offer].Resources {
			if rr.Role == k.role {
				have[0] += toMilli(rr.CPUs)
				have[1] += toMilli(rr.Mem)
				have[2] += toMilli(rr.Disk)
				have[3] += int64(rr.GPUs) * 1000
			}
		}
		for i := range u {
			if u[i] > have[i] {
				t.Fatalf("offer %s role %s: used %v of %v (milli)", offers[k.offer].ID, k.role, u, have)
			}
		}
	}
	var unused []string
	for i, o := range offers {
		if !used[i] {
			unused = append(unused, o.ID)
		}
	}
	if !slices.Equal(unused, res.UnusedOffers) {
		t.Fatalf("unused offers %v, want %v", res.UnusedOffers, unused)
	}
	checkConstraints(t, offers, placed, res)
}

func roleHasPort(o Offer, role string, pt uint64) bool {
	for _, rr := range o.Resources {
		if rr.Role == role && containsPort(rr.Ports, pt) {
			return true
		}
	}
	return false
}

// checkConstraints re-judges every new task against all tasks of its app
// after the call, for the operators whose verdict cannot change by order.
func checkConstraints(t *testing.T, offers []Offer, placed []Placed, res Result) {
	t.Helper()
	type task struct {
		app, host string
		attrs     map[string]string
	}
	var all []task
	for _, p := range placed {
		all = append(all, task{p.App, p.Hostname, p.Attributes})
	}
	attrsOf := map[string]map[string]string{}
	for _, o := range offers {
		attrsOf[o.ID] = o.Attributes
	}
	for _, p := range res.Placements {
		all = append(all, task{p.Request.App, p.Hostname, attrsOf[p.OfferID]})
	}
	value := func(tk task, f string) (string, bool) {
		if f == "hostname" {
			return tk.host, true
		}
		v, ok := tk.attrs[f]
		return v, ok
	}
	for _, p := range res.Placements {
		me := task{p.Request.App, p.Hostname, attrsOf[p.OfferID]}
		for _, c := range p.Request.Constraints {
			v, has := value(me, c.Field)
			if !has {
				if c.Operator != "UNLIKE" {
					t.Fatalf("%s placed on %s without attribute %s for %s", p.Request.ID, p.Hostname, c.Field, c.Operator)
				}
				continue
			}
			same := 0
			for _, o := range all {
				if ov, ok := value(o, c.Field); o.app == me.app && ok && ov == v {
					same++
				}
			}
			full := func(re string) bool { return regexp.MustCompile("^(?:" + re + ")$").MatchString(v) }
			bad := false
			switch c.Operator {
			case "UNIQUE":
				bad = same > 1 && !placedHas(placed, me.app, c.Field, v)
			case "MAX_PER":
				bad = same > c.num && !placedHas(placed, me.app, c.Field, v)
			case "CLUSTER":
				bad = c.Value != "" && v != c.Value
			case "LIKE":
				bad = !full(c.Value)
			case "UNLIKE":
				bad = full(c.Value)
			case "IS":
				bad = !sameValue(v, c.Value)
			}
			if bad {
				t.Fatalf("%s on %s breaks %s %s %s (%d tasks share %q)", p.Request.ID, p.Hostname, c.Field, c.Operator, c.Value, same, v)
			}
		}
	}
}

// placedHas says whether running tasks alone already share value v; then
// a breach is not this call's doing.
func placedHas(placed []Placed, app, f, v string) bool {
	for _, p := range placed {
		pv, ok := p.Attributes[f]
		if f == "hostname" {
			pv, ok = p.Hostname, true
		}
		if p.App == app && ok && pv == v {
			return true
		}
	}
	return false
}

// FuzzPlace checks Place's promises on random clusters; its seed corpus
// runs with every `go test`.
func FuzzPlace(f *testing.F) {
	for seed := range uint64(300) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		offers, reqs, placed := randomCase(seed)
		for _, s := range []Strategy{Spread, Binpack} {
			res := Place(offers, reqs, placed, Options{Strategy: s})
			checkInvariants(t, offers, reqs, placed, res)
		}
	})
}
