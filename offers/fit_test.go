package offers

import (
	"fmt"
	"testing"
)

func TestFits(t *testing.T) {
	web := func(o Offer) Offer {
		o.Resources = append(o.Resources, RoleResources{Role: "web", CPUs: 4, Mem: 4096, Ports: []Range{{32000, 32001}}})
		return o
	}
	three := []Offer{mkOffer("a", 8, 1024), mkOffer("b", 8, 1024), mkOffer("c", 2, 4096)}
	cases := []struct {
		name string
		ofs  []Offer
		r    Request
		want int
	}{
		{"cpus bound", three, Request{CPUs: 1, Mem: 1}, 8 + 8 + 2},
		{"mem bound", three, Request{CPUs: 0.001, Mem: 512}, 2 + 2 + 8},
		{"tiny task on three agents", three, Request{CPUs: 0.001, Mem: 1}, 1024 + 1024 + 2000},
		{"cpus 1e308 fits nowhere", three, Request{CPUs: 1e308, Mem: 1}, 0},
		{"mem larger than any offer", three, Request{CPUs: 0.1, Mem: 5000}, 0},
		{"ports bound (10 per offer)", three, Request{CPUs: 0.001, Mem: 1, Ports: 3}, 3 + 3 + 3},
		{"fixed host port: once per offer", three, Request{CPUs: 0.1, Mem: 1, HostPorts: []uint64{31000}}, 3},
		{"disk", three, Request{CPUs: 0.1, Mem: 1, Disk: 400}, 2 + 2 + 2},
		{"gpus none offered", three, Request{CPUs: 0.1, Mem: 1, GPUs: 1}, 0},
		{"needs nothing: capped per offer", three, Request{}, 3 * PerOfferCap},
		{"reserved role not usable by *", []Offer{web(mkOffer("a", 1, 1024))}, Request{CPUs: 1, Mem: 1}, 1},
		{"reserved role usable by its role", []Offer{web(mkOffer("a", 1, 1024))}, Request{CPUs: 1, Mem: 1, Role: "web"}, 5},
		{"accepted [web]: the reservation alone", []Offer{web(mkOffer("a", 1, 1024))}, Request{CPUs: 1, Mem: 1, Role: "web", AcceptedRoles: []string{"web"}}, 4},
		{"accepted [*] of a web app: unreserved alone", []Offer{web(mkOffer("a", 1, 1024))}, Request{CPUs: 1, Mem: 1, Role: "web", AcceptedRoles: []string{"*"}}, 1},
		{"no offers", nil, Request{CPUs: 1}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Fits(c.ofs, &c.r); got != c.want {
				t.Errorf("Fits = %d, want %d", got, c.want)
			}
		})
	}
}

// TestFitsLosesNothing: asking Place for more copies than Fits places no
// more than asking for exactly Fits, on every random cluster of FuzzPlace's
// corpus. That is what lets the framework cap its requests by Fits.
func TestFitsLosesNothing(t *testing.T) {
	for seed := range uint64(100) {
		ofs, reqs, placed := randomCase(seed)
		r := reqs[0]
		n := Fits(ofs, &r)
		copies := func(k int) []Request {
			out := make([]Request, k)
			for i := range out {
				out[i] = r
				out[i].ID = fmt.Sprint(i)
			}
			return out
		}
		exact := Place(ofs, copies(n), placed, Options{})
		more := Place(ofs, copies(n+5), placed, Options{})
		if len(more.Placements) > n || len(exact.Placements) != len(more.Placements) {
			t.Fatalf("seed %d: Fits=%d, Place placed %d of %d copies and %d of %d", seed, n,
				len(exact.Placements), n, len(more.Placements), n+5)
		}
	}
}

// TestHugeResourceNeverFits: cpus 1e308 (accepted, as Marathon accepts it)
// once converted to a negative number and was placed on an 8-cpu offer.
func TestHugeResourceNeverFits(t *testing.T) {
	res := Place([]Offer{mkOffer("a", 8, 1024)}, []Request{{ID: "r", App: "/big", CPUs: 1e308, Mem: 1}}, nil, Options{})
	if len(res.Placements) != 0 || declined(res.Unplaced["r"], InsufficientCpus) != 1 {
		t.Fatalf("placements %d, unplaced %+v; want it refused for cpus", len(res.Placements), res.Unplaced)
	}
}

func TestCapacityLacks(t *testing.T) {
	var c Capacity
	for _, o := range []Offer{mkOffer("a", 8, 1024), mkOffer("b", 2, 4096)} {
		c.Grow(&o)
	}
	cases := []struct {
		r    Request
		want string
	}{
		{Request{CPUs: 8, Mem: 4096, Ports: 10}, ""}, // each within some offer, though no one offer holds both
		{Request{CPUs: 1e308, Mem: 1}, "cpus: needs 1e+308, the largest offer seen had 8"},
		{Request{CPUs: 1, Mem: 5000}, "mem: needs 5000 MiB, the largest offer seen had 4096 MiB"},
		{Request{CPUs: 1, Disk: 1001}, "disk: needs 1001 MiB, the largest offer seen had 1000 MiB"},
		{Request{CPUs: 1, GPUs: 1}, "gpus: needs 1, the largest offer seen had 0"},
		{Request{CPUs: 1, Ports: 10, HostPorts: []uint64{80}}, "ports: needs 11, the largest offer seen had 10"},
	}
	for _, k := range cases {
		if got := c.Lacks(&k.r); got != k.want {
			t.Errorf("Lacks(%+v) = %q, want %q", k.r, got, k.want)
		}
	}
}
