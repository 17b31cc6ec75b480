package autoscale

import (
	"math/rand"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func cfg(mod func(*Config)) Config {
	c := Config{Min: 1, Max: 20, Target: 0.5, Tolerance: DefaultTolerance, Interval: 15 * time.Second,
		UpWindow: DefaultUpWindow, DownWindow: DefaultDownWindow}
	if mod != nil {
		mod(&c)
	}
	return c
}

// fresh is an input whose every ready task reported just now.
func fresh(current int, metric float64) Input {
	return Input{App: "/web", Current: current, Ready: current, Samples: current, Metric: metric, SampledAt: t0}
}

func TestDecideRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		in      Input
		desired int
		rule    string
	}{
		{"at target", cfg(nil), fresh(4, 0.5), 4, RuleTolerance},
		{"within tolerance above", cfg(nil), fresh(4, 0.54), 4, RuleTolerance},
		{"within tolerance below", cfg(nil), fresh(4, 0.46), 4, RuleTolerance},
		{"load doubles", cfg(nil), fresh(4, 1.0), 8, ""},
		{"capped at max", cfg(nil), fresh(4, 5.0), 20, RuleMax},
		{"raised to min", cfg(func(c *Config) { c.Min = 6 }), fresh(4, 0.5), 6, RuleMin},
		{"max step up", cfg(func(c *Config) { c.MaxStep = 2 }), fresh(4, 1.0), 6, RuleMaxStep},
		{"first drop held by down window", cfg(nil), fresh(4, 0.1), 4, RuleDownWindow},
		{"drop without window", cfg(func(c *Config) { c.DownWindow = time.Nanosecond }), fresh(4, 0.1), 1, ""},
		{"max step down", cfg(func(c *Config) { c.DownWindow = time.Nanosecond; c.MaxStep = 1 }), fresh(4, 0.1), 3, RuleMaxStep},
		{"missing metrics hold", cfg(nil), Input{App: "/web", Current: 4, Ready: 4, SampledAt: t0}, 4, RuleMissing},
		{"stale metrics hold", cfg(nil), Input{App: "/web", Current: 4, Ready: 4, Samples: 4, Metric: 0.1, SampledAt: t0.Add(-31 * time.Second)}, 4, RuleStale},
		{"stale metrics never scale up", cfg(nil), Input{App: "/web", Current: 4, Ready: 4, Samples: 4, Metric: 2, SampledAt: t0.Add(-31 * time.Second)}, 4, RuleStale},
		{"partial metrics never scale down", cfg(func(c *Config) { c.DownWindow = time.Nanosecond }), Input{App: "/web", Current: 4, Ready: 4, Samples: 2, Metric: 0.1, SampledAt: t0}, 4, RuleMissing},
		// Two of four report 1.0: the others count as idle, 4 × 0.5 = 4.
		{"partial metrics count missing as idle", cfg(nil), Input{App: "/web", Current: 4, Ready: 4, Samples: 2, Metric: 1.0, SampledAt: t0}, 4, RuleTolerance},
		{"partial metrics still scale up", cfg(nil), Input{App: "/web", Current: 4, Ready: 4, Samples: 2, Metric: 2.0, SampledAt: t0}, 8, ""},
		{"no ready tasks", cfg(nil), Input{App: "/web", Current: 4, SampledAt: t0}, 4, RuleNoReady},
		{"no ready tasks still min", cfg(func(c *Config) { c.Min = 2 }), Input{App: "/web", Current: 0}, 2, RuleMin},
		{"deploying", cfg(nil), func() Input { in := fresh(4, 2); in.Deploying = true; return in }(), 4, RuleDeploying},
		{"cooldown", cfg(func(c *Config) { c.Cooldown = time.Minute }), func() Input { in := fresh(4, 2); in.DeployedAt = t0.Add(-59 * time.Second); return in }(), 4, RuleCooldown},
		{"after cooldown", cfg(func(c *Config) { c.Cooldown = time.Minute }), func() Input { in := fresh(4, 2); in.DeployedAt = t0.Add(-61 * time.Second); return in }(), 16, ""},
		// Ready counts, not the configured instances: two of four ready at
		// 1.0 need four, which is what is configured.
		{"unready tasks left out", cfg(nil), Input{App: "/web", Current: 4, Ready: 2, Samples: 2, Metric: 1.0, SampledAt: t0}, 4, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Every case starts from a history at the current count, as an
			// app that has run steadily would have.
			st := State{Recs: []Rec{{At: t0.Add(-time.Minute), Desired: tc.in.Current}}}
			d, _ := Decide(tc.cfg, st, tc.in, t0)
			if d.Desired != tc.desired || d.Rule != tc.rule {
				t.Fatalf("desired %d rule %q, want %d %q (raw %d: %s)", d.Desired, d.Rule, tc.desired, tc.rule, d.Raw, d.Reason)
			}
			if d.Scaled != (d.Desired != tc.in.Current) {
				t.Errorf("scaled %v with current %d desired %d", d.Scaled, tc.in.Current, d.Desired)
			}
			if d.Reason == "" {
				t.Error("decision has no reason")
			}
		})
	}
}

func TestDecideDoesNotAliasState(t *testing.T) {
	t.Parallel()
	st := State{Recs: make([]Rec, 1, 8)}
	st.Recs[0] = Rec{At: t0, Desired: 4}
	_, next := Decide(cfg(nil), st, fresh(4, 1), t0.Add(time.Second))
	_, _ = Decide(cfg(nil), st, fresh(4, 0.1), t0.Add(time.Second))
	if len(next.Recs) != 2 || next.Recs[1].Desired != 8 {
		t.Fatalf("state changed behind its holder: %+v", next.Recs)
	}
}

// sim runs the policy against a load: the load is the total demand in
// units of the target, spread evenly over the ready tasks, and a scale
// takes effect by the next evaluation (its deployment finishes at once, no
// cooldown). It returns each evaluation's decision.
type sim struct {
	c       Config
	st      State
	now     time.Time
	current int
	rnd     *rand.Rand
	noise   float64 // relative, uniform in ±noise
}

func (s *sim) step(load float64) Decision {
	m := load / float64(s.current) * s.c.Target
	if s.noise > 0 {
		m *= 1 + s.noise*(2*s.rnd.Float64()-1)
	}
	in := fresh(s.current, m)
	in.SampledAt = s.now
	d, st := Decide(s.c, s.st, in, s.now)
	s.st = st
	s.current = d.Desired
	s.now = s.now.Add(s.c.Interval)
	return d
}

// reactionIntervals is the number of evaluations after a step from load
// from to load to until the app reaches want, counting the first
// evaluation that sees the new load as 1.
func reactionIntervals(t *testing.T, c Config, from, to float64, start, want int) (int, []Decision) {
	t.Helper()
	s := &sim{c: c, now: t0, current: start}
	for range 40 { // ten minutes at the old load
		s.step(from)
	}
	if s.current != start {
		t.Fatalf("steady load moved the app from %d to %d", start, s.current)
	}
	var log []Decision
	for i := 1; i <= 200; i++ {
		d := s.step(to)
		log = append(log, d)
		if s.current == want {
			return i, log
		}
	}
	t.Fatalf("never reached %d: %+v", want, log[len(log)-1])
	return 0, nil
}

func TestLoadStepScalesUpAtNextEvaluation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		from, to  float64
		start     int
		want      int
		intervals int
	}{
		{"double", cfg(nil), 4, 8, 4, 8, 1},
		{"tenfold capped", cfg(nil), 2, 20, 2, 20, 1},
		{"small step above tolerance", cfg(nil), 4, 4.6, 4, 5, 1},
		{"max step 2 takes two", cfg(func(c *Config) { c.MaxStep = 2 }), 4, 8, 4, 8, 2},
		{"up window of 30 s", cfg(func(c *Config) { c.UpWindow = 30 * time.Second }), 4, 8, 4, 8, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, _ := reactionIntervals(t, tc.cfg, tc.from, tc.to, tc.start, tc.want)
			if n != tc.intervals {
				t.Fatalf("reached %d after %d evaluations, want %d", tc.want, n, tc.intervals)
			}
		})
	}
}

func TestDropScalesDownOnlyAfterWindow(t *testing.T) {
	t.Parallel()
	for _, window := range []time.Duration{DefaultDownWindow, time.Minute} {
		t.Run(window.String(), func(t *testing.T) {
			t.Parallel()
			c := cfg(func(c *Config) { c.DownWindow = window })
			n, log := reactionIntervals(t, c, 8, 2, 8, 2)
			// The first low evaluation is at 0 s; the last high
			// recommendation leaves the window one window later.
			want := int(window/c.Interval) + 1
			if n != want {
				t.Fatalf("scaled down after %d evaluations, want %d", n, want)
			}
			for _, d := range log[:n-1] {
				if d.Scaled || d.Rule != RuleDownWindow {
					t.Fatalf("before the window ended: %+v", d)
				}
			}
		})
	}
}

// reversal is a scale in one direction followed by one in the other within
// the down-window: the flapping Marathon's add-ons were known for.
func countReversals(log []Decision, window time.Duration) (scales, reversals int) {
	var last *Decision
	for i := range log {
		d := &log[i]
		if !d.Scaled {
			continue
		}
		scales++
		if last != nil && (d.Desired > d.Current) != (last.Desired > last.Current) && d.At.Sub(last.At) < window {
			reversals++
		}
		last = d
	}
	return scales, reversals
}

func TestNoisyHourMakesNoReversals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		load    float64
		start   int
		noise   float64
		seed    int64
		maxMove int // scale events allowed
	}{
		{"4 at target ±8%", 4, 4, 0.08, 1, 0},
		{"10 at target ±8%", 10, 10, 0.08, 2, 0},
		{"1 at target ±8%", 1, 1, 0.08, 3, 0},
		// 4.3 on 4 tasks sits at 1.075 of target: noise crosses the
		// tolerance, so the app may grow once; it must not come back
		// within the window.
		{"4.3 on 4 ±8%", 4.3, 4, 0.08, 4, 10},
		{"3.35 on 3 ±8%", 3.35, 3, 0.08, 5, 10},
		// Noise beyond the tolerance: stabilisation alone must keep it calm.
		{"4 at target ±25%", 4, 4, 0.25, 6, 3},
		{"10 at target ±25%", 10, 10, 0.25, 7, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cfg(nil)
			s := &sim{c: c, now: t0, current: tc.start, rnd: rand.New(rand.NewSource(tc.seed)), noise: tc.noise}
			var log []Decision
			for range int(time.Hour / c.Interval) {
				log = append(log, s.step(tc.load))
			}
			scales, rev := countReversals(log, c.DownWindow)
			t.Logf("%s: %d evaluations, %d scale events, %d reversals within %v", tc.name, len(log), scales, rev, c.DownWindow)
			if rev != 0 {
				t.Errorf("%d reversals within the window", rev)
			}
			if scales > tc.maxMove {
				t.Errorf("%d scale events, want at most %d", scales, tc.maxMove)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	c := cfg(nil)
	s := &sim{c: c, now: t0, current: 10, rnd: rand.New(rand.NewSource(1)), noise: 0.08}
	for b.Loop() {
		s.step(10)
	}
}
