package secrets

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// RotationLabel opts an app out of rolling restarts on rotation: with the
// value "off" its tasks keep the value they were launched with until the
// app is restarted by hand.
const RotationLabel = "FLOTILLA_SECRET_ROTATION"

// AppsUsing lists the ids of the apps that reference path and have not
// opted out of rotation, sorted. Pure.
func AppsUsing(apps []*appspec.App, path string) []string {
	var out []string
	for _, a := range apps {
		if a.Labels[RotationLabel] == "off" {
			continue
		}
		if slices.Contains(Paths(a), path) {
			out = append(out, a.ID)
		}
	}
	slices.Sort(out)
	return out
}

// Rotator restarts the apps that use a secret when the secret gets a new
// KV v2 version. Restart is the same rolling restart a user asks for, so
// tasks change over under the app's upgradeStrategy, never all at once.
type Rotator struct {
	Backend  Backend
	Resolver *Resolver // its cached value of a rotated path is dropped
	Apps     func() []*appspec.App
	Restart  func(ctx context.Context, appID string) error
	Interval time.Duration
	Clock    clock.Clock
	Log      *logrus.Entry
}

// Run polls until ctx ends: each round it watches the paths the current
// apps reference, then restarts the users of any path that moved.
func (r *Rotator) Run(ctx context.Context) error {
	var mu sync.Mutex
	var changed []Change
	w := NewWatcher(r.Backend, r.Clock, r.Interval, r.Log, func(c Change) {
		mu.Lock()
		changed = append(changed, c)
		mu.Unlock()
	})
	t := r.Clock.NewTicker(r.Interval)
	defer t.Stop()
	for {
		apps := r.Apps()
		var paths []string
		for _, a := range apps {
			paths = append(paths, Paths(a)...)
		}
		w.Set(paths)
		w.Poll(ctx)
		mu.Lock()
		todo := changed
		changed = nil
		mu.Unlock()
		for _, c := range todo {
			if r.Resolver != nil {
				r.Resolver.Invalidate(c.Path)
			}
			for _, id := range AppsUsing(apps, c.Path) {
				log := r.Log.WithFields(logrus.Fields{"app": id, "path": c.Path, "from": c.From, "to": c.To})
				if err := r.Restart(ctx, id); err != nil {
					log.WithError(err).Warn("secret rotated; restarting the app failed, will retry at the next change")
					continue
				}
				log.Info("secret rotated; rolling the app's tasks onto the new version")
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		}
	}
}
