package mesosdns

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLabel(t *testing.T) {
	t.Parallel()
	long := "a123456789b123456789c123456789d123456789e123456789f123456789g123456789"
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "web", "web"},
		{"upper", "Web", "web"},
		{"dots and underscores", "web.shop_prod", "web-shop-prod"},
		{"invalid characters vanish", "we$b!/x", "webx"},
		{"trim dashes", "--web--", "web"},
		{"marathon nested id", "/shop/prod/web", "shopprodweb"},
		{"only invalid", "$$$", ""},
		{"63 bytes max", long, long[:63]},
		{"cut on a dash refills from the rest", strings.Repeat("x", 62) + "-yz", strings.Repeat("x", 62) + "y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := label(tc.in); got != tc.want {
				t.Errorf("label(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := label(tc.in); len(got) > 63 || (got != "" && (got[0] == '-' || got[len(got)-1] == '-')) {
				t.Errorf("label(%q) = %q is not a valid label", tc.in, got)
			}
		})
	}
}

func TestDomainFragAndHash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"one label", "flotilla", "flotilla"},
		{"dotted", "Flotilla.Prod", "flotilla.prod"},
		{"empty labels dropped", "a..$$.b", "a.b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := domainFrag(tc.in); got != tc.want {
				t.Errorf("domainFrag(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	// Values computed independently (Python: zbase32 of SHA-1, first 5).
	for id, want := range map[string]string{"web.1": "e844k", "web.2": "izm16", "api.1": "793n9"} {
		if got := hashID(id); got != want {
			t.Errorf("hashID(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestBuildRecordsErrors(t *testing.T) {
	t.Parallel()
	tasks, leader, masters := fixture()
	for _, tc := range []struct {
		name    string
		cfg     Config
		tasks   []Task
		wantErr error
		skipped []string
	}{
		{name: "duplicate id", tasks: append(tasks, tasks[0]), wantErr: ErrDuplicateTask},
		{name: "bad domain", cfg: Config{Domain: "a..b"}, wantErr: ErrBadConfig},
		{name: "bad framework", cfg: Config{Framework: "$$"}, wantErr: ErrBadConfig},
		{name: "bad tasks are skipped, not fatal", tasks: []Task{
			{ID: "a", Name: "$$", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Published: true},
			{ID: "b", Name: "b", Published: true},
			{ID: "c", Name: "c", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Ports: []Port{{Number: 70000}}, Published: true},
			{ID: "d", Name: "d", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Ports: []Port{{Number: 1, Protocol: "sctp"}}, Published: true},
			{ID: "e", Name: "e", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Published: true},
		}, skipped: []string{"a", "b", "c", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs, err := BuildRecords(tc.cfg, tc.tasks, leader, masters)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var got []string
			for _, s := range rs.Skipped() {
				got = append(got, s.TaskID)
			}
			if len(got) != len(tc.skipped) {
				t.Fatalf("skipped %v, want %v", got, tc.skipped)
			}
			for i := range got {
				if got[i] != tc.skipped[i] {
					t.Errorf("skipped %v, want %v", got, tc.skipped)
				}
			}
			if len(rs.Lookup("e.flotilla.mesos.", dns.TypeA)) != 1 {
				t.Errorf("good task e has no A record next to skipped ones")
			}
		})
	}
}

func TestBuildRecordsConfigurableNames(t *testing.T) {
	t.Parallel()
	tasks := []Task{{ID: "web.1", Name: "web", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Ports: []Port{{Number: 80}}, Published: true}}
	rs, err := BuildRecords(Config{Domain: "Corp.Example.", Framework: "Fleet.Prod", TTL: 5}, tasks, Master{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		want  string
	}{
		{"a", "web.fleet.prod.corp.example.", dns.TypeA, "web.fleet.prod.corp.example. 5 IN A 127.0.0.1"},
		{"srv", "_web._tcp.fleet.prod.corp.example.", dns.TypeSRV, "_web._tcp.fleet.prod.corp.example. 5 IN SRV 0 0 80 web-e844k.fleet.prod.slave.corp.example."},
		{"soa", "corp.example.", dns.TypeSOA, "corp.example. 5 IN SOA ns1.corp.example. root.ns1.corp.example. 1 5 600 86400 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sectionEqual(t, tc.name, rs.Lookup(tc.qname, tc.qtype), []string{tc.want})
		})
	}
}

func TestRRsIsTheWholeSet(t *testing.T) {
	t.Parallel()
	tasks, leader, masters := fixture()
	rs, err := BuildRecords(Config{}, tasks, leader, masters)
	if err != nil {
		t.Fatal(err)
	}
	rrs := rs.RRs()
	if len(rrs) != rs.Len() {
		t.Fatalf("RRs has %d records, Len says %d", len(rrs), rs.Len())
	}
	if rrs[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("first record is %s, want the SOA", rrs[0])
	}
	// Every record can be found again by Lookup.
	for _, rr := range rrs {
		if len(rs.Lookup(rr.Header().Name, rr.Header().Rrtype)) == 0 {
			t.Errorf("%s not found by Lookup", rr)
		}
	}
}

// TestIncrementalEqualsFullBuild drives a server through random snapshots
// (instances added, removed, unhealthy, moved, renamed into collisions) and
// checks after each update that the set it serves, built incrementally,
// equals a build from scratch of the same snapshot.
func TestIncrementalEqualsFullBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		seed uint64
		// names the apps are drawn from; "web-e844k" collides with the
		// canonical name of web's task web.1 and forces the fallback.
		names []string
	}{
		{name: "distinct apps", seed: 1, names: []string{"web", "api", "db", "cache", "Shop.Front"}},
		{name: "apps sharing a sanitised name", seed: 2, names: []string{"web", "Web", "web_x", "web.x"}},
		{name: "name collision with an instance", seed: 3, names: []string{"web", "web-e844k", "api"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			s := newTestServer(t, testConfig())
			tasks := map[string]Task{}
			for step := 0; step < 300; step++ {
				id := fmt.Sprintf("web.%d", rng.IntN(12))
				switch rng.IntN(4) {
				case 0:
					delete(tasks, id)
				default:
					tasks[id] = Task{ID: id, Name: tc.names[rng.IntN(len(tc.names))], Published: rng.IntN(5) > 0,
						IPs:      []net.IP{net.IPv4(127, 0, 0, byte(1+rng.IntN(3)))},
						Ports:    []Port{{Number: uint32(31000 + rng.IntN(3)), Protocol: []string{"tcp", "udp"}[rng.IntN(2)], Name: []string{"", "http"}[rng.IntN(2)]}},
						Observed: t0.Add(time.Duration(step) * time.Millisecond)}
				}
				snap := slices.Collect(maps.Values(tasks))
				leader := Master{IP: net.IPv4(127, 0, 0, byte(10+rng.IntN(2))), Port: 5050}
				if err := s.Update(snap, leader, []Master{leader}); err != nil {
					t.Fatal(err)
				}
				full, err := BuildRecords(s.cfg, snap, leader, []Master{leader})
				if err != nil {
					t.Fatal(err)
				}
				got := s.Records()
				if g, w := zone(got), zone(full); !slices.Equal(g, w) {
					t.Fatalf("step %d: incremental set differs from a full build:\n got  %q\n want %q", step, g, w)
				}
				if g, w := slices.Sorted(maps.Keys(got.names)), slices.Sorted(maps.Keys(full.names)); !slices.Equal(g, w) {
					t.Fatalf("step %d: names differ (empty non-terminals?):\n got  %q\n want %q", step, g, w)
				}
				if !maps.EqualFunc(got.published, full.published, time.Time.Equal) {
					t.Fatalf("step %d: published tasks differ", step)
				}
				if got.Len() != full.Len() {
					t.Fatalf("step %d: Len %d, full build %d", step, got.Len(), full.Len())
				}
				for _, name := range slices.Sorted(maps.Keys(full.names)) {
					for _, qt := range []uint16{dns.TypeSRV} {
						if g, w := normalise(got.names[name].glue), normalise(full.names[name].glue); !slices.Equal(g, w) {
							t.Fatalf("step %d: glue of %s %d differs: %q vs %q", step, name, qt, g, w)
						}
					}
				}
			}
		})
	}
}

func zone(rs *RecordSet) []string { return normalise(rs.RRs()) }
