package mesosdns

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// testCase is CoreDNS's test.Case: a question and the expected sections,
// with records as zone-file strings.
type testCase struct {
	name   string
	qname  string
	qtype  uint16
	rcode  int
	answer []string
	ns     []string
	extra  []string
	// edit changes the query before it is sent (EDNS0, class, opcode…).
	edit func(*dns.Msg)
}

func (tc testCase) msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(tc.qname, tc.qtype)
	if tc.edit != nil {
		tc.edit(m)
	}
	return m
}

// check compares sections after sorting, ignoring the OPT record and the SOA
// serial (which follows the clock).
func (tc testCase) check(t *testing.T, resp *dns.Msg) {
	t.Helper()
	if resp == nil {
		t.Fatalf("no response")
	}
	if resp.Rcode != tc.rcode {
		t.Errorf("rcode = %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
	}
	sectionEqual(t, "answer", resp.Answer, tc.answer)
	sectionEqual(t, "ns", resp.Ns, tc.ns)
	sectionEqual(t, "extra", resp.Extra, tc.extra)
}

func sectionEqual(t *testing.T, section string, got []dns.RR, want []string) {
	t.Helper()
	g := normalise(got)
	w := make([]dns.RR, 0, len(want))
	for _, s := range want {
		w = append(w, mustRR(t, s))
	}
	ws := normalise(w)
	if !slices.Equal(g, ws) {
		t.Errorf("%s section:\n got  %q\n want %q", section, g, ws)
	}
}

func normalise(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		rr = dns.Copy(rr)
		if soa, ok := rr.(*dns.SOA); ok {
			soa.Serial = 0
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("bad test record %q: %v", s, err)
	}
	return rr
}

// fakeWriter is a dns.ResponseWriter that records what is written.
type fakeWriter struct {
	remote net.Addr
	msgs   []*dns.Msg
	raw    [][]byte
}

func newUDPWriter(ip string) *fakeWriter {
	return &fakeWriter{remote: &net.UDPAddr{IP: net.ParseIP(ip), Port: 40000}}
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *fakeWriter) Write(b []byte) (int, error) {
	w.raw = append(w.raw, append([]byte(nil), b...))
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msgs = append(w.msgs, m)
	return len(b), nil
}
func (w *fakeWriter) Close() error        { return nil }
func (w *fakeWriter) TsigStatus() error   { return nil }
func (w *fakeWriter) TsigTimersOnly(bool) {}
func (w *fakeWriter) Hijack()             {}
func (w *fakeWriter) Network() string     { return w.remote.Network() }
func (w *fakeWriter) last() *dns.Msg {
	if len(w.msgs) == 0 {
		return nil
	}
	return w.msgs[len(w.msgs)-1]
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a small cluster: two instances of web, one of a dotted app, a
// v6-only task, an unpublished task, and two masters.
func fixture() ([]Task, Master, []Master) {
	tasks := []Task{
		{ID: "web.1", Name: "web", AgentHost: "h1", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Published: true,
			Ports: []Port{{Number: 31000, Protocol: "tcp", Name: "http"}, {Number: 31001, Protocol: "udp"}}},
		{ID: "web.2", Name: "web", AgentHost: "h2", IPs: []net.IP{net.ParseIP("127.0.0.2")}, Published: true,
			Ports: []Port{{Number: 31002}}},
		{ID: "api.1", Name: "API_v2.Shop", AgentHost: "h1", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Published: true},
		{ID: "v6.1", Name: "v6", AgentHost: "h6", IPs: []net.IP{net.ParseIP("fd00::6")}, Published: true},
		{ID: "hidden.1", Name: "hidden", AgentHost: "h1", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Published: false,
			Ports: []Port{{Number: 31005}}},
	}
	leader := Master{Host: "m1", IP: net.ParseIP("127.0.0.10"), Port: 5050}
	masters := []Master{leader, {Host: "m2", IP: net.ParseIP("127.0.0.11"), Port: 5050}}
	return tasks, leader, masters
}

func testConfig() Config {
	return Config{
		Addr:      "127.0.0.1:0",
		Upstreams: []string{"127.0.0.1:1"}, // never used unless a test says so
		Seed:      1,
		Clock:     clock.NewFake(t0),
		Log:       logging.Component(logging.Discard(), "mesosdns"),
	}
}

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// serve sends m through ServeDNS as if from a UDP client at ip.
func serve(s *Server, m *dns.Msg, ip string) *dns.Msg {
	w := newUDPWriter(ip)
	s.ServeDNS(w, m)
	return w.last()
}

var loopbackClient = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
