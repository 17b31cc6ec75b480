package framework

import (
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// driveIdle moves the fake clock from wake-up to wake-up for d, as the
// loop's timer would, and syncs after each: the loop steps once per
// wake-up. It returns how many wake-ups that took. A wake-up that its own
// step leaves in the past would keep the real loop busy forever (a core
// at 100 %); here it shows as a wake-up that does not move, reported with
// its name and the state it saw.
func driveIdle(h *harness, d time.Duration, limit int) int {
	h.t.Helper()
	end := h.clk.Now().Add(d)
	var prev time.Time
	stuck := 0
	for n := 0; ; n++ {
		var next time.Time
		var why string
		h.s.locked(func(c *core, _ time.Time) { next, why = c.nextWakeWhy() })
		if next.IsZero() || next.After(end) {
			h.step(end.Sub(h.clk.Now()))
			return n
		}
		if !next.After(h.clk.Now()) && next.Equal(prev) {
			stuck++
		} else {
			stuck = 0
		}
		if stuck > 3 || n >= limit {
			h.t.Fatalf("after %d wake-ups the loop would not sleep: next wake-up %q at %v, now %v (%v before the end)",
				n, why, next.Format(time.RFC3339Nano), h.clk.Now().Format(time.RFC3339Nano), end.Sub(h.clk.Now()))
		}
		prev = next
		if next.After(h.clk.Now()) {
			h.clk.Set(next)
		}
		h.sync()
	}
}

// TestIdleLoopSleeps: with nothing changing, an hour of time costs the loop
// a few wake-ups (implicit reconciliation every 10 minutes, a revive
// throttle, offers' declines), not one per instant. Each case uses the
// defaults a real replica runs with (a 2 s settle after SUBSCRIBED, the
// revive throttle), which the other tests turn off.
func TestIdleLoopSleeps(t *testing.T) {
	t.Parallel()
	const hour, limit = time.Hour, 60
	defaults := func(c *Config) { c.ReconcileSettle = 0 }
	cases := []struct {
		name  string
		setup func(h *harness)
	}{
		{"no app", func(h *harness) { h.subscribe() }},
		{"one running app", func(h *harness) {
			h.s.PutApp(testApp("/web", 1))
			h.subscribe()
			driveIdle(h, 5*time.Second, limit) // past the settle
			if n := len(launchedIDs(h.offer("h1"))); n != 1 {
				t.Fatalf("launched %d, want 1", n)
			}
			h.runAll("/web")
		}},
		{"one app waiting for an offer that never fits", func(h *harness) {
			app := testApp("/big", 3)
			app.Constraints = [][]string{{"hostname", "UNIQUE"}}
			h.s.PutApp(app)
			h.subscribe()
			driveIdle(h, 5*time.Second, limit)
			if n := len(launchedIDs(h.offer("h1"))); n != 1 {
				t.Fatalf("launched %d, want 1", n)
			}
			h.runAll("/big")
			// Two more apps: the first revives, the second's revive is
			// throttled; an offer places both before the throttle ends, so
			// when it ends nothing more is wanted. Then the app that waits
			// is offered the same host again and refuses it.
			h.s.PutApp(testApp("/a", 1))
			h.sync()
			h.s.PutApp(testApp("/b", 1))
			h.sync()
			h.offer("h2")
			h.runAll("/a")
			h.runAll("/b")
			h.runAll("/big")
			h.offer("h1")
			if q := h.s.Snapshot().Queue; len(q) != 1 || q[0].AppID != "/big" || q[0].Count != 1 {
				t.Fatalf("queue %+v, want one instance of /big waiting", q)
			}
		}},
		{"every app deleted", func(h *harness) {
			h.s.PutApp(testApp("/web", 2))
			h.subscribe()
			driveIdle(h, 5*time.Second, limit)
			h.offer("h1")
			h.runAll("/web")
			if err := h.s.RemoveApp("/web"); err != nil {
				t.Fatal(err)
			}
			h.sync()
			for _, tk := range h.tasks("/web") {
				h.update(tk.ID, mesos.TASK_KILLED)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaults)
			tc.setup(h)
			n := driveIdle(h, hour, limit)
			t.Logf("%d wake-ups in an idle hour", n)
		})
	}
}
