package localmesos

import (
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func TestStreamOverflowDropsTheQueue(t *testing.T) {
	t.Parallel()
	s := newStream("id", codecs.ByMediaType[codecs.MediaTypeJSON], nil)
	ev := &scheduler.Event{Type: scheduler.Event_HEARTBEAT}
	for i := 0; i < maxQueued; i++ {
		s.send(ev)
	}
	if s.overflowed() {
		t.Fatal("overflowed at the limit")
	}
	s.send(ev)
	if !s.overflowed() {
		t.Fatal("not overflowed past the limit")
	}
	if q, _ := s.take(); len(q) != 0 {
		t.Fatalf("%d events kept after overflow, want the queue dropped", len(q))
	}
}

// TestHugeFailoverTimeout: a failover_timeout beyond time.Duration's range
// must mean "very long", not overflow into an immediate removal.
func TestHugeFailoverTimeout(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Unix(1700000000, 0))
	m, _ := startMaster(t, Config{Clock: fc, Agents: 1})
	f := subscribeRaw(t, m, `{"user":"root","name":"huge","failover_timeout":1e300}`)
	f.closeStream()
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.frameworks[f.id] != nil && m.frameworks[f.id].stream == nil
	})
	// An overflow to zero or less removes it inside the disconnect; one to
	// a short timeout would fire within a week of the clock, inside Step.
	armed := fc.Waiters()
	fc.Step(7 * 24 * time.Hour)
	m.mu.Lock()
	removed := m.removedFws[f.id]
	m.mu.Unlock()
	if removed || fc.Waiters() != armed {
		t.Fatalf("framework with failover_timeout 1e300: removed %v, timers armed %d then %d a week later", removed, armed, fc.Waiters())
	}
}
