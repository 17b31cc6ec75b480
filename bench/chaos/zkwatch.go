package main

import (
	"sort"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// leaderWatch splits a failover into ZooKeeper's part and Flotilla's: it
// watches the election's candidate znodes (directly on ZooKeeper, not
// through the replicas' proxy) and records when each one is deleted. A
// killed leader's znode goes when ZooKeeper expires its session — the
// session timeout after its last ping, rounded up to ZooKeeper's next
// tickTime — and the next candidate's watch fires then; what follows, to
// a write accepted, is Flotilla's.
type leaderWatch struct {
	conn    *zk.Conn
	mu      sync.Mutex
	deleted []time.Time
	stop    chan struct{}
	done    chan struct{}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func watchCandidates(addr, path string) (*leaderWatch, error) {
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietLogger{}))
	if err != nil {
		return nil, err
	}
	w := &leaderWatch{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(path)
	return w, nil
}

func (w *leaderWatch) run(path string) {
	defer close(w.done)
	var prev map[string]bool
	for {
		kids, _, ch, err := w.conn.ChildrenW(path)
		if err != nil {
			select { // ZooKeeper restarted (the zk fault), or the path not made yet
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		now := time.Now()
		cur := make(map[string]bool, len(kids))
		for _, k := range kids {
			cur[k] = true
		}
		w.mu.Lock()
		for k := range prev {
			if !cur[k] {
				w.deleted = append(w.deleted, now)
			}
		}
		w.mu.Unlock()
		prev = cur
		select {
		case <-w.stop:
			return
		case <-ch:
		}
	}
}

// deletedAfter is the first candidate deletion at or after t.
func (w *leaderWatch) deletedAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.deleted {
		if !d.Before(t) {
			return d, true
		}
	}
	return time.Time{}, false
}

func (w *leaderWatch) close() {
	close(w.stop)
	w.conn.Close()
	<-w.done
}

// splitOf records one kill's split (Result.ZKExpiry, Result.Takeover).
func (h *harness) splitOf(killedAt time.Time, took time.Duration) {
	if h.candidates == nil {
		return
	}
	del, ok := h.candidates.deletedAfter(killedAt)
	if !ok || del.After(killedAt.Add(took)) {
		return
	}
	h.res.ZKExpiry = append(h.res.ZKExpiry, del.Sub(killedAt))
	h.res.Takeover = append(h.res.Takeover, killedAt.Add(took).Sub(del))
}

func p50max(ds []time.Duration) (p50, max time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)-1]
}
