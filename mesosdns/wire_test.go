package mesosdns

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// wireZone is a generated cluster: apps with 1 to 40 instances (the big ones
// do not fit 512 bytes), IPv4, IPv6 and dual-stack agents, tcp, udp and
// named ports, masters. gen changes addresses, ports and membership so that
// successive snapshots differ.
func wireZone(gen int) ([]Task, Master, []Master) {
	rng := rand.New(rand.NewPCG(uint64(gen), 7))
	var tasks []Task
	for a := 0; a < 24; a++ {
		inst := 1 + a%6
		if a%8 == 7 {
			inst = 40
		}
		for i := 0; i < inst; i++ {
			if rng.IntN(10) == 0 {
				continue // some instances come and go between generations
			}
			agent := rng.IntN(30)
			var ips []net.IP
			switch a % 3 {
			case 0:
				ips = []net.IP{net.IPv4(127, 5, byte(agent), byte(gen+1))}
			case 1:
				ips = []net.IP{net.ParseIP(fmt.Sprintf("fd00::%x:%x", agent, gen+1))}
			default:
				ips = []net.IP{net.IPv4(127, 6, byte(agent), 1), net.ParseIP(fmt.Sprintf("fd00::6:%x", agent))}
			}
			ports := []Port{{Number: uint32(31000 + rng.IntN(1000))}}
			if a%4 == 1 {
				ports = append(ports, Port{Number: uint32(32000 + i), Protocol: "udp", Name: "Metrics"})
			}
			tasks = append(tasks, Task{ID: fmt.Sprintf("app%d.%d.g%d", a, i, gen), Name: fmt.Sprintf("App-%d", a),
				AgentHost: fmt.Sprintf("agent%d", agent), IPs: ips, Ports: ports, Published: true})
		}
	}
	leader := Master{Host: "m1", IP: net.IPv4(127, 0, 0, 10), Port: 5050}
	return tasks, leader, []Master{leader, {Host: "m2", IP: net.IPv4(127, 0, 0, 11), Port: 5050}}
}

// oddCase upper-cases every other letter of name, starting with the first.
func oddCase(name string) string {
	b := []byte(name)
	up := true
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			if up {
				b[i] = c - 'a' + 'A'
			}
			up = !up
		}
	}
	return string(b)
}

// lowerOwners lower-cases the owner names of every record: the wire path
// writes answer owners as pointers to the question, so they echo its case
// (as Knot and BIND do), where the dns.Msg path writes them lower-case; so
// do the SOA's names, compressed against the origin in the question.
// DNS names compare case-insensitively (RFC 4343). It also clears the
// records' Rdlength, which is how the data was written on the wire, not
// what it says: the wire path compresses the SOA's names where the dns.Msg
// path does not. Everything else must be the same.
func lowerOwners(m *dns.Msg) {
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			rr.Header().Name = strings.ToLower(rr.Header().Name)
			rr.Header().Rdlength = 0
			if soa, ok := rr.(*dns.SOA); ok { // its names point into the question too
				soa.Ns, soa.Mbox = strings.ToLower(soa.Ns), strings.ToLower(soa.Mbox)
			}
		}
	}
}

// TestWirePathMatchesSlowPath asks two servers with the same seed the same
// queries, one with the wire path and one with the dns.Msg path only, for
// every name and type of a generated zone in three generations of records
// (the wire server's packed answers are warm when the records change), in
// lower and odd case, with and without EDNS0 at several sizes, and checks
// that the replies say the same thing: same header, question (the client's
// case), records in the same order (the shuffle draws are the same), same
// truncation. It also checks that the wire path did answer the queries it is
// for, and that its replies fit the client's size.
func TestWirePathMatchesSlowPath(t *testing.T) {
	t.Parallel()
	// The default zone, and one of two labels (the SOA's names are
	// compressed against the origin, whatever its length).
	for _, domain := range []string{"", "DC1.example"} {
		t.Run("domain="+domain, func(t *testing.T) {
			t.Parallel()
			cfg := func() Config { c := testConfig(); c.Domain = domain; return c }
			wirePathMatchesSlowPath(t, newTestServer(t, cfg()), newTestServer(t, cfg()))
		})
	}
}

func wirePathMatchesSlowPath(t *testing.T, wire, slow *Server) {
	slow.msgPathOnly = true
	origin := wire.cfg.Domain + "."
	out := make([]byte, dns.MaxMsgSize)
	ask := func(s *Server, pkt []byte) (*dns.Msg, int) {
		var got [][]byte
		keep := func(b []byte) { got = append(got, append([]byte(nil), b...)) }
		s.handlePacket(pkt, loopbackClient, out, keep, keep)
		if len(got) != 1 {
			t.Fatalf("%d replies, want 1", len(got))
		}
		m := new(dns.Msg)
		if err := m.Unpack(got[0]); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		return m, len(got[0])
	}
	type ednsCase struct {
		size uint16 // 0: no EDNS
		do   bool
		opts []dns.EDNS0
	}
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"}
	padding := &dns.EDNS0_PADDING{Padding: make([]byte, 13)}
	nsid := &dns.EDNS0_NSID{Code: dns.EDNS0NSID}
	ednsCases := []ednsCase{{0, false, nil}, {512, false, nil}, {1232, true, nil}, {4096, false, nil}, {65535, true, nil}, {100, false, nil},
		{1232, false, []dns.EDNS0{cookie}}, {4096, true, []dns.EDNS0{cookie, padding}}, {1232, false, []dns.EDNS0{nsid}}}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeNS, dns.TypeANY}
	for gen := 0; gen < 3; gen++ {
		for _, s := range []*Server{wire, slow} {
			tasks, leader, masters := wireZone(gen)
			if err := s.Update(tasks, leader, masters); err != nil {
				t.Fatal(err)
			}
			// Both servers stamp serials from their own fake clocks, which
			// start equal; moving them keeps the SOA changing with the
			// records.
			s.cfg.Clock.(*clock.Fake).Step(time.Hour)
		}
		var names []string
		for name := range wire.Records().names {
			names = append(names, name)
		}
		slices.Sort(names)
		names = append(names, "nope.flotilla."+origin, "app-1-zzzzz.flotilla.slave."+origin, "a.b.c."+origin)
		var asked, byWire, truncated, fullWire int
		for _, name := range names {
			for _, qname := range []string{name, oddCase(name)} {
				for _, qtype := range types {
					for _, e := range ednsCases {
						q := new(dns.Msg).SetQuestion(qname, qtype)
						q.Id = uint16(asked)
						q.CheckingDisabled = asked%3 == 0
						q.RecursionDesired = asked%2 == 0
						// Bits a reply does not copy: both paths must drop them.
						q.AuthenticatedData, q.Zero, q.Truncated = asked%5 == 0, asked%7 == 0, asked%11 == 0
						if e.size != 0 {
							q.SetEdns0(e.size, e.do)
							opt := q.IsEdns0()
							opt.Option = e.opts
						}
						pkt, err := q.Pack()
						if err != nil {
							t.Fatal(err)
						}
						asked++
						label := fmt.Sprintf("gen %d, %s %s, edns %d do %v options %v", gen, qname, dns.TypeToString[qtype], e.size, e.do, e.opts)
						if _, ok := wire.wireReply(pkt, make([]byte, dns.MaxMsgSize)); ok {
							byWire++
							// wireReply shuffles; keep the slow server's draws in step.
							if n := len(wire.Records().names[strings.ToLower(qname)].answers(qtype)); n > 1 {
								slow.rng.Shuffle(n, func(int, int) {})
							}
						}
						got, size := ask(wire, pkt)
						want, _ := ask(slow, pkt)
						limit := dns.MinMsgSize
						if e.size != 0 {
							limit = min(max(int(e.size), dns.MinMsgSize), maxUDPReply)
						}
						if size > limit {
							t.Errorf("%s: reply is %d bytes, over the client's %d", label, size, limit)
						}
						if want.Truncated {
							truncated++
						}
						lowerOwners(got)
						lowerOwners(want)
						if want.Truncated && !got.Truncated {
							// miekg/dns compresses names only where the case
							// matches, so with an odd-case question the
							// dns.Msg path can need more room than the wire
							// path: the wire path then sends everything, and
							// the dns.Msg path's records are its first ones.
							fullWire++
							full := len(wire.Records().names[strings.ToLower(qname)].answers(qtype))
							if len(got.Answer) != full || !isPrefix(want.Answer, got.Answer) || !isPrefix(want.Ns, got.Ns) ||
								!isPrefix(withoutOPT(want.Extra), withoutOPT(got.Extra)) {
								t.Fatalf("%s: the wire path's untruncated reply is not the whole answer the dns.Msg path truncated\nwire:\n%s\nmsg:\n%s", label, got, want)
							}
							want.Truncated, want.Answer, want.Ns, want.Extra = false, got.Answer, got.Ns, got.Extra
						}
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("%s: wire path and dns.Msg path differ\nwire:\n%s\nmsg:\n%s", label, got, want)
						}
						if got.Question[0].Name != qname {
							t.Fatalf("%s: question echoed as %q", label, got.Question[0].Name)
						}
					}
				}
			}
		}
		// The wire path must carry the A/AAAA/SRV queries that fit and all
		// NXDOMAINs that fit: about half of this mix.
		if byWire < asked/3 || truncated == 0 {
			t.Fatalf("gen %d: %d of %d queries took the wire path, %d truncated by the dns.Msg path: the test no longer covers both paths", gen, byWire, asked, truncated)
		}
		t.Logf("gen %d: %d queries, %d by the wire path, %d truncated by the dns.Msg path (%d of them whole on the wire path)", gen, asked, byWire, truncated, fullWire)
	}
}

func isPrefix(short, long []dns.RR) bool {
	return len(short) <= len(long) && reflect.DeepEqual(short, long[:len(short)])
}

func withoutOPT(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// answers is the answer records of n for qtype, for the tests.
func (n *node) answers(qtype uint16) []dns.RR {
	if n == nil {
		return nil
	}
	switch qtype {
	case dns.TypeA:
		return n.a
	case dns.TypeAAAA:
		return n.aaaa
	case dns.TypeSRV:
		return n.srv
	}
	return nil
}

// TestWirePathOverUDP asks a started server over a real socket: an odd-case
// query is answered from the packed records with the question echoed, the
// owner pointing at it, the SRV glue pointing at the targets; after Update
// the new records are served, not the packed old ones.
func TestWirePathOverUDP(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	startServer(t, s)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	addr := s.UDPAddr().String()
	q := new(dns.Msg).SetQuestion("_WEB._Tcp.FlotillA.mesos.", dns.TypeSRV)
	resp, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Answer) != 2 || len(resp.Extra) != 2 || !resp.Authoritative || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("want 2 SRV and 2 glue, authoritative NOERROR, got:\n%s", resp)
	}
	for _, rr := range resp.Answer {
		if rr.Header().Name != "_WEB._Tcp.FlotillA.mesos." {
			t.Errorf("answer owner %q, want the question's spelling", rr.Header().Name)
		}
	}
	targets := map[string]bool{}
	for _, rr := range resp.Answer {
		targets[rr.(*dns.SRV).Target] = true
	}
	for _, rr := range resp.Extra {
		if !targets[rr.Header().Name] {
			t.Errorf("glue %s is not for a target of %v", rr, targets)
		}
	}
	// Warm the web A answer, change web's address, ask again.
	a := new(dns.Msg).SetQuestion("web.flotilla.mesos.", dns.TypeA)
	if resp, _, err = c.Exchange(a, addr); err != nil || len(resp.Answer) != 2 {
		t.Fatalf("web A before the change: %v\n%v", err, resp)
	}
	tasks[0].IPs = []net.IP{net.ParseIP("127.0.0.99")}
	tasks[1].Published = false
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	if resp, _, err = c.Exchange(a, addr); err != nil {
		t.Fatal(err)
	}
	if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "127.0.0.99" {
		t.Fatalf("after the update want only 127.0.0.99, got:\n%s", resp)
	}
}

// TestUDPSocketsShareOnePort starts a server with four SO_REUSEPORT sockets:
// they share one port, queries from many client sockets (spread over them
// by the kernel) are all answered on both paths (A from the packed records,
// ANY by the dns.Msg path, which needs the client's address made from the
// raw one), and a second server asking for the same port is refused, with
// one socket or several: SO_REUSEPORT never lets two servers share it.
func TestUDPSocketsShareOnePort(t *testing.T) {
	t.Parallel()
	if !reusePortSupported {
		t.Skip("SO_REUSEPORT sockets are only used on Linux")
	}
	cfg := testConfig()
	cfg.UDPSockets, cfg.UDPWorkers = 4, 4
	s := newTestServer(t, cfg)
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	if len(s.pcs) != 4 {
		t.Fatalf("%d UDP sockets, want 4", len(s.pcs))
	}
	for _, pc := range s.pcs {
		if pc.LocalAddr().String() != addr {
			t.Fatalf("socket on %s, want all on %s", pc.LocalAddr(), addr)
		}
	}
	errs := make(chan error, 64)
	for i := 0; i < 32; i++ {
		go func() {
			// A client socket of its own, so the kernel's hash spreads them.
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			for _, q := range []uint16{dns.TypeA, dns.TypeANY} {
				resp, _, err := c.Exchange(new(dns.Msg).SetQuestion("web.flotilla.mesos.", q), addr)
				switch {
				case err != nil:
					errs <- err
				case len(resp.Answer) < 2:
					errs <- fmt.Errorf("%s: %d answers, want at least 2:\n%s", dns.TypeToString[q], len(resp.Answer), resp)
				default:
					errs <- nil
				}
			}
		}()
	}
	for i := 0; i < 64; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, sockets := range []int{1, 4} {
		cfg := testConfig()
		cfg.Addr, cfg.UDPSockets, cfg.UDPWorkers = addr, sockets, 4
		other := newTestServer(t, cfg)
		if err := other.Start(); err == nil {
			_ = other.Shutdown(context.Background())
			t.Errorf("a second server with %d sockets started on %s, want address in use", sockets, addr)
		}
	}
}
