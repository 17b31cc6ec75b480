// Package clock injects time into logic so that windows, backoff and deadlines
// are tested by stepping time instead of sleeping (etcd raft's rule: no wall
// clock inside a core).
//
//	c := clock.NewFake(time.Unix(0, 0))
//	t := c.NewTimer(5 * time.Second)
//	c.Step(5 * time.Second) // t.C() fires now
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is the only source of time for Flotilla's logic.
type Clock interface {
	Now() time.Time
	// NewTimer fires once after d.
	NewTimer(d time.Duration) Timer
	// NewTicker fires every d until stopped.
	NewTicker(d time.Duration) Ticker
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is a repeating timer from a Clock.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Fake is a manually stepped clock for tests. Timers fire (non-blocking send on
// a buffered channel of one) when Step or Set moves time past their deadline.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeTimer
}

// NewFake returns a Fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Step moves time forward by d and fires every timer that is due.
func (f *Fake) Step(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves time to t (never backwards) and fires every timer that is due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	if t.Before(f.now) {
		f.mu.Unlock()
		return
	}
	f.now = t
	sort.Slice(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	var keep []*fakeTimer
	for _, w := range f.waiters {
		if w.at.After(t) {
			keep = append(keep, w)
			continue
		}
		select {
		case w.ch <- w.at:
		default:
		}
		if w.period > 0 {
			for !w.at.After(t) {
				w.at = w.at.Add(w.period)
			}
			keep = append(keep, w)
		}
	}
	f.waiters = keep
	f.mu.Unlock()
}

// Waiters reports how many timers and tickers are pending; tests use it to
// wait until a goroutine has armed its timer before stepping.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	return f.add(d, 0)
}

func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	return fakeTicker{f.add(d, d)}
}

type fakeTicker struct{ w *fakeTimer }

func (t fakeTicker) C() <-chan time.Time { return t.w.ch }
func (t fakeTicker) Stop()               { t.w.f.remove(t.w) }

func (f *Fake) add(d, period time.Duration) *fakeTimer {
	f.mu.Lock()
	w := &fakeTimer{f: f, ch: make(chan time.Time, 1), at: f.now.Add(d), period: period}
	f.mu.Unlock()
	if d <= 0 {
		w.ch <- f.Now()
		if period == 0 {
			return w
		}
	}
	f.mu.Lock()
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	return w
}

func (f *Fake) remove(w *fakeTimer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return true
		}
	}
	return false
}

type fakeTimer struct {
	f      *Fake
	ch     chan time.Time
	at     time.Time
	period time.Duration
}

func (w *fakeTimer) C() <-chan time.Time { return w.ch }
func (w *fakeTimer) Stop() bool          { return w.f.remove(w) }
func (w *fakeTimer) Reset(d time.Duration) bool {
	active := w.f.remove(w)
	nw := w.f.add(d, w.period)
	w.f.mu.Lock()
	// keep the caller's handle: move the new deadline into w
	for i, x := range w.f.waiters {
		if x == nw {
			w.at = nw.at
			w.f.waiters[i] = w
		}
	}
	w.f.mu.Unlock()
	if d <= 0 {
		select {
		case w.ch <- w.f.Now():
		default:
		}
	}
	return active
}
