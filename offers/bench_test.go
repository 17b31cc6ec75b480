package offers

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system time: on a shared machine it moves
// far less with other load than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCluster is nOffers agents, one offer each, in racks of 100 (racks
// in contiguous blocks, the order least kind to GROUP_BY) and 3 zones.
func benchCluster(nOffers int) []Offer {
	offers := make([]Offer, nOffers)
	for i := range offers {
		h := fmt.Sprintf("agent-%05d", i)
		offers[i] = Offer{
			ID: "O" + h, AgentID: "S" + h, Hostname: h,
			Attributes: map[string]string{"rack": fmt.Sprintf("r%03d", i/100), "zone": fmt.Sprintf("z%d", i%3)},
			Resources:  []RoleResources{{Role: "*", CPUs: 8, Mem: 32768, Disk: 100000, Ports: []Range{{31000, 32000}}}},
		}
	}
	return offers
}

// benchApps is apps × instances requests, each app with constraints.
func benchApps(apps, instances int) []Request {
	sets := [][][]string{
		{{"hostname", "UNIQUE"}},
		{{"rack", "GROUP_BY"}},
		{{"rack", "MAX_PER", "5"}, {"zone", "LIKE", "z[01]"}},
		{{"hostname", "UNIQUE"}, {"zone", "UNLIKE", "z2"}},
	}
	var reqs []Request
	for a := range apps {
		var cs []Constraint
		for _, c := range sets[a%len(sets)] {
			k, err := ParseConstraint(c)
			if err != nil {
				panic(err)
			}
			cs = append(cs, k)
		}
		app := fmt.Sprintf("/app-%03d", a)
		for i := range instances {
			reqs = append(reqs, Request{ID: fmt.Sprintf("%s.%d", app, i), App: app, CPUs: 0.5, Mem: 512, Ports: 1, Constraints: cs})
		}
	}
	return reqs
}

func runPlaceBench(b *testing.B, offers []Offer, reqs []Request, placed []Placed, opt Options) {
	b.ReportAllocs()
	total := 0
	cpu0 := cpuTime()
	for b.Loop() {
		res := Place(offers, reqs, placed, opt)
		total += len(res.Placements)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "placements/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(total)/cpu.Seconds(), "placements/cpu-s")
	}
	b.ReportMetric(float64(total)/float64(b.N), "placed/op")
}

// BenchmarkPlace: 10,000 offers, 200 apps of 100 instances, constraints
// UNIQUE / GROUP_BY / MAX_PER+LIKE / UNIQUE+UNLIKE, 10,000 running tasks.
func BenchmarkPlace(b *testing.B) {
	offers := benchCluster(10000)
	reqs := benchApps(200, 100)
	var placed []Placed
	for i := range 10000 {
		o := &offers[(i*7)%len(offers)]
		placed = append(placed, Placed{App: fmt.Sprintf("/app-%03d", i%200), Hostname: o.Hostname, Attributes: o.Attributes})
	}
	for _, s := range []struct {
		name string
		opt  Options
	}{{"spread", Options{}}, {"binpack", Options{Strategy: Binpack}}} {
		b.Run(s.name, func(b *testing.B) { runPlaceBench(b, offers, reqs, placed, s.opt) })
	}
}

// BenchmarkPlaceSingles is the unkind case: 2,000 apps of one instance
// each cost one scan of the offers apiece.
func BenchmarkPlaceSingles(b *testing.B) {
	runPlaceBench(b, benchCluster(10000), benchApps(2000, 1), nil, Options{})
}

// BenchmarkPlaceShort has more demand than room, so the explanations for
// unplaced requests are part of the cost.
func BenchmarkPlaceShort(b *testing.B) {
	offers := benchCluster(1000)
	runPlaceBench(b, offers, benchApps(100, 200), nil, Options{})
}

// BenchmarkPlaceE2EShape is the end-to-end goal's shape: 1,000 agents
// taking 100,000 tasks (100 apps of 1,000 instances, 1 port each) in one
// call, a hundred tasks per offer.
func BenchmarkPlaceE2EShape(b *testing.B) {
	offers := benchCluster(1000)
	for i := range offers {
		offers[i].Resources[0].CPUs = 12
		offers[i].Resources[0].Mem = 8192
	}
	reqs := benchApps(100, 1000)
	for i := range reqs {
		reqs[i].CPUs, reqs[i].Mem = 0.1, 64
		reqs[i].Constraints = nil
	}
	runPlaceBench(b, offers, reqs, nil, Options{})
}

// BenchmarkPlaceSharedHost is the end-to-end shape with all 1,000 agents
// on one host, as localmesos runs them: every placement changes the host
// count of every offer at once.
func BenchmarkPlaceSharedHost(b *testing.B) {
	offers := benchCluster(1000)
	for i := range offers {
		offers[i].Hostname = "127.0.0.1"
		offers[i].Resources[0].CPUs = 12
		offers[i].Resources[0].Mem = 8192
	}
	reqs := benchApps(100, 1000)
	for i := range reqs {
		reqs[i].CPUs, reqs[i].Mem = 0.1, 64
		reqs[i].Constraints = nil
	}
	runPlaceBench(b, offers, reqs, nil, Options{})
}
