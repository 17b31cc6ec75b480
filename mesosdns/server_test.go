package mesosdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

const soa = "mesos. 60 IN SOA ns1.mesos. root.ns1.mesos. 0 60 600 86400 60"

func TestServeDNS(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []testCase{
		{name: "A of all instances", qname: "web.flotilla.mesos.", qtype: dns.TypeA, answer: []string{
			"web.flotilla.mesos. 60 IN A 127.0.0.1", "web.flotilla.mesos. 60 IN A 127.0.0.2"}},
		{name: "A under slave", qname: "web.flotilla.slave.mesos.", qtype: dns.TypeA, answer: []string{
			"web.flotilla.slave.mesos. 60 IN A 127.0.0.1", "web.flotilla.slave.mesos. 60 IN A 127.0.0.2"}},
		{name: "canonical instance name", qname: "web-e844k.flotilla.mesos.", qtype: dns.TypeA, answer: []string{
			"web-e844k.flotilla.mesos. 60 IN A 127.0.0.1"}},
		{name: "case insensitive", qname: "WEB.Flotilla.MESOS.", qtype: dns.TypeA, answer: []string{
			"web.flotilla.mesos. 60 IN A 127.0.0.1", "web.flotilla.mesos. 60 IN A 127.0.0.2"}},
		{name: "SRV tcp, one target per port, glue in extra", qname: "_web._tcp.flotilla.mesos.", qtype: dns.TypeSRV,
			answer: []string{
				"_web._tcp.flotilla.mesos. 60 IN SRV 0 0 31000 web-e844k.flotilla.slave.mesos.",
				"_web._tcp.flotilla.mesos. 60 IN SRV 0 0 31002 web-izm16.flotilla.slave.mesos."},
			extra: []string{
				"web-e844k.flotilla.slave.mesos. 60 IN A 127.0.0.1",
				"web-izm16.flotilla.slave.mesos. 60 IN A 127.0.0.2"}},
		{name: "SRV udp", qname: "_web._udp.flotilla.mesos.", qtype: dns.TypeSRV,
			answer: []string{"_web._udp.flotilla.mesos. 60 IN SRV 0 0 31001 web-e844k.flotilla.slave.mesos."},
			extra:  []string{"web-e844k.flotilla.slave.mesos. 60 IN A 127.0.0.1"}},
		{name: "SRV under slave", qname: "_web._udp.flotilla.slave.mesos.", qtype: dns.TypeSRV,
			answer: []string{"_web._udp.flotilla.slave.mesos. 60 IN SRV 0 0 31001 web-e844k.flotilla.slave.mesos."},
			extra:  []string{"web-e844k.flotilla.slave.mesos. 60 IN A 127.0.0.1"}},
		{name: "named port", qname: "_http._web._tcp.flotilla.mesos.", qtype: dns.TypeSRV,
			answer: []string{"_http._web._tcp.flotilla.mesos. 60 IN SRV 0 0 31000 web-e844k.flotilla.slave.mesos."},
			extra:  []string{"web-e844k.flotilla.slave.mesos. 60 IN A 127.0.0.1"}},
		{name: "sanitised dotted name", qname: "api-v2-shop.flotilla.mesos.", qtype: dns.TypeA,
			answer: []string{"api-v2-shop.flotilla.mesos. 60 IN A 127.0.0.1"}},
		{name: "AAAA for IPv6 agent", qname: "v6.flotilla.mesos.", qtype: dns.TypeAAAA,
			answer: []string{"v6.flotilla.mesos. 60 IN AAAA fd00::6"}},
		{name: "A of v6-only name is NODATA", qname: "v6.flotilla.mesos.", qtype: dns.TypeA, ns: []string{soa}},
		{name: "unpublished task is absent", qname: "hidden.flotilla.mesos.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "unpublished task has no SRV", qname: "_hidden._tcp.flotilla.mesos.", qtype: dns.TypeSRV,
			rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "unknown name NXDOMAIN with SOA", qname: "nope.flotilla.mesos.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "empty non-terminal is NODATA", qname: "flotilla.mesos.", qtype: dns.TypeA, ns: []string{soa}},
		{name: "leader", qname: "leader.mesos.", qtype: dns.TypeA, answer: []string{"leader.mesos. 60 IN A 127.0.0.10"}},
		{name: "all masters", qname: "master.mesos.", qtype: dns.TypeA, answer: []string{
			"master.mesos. 60 IN A 127.0.0.10", "master.mesos. 60 IN A 127.0.0.11"}},
		{name: "masterN", qname: "master1.mesos.", qtype: dns.TypeA, answer: []string{"master1.mesos. 60 IN A 127.0.0.11"}},
		{name: "leader SRV", qname: "_leader._tcp.mesos.", qtype: dns.TypeSRV,
			answer: []string{"_leader._tcp.mesos. 60 IN SRV 0 0 5050 leader.mesos."},
			extra:  []string{"leader.mesos. 60 IN A 127.0.0.10"}},
		{name: "SOA", qname: "mesos.", qtype: dns.TypeSOA, answer: []string{soa}},
		{name: "NS with glue", qname: "mesos.", qtype: dns.TypeNS,
			answer: []string{"mesos. 60 IN NS ns1.mesos."}, extra: []string{"ns1.mesos. 60 IN A 127.0.0.1"}},
		{name: "ANY", qname: "web-izm16.flotilla.mesos.", qtype: dns.TypeANY,
			answer: []string{"web-izm16.flotilla.mesos. 60 IN A 127.0.0.2"}},
		{name: "outside name from an external client is refused", qname: "example.com.", qtype: dns.TypeA,
			rcode: dns.RcodeRefused, edit: nil},
		{name: "non-IN class refused", qname: "web.flotilla.mesos.", qtype: dns.TypeA, rcode: dns.RcodeRefused,
			edit: func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }},
		{name: "not a query", qname: "web.flotilla.mesos.", qtype: dns.TypeA, rcode: dns.RcodeNotImplemented,
			edit: func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }},
		{name: "EDNS0 answer", qname: "leader.mesos.", qtype: dns.TypeA, answer: []string{"leader.mesos. 60 IN A 127.0.0.10"},
			edit: func(m *dns.Msg) { m.SetEdns0(4096, true) }},
		{name: "unknown EDNS version", qname: "leader.mesos.", qtype: dns.TypeA, rcode: dns.RcodeBadVers,
			edit: func(m *dns.Msg) { m.SetEdns0(4096, false); m.IsEdns0().SetVersion(1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// 192.0.2.1 is not loopback: the default AllowForward refuses it.
			resp := serve(s, tc.msg(), "192.0.2.1")
			tc.check(t, resp)
			if tc.rcode != dns.RcodeRefused && tc.rcode != dns.RcodeNotImplemented && tc.rcode != dns.RcodeBadVers && !resp.Authoritative {
				t.Errorf("answer for our own zone is not authoritative")
			}
		})
	}
}

func TestEDNS0Echo(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		edns    bool
		wantOPT bool
	}{{"with EDNS0", true, true}, {"without EDNS0", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := new(dns.Msg).SetQuestion("web.flotilla.mesos.", dns.TypeA)
			if tc.edns {
				m.SetEdns0(1400, false)
			}
			resp := serve(s, m, "127.0.0.1")
			if got := resp.IsEdns0() != nil; got != tc.wantOPT {
				t.Fatalf("OPT in reply = %v, want %v", got, tc.wantOPT)
			}
			if tc.wantOPT && resp.IsEdns0().UDPSize() != advertisedUDPSize {
				t.Errorf("advertised UDP size %d, want %d", resp.IsEdns0().UDPSize(), advertisedUDPSize)
			}
		})
	}
}

func TestNotReadyBeforeFirstUpdate(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	tc := testCase{qname: "web.flotilla.mesos.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure}
	tc.check(t, serve(s, tc.msg(), "127.0.0.1"))
}

func TestRecordLifecycle(t *testing.T) {
	t.Parallel()
	web := func(id, ip string, published bool) Task {
		return Task{ID: id, Name: "web", IPs: []net.IP{net.ParseIP(ip)}, Ports: []Port{{Number: 31000}}, Published: published}
	}
	for _, tc := range []struct {
		name  string
		steps [][]Task
		want  testCase
	}{
		{
			name:  "scale down removes the instance",
			steps: [][]Task{{web("w1", "127.0.0.1", true), web("w2", "127.0.0.2", true)}, {web("w1", "127.0.0.1", true)}},
			want: testCase{qname: "web.flotilla.mesos.", qtype: dns.TypeA,
				answer: []string{"web.flotilla.mesos. 60 IN A 127.0.0.1"}},
		},
		{
			name:  "unhealthy instance disappears from SRV",
			steps: [][]Task{{web("w1", "127.0.0.1", true), web("w2", "127.0.0.2", true)}, {web("w1", "127.0.0.1", true), web("w2", "127.0.0.2", false)}},
			want: testCase{qname: "_web._tcp.flotilla.mesos.", qtype: dns.TypeSRV,
				answer: []string{"_web._tcp.flotilla.mesos. 60 IN SRV 0 0 31000 web-" + hashID("w1") + ".flotilla.slave.mesos."},
				extra:  []string{"web-" + hashID("w1") + ".flotilla.slave.mesos. 60 IN A 127.0.0.1"}},
		},
		{
			name:  "last instance gone means NXDOMAIN",
			steps: [][]Task{{web("w1", "127.0.0.1", true)}, {}},
			want: testCase{qname: "web.flotilla.mesos.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
				ns: []string{soa}},
		},
		{
			name:  "task becomes published",
			steps: [][]Task{{web("w1", "127.0.0.1", false)}, {web("w1", "127.0.0.1", true)}},
			want: testCase{qname: "web.flotilla.mesos.", qtype: dns.TypeA,
				answer: []string{"web.flotilla.mesos. 60 IN A 127.0.0.1"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, testConfig())
			for _, step := range tc.steps {
				if err := s.Update(step, Master{}, nil); err != nil {
					t.Fatal(err)
				}
			}
			tc.want.check(t, serve(s, tc.want.msg(), "127.0.0.1"))
		})
	}
}

func TestFailedUpdateKeepsOldSet(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	before := s.Records()
	bad := append(tasks[:1:1], tasks[0]) // duplicate id
	err := s.Update(bad, leader, masters)
	if !errors.Is(err, ErrDuplicateTask) {
		t.Fatalf("Update error = %v, want ErrDuplicateTask", err)
	}
	if s.Records() != before {
		t.Fatalf("record set replaced after a failed build")
	}
	tc := testCase{qname: "api-v2-shop.flotilla.mesos.", qtype: dns.TypeA,
		answer: []string{"api-v2-shop.flotilla.mesos. 60 IN A 127.0.0.1"}}
	tc.check(t, serve(s, tc.msg(), "127.0.0.1"))
	if got := counterValue(t, reg, "flotilla_dns_updates_total", "error"); got != 1 {
		t.Errorf("updates_total{result=error} = %v, want 1", got)
	}
}

func TestSOASerialIncreases(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	var last uint32
	for i := 0; i < 3; i++ { // the fake clock does not move: serials still grow
		if err := s.Update(nil, Master{}, nil); err != nil {
			t.Fatal(err)
		}
		if got := s.Records().Serial(); got <= last {
			t.Fatalf("serial %d after %d", got, last)
		} else {
			last = got
		}
	}
}

func TestFreshnessHistogram(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	cfg := testConfig()
	cfg.Clock = clk
	s := newTestServer(t, cfg)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	task := Task{ID: "w1", Name: "web", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Published: true, Observed: t0}

	clk.Step(250 * time.Millisecond)
	if err := s.Update([]Task{task}, Master{}, nil); err != nil {
		t.Fatal(err)
	}
	count, sum := histogram(t, reg, "flotilla_dns_record_freshness_seconds")
	if count != 1 || sum < 0.2499 || sum > 0.2501 {
		t.Fatalf("freshness count=%d sum=%v, want 1 sample of 0.25 s", count, sum)
	}
	// The same task in the next snapshot is not newly served.
	clk.Step(time.Second)
	if err := s.Update([]Task{task}, Master{}, nil); err != nil {
		t.Fatal(err)
	}
	if count, _ := histogram(t, reg, "flotilla_dns_record_freshness_seconds"); count != 1 {
		t.Fatalf("freshness count=%d after an unchanged update, want 1", count)
	}
	// Unhealthy, then healthy again: a new observation.
	task.Published = false
	if err := s.Update([]Task{task}, Master{}, nil); err != nil {
		t.Fatal(err)
	}
	task.Published, task.Observed = true, clk.Now()
	clk.Step(10 * time.Millisecond)
	if err := s.Update([]Task{task}, Master{}, nil); err != nil {
		t.Fatal(err)
	}
	count, sum = histogram(t, reg, "flotilla_dns_record_freshness_seconds")
	if count != 2 || sum < 0.2599 || sum > 0.2601 {
		t.Fatalf("freshness count=%d sum=%v, want 2 samples summing 0.26 s", count, sum)
	}
}

func gather(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	h := gather(t, reg, name).GetMetric()[0].GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	for _, m := range gather(t, reg, name).GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestUpstreams(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.53\nnameserver 127.0.0.1\noptions ndots:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		configured []string
		self       []string
		want       []string
		wantErr    error
	}{
		{name: "from resolv.conf", want: []string{"127.0.0.53:53", "127.0.0.1:53"}},
		{name: "own address skipped", self: []string{"127.0.0.1:53"}, want: []string{"127.0.0.53:53"}},
		{name: "wildcard listener skips loopback on its port", self: []string{"0.0.0.0:53"}, want: nil},
		{name: "other port is not us", self: []string{"127.0.0.1:8600"}, want: []string{"127.0.0.53:53", "127.0.0.1:53"}},
		{name: "configured win, bare IP means 53", configured: []string{"127.0.0.9", "[::1]:5353"}, want: []string{"127.0.0.9:53", "[::1]:5353"}},
		{name: "names are rejected", configured: []string{"dns.example:53"}, wantErr: ErrBadConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := upstreams(tc.configured, conf, tc.self)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("upstreams = %v, want %v", got, tc.want)
			}
		})
	}
}

// --- over real sockets on loopback ---

// startServer starts s on 127.0.0.1 with a free port and stops it with the test.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s.UDPAddr().String()
}

func exchange(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange: %v", network, err)
	}
	return resp
}

func TestTruncationAndTCPFallback(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	var tasks []Task
	for i := 0; i < 100; i++ {
		tasks = append(tasks, Task{ID: fmt.Sprintf("web.%d", i), Name: "web", Published: true,
			IPs: []net.IP{net.IPv4(127, 1, byte(i/250), byte(i%250+1))}, Ports: []Port{{Number: uint32(31000 + i)}}})
	}
	if err := s.Update(tasks, Master{}, nil); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	for _, tc := range []struct {
		name      string
		network   string
		qtype     uint16
		edns      uint16
		wantTC    bool
		wantCount int // exact count when not truncated
	}{
		{name: "udp 512 truncates A", network: "udp", qtype: dns.TypeA, wantTC: true},
		{name: "udp 512 truncates SRV", network: "udp", qtype: dns.TypeSRV, wantTC: true},
		{name: "udp edns 1232 truncates SRV", network: "udp", qtype: dns.TypeSRV, edns: 1232, wantTC: true},
		{name: "udp edns 4096 fits all A", network: "udp", qtype: dns.TypeA, edns: 4096, wantCount: 100},
		{name: "tcp has all A", network: "tcp", qtype: dns.TypeA, wantCount: 100},
		{name: "tcp has all SRV", network: "tcp", qtype: dns.TypeSRV, wantCount: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := "web.flotilla.mesos."
			if tc.qtype == dns.TypeSRV {
				q = "_web._tcp.flotilla.mesos."
			}
			m := new(dns.Msg).SetQuestion(q, tc.qtype)
			limit := 512
			if tc.edns != 0 {
				m.SetEdns0(tc.edns, false)
				limit = int(tc.edns)
			}
			c := &dns.Client{Net: tc.network, Timeout: 5 * time.Second, UDPSize: 65535}
			resp, _, err := c.Exchange(m, addr)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Truncated != tc.wantTC {
				t.Fatalf("TC = %v, want %v (%d answers)", resp.Truncated, tc.wantTC, len(resp.Answer))
			}
			if tc.wantTC {
				if len(resp.Answer) == 0 || len(resp.Answer) >= 100 {
					t.Errorf("truncated reply has %d answers, want some but not all", len(resp.Answer))
				}
				resp.Compress = true // as it was on the wire
				if resp.Len() > limit {
					t.Errorf("reply is %d bytes, over the client's %d", resp.Len(), limit)
				}
			} else if len(resp.Answer) != tc.wantCount {
				t.Errorf("%d answers, want %d", len(resp.Answer), tc.wantCount)
			}
		})
	}
}

func TestAnswersAreShuffled(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	var tasks []Task
	for i := 0; i < 5; i++ {
		tasks = append(tasks, Task{ID: fmt.Sprint(i), Name: "web", Published: true, IPs: []net.IP{net.IPv4(127, 0, 0, byte(i+1))}})
	}
	if err := s.Update(tasks, Master{}, nil); err != nil {
		t.Fatal(err)
	}
	first := map[string]int{}
	for i := 0; i < 50; i++ {
		resp := serve(s, new(dns.Msg).SetQuestion("web.flotilla.mesos.", dns.TypeA), "127.0.0.1")
		if len(resp.Answer) != 5 {
			t.Fatalf("%d answers, want 5", len(resp.Answer))
		}
		first[resp.Answer[0].(*dns.A).A.String()]++
	}
	if len(first) < 4 {
		t.Errorf("first answer took only %d distinct values in 50 queries: %v", len(first), first)
	}
}

// fakeUpstream is a DNS server on 127.0.0.1 that answers every A question
// with 192.0.2.1 after hold returns, and counts what it saw.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
}

func startUpstream(t *testing.T, network string, hold func()) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		if hold != nil {
			hold()
		}
		m := new(dns.Msg).SetReply(r)
		m.RecursionAvailable = true
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A: net.IPv4(192, 0, 2, 1)}}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.PacketConn, u.addr = pc, pc.LocalAddr().String()
	default:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener, u.addr = ln, ln.Addr().String()
	}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return u
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		network string
		allow   func(net.Addr) bool
		rcode   int
		answer  []string
		queries int64
	}{
		{name: "internal client over udp", network: "udp", answer: []string{"example.com. 30 IN A 192.0.2.1"}, queries: 1},
		{name: "internal client over tcp", network: "tcp", answer: []string{"example.com. 30 IN A 192.0.2.1"}, queries: 1},
		{name: "external client refused over udp", network: "udp", allow: func(net.Addr) bool { return false }, rcode: dns.RcodeRefused},
		{name: "external client refused over tcp", network: "tcp", allow: func(net.Addr) bool { return false }, rcode: dns.RcodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, tc.network, nil)
			cfg := testConfig()
			cfg.Upstreams = []string{up.addr}
			cfg.AllowForward = tc.allow
			s := newTestServer(t, cfg)
			if err := s.Update(nil, Master{}, nil); err != nil {
				t.Fatal(err)
			}
			addr := startServer(t, s)
			if tc.network == "tcp" {
				addr = s.TCPAddr().String()
			}
			want := testCase{qname: "example.com.", qtype: dns.TypeA, rcode: tc.rcode, answer: tc.answer}
			want.check(t, exchange(t, tc.network, addr, want.msg()))
			if got := up.queries.Load(); got != tc.queries {
				t.Errorf("upstream saw %d queries, want %d", got, tc.queries)
			}
		})
	}
}

func TestForwardDeadline(t *testing.T) {
	t.Parallel()
	// A UDP socket that never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	cfg := testConfig()
	cfg.Upstreams = []string{pc.LocalAddr().String()}
	cfg.ForwardTimeout = 200 * time.Millisecond
	s := newTestServer(t, cfg)
	addr := startServer(t, s)
	want := testCase{qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure}
	want.check(t, exchange(t, "udp", addr, want.msg()))
}

func TestConcurrencyCap(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	up := startUpstream(t, "udp", func() { arrived <- struct{}{}; <-release })
	cfg := testConfig()
	cfg.Upstreams = []string{up.addr}
	cfg.MaxInFlight = 2
	cfg.ForwardTimeout = 10 * time.Second
	s := newTestServer(t, cfg)
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	defer close(release)

	// Two forwarded queries take both slots and wait at the upstream.
	done := make(chan *dns.Msg, 2)
	for i := 0; i < 2; i++ {
		go func(i int) {
			c := &dns.Client{Timeout: 10 * time.Second}
			resp, _, err := c.Exchange(new(dns.Msg).SetQuestion(fmt.Sprintf("slow%d.example.", i), dns.TypeA), addr)
			if err != nil {
				t.Errorf("slow query: %v", err)
			}
			done <- resp
		}(i)
	}
	for i := 0; i < 2; i++ {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("forwarded queries did not reach the upstream")
		}
	}
	for _, tc := range []testCase{
		{name: "third forwarded query is refused a slot", qname: "fast.example.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "local udp answers need no slot", qname: "leader.mesos.", qtype: dns.TypeA,
			answer: []string{"leader.mesos. 60 IN A 127.0.0.10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, exchange(t, "udp", addr, tc.msg()))
		})
	}
	t.Run("tcp query is refused a slot", func(t *testing.T) {
		tc := testCase{qname: "leader.mesos.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure}
		tc.check(t, exchange(t, "tcp", s.TCPAddr().String(), tc.msg()))
	})
	if got := up.queries.Load(); got != 2 {
		t.Errorf("upstream saw %d queries, want 2", got)
	}
	release <- struct{}{}
	release <- struct{}{}
	for i := 0; i < 2; i++ {
		select {
		case resp := <-done:
			if resp == nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
				t.Errorf("slow query reply %v, want one answer", resp)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("slow queries never answered")
		}
	}
}

func TestMalformedPacketGetsFormErr(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	for _, tc := range []struct {
		name      string
		pkt       []byte
		wantReply bool
	}{
		{name: "header only, qdcount 1", pkt: []byte{0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}, wantReply: true},
		{name: "too short", pkt: []byte{0xab, 0xcd, 0x01}},
		{name: "a response is dropped", pkt: []byte{0xab, 0xcd, 0x81, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var replies [][]byte
			keep := func(b []byte) { replies = append(replies, append([]byte(nil), b...)) }
			s.handlePacket(tc.pkt, loopbackClient, make([]byte, dns.MaxMsgSize), keep, keep)
			if got := len(replies) == 1; got != tc.wantReply {
				t.Fatalf("replied = %v, want %v", got, tc.wantReply)
			}
			if tc.wantReply {
				m := new(dns.Msg)
				if err := m.Unpack(replies[0]); err != nil {
					t.Fatal(err)
				}
				if m.Id != 0xabcd || m.Rcode != dns.RcodeFormatError {
					t.Errorf("reply id=%x rcode=%s, want abcd FORMERR", m.Id, dns.RcodeToString[m.Rcode])
				}
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"addr without port", func(c *Config) { c.Addr = "127.0.0.1" }},
		{"upstream is a name", func(c *Config) { c.Upstreams = []string{"resolver.example:53"} }},
		{"domain with empty label", func(c *Config) { c.Domain = "a..mesos" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			tc.edit(&cfg)
			if _, err := New(cfg); !errors.Is(err, ErrBadConfig) {
				t.Errorf("New error = %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestStartShutdown(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testConfig())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.UDPAddr().(*net.UDPAddr).Port != s.TCPAddr().(*net.TCPAddr).Port {
		t.Errorf("udp %s and tcp %s ports differ", s.UDPAddr(), s.TCPAddr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := s.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Shutdown = %v, want ErrClosed", err)
	}
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("mesos.", dns.TypeSOA), s.UDPAddr().String()); err == nil {
		t.Errorf("server still answers after Shutdown")
	}
}

func TestServesIPv6Listener(t *testing.T) {
	t.Parallel()
	if ln, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	cfg := testConfig()
	cfg.Addr = "[::1]:0"
	s := newTestServer(t, cfg)
	tasks, leader, masters := fixture()
	if err := s.Update(tasks, leader, masters); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			tc := testCase{qname: "v6.flotilla.mesos.", qtype: dns.TypeAAAA, answer: []string{"v6.flotilla.mesos. 60 IN AAAA fd00::6"}}
			tc.check(t, exchange(t, network, addr, tc.msg()))
		})
	}
}
