package offers

import (
	"strings"
	"testing"
)

func TestPlaceConstraints(t *testing.T) {
	t.Parallel()
	racks := []Offer{
		mkOffer("h1", 4, 4096, "rack=r1", "zone=a"),
		mkOffer("h2", 4, 4096, "rack=r1", "zone=b"),
		mkOffer("h3", 4, 4096, "rack=r2"),
		mkOffer("h4", 4, 4096, "rack=r2", "zone=a"),
	}
	three := racks[:3]
	cases := []struct {
		name         string
		offers       []Offer
		reqs         []Request
		placed       []Placed
		opt          Options
		wantHosts    []string
		wantUnplaced []string
		constraintNo int // offers declined with UnfulfilledConstraint for each unplaced request
	}{
		{
			name:         "UNIQUE hostname: 3 agents, 4 instances",
			offers:       three,
			reqs:         mkReqs("web", 4, 0.5, 128, []string{"hostname", "UNIQUE"}),
			wantHosts:    []string{"h1", "h2", "h3"},
			wantUnplaced: []string{"web.3"},
			constraintNo: 3,
		},
		{
			name:         "UNIQUE hostname counts running tasks",
			offers:       three,
			reqs:         mkReqs("web", 3, 0.5, 128, []string{"hostname", "UNIQUE"}),
			placed:       []Placed{{App: "web", Hostname: "h2"}},
			wantHosts:    []string{"h1", "h3"},
			wantUnplaced: []string{"web.2"},
			constraintNo: 3,
		},
		{
			name:      "UNIQUE ignores other apps' tasks",
			offers:    three,
			reqs:      mkReqs("web", 3, 0.5, 128, []string{"hostname", "UNIQUE"}),
			placed:    []Placed{{App: "db", Hostname: "h2"}, {App: "db", Hostname: "h1"}},
			wantHosts: []string{"h1", "h2", "h3"},
		},
		{
			name:      "UNIQUE holds under binpack",
			offers:    three,
			reqs:      mkReqs("web", 3, 0.5, 128, []string{"hostname", "UNIQUE"}),
			opt:       Options{Strategy: Binpack},
			wantHosts: []string{"h1", "h2", "h3"},
		},
		{
			name:         "UNIQUE rack: one per rack",
			offers:       racks,
			reqs:         mkReqs("web", 3, 0.5, 128, []string{"rack", "UNIQUE"}),
			wantHosts:    []string{"h1", "h3"},
			wantUnplaced: []string{"web.2"},
			constraintNo: 4,
		},
		{
			name:         "MAX_PER rack 3 over 2 racks",
			offers:       racks,
			reqs:         mkReqs("web", 8, 0.5, 128, []string{"rack", "MAX_PER", "3"}),
			wantHosts:    []string{"h1", "h1", "h2", "h3", "h3", "h4"},
			wantUnplaced: []string{"web.6", "web.7"},
			constraintNo: 4,
		},
		{
			name:      "GROUP_BY rack balances",
			offers:    racks,
			reqs:      mkReqs("web", 4, 0.5, 128, []string{"rack", "GROUP_BY", "2"}),
			wantHosts: []string{"h1", "h2", "h3", "h4"},
		},
		{
			name:      "GROUP_BY rack evens out running tasks",
			offers:    racks,
			reqs:      mkReqs("web", 4, 0.5, 128, []string{"rack", "GROUP_BY"}),
			placed:    []Placed{{App: "web", Hostname: "x", Attributes: map[string]string{"rack": "r1"}}, {App: "web", Hostname: "y", Attributes: map[string]string{"rack": "r1"}}},
			wantHosts: []string{"h1", "h3", "h3", "h4"},
		},
		{
			name:      "GROUP_BY under binpack still balances",
			offers:    racks,
			reqs:      mkReqs("web", 4, 0.5, 128, []string{"rack", "GROUP_BY", "2"}),
			opt:       Options{Strategy: Binpack},
			wantHosts: []string{"h1", "h1", "h3", "h3"},
		},
		{
			name:         "GROUP_BY waits for a group it cannot see",
			offers:       racks[:2], // only r1 offered; r2 already has 1 task
			reqs:         mkReqs("web", 3, 0.5, 128, []string{"rack", "GROUP_BY"}),
			placed:       []Placed{{App: "web", Hostname: "h3", Attributes: map[string]string{"rack": "r2"}}},
			wantHosts:    []string{"h1", "h2"}, // r1 may reach r2's 1, then one more while equal, not a third
			wantUnplaced: []string{"web.2"},
			constraintNo: 2,
		},
		{
			name:         "GROUP_BY 3 groups with 2 racks stops after one per rack",
			offers:       racks,
			reqs:         mkReqs("web", 3, 0.5, 128, []string{"rack", "GROUP_BY", "3"}),
			wantHosts:    []string{"h1", "h3"},
			wantUnplaced: []string{"web.2"},
			constraintNo: 4,
		},
		{
			name:         "CLUSTER rack r2",
			offers:       racks,
			reqs:         mkReqs("web", 3, 0.5, 128, []string{"rack", "CLUSTER", "r2"}),
			wantHosts:    []string{"h3", "h3", "h4"},
			wantUnplaced: nil,
		},
		{
			name:      "CLUSTER without value follows running tasks",
			offers:    racks,
			reqs:      mkReqs("web", 2, 0.5, 128, []string{"rack", "CLUSTER"}),
			placed:    []Placed{{App: "web", Hostname: "h4", Attributes: map[string]string{"rack": "r2"}}},
			wantHosts: []string{"h3", "h4"},
		},
		{
			name:      "CLUSTER without value and no tasks picks one value",
			offers:    racks,
			reqs:      mkReqs("web", 3, 0.5, 128, []string{"rack", "CLUSTER"}),
			wantHosts: []string{"h1", "h1", "h2"},
		},
		{
			name:         "LIKE hostname full match",
			offers:       racks,
			reqs:         mkReqs("web", 3, 0.5, 128, []string{"hostname", "LIKE", "h[12]"}, []string{"hostname", "UNIQUE"}),
			wantHosts:    []string{"h1", "h2"},
			wantUnplaced: []string{"web.2"},
			constraintNo: 4,
		},
		{
			name:         "LIKE is not a substring match",
			offers:       racks,
			reqs:         mkReqs("web", 1, 0.5, 128, []string{"hostname", "LIKE", "h"}),
			wantUnplaced: []string{"web.0"},
			constraintNo: 4,
		},
		{
			name:         "LIKE on a missing attribute fails",
			offers:       racks,
			reqs:         mkReqs("web", 4, 0.5, 128, []string{"zone", "LIKE", "a|b"}, []string{"hostname", "UNIQUE"}),
			wantHosts:    []string{"h1", "h2", "h4"},
			wantUnplaced: []string{"web.3"},
			constraintNo: 4,
		},
		{
			name:      "UNLIKE matches a missing attribute",
			offers:    racks,
			reqs:      mkReqs("web", 2, 0.5, 128, []string{"zone", "UNLIKE", "a"}, []string{"hostname", "UNIQUE"}),
			wantHosts: []string{"h2", "h3"},
		},
		{
			name:      "IS rack",
			offers:    racks,
			reqs:      mkReqs("web", 2, 0.5, 128, []string{"rack", "IS", "r1"}, []string{"hostname", "UNIQUE"}),
			wantHosts: []string{"h1", "h2"},
		},
		{
			name:      "IS compares scalars as numbers",
			offers:    []Offer{mkOffer("h1", 1, 1024, "gen=3"), mkOffer("h2", 1, 1024, "gen=4")},
			reqs:      mkReqs("web", 1, 0.5, 128, []string{"gen", "IS", "4.0"}),
			wantHosts: []string{"h2"},
		},
		{
			name:      "two apps count separately",
			offers:    three,
			reqs:      append(mkReqs("a", 3, 0.5, 128, []string{"hostname", "UNIQUE"}), mkReqs("b", 3, 0.5, 128, []string{"hostname", "UNIQUE"})...),
			wantHosts: []string{"h1", "h1", "h2", "h2", "h3", "h3"},
		},
		{
			name:         "hand-built constraint with a bad regex refuses every offer",
			offers:       three,
			reqs:         []Request{{ID: "x", App: "x", CPUs: 0.1, Constraints: []Constraint{{Field: "hostname", Operator: "LIKE", Value: "("}}}},
			wantUnplaced: []string{"x"},
			constraintNo: 3,
		},
		{
			name:      "hand-built constraint without ParseConstraint works",
			offers:    three,
			reqs:      []Request{{ID: "x", App: "x", CPUs: 0.1, Constraints: []Constraint{{Field: "hostname", Operator: "LIKE", Value: "h3"}}}},
			wantHosts: []string{"h3"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Place(tc.offers, tc.reqs, tc.placed, tc.opt)
			mustEqual(t, "hosts", hostsOf(res), tc.wantHosts)
			mustEqual(t, "unplaced", unplacedIDs(res), tc.wantUnplaced)
			for _, id := range tc.wantUnplaced {
				if got := declined(res.Unplaced[id], UnfulfilledConstraint); got != tc.constraintNo {
					t.Errorf("%s: UnfulfilledConstraint declined %d, want %d (%+v)", id, got, tc.constraintNo, res.Unplaced[id])
				}
			}
		})
	}
}

func TestParseConstraint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      []string
		wantErr string // substring; "" = valid
	}{
		{"unique", []string{"hostname", "UNIQUE"}, ""},
		{"alias", []string{"*hostname", "UNIQUE"}, ""},
		{"cluster no value", []string{"rack", "CLUSTER"}, ""},
		{"cluster value", []string{"rack", "CLUSTER", "r1"}, ""},
		{"group_by", []string{"rack", "GROUP_BY"}, ""},
		{"group_by n", []string{"rack", "GROUP_BY", "3"}, ""},
		{"like", []string{"rack", "LIKE", "r[0-9]+"}, ""},
		{"max_per", []string{"rack", "MAX_PER", "2"}, ""},
		{"is", []string{"rack", "IS", "r1"}, ""},
		{"max_per without value", []string{"rack", "MAX_PER"}, `constraint ["rack","MAX_PER"]: MAX_PER needs a value`},
		{"max_per not a number", []string{"rack", "MAX_PER", "two"}, `MAX_PER value "two" is not a positive integer`},
		{"max_per zero", []string{"rack", "MAX_PER", "0"}, "not a positive integer"},
		{"group_by bad", []string{"rack", "GROUP_BY", "-1"}, "GROUP_BY value \"-1\""},
		{"like without value", []string{"rack", "LIKE"}, "LIKE needs a regular expression"},
		{"unlike bad regex", []string{"rack", "UNLIKE", "r("}, `UNLIKE value "r(" is not a valid regular expression`},
		{"is without value", []string{"rack", "IS"}, "IS needs a value"},
		{"unique with value", []string{"hostname", "UNIQUE", "x"}, "UNIQUE takes no value"},
		{"unknown operator", []string{"rack", "NEAR"}, `unknown operator "NEAR"`},
		{"empty field", []string{"", "UNIQUE"}, "field is empty"},
		{"too short", []string{"rack"}, "got 1 elements"},
		{"too long", []string{"a", "IS", "b", "c"}, "got 4 elements"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConstraint(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseConstraint(%q): %v", tc.in, err)
				}
				if c.Operator != tc.in[1] || (c.Field != tc.in[0] && tc.in[0] != "*hostname") {
					t.Errorf("got %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseConstraint(%q) = %+v, want error containing %q", tc.in, c, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "offers: constraint [") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want prefix `offers: constraint [` and %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseConstraints(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      [][]string
		want    int
		wantErr string
	}{
		{"none", nil, 0, ""},
		{"two", [][]string{{"hostname", "UNIQUE"}, {"rack", "GROUP_BY", "3"}}, 2, ""},
		{"second bad", [][]string{{"hostname", "UNIQUE"}, {"rack", "MAX_PER"}}, 0, `offers: constraints[1] ["rack","MAX_PER"]: MAX_PER needs a value`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConstraints(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d constraints, %v; want %d", len(got), err, tc.want)
			}
		})
	}
}
