package appspec

import (
	"math/rand"
	"regexp"
	"testing"
)

// idSegmentPattern is the rule of an app id's segment as a pattern: what
// validSegment implements without a regexp.
var idSegmentPattern = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`)

// TestValidSegmentAgreesWithPattern: validSegment answers what the pattern
// answers, for the edge cases and for 200,000 seeded random strings over
// an alphabet that hits every branch (letters, digits, '-', '.', and
// characters an id may not hold).
func TestValidSegmentAgreesWithPattern(t *testing.T) {
	t.Parallel()
	cases := []string{"", "a", "0", "-", ".", "a-", "-a", "a.", ".a", "a..b", "a-.b", "a.-b", "a-b", "a--b",
		"a.b", "web", "shop-api.v2", "Web", "a_b", "a b", "é", "a.b-c.d0"}
	rng := rand.New(rand.NewSource(21))
	const alphabet = "ab09-.-.A_/ "
	for range 200000 {
		b := make([]byte, rng.Intn(9))
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	valid := 0
	for _, s := range cases {
		want := idSegmentPattern.MatchString(s)
		if got := validSegment(s); got != want {
			t.Fatalf("validSegment(%q) = %v, the pattern says %v", s, got, want)
		}
		if want {
			valid++
		}
	}
	if valid < 1000 {
		t.Fatalf("only %d of %d strings were valid segments: the cases do not reach the accepting branches", valid, len(cases))
	}
}

// BenchmarkCheckID is CheckID on a task record's app id.
func BenchmarkCheckID(b *testing.B) {
	for b.Loop() {
		if err := CheckID("/prod/shop/web-frontend.v2"); err != nil {
			b.Fatal(err)
		}
	}
}
