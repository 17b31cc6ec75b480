package framework

import (
	"cmp"
	"container/heap"
	"slices"
	"time"
)

// ---- what a step visits ----
//
// A step used to walk every app several times (decide, wake-ups, launch
// need, queue, status), so with 10,000 apps each status update cost
// 10,000 apps' worth of checks and launches ran at ~1/10th of the speed
// of 100 apps with as many tasks. These indexes let a step visit only
// the apps it has something to do for, in appList order (seq) as before:
//   - dirtyList: apps marked dirty since the last step (markDirty);
//   - statusList: apps whose status may have changed (markStatus);
//   - wakes: a heap of the apps with a time-driven wake-up (appWake),
//     kept by setWake wherever the fields it reads change;
//   - queued: the apps with instances to launch or a queue entry
//     published, the only ones the queue, launchable and offers look at.
// A launch lowers need without setWake (launch.go): that can only make
// an app's wake-up later than filed, and the step that follows every
// input visits the app early and files it again.
// TestStepIndexesEqualFull checks them against the full scans.

// markDirty marks an app for a decision at the next step.
func (c *core) markDirty(as *appState) {
	if !as.dirty {
		as.dirty = true
		c.dirtyList = append(c.dirtyList, as)
	}
}

// markStatus notes that an app's status may have changed; the step
// publishes it if it did.
func (c *core) markStatus(as *appState) {
	if !as.statusChanged {
		as.statusChanged = true
		c.statusList = append(c.statusList, as)
	}
}

// appWake is when an app must be looked at again with no input: its next
// time-driven decision, the end of its backoff while instances wait, or
// when a healthy task may reset its backoff. The name says which (the
// first of equal times, in that order).
func appWake(as *appState) (time.Time, string) {
	var at time.Time
	var why string
	add := func(t time.Time, name string) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at, why = t, name
		}
	}
	add(as.next, "decision")
	if as.need > 0 {
		add(as.backoffUntil, "backoff")
	}
	if as.failures > 0 {
		add(as.resetAt, "backoff reset")
	}
	return at, why
}

// setWake files an app's wake-up after a field appWake reads changed.
func (c *core) setWake(as *appState) {
	var at time.Time
	if !as.gone {
		at, _ = appWake(as)
	}
	switch {
	case at.IsZero():
		if as.wakeIdx > 0 {
			heap.Remove(&c.wakes, as.wakeIdx-1)
		}
	case as.wakeIdx > 0:
		if !at.Equal(as.wake) {
			as.wake = at
			heap.Fix(&c.wakes, as.wakeIdx-1)
		}
	default:
		as.wake = at
		heap.Push(&c.wakes, as)
	}
}

// wakeHeap orders apps by wake-up, then by seq (appList order), so that
// of equal times the one the full scan met first wins.
type wakeHeap []*appState

func (h wakeHeap) Len() int { return len(h) }
func (h wakeHeap) Less(i, j int) bool {
	if !h[i].wake.Equal(h[j].wake) {
		return h[i].wake.Before(h[j].wake)
	}
	return h[i].seq < h[j].seq
}
func (h wakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].wakeIdx, h[j].wakeIdx = i+1, j+1
}
func (h *wakeHeap) Push(x any) {
	as := x.(*appState)
	as.wakeIdx = len(*h) + 1
	*h = append(*h, as)
}
func (h *wakeHeap) Pop() any {
	old := *h
	as := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	as.wakeIdx = 0
	return as
}

// dueApps returns the apps a step must visit at now, in seq order: the
// dirty ones and those whose wake-up is due (taken off the heap; the
// visit files them again). The dirty list starts anew, so apps marked
// while the step runs wait for the next one, as they did in the scan.
func (c *core) dueApps(now time.Time) []*appState {
	due := c.dirtyList
	c.dirtyList = c.dueSpare[:0]
	for len(c.wakes) > 0 && !now.Before(c.wakes[0].wake) {
		due = append(due, heap.Pop(&c.wakes).(*appState))
	}
	slices.SortFunc(due, func(a, b *appState) int { return cmp.Compare(a.seq, b.seq) })
	return slices.Compact(due)
}

// putQueued adds an app that now has instances to launch to queued.
func (c *core) putQueued(as *appState) {
	if !as.queued && as.need > 0 {
		as.queued = true
		c.queued = append(c.queued, as)
		c.queuedSorted = false
	}
}

// queuedApps returns queued in seq order, without the apps that neither
// wait nor have a queue entry to withdraw.
func (c *core) queuedApps() []*appState {
	live := c.queued[:0]
	for _, as := range c.queued {
		if !as.gone && (as.need > 0 || as.queue.Count > 0) {
			live = append(live, as)
		} else {
			as.queued = false
		}
	}
	clear(c.queued[len(live):])
	c.queued = live
	if !c.queuedSorted {
		slices.SortFunc(c.queued, func(a, b *appState) int { return cmp.Compare(a.seq, b.seq) })
		c.queuedSorted = true
	}
	return c.queued
}
