package offers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestPlaceResources(t *testing.T) {
	t.Parallel()
	gpu := mkOffer("g1", 8, 8192)
	gpu.Resources[0].GPUs = 2
	cases := []struct {
		name       string
		offers     []Offer
		reqs       []Request
		wantHosts  []string
		wantReason Reason // every unplaced request's offers all declined with this
	}{
		{"several tasks share an offer", []Offer{mkOffer("h1", 2, 1024)}, mkReqs("a", 5, 0.5, 256), []string{"h1", "h1", "h1", "h1"}, InsufficientCpus},
		{"memory runs out first", []Offer{mkOffer("h1", 8, 1000)}, mkReqs("a", 3, 0.5, 400), []string{"h1", "h1"}, InsufficientMemory},
		{"thousandths add up exactly", []Offer{mkOffer("h1", 0.3, 1024)}, mkReqs("a", 4, 0.1, 1), []string{"h1", "h1", "h1"}, InsufficientCpus},
		{"disk", []Offer{mkOffer("h1", 8, 8192)}, []Request{{ID: "d", App: "a", CPUs: 1, Disk: 1001}}, nil, InsufficientDisk},
		{"gpus", []Offer{mkOffer("h1", 8, 8192), gpu}, []Request{{ID: "g.0", App: "g", CPUs: 1, GPUs: 2}, {ID: "g.1", App: "g", CPUs: 1, GPUs: 2}}, []string{"g1"}, InsufficientGpus},
		{"ports by count", []Offer{mkOffer("h1", 8, 8192)}, []Request{{ID: "p.0", App: "p", CPUs: 0.1, Ports: 6}, {ID: "p.1", App: "p", CPUs: 0.1, Ports: 6}}, []string{"h1"}, InsufficientPorts},
		{"fixed port missing", []Offer{mkOffer("h1", 8, 8192)}, []Request{{ID: "p", App: "p", CPUs: 0.1, HostPorts: []uint64{80}}}, nil, InsufficientPorts},
		{"fixed port taken by a sibling", []Offer{mkOffer("h1", 8, 8192)}, []Request{{ID: "p.0", App: "p", CPUs: 0.1, HostPorts: []uint64{31005}}, {ID: "p.1", App: "p", CPUs: 0.1, HostPorts: []uint64{31005}}}, []string{"h1"}, InsufficientPorts},
		{"same fixed port twice in one task", []Offer{mkOffer("h1", 8, 8192)}, []Request{{ID: "p", App: "p", CPUs: 0.1, HostPorts: []uint64{31005, 31005}}}, nil, InsufficientPorts},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Place(tc.offers, tc.reqs, nil, Options{})
			mustEqual(t, "hosts", hostsOf(res), tc.wantHosts)
			if len(res.Placements)+len(res.Unplaced) != len(tc.reqs) {
				t.Fatalf("%d placed + %d unplaced != %d requests", len(res.Placements), len(res.Unplaced), len(tc.reqs))
			}
			for id, s := range res.Unplaced {
				if got := declined(s, tc.wantReason); got != len(tc.offers) {
					t.Errorf("%s: %s declined %d of %d offers: %+v", id, tc.wantReason, got, len(tc.offers), s)
				}
			}
		})
	}
}

func TestPlacePorts(t *testing.T) {
	t.Parallel()
	split := mkOffer("h1", 8, 8192)
	split.Resources[0].Ports = []Range{{31000, 31002}, {32000, 32001}}
	cases := []struct {
		name      string
		reqs      []Request
		wantPorts [][]uint64
		wantRange [][]mesos.Value_Range // the ports resource of each placement
	}{
		{
			name:      "count takes the lowest and spans ranges",
			reqs:      []Request{{ID: "a", App: "a", CPUs: 0.1, Ports: 2}, {ID: "b", App: "a", CPUs: 0.1, Ports: 2}},
			wantPorts: [][]uint64{{31000, 31001}, {31002, 32000}},
			wantRange: [][]mesos.Value_Range{{{Begin: 31000, End: 31001}}, {{Begin: 31002, End: 31002}, {Begin: 32000, End: 32000}}},
		},
		{
			name:      "fixed port splits a range; count skips it",
			reqs:      []Request{{ID: "a", App: "a", CPUs: 0.1, HostPorts: []uint64{31001}, Ports: 2}, {ID: "b", App: "b", CPUs: 0.1, Ports: 2}},
			wantPorts: [][]uint64{{31001, 31000, 31002}, {32000, 32001}},
			wantRange: [][]mesos.Value_Range{{{Begin: 31000, End: 31002}}, {{Begin: 32000, End: 32001}}},
		},
		{
			name:      "fixed ports keep the request's order",
			reqs:      []Request{{ID: "a", App: "a", CPUs: 0.1, HostPorts: []uint64{32001, 31000}}},
			wantPorts: [][]uint64{{32001, 31000}},
			wantRange: [][]mesos.Value_Range{{{Begin: 31000, End: 31000}, {Begin: 32001, End: 32001}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Place([]Offer{split}, tc.reqs, nil, Options{Strategy: Binpack})
			if len(res.Placements) != len(tc.wantPorts) {
				t.Fatalf("placed %d, want %d (unplaced %+v)", len(res.Placements), len(tc.wantPorts), res.Unplaced)
			}
			for i, p := range res.Placements {
				if !reflect.DeepEqual(p.Ports, tc.wantPorts[i]) {
					t.Errorf("placement %d ports %v, want %v", i, p.Ports, tc.wantPorts[i])
				}
				var got []mesos.Value_Range
				for _, r := range p.Resources {
					if r.Name == "ports" {
						got = append(got, r.Ranges.Range...)
					}
				}
				if !reflect.DeepEqual(got, tc.wantRange[i]) {
					t.Errorf("placement %d ranges %v, want %v", i, got, tc.wantRange[i])
				}
			}
		})
	}
}

// resourceSummary flattens resources to "name role alloc value" lines.
func resourceSummary(rs []mesos.Resource) []string {
	var out []string
	for _, r := range rs {
		role, alloc := "-", "-"
		if r.Role != nil {
			role = *r.Role
		}
		if r.AllocationInfo != nil && r.AllocationInfo.Role != nil {
			alloc = *r.AllocationInfo.Role
		}
		v := ""
		if r.Scalar != nil {
			b, _ := json.Marshal(r.Scalar.Value)
			v = string(b)
		} else if r.Ranges != nil {
			b, _ := json.Marshal(r.Ranges.Range)
			v = string(b)
		}
		out = append(out, r.Name+" "+role+" "+alloc+" "+v)
	}
	return out
}

func TestPlaceRoles(t *testing.T) {
	t.Parallel()
	mixed := Offer{ID: "o1", AgentID: "a1", Hostname: "h1", Resources: []RoleResources{
		{Role: "*", AllocationRole: "web", CPUs: 4, Mem: 4096, Ports: []Range{{31000, 31000}}},
		{Role: "web", AllocationRole: "web", CPUs: 1, Mem: 512, Ports: []Range{{80, 80}}},
	}}
	other := Offer{ID: "o2", AgentID: "a2", Hostname: "h2", Resources: []RoleResources{
		{Role: "batch", CPUs: 8, Mem: 8192},
	}}
	cases := []struct {
		name       string
		offers     []Offer
		req        Request
		want       []string
		wantReason Reason
	}{
		{
			name:   "own role first, then unreserved",
			offers: []Offer{mixed},
			req:    Request{ID: "t", App: "a", Role: "web", CPUs: 1.5, Mem: 256, Ports: 2},
			want: []string{ // in the offer's order
				"cpus - web 0.5", "ports - web [{\"begin\":31000,\"end\":31000}]",
				"cpus web web 1", "mem web web 256", "ports web web [{\"begin\":80,\"end\":80}]",
			},
		},
		{
			name:   "unreserved request leaves reserved alone",
			offers: []Offer{mixed},
			req:    Request{ID: "t", App: "a", CPUs: 4, Mem: 1024, HostPorts: []uint64{31000}},
			want:   []string{"cpus - web 4", "mem - web 1024", "ports - web [{\"begin\":31000,\"end\":31000}]"},
		},
		{
			name:       "unreserved request cannot use reserved cpus",
			offers:     []Offer{mixed},
			req:        Request{ID: "t", App: "a", CPUs: 4.5},
			wantReason: InsufficientCpus,
		},
		{
			name:       "unreserved request cannot use a reserved port",
			offers:     []Offer{mixed},
			req:        Request{ID: "t", App: "a", CPUs: 1, HostPorts: []uint64{80}},
			wantReason: InsufficientPorts,
		},
		{
			name:       "only another role's resources",
			offers:     []Offer{other},
			req:        Request{ID: "t", App: "a", Role: "web", CPUs: 1},
			wantReason: UnfulfilledRole,
		},
		{
			name:   "accepted roles [web]: reserved only",
			offers: []Offer{mixed},
			req:    Request{ID: "t", App: "a", Role: "web", AcceptedRoles: []string{"web"}, CPUs: 1, Mem: 128, Ports: 1},
			want:   []string{"cpus web web 1", "mem web web 128", "ports web web [{\"begin\":80,\"end\":80}]"},
		},
		{
			name:       "accepted roles [web]: the reservation is too small",
			offers:     []Offer{mixed},
			req:        Request{ID: "t", App: "a", Role: "web", AcceptedRoles: []string{"web"}, CPUs: 1.5},
			wantReason: InsufficientCpus,
		},
		{
			name:       "accepted roles [web]: no port 31000 in the reservation",
			offers:     []Offer{mixed},
			req:        Request{ID: "t", App: "a", Role: "web", AcceptedRoles: []string{"web"}, CPUs: 0.5, HostPorts: []uint64{31000}},
			wantReason: InsufficientPorts,
		},
		{
			name:   "accepted roles [*] of a web app: unreserved only",
			offers: []Offer{mixed},
			req:    Request{ID: "t", App: "a", Role: "web", AcceptedRoles: []string{"*"}, CPUs: 1, Ports: 1},
			want:   []string{"cpus - web 1", "ports - web [{\"begin\":31000,\"end\":31000}]"},
		},
		{
			name:       "accepted roles [*]: an offer of reserved resources only",
			offers:     []Offer{other},
			req:        Request{ID: "t", App: "a", Role: "batch", AcceptedRoles: []string{"*"}, CPUs: 1},
			wantReason: UnfulfilledRole,
		},
		{
			name:   "reserved role without an allocation role",
			offers: []Offer{other},
			req:    Request{ID: "t", App: "a", Role: "batch", CPUs: 1},
			want:   []string{"cpus batch - 1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Place(tc.offers, []Request{tc.req}, nil, Options{})
			if tc.wantReason != "" {
				s, found := res.Unplaced[tc.req.ID]
				if !found || declined(s, tc.wantReason) != len(tc.offers) {
					t.Fatalf("want unplaced by %s, got %+v / %+v", tc.wantReason, res.Placements, s)
				}
				return
			}
			if len(res.Placements) != 1 {
				t.Fatalf("placed %d, unplaced %+v", len(res.Placements), res.Unplaced)
			}
			mustEqual(t, "resources", resourceSummary(res.Placements[0].Resources), tc.want)
		})
	}
}

func TestPlaceStrategy(t *testing.T) {
	t.Parallel()
	small := mkOffer("small", 2, 2048)
	big := mkOffer("big", 8, 8192)
	cases := []struct {
		name   string
		offers []Offer
		reqs   []Request
		placed []Placed
		opt    Options
		want   []string // hostname of each placement, in result order
	}{
		{"spread: one per host", []Offer{mkOffer("h1", 4, 4096), mkOffer("h2", 4, 4096), mkOffer("h3", 4, 4096)}, mkReqs("a", 3, 1, 512), nil, Options{}, []string{"h1", "h2", "h3"}},
		{"spread: fewest tasks of the app first", []Offer{mkOffer("h1", 4, 4096), mkOffer("h2", 4, 4096)}, mkReqs("a", 3, 1, 512),
			[]Placed{{App: "a", Hostname: "h1"}, {App: "a", Hostname: "h1"}}, Options{}, []string{"h1", "h2", "h2"}},
		{"spread: the emptier offer wins ties", []Offer{small, big}, mkReqs("a", 1, 1, 512), nil, Options{}, []string{"big"}},
		{"spread: other apps' use spreads too", []Offer{mkOffer("h1", 4, 4096), mkOffer("h2", 4, 4096)}, append(mkReqs("a", 1, 1, 512), mkReqs("b", 1, 1, 512)...), nil, Options{}, []string{"h1", "h2"}},
		{"spread: a host with several agents counts as one host", []Offer{onHost("a1", "h1"), onHost("a2", "h1"), onHost("a3", "h1"), onHost("b1", "h2")}, mkReqs("a", 4, 1, 512), nil, Options{}, []string{"h1", "h1", "h2", "h2"}},
		{"spread: a host whose agents sit in two GROUP_BY buckets", []Offer{onHost("a1", "h1", "rack=r1"), onHost("a2", "h1", "rack=r2"), onHost("b1", "h2", "rack=r1"), onHost("c1", "h3", "rack=r2")},
			mkReqs("a", 4, 1, 512, []string{"rack", "GROUP_BY"}), nil, Options{}, []string{"h1", "h1", "h2", "h3"}},
		{"binpack: fill one offer first", []Offer{mkOffer("h1", 4, 4096), mkOffer("h2", 4, 4096), mkOffer("h3", 4, 4096)}, mkReqs("a", 5, 1, 512), nil, Options{Strategy: Binpack}, []string{"h1", "h1", "h1", "h1", "h2"}},
		{"binpack: the tighter offer wins", []Offer{big, small}, mkReqs("a", 1, 1, 512), nil, Options{Strategy: Binpack}, []string{"small"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Place(tc.offers, tc.reqs, tc.placed, tc.opt)
			var got []string
			for _, p := range res.Placements {
				got = append(got, p.Hostname)
			}
			mustEqual(t, "placements", got, tc.want)
		})
	}
}

// onHost is an offer of agent id on a host that other agents share.
func onHost(id, host string, attrs ...string) Offer {
	o := mkOffer(id, 4, 4096, attrs...)
	o.Hostname = host
	return o
}

func TestPlaceResultShape(t *testing.T) {
	t.Parallel()
	offers := []Offer{mkOffer("h1", 1, 1024), mkOffer("h2", 4, 4096), mkOffer("h3", 0.1, 64), mkOffer("h4", 4, 4096)}
	reqs := append(mkReqs("a", 3, 1, 512, []string{"hostname", "UNIQUE"}), mkReqs("b", 2, 1, 512, []string{"hostname", "LIKE", "h2"})...)
	res := Place(offers, reqs, nil, Options{})

	// grouped by offer, in offer order
	var got []string
	for _, p := range res.Placements {
		got = append(got, p.OfferID+"/"+p.Request.ID)
	}
	// a.0 takes the roomiest offer, a.1 the other roomy host, a.2 what is left
	mustEqual(t, "placements", got, []string{"h1/a.2", "h2/a.0", "h2/b.0", "h2/b.1", "h4/a.1"})
	mustEqual(t, "unused", res.UnusedOffers, []string{"h3"})
	if len(res.Unplaced) != 0 {
		t.Errorf("unplaced %v", res.Unplaced)
	}

	// a funnel: processed drops by what the step before declined
	offers[1] = mkOffer("h2", 4, 1024)
	res = Place(offers, mkReqs("c", 1, 2, 2048, []string{"hostname", "UNLIKE", "h4"}), nil, Options{})
	want := Summary{ProcessedOffers: 4, UnusedOffers: 4, Reasons: []ReasonCount{
		{UnfulfilledRole, 0, 4}, {UnfulfilledConstraint, 1, 4}, {InsufficientCpus, 2, 3},
		{InsufficientMemory, 1, 1}, {InsufficientDisk, 0, 0}, {InsufficientGpus, 0, 0}, {InsufficientPorts, 0, 0},
	}}
	if got := res.Unplaced["c.0"]; !reflect.DeepEqual(got, want) {
		t.Errorf("summary\n got %+v\nwant %+v", got, want)
	}
	b, _ := json.Marshal(Summary{ProcessedOffers: 2, UnusedOffers: 2, Reasons: []ReasonCount{{InsufficientCpus, 2, 2}}})
	if wantJSON := `{"processedOffersCount":2,"unusedOffersCount":2,"rejectSummaryLastOffers":[{"reason":"InsufficientCpus","declined":2,"processed":2}]}`; string(b) != wantJSON {
		t.Errorf("summary JSON %s, want Marathon's %s", b, wantJSON)
	}
}

func TestPlaceDeterministicAndPure(t *testing.T) {
	t.Parallel()
	offers, reqs, placed := randomCase(42)
	before, _ := json.Marshal(offers)
	a := Place(offers, reqs, placed, Options{})
	b := Place(offers, reqs, placed, Options{})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two calls with the same input differ")
	}
	after, _ := json.Marshal(offers)
	if string(before) != string(after) {
		t.Fatal("Place changed its input offers")
	}
}

func TestScoreBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                  string
		cpus, mem, fcpu, fmem float64
		spread, binpack       float64
	}{
		{"half", 1, 1, 2, 2, 0.5, 0.5},
		{"perfect fit", 2, 512, 2, 512, 0, 1},
		{"nothing asked", 0, 0, 4, 4096, 1, 0},
		{"does not fit", 8, 8192, 4, 4096, 0, 1},
		{"nothing free", 1, 1, 0, 0, 0.5, 0.5},
		{"NaN free", 1, 1, 0 / zero, 0 / zero, 0.5, 0.5},
		{"negative need", -1, -1, 1, 1, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Score(Spread, tc.cpus, tc.mem, tc.fcpu, tc.fmem); got != tc.spread {
				t.Errorf("spread = %v, want %v", got, tc.spread)
			}
			if got := Score(Binpack, tc.cpus, tc.mem, tc.fcpu, tc.fmem); got != tc.binpack {
				t.Errorf("binpack = %v, want %v", got, tc.binpack)
			}
		})
	}
}

var zero float64

// bigCluster is n equal offers on n hosts, in racks of perRack.
func bigCluster(n, perRack int) []Offer {
	offers := make([]Offer, n)
	for i := range offers {
		offers[i] = mkOffer(fmt.Sprintf("h%03d", i), 4, 4096, fmt.Sprintf("rack=r%02d", i/perRack))
	}
	return offers
}

// TestPlaceWindows covers clusters bigger than one candidate window.
func TestPlaceWindows(t *testing.T) {
	t.Parallel()
	lastFits := bigCluster(300, 300)
	lastFits[299].Resources[0].CPUs = 16
	multi := bigCluster(500, 500)
	for i := range multi { // 100 hosts with 5 offers each
		multi[i].Hostname = fmt.Sprintf("host%03d", i%100)
	}
	cases := []struct {
		name   string
		offers []Offer
		reqs   []Request
		check  func(t *testing.T, res Result)
	}{
		{
			name: "only the last offer fits", offers: lastFits, reqs: mkReqs("a", 2, 8, 512),
			check: func(t *testing.T, res Result) {
				if len(res.Placements) != 2 || res.Placements[0].OfferID != "h299" || res.Placements[1].OfferID != "h299" {
					t.Errorf("placements %v, want both on h299", hostsOf(res))
				}
			},
		},
		{
			name: "GROUP_BY balances racks beyond the window", offers: bigCluster(1000, 100),
			reqs: mkReqs("a", 20, 1, 512, []string{"rack", "GROUP_BY", "10"}),
			check: func(t *testing.T, res Result) {
				perRack := map[string]int{}
				for _, p := range res.Placements {
					perRack[p.Hostname[:2]]++ // h0xx: rack = hundreds digit
				}
				if len(res.Placements) != 20 || len(perRack) != 10 {
					t.Fatalf("placed %d over %d racks, want 20 over 10", len(res.Placements), len(perRack))
				}
				for r, n := range perRack {
					if n != 2 {
						t.Errorf("rack %s got %d, want 2", r, n)
					}
				}
			},
		},
		{
			name: "UNIQUE hostname with several offers per host", offers: multi,
			reqs: mkReqs("a", 120, 0.5, 128, []string{"hostname", "UNIQUE"}),
			check: func(t *testing.T, res Result) {
				hosts := map[string]bool{}
				for _, p := range res.Placements {
					if hosts[p.Hostname] {
						t.Fatalf("host %s used twice", p.Hostname)
					}
					hosts[p.Hostname] = true
				}
				if len(hosts) != 100 || len(res.Unplaced) != 20 {
					t.Errorf("%d hosts used, %d unplaced; want 100 and 20", len(hosts), len(res.Unplaced))
				}
			},
		},
		{
			name: "spread puts successive apps in different windows", offers: bigCluster(200, 200),
			reqs: append(mkReqs("a", 1, 1, 512), mkReqs("b", 1, 1, 512)...),
			check: func(t *testing.T, res Result) {
				mustEqual(t, "hosts", hostsOf(res), []string{"h000", "h064"})
			},
		},
		{
			name: "spread never doubles up while a host is free", offers: bigCluster(200, 200),
			reqs: mkReqs("a", 200, 0.5, 128),
			check: func(t *testing.T, res Result) {
				hosts := map[string]bool{}
				for _, p := range res.Placements {
					hosts[p.Hostname] = true
				}
				if len(hosts) != 200 {
					t.Errorf("200 tasks on %d hosts, want 200", len(hosts))
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Place(tc.offers, tc.reqs, nil, Options{})
			tc.check(t, res)
		})
	}
}

func TestPlaceEmpty(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		offers     []Offer
		reqs       []Request
		wantUnused []string
		wantUnpl   int
	}{
		{"nothing", nil, nil, nil, 0},
		{"no requests: every offer unused", []Offer{mkOffer("h1", 1, 1), mkOffer("h2", 1, 1)}, nil, []string{"h1", "h2"}, 0},
		{"no offers: every request unplaced", nil, mkReqs("a", 2, 1, 1), nil, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Place(tc.offers, tc.reqs, nil, Options{})
			mustEqual(t, "unused", res.UnusedOffers, tc.wantUnused)
			if len(res.Placements) != 0 || len(res.Unplaced) != tc.wantUnpl || res.Unplaced == nil {
				t.Fatalf("placements %d, unplaced %v (want %d, non-nil)", len(res.Placements), res.Unplaced, tc.wantUnpl)
			}
			for id, s := range res.Unplaced {
				if s.ProcessedOffers != 0 || len(s.Reasons) != 7 {
					t.Errorf("%s: %+v", id, s)
				}
			}
		})
	}
}
