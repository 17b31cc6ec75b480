package secrets

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Change says that the secret at Path moved from version From to To. It is
// app-agnostic: the framework maps paths to the apps that use them.
type Change struct {
	Path     string
	From, To int
}

func (c Change) String() string {
	return fmt.Sprintf("%s moved from version %d to %d", c.Path, c.From, c.To)
}

// Watcher polls the KV v2 version of every watched path and reports each
// change. KV v1 keeps no versions, so its paths are polled once, found to
// be version 0 and never reported: rotating a KV v1 secret needs an
// explicit restart. The first poll of a path only records its version.
type Watcher struct {
	b        Backend
	clock    clock.Clock
	interval time.Duration
	log      *logrus.Entry
	onChange func(Change)

	mu    sync.Mutex
	seen  map[string]int    // path → last version; -1 until first read
	fails map[string]string // path → last error text, to log each once
}

// NewWatcher polls b every interval; onChange runs on the polling
// goroutine, so it should hand off quickly (e.g. to a channel).
func NewWatcher(b Backend, clk clock.Clock, interval time.Duration, log *logrus.Entry, onChange func(Change)) *Watcher {
	return &Watcher{b: b, clock: clk, interval: interval, log: log, onChange: onChange,
		seen: map[string]int{}, fails: map[string]string{}}
}

// Set replaces the watched paths; paths kept keep their known version.
func (w *Watcher) Set(paths []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	next := make(map[string]int, len(paths))
	for _, p := range paths {
		if v, ok := w.seen[p]; ok {
			next[p] = v
		} else {
			next[p] = -1
		}
	}
	w.seen = next
	for p := range w.fails {
		if _, ok := next[p]; !ok {
			delete(w.fails, p)
		}
	}
}

// Poll reads every watched path once and reports changes. A path that
// cannot be read keeps its last version, so an outage reports nothing and
// the change shows up on the first poll after it.
func (w *Watcher) Poll(ctx context.Context) {
	w.mu.Lock()
	paths := make([]string, 0, len(w.seen))
	for p := range w.seen {
		paths = append(paths, p)
	}
	w.mu.Unlock()
	sort.Strings(paths)
	for _, p := range paths {
		if ctx.Err() != nil {
			return
		}
		ver, err := w.b.Version(ctx, p)
		w.mu.Lock()
		old, watched := w.seen[p]
		if !watched {
			w.mu.Unlock()
			continue
		}
		if err != nil {
			msg := err.Error()
			logIt := w.fails[p] != msg
			w.fails[p] = msg
			w.mu.Unlock()
			if logIt {
				w.log.WithField("path", p).WithError(err).Warn("cannot read secret version")
			}
			continue
		}
		delete(w.fails, p)
		w.seen[p] = ver
		w.mu.Unlock()
		if old >= 0 && ver != old {
			c := Change{Path: p, From: old, To: ver}
			w.log.WithFields(logrus.Fields{"path": p, "from": old, "to": ver}).Info("secret rotated")
			w.onChange(c)
		}
	}
}

// Run polls every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := w.clock.NewTicker(w.interval)
	defer t.Stop()
	w.Poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			w.Poll(ctx)
		}
	}
}
