package localmesos

import (
	"testing"
	"time"

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
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, `{"user":"root","name":"huge","failover_timeout":1e300}`)
	f.closeStream()
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.frameworks[f.id] != nil && m.frameworks[f.id].stream == nil
	})
	time.Sleep(50 * time.Millisecond)
	m.mu.Lock()
	removed := m.removedFws[f.id]
	m.mu.Unlock()
	if removed {
		t.Fatal("framework with failover_timeout 1e300 removed at once")
	}
}
