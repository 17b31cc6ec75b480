package framework

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"
)

// nextWakeFullRef is nextWakeWhy as it was before the wake-up heap: every
// app scanned (the other wake-ups are the same code).
func (c *core) nextWakeFullRef() (time.Time, string) {
	var next time.Time
	var why string
	var whyApp *appState
	add := func(t time.Time, name string, as *appState) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next, why, whyApp = t, name, as
		}
	}
	c.addCoreWakes(add)
	for _, as := range c.appList {
		if as.gone {
			continue
		}
		add(as.next, "decision", as)
		if as.need > 0 {
			add(as.backoffUntil, "backoff", as)
		}
		if as.failures > 0 {
			add(as.resetAt, "backoff reset", as)
		}
	}
	if whyApp != nil {
		why = "app " + whyApp.id + ": " + why
	}
	return next, why
}

// launchableFullRef is launchable over every app.
func (c *core) launchableFullRef(now time.Time) (n int, demand bool) {
	for _, as := range c.appList {
		if as.gone || as.app == nil || as.need <= 0 {
			continue
		}
		demand = true
		if as.constraintsErr == nil && !now.Before(as.backoffUntil) {
			n += as.need
		}
	}
	if now.Before(c.settleUntil) {
		n = 0
	}
	return n, demand && now.Before(c.settleUntil)
}

// checkStepIndexes compares due.go's indexes with full scans of every app.
func (c *core) checkStepIndexes(now time.Time) error {
	if got, want := fmt.Sprint(c.nextWakeWhy()), fmt.Sprint(c.nextWakeFullRef()); got != want {
		return fmt.Errorf("next wake-up %s, a scan of every app says %s", got, want)
	}
	n, demand := c.launchableFullRef(now)
	if got := c.launchable(now); got != n {
		return fmt.Errorf("launchable %d, a scan of every app says %d", got, n)
	}
	if got := c.holdingWithDemand(now); got != demand {
		return fmt.Errorf("holdingWithDemand %v, a scan of every app says %v", got, demand)
	}
	for i, as := range c.wakes {
		if as.wakeIdx != i+1 {
			return fmt.Errorf("app %s at heap index %d says %d", as.id, i, as.wakeIdx-1)
		}
		if i > 0 && c.wakes.Less(i, (i-1)/2) {
			return fmt.Errorf("heap order broken at %d (%s)", i, as.id)
		}
	}
	for _, as := range c.appList {
		if as.gone {
			if as.wakeIdx != 0 {
				return fmt.Errorf("gone app %s still in the wake-up heap", as.id)
			}
			continue
		}
		at, _ := appWake(as)
		if at.IsZero() != (as.wakeIdx == 0) || (!at.IsZero() && !at.Equal(as.wake)) {
			return fmt.Errorf("app %s: wake-up %v, heap holds %v (index %d)", as.id, at, as.wake, as.wakeIdx-1)
		}
		if as.dirty != slices.Contains(c.dirtyList, as) {
			return fmt.Errorf("app %s: dirty %v but listed %v", as.id, as.dirty, !as.dirty)
		}
		if as.statusChanged != slices.Contains(c.statusList, as) {
			return fmt.Errorf("app %s: status changed %v but listed %v", as.id, as.statusChanged, !as.statusChanged)
		}
		if (as.need > 0 || as.queue.Count > 0) && !slices.Contains(c.queued, as) {
			return fmt.Errorf("app %s: need %d, queue count %d, not in queued", as.id, as.need, as.queue.Count)
		}
	}
	return nil
}

// TestStepIndexesEqualFull drives a scheduler through seeded random steps
// (apps put, scaled and removed, offers, failures and backoffs, health,
// kills, time passing past staging timeouts and backoff resets) and
// checks after each that what a step visits — dirty apps, due wake-ups,
// changed statuses, queued apps — covers what a scan of every app would
// act on, and that the wake-up, launchable count and demand equal the
// full scans'.
func TestStepIndexesEqualFull(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4, 5, 6} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) {
				c.BackoffResetAfter = 3 * time.Second
				c.StagingTimeout = 8 * time.Second
			})
			ops := newRandomOps(t, h, rand.New(rand.NewSource(seed)))
			h.subscribe()
			var appWakes, backoffs int
			for i := 0; i < 600; i++ {
				if !ops.do() {
					continue
				}
				h.sync()
				var err error
				h.s.locked(func(c *core, now time.Time) {
					err = c.checkStepIndexes(now)
					appWakes += min(len(c.wakes), 1)
					for _, as := range c.appList {
						if as.failures > 0 && !as.gone {
							backoffs++
						}
					}
				})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if appWakes < 50 || backoffs < 20 {
				t.Fatalf("the random steps armed an app wake-up %d times and held a backoff %d times: the check compared little", appWakes, backoffs)
			}
		})
	}
}
