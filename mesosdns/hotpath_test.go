package mesosdns

import (
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// benchTasks is bench/dns's cluster shape: 200 apps of 5 instances.
func benchTasks() []Task {
	var tasks []Task
	for a := 0; a < 200; a++ {
		for i := 0; i < 5; i++ {
			tasks = append(tasks, Task{ID: fmt.Sprintf("app%d.%d", a, i), Name: fmt.Sprintf("app%d", a), Published: true,
				IPs: []net.IP{net.IPv4(127, 3, 0, byte(i+1))}, Ports: []Port{{Number: uint32(31000 + i)}}})
		}
	}
	return tasks
}

// hotQueries are the wire path's kinds of query: A, SRV (5 targets with
// glue), NXDOMAIN, odd case, EDNS with DO.
func hotQueries(t testing.TB) map[string][]byte {
	qs := map[string][]byte{}
	for name, m := range map[string]*dns.Msg{
		"A":        new(dns.Msg).SetQuestion("app7.flotilla.mesos.", dns.TypeA),
		"SRV":      new(dns.Msg).SetQuestion("_app7._tcp.flotilla.mesos.", dns.TypeSRV),
		"NXDOMAIN": new(dns.Msg).SetQuestion("nope.flotilla.mesos.", dns.TypeA),
		"OddCase":  new(dns.Msg).SetQuestion("APP8.Flotilla.MESOS.", dns.TypeA),
		"EDNS":     new(dns.Msg).SetQuestion("_app9._tcp.flotilla.mesos.", dns.TypeSRV).SetEdns0(1232, true),
	} {
		pkt, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		qs[name] = pkt
	}
	return qs
}

// TestWirePathAllocatesNothing: a UDP worker's answer from the packed records
// allocates nothing (once the name's records are packed), so a flood of
// queries makes no garbage for the collector to chase.
func TestWirePathAllocatesNothing(t *testing.T) {
	s := newTestServer(t, testConfig())
	if err := s.Update(benchTasks(), Master{}, nil); err != nil {
		t.Fatal(err)
	}
	w := newWireWorker(1, 0)
	out := make([]byte, maxUDPReply)
	for name, pkt := range hotQueries(t) {
		if _, ok := s.wireReplySafe(pkt, out, w); !ok {
			t.Fatalf("%s: not answered on the wire path", name)
		}
		if n := testing.AllocsPerRun(200, func() { s.wireReplySafe(pkt, out, w) }); n != 0 {
			t.Errorf("%s: %.1f allocations per answer, want 0", name, n)
		}
	}
	if w.noError == 0 || w.nxDomain == 0 {
		t.Fatalf("worker counted %d NOERROR and %d NXDOMAIN, want both", w.noError, w.nxDomain)
	}
}

// TestRawBatchAllocatesNothing: reading a batch from a real socket, queuing
// replies and sending them allocates nothing either.
func TestRawBatchAllocatesNothing(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	batch, err := newRawBatch(srv, udpBatch, maxUDPReply)
	if err != nil {
		t.Fatal(err)
	}
	query := hotQueries(t)["A"]
	reply := make([]byte, 64)
	got := make([]byte, 512)
	round := func() {
		for range 8 {
			if _, err := client.WriteTo(query, srv.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		for answered := 0; answered < 8; {
			n, err := batch.read()
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if pkt, _ := batch.packet(i); len(pkt) != len(query) {
					t.Fatalf("packet %d is %d bytes, want %d", i, len(pkt), len(query))
				}
				batch.reply(i, reply)
			}
			if err := batch.flush(); err != nil {
				t.Fatal(err)
			}
			answered += n
		}
		if err := client.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for range 8 {
			if n, _, err := client.ReadFrom(got); err != nil || n != len(reply) {
				t.Fatalf("reply: %d bytes, %v; want %d bytes", n, err, len(reply))
			}
		}
	}
	round() // the netpoller's first wait sets up its own state
	// The client's WriteTo and ReadFrom allocate their addresses; count
	// them alone and take them off.
	clientOnly := testing.AllocsPerRun(20, func() {
		for range 8 {
			if _, err := client.WriteTo(query, client.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		for range 8 {
			if _, _, err := client.ReadFrom(got); err != nil {
				t.Fatal(err)
			}
		}
	})
	if n := testing.AllocsPerRun(20, round) - clientOnly; n > 0 {
		t.Errorf("%.1f allocations per 8-query batch on the server side, want 0", n)
	}
}

// BenchmarkWireBatch answers a batch of 32 mixed queries (the dnsperf mix:
// 40 % A, 30 % SRV, 20 % instance A, 10 % NXDOMAIN) as a UDP worker does,
// without sockets: go test -run '^$' -bench WireBatch -benchmem ./mesosdns
func BenchmarkWireBatch(b *testing.B) {
	s, err := New(testConfig())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Update(benchTasks(), Master{}, nil); err != nil {
		b.Fatal(err)
	}
	var pkts [][]byte
	for i := range udpBatch {
		var m *dns.Msg
		switch app := (i * 37) % 200; {
		case i%10 < 4:
			m = new(dns.Msg).SetQuestion(fmt.Sprintf("app%d.flotilla.mesos.", app), dns.TypeA)
		case i%10 < 7:
			m = new(dns.Msg).SetQuestion(fmt.Sprintf("_app%d._tcp.flotilla.mesos.", app), dns.TypeSRV)
		case i%10 < 9:
			m = new(dns.Msg).SetQuestion(fmt.Sprintf("app%d-%d.flotilla.mesos.", app, i%5), dns.TypeA)
		default:
			m = new(dns.Msg).SetQuestion(fmt.Sprintf("nope%d.flotilla.mesos.", i), dns.TypeA)
		}
		pkt, err := m.Pack()
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, pkt)
	}
	w := newWireWorker(1, 0)
	outs := make([][]byte, udpBatch)
	for i := range outs {
		outs[i] = make([]byte, maxUDPReply)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, pkt := range pkts {
			if _, ok := s.wireReplySafe(pkt, outs[i], w); !ok {
				b.Fatalf("query %d not answered on the wire path", i)
			}
		}
		w.addTo(s.metrics)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*udpBatch), "ns/query")
}

// BenchmarkWireManyNames answers A, SRV and instance A queries for every
// app of a 5,000-app cluster in a shuffled order, so that the records come
// from memory rather than the cache, as under dnsperf's 100,000-query mix:
// go test -run '^$' -bench WireManyNames -benchmem ./mesosdns
func BenchmarkWireManyNames(b *testing.B) {
	s, err := New(testConfig())
	if err != nil {
		b.Fatal(err)
	}
	var tasks []Task
	for a := 0; a < 5000; a++ {
		for i := 0; i < 5; i++ {
			tasks = append(tasks, Task{ID: fmt.Sprintf("app%d.%d", a, i), Name: fmt.Sprintf("app%d", a), Published: true,
				IPs: []net.IP{net.IPv4(127, 3, byte(a>>8), byte(a))}, Ports: []Port{{Number: uint32(31000 + i)}}})
		}
	}
	if err := s.Update(tasks, Master{}, nil); err != nil {
		b.Fatal(err)
	}
	var pkts [][]byte
	for a := 0; a < 5000; a++ {
		for _, m := range []*dns.Msg{
			new(dns.Msg).SetQuestion(fmt.Sprintf("app%d.flotilla.mesos.", a), dns.TypeA),
			new(dns.Msg).SetQuestion(fmt.Sprintf("_app%d._tcp.flotilla.mesos.", a), dns.TypeSRV),
		} {
			pkt, err := m.Pack()
			if err != nil {
				b.Fatal(err)
			}
			pkts = append(pkts, pkt)
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
	w := newWireWorker(1, 0)
	out := make([]byte, maxUDPReply)
	for _, pkt := range pkts { // pack every name's records first
		if _, ok := s.wireReplySafe(pkt, out, w); !ok {
			b.Fatal("query not answered on the wire path")
		}
	}
	runtime.GC() // the set's building garbage, not the answers'
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.wireReplySafe(pkts[i], out, w)
		if i++; i == len(pkts) {
			i = 0
		}
	}
}
