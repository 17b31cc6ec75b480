package mesosdns

import (
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkHandlePacket measures the UDP path from raw query to packed reply,
// without sockets: go test -run '^$' -bench HandlePacket ./mesosdns
func BenchmarkHandlePacket(b *testing.B) {
	s, err := New(testConfig())
	if err != nil {
		b.Fatal(err)
	}
	var tasks []Task
	for a := 0; a < 200; a++ {
		for i := 0; i < 5; i++ {
			tasks = append(tasks, Task{ID: fmt.Sprintf("app%d.%d", a, i), Name: fmt.Sprintf("app%d", a), Published: true,
				IPs: []net.IP{net.IPv4(127, 3, 0, byte(i+1))}, Ports: []Port{{Number: uint32(31000 + i)}}})
		}
	}
	if err := s.Update(tasks, Master{}, nil); err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", "app7.flotilla.mesos.", dns.TypeA},
		{"SRV", "_app7._tcp.flotilla.mesos.", dns.TypeSRV},
		{"NXDOMAIN", "nope.flotilla.mesos.", dns.TypeA},
	} {
		pkt, err := new(dns.Msg).SetQuestion(q.qname, q.qtype).Pack()
		if err != nil {
			b.Fatal(err)
		}
		out := make([]byte, dns.MaxMsgSize)
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				count := func(r []byte) { n += len(r) }
				s.handlePacket(pkt, loopbackClient, out, count, count)
			}
			if n == 0 {
				b.Fatal("no replies")
			}
		})
	}
}

func BenchmarkUpdate1000Tasks(b *testing.B) {
	s, err := New(testConfig())
	if err != nil {
		b.Fatal(err)
	}
	var tasks []Task
	for a := 0; a < 200; a++ {
		for i := 0; i < 5; i++ {
			tasks = append(tasks, Task{ID: fmt.Sprintf("app%d.%d", a, i), Name: fmt.Sprintf("app%d", a), Published: true,
				IPs: []net.IP{net.IPv4(127, 3, 0, byte(i+1))}, Ports: []Port{{Number: uint32(31000 + i)}}})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update(tasks, Master{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
