package framework

import (
	"context"
	"time"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Follower keeps a leader-side view of the scheduler built from its event
// bus (package readiness's and package health's trackers): Reset rebuilds
// it from a snapshot — at the start, and after the subscription lost
// events — and Event applies one event.
type Follower interface {
	Reset(snap *Snapshot, now time.Time)
	Event(ev Event, now time.Time)
}

// EventsOf returns s's Subscribe as an events function when s has one
// (a *Scheduler does), for configs that take one.
func EventsOf(s any) (events func(buffer int) (<-chan Event, func()), ok bool) {
	sub, ok := s.(interface{ Subscribe(int) *Subscription })
	if !ok {
		return nil, false
	}
	return func(n int) (<-chan Event, func()) {
		s := sub.Subscribe(n)
		return s.C, s.Close
	}, true
}

// FollowLoop is one follower's loop: its view, where its events and
// snapshots come from, and what it does on each tick and with each
// result of the work it started.
type FollowLoop[R any] struct {
	Events   func(buffer int) (<-chan Event, func())
	Snapshot func() *Snapshot
	Clock    clock.Clock
	Tick     time.Duration
	View     Follower
	// OnTick starts what is due (probes); their results come back on
	// Results and are handed to OnResult, in the loop.
	OnTick   func(now time.Time)
	Results  <-chan R
	OnResult func(R)
}

// Run follows the scheduler until ctx ends or the events stop.
func (l FollowLoop[R]) Run(ctx context.Context) error {
	events, stop := l.Events(4096)
	defer stop()
	l.View.Reset(l.Snapshot(), l.Clock.Now())
	tick := l.Clock.NewTicker(l.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if ev.Type == EventLagged {
				l.View.Reset(l.Snapshot(), l.Clock.Now())
				continue
			}
			l.View.Event(ev, l.Clock.Now())
		case r := <-l.Results:
			l.OnResult(r)
		case <-tick.C():
			l.OnTick(l.Clock.Now())
		}
	}
}
