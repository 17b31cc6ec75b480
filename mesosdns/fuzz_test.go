package mesosdns

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds raw packets through both entry points: the UDP packet
// path (our own parsing) and ServeDNS after dns.Msg.Unpack. Every reply must
// pack, carry the query's id and, over UDP, fit the client's buffer. Seeds:
// the queries below and testdata/fuzz/FuzzServeDNS (AXFR, CHAOS, EDNS sizes
// 1 and 65535, two questions, none, UPDATE, a 65,535-question header, a
// compression pointer to itself, …).
func FuzzServeDNS(f *testing.F) {
	cfg := testConfig()
	// Forwarding is answered in memory: fuzzing must not touch the network.
	cfg.Exchanger = ExchangerFunc(func(_ context.Context, m *dns.Msg, _, _ string) (*dns.Msg, error) {
		r := new(dns.Msg).SetReply(m)
		r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.IPv4(192, 0, 2, 1)}}
		return r, nil
	})
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	tasks, leader, masters := fixture()
	for i := 0; i < 60; i++ { // enough instances to need truncation
		tasks = append(tasks, Task{ID: "big." + string(rune('a'+i%26)) + string(rune('a'+i/26)), Name: "big", Published: true,
			IPs: []net.IP{net.IPv4(127, 2, 0, byte(i+1))}, Ports: []Port{{Number: uint32(1000 + i)}}})
	}
	if err := s.Update(tasks, leader, masters); err != nil {
		f.Fatal(err)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{
		{"web.flotilla.mesos.", dns.TypeA, 0},
		{"_big._tcp.flotilla.mesos.", dns.TypeSRV, 0},
		{"big.flotilla.mesos.", dns.TypeA, 1232},
		{"mesos.", dns.TypeANY, 4096},
		{"example.com.", dns.TypeA, 0},
		{"nope.flotilla.mesos.", dns.TypeAAAA, 512},
	} {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		if q.edns != 0 {
			m.SetEdns0(q.edns, true)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	out := make([]byte, dns.MaxMsgSize)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		req := new(dns.Msg)
		parsed := req.Unpack(pkt) == nil
		limit := dns.MinMsgSize
		if parsed {
			if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
				limit = min(int(opt.UDPSize()), maxUDPReply)
			}
		}
		// UDP path: replies for forwarded queries come from a goroutine.
		replies := make(chan []byte, 2)
		keep := func(b []byte) { replies <- append([]byte(nil), b...) }
		s.handlePacket(pkt, loopbackClient, out, keep, keep)
		s.forwards.Wait()
		close(replies)
		for b := range replies {
			if parsed && len(b) > limit {
				t.Fatalf("udp reply of %d bytes over the client's %d", len(b), limit)
			}
			checkReply(t, b, pkt)
		}
		if !parsed {
			return
		}
		w := newUDPWriter("127.0.0.1")
		s.ServeDNS(w, req)
		for _, b := range w.raw {
			if len(b) > limit {
				t.Fatalf("ServeDNS reply of %d bytes over the client's %d", len(b), limit)
			}
			checkReply(t, b, pkt)
		}
	})
}

func checkReply(t *testing.T, b, pkt []byte) {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	if len(pkt) >= 2 && m.Id != uint16(pkt[0])<<8|uint16(pkt[1]) {
		t.Fatalf("reply id %x for query id %x", m.Id, uint16(pkt[0])<<8|uint16(pkt[1]))
	}
	if !m.Response {
		t.Fatalf("reply without QR bit")
	}
}
