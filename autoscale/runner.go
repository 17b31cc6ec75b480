package autoscale

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// RunnerConfig wires a Runner. Clock, Snapshot, Scaler and Sources are
// required.
type RunnerConfig struct {
	Clock clock.Clock
	// Snapshot gives the scheduler's current state: framework.Scheduler's
	// SnapshotByApp (the runner reads tasks app by app with TasksOf; a
	// Snapshot per evaluation copied every task, 22% of all bytes the
	// leader allocated with 100,000 tasks).
	Snapshot func() *framework.Snapshot
	// Scaler is the API's scale path.
	Scaler Scaler
	// Sources by metric name: appspec.AutoscaleCPU, AutoscaleMem,
	// AutoscaleRPS, AutoscalePrometheus. An app whose metric has no source
	// is held with RuleMissing.
	Sources map[string]Source
	// Leading, when set, gates evaluations: only the leader scales.
	Leading func() bool
	// Tick is how often due apps are looked for; default 1 s. Each app is
	// evaluated every its own interval.
	Tick time.Duration
	// Timeout bounds one app's collection and one scale call; default 10 s.
	Timeout time.Duration
	// LogSize is the decisions kept per app; default 100.
	LogSize int
	// OnDecision, when set, sees every decision (for events); it must not
	// block.
	OnDecision func(Decision)
	Log        *logrus.Entry
}

// Runner evaluates every autoscaled app at its interval and scales it
// through the Scaler.
type Runner struct {
	cfg  RunnerConfig
	apps map[string]*appState // owned by the Run goroutine

	mu   sync.Mutex
	logs map[string]*ring
}

type appState struct {
	policy    State
	next      time.Time
	values    map[string]float64
	sampledAt time.Time
	seen      bool
	done      bool
	deployed  time.Time
}

// forgetter is implemented by sources that keep per-app memory.
type forgetter interface{ Forget(appID string) }

// sampleConcurrency bounds how many apps are collected at once, so a
// cluster of slow agents cannot stall the loop for apps × timeout.
const sampleConcurrency = 8

// NewRunner checks cfg and applies defaults.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	switch {
	case cfg.Clock == nil:
		return nil, errors.New("autoscale: runner: no clock")
	case cfg.Snapshot == nil:
		return nil, errors.New("autoscale: runner: no snapshot func")
	case cfg.Scaler == nil:
		return nil, errors.New("autoscale: runner: no scaler")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.LogSize <= 0 {
		cfg.LogSize = 100
	}
	if cfg.Log == nil {
		cfg.Log = logging.Component(logging.Discard(), "autoscale")
	}
	return &Runner{cfg: cfg, apps: make(map[string]*appState), logs: make(map[string]*ring)}, nil
}

// Run evaluates until ctx ends; it returns ctx's error.
func (r *Runner) Run(ctx context.Context) error {
	t := r.cfg.Clock.NewTicker(r.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
			r.safeEvaluate(ctx)
		}
	}
}

// safeEvaluate keeps the loop alive across a panic in a source: losing
// autoscaling for every app over one bad page would be worse.
func (r *Runner) safeEvaluate(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			r.cfg.Log.WithField("panic", p).WithField("stack", string(debug.Stack())).Error("evaluation panicked")
		}
	}()
	r.evaluate(ctx)
}

// Log returns an app's decisions, oldest first.
func (r *Runner) Log(appID string) []Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.logs[appspec.CanonicalID(appID)]; ok {
		return l.list()
	}
	return nil
}

type due struct {
	app    *appspec.App
	st     *appState
	ready  []framework.Task
	sample Sample
	err    error
}

func (r *Runner) evaluate(ctx context.Context) {
	if r.cfg.Leading != nil && !r.cfg.Leading() {
		return
	}
	now := r.cfg.Clock.Now()
	snap := r.cfg.Snapshot()
	live := make(map[string]bool)
	var todo []*due
	for _, app := range snap.Apps {
		if app.Autoscale == nil {
			continue
		}
		live[app.ID] = true
		st := r.apps[app.ID]
		if st == nil {
			st = &appState{next: now}
			r.apps[app.ID] = st
		}
		r.trackDeployment(snap, app.ID, st, now)
		if now.Before(st.next) {
			continue
		}
		st.next = now.Add(ConfigFrom(app.Autoscale).Interval)
		var ready []framework.Task
		for _, t := range snap.TasksOf(app.ID) {
			if t.IsHealthy() && t.IsReady() && !t.Killing {
				ready = append(ready, t)
			}
		}
		todo = append(todo, &due{app: app, st: st, ready: ready})
	}
	r.forgetGone(live)

	sem := make(chan struct{}, sampleConcurrency)
	var wg sync.WaitGroup
	for _, d := range todo {
		src := r.cfg.Sources[d.app.Autoscale.Metric]
		if src == nil {
			d.err = fmt.Errorf("autoscale: no source for metric %q", d.app.Autoscale.Metric)
			continue
		}
		if len(d.ready) == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
			defer cancel()
			d.sample, d.err = src.Sample(sctx, d.app, d.ready)
		}()
	}
	wg.Wait()

	for _, d := range todo {
		r.decide(ctx, d, now)
	}
}

// trackDeployment notes when the app's deployment finished, the start of
// its cooldown. A leader that has just taken over does not know when the
// last one ended, so it counts from its first look: the safe side.
func (r *Runner) trackDeployment(snap *framework.Snapshot, appID string, st *appState, now time.Time) {
	status, ok := snap.StatusOf(appID)
	done := ok && status.Done
	if !st.seen || (done && !st.done) {
		st.deployed = now
	}
	st.seen, st.done = true, done
}

func (r *Runner) decide(ctx context.Context, d *due, now time.Time) {
	app, st := d.app, d.st
	log := r.cfg.Log.WithField("app", app.ID)
	if d.err != nil {
		log.WithError(d.err).Warn("metric collection incomplete")
	}
	if len(d.sample.Values) > 0 {
		st.values, st.sampledAt = d.sample.Values, now
	}
	var sum float64
	var n int
	for _, t := range d.ready {
		if v, ok := st.values[t.ID]; ok {
			sum += v
			n++
		}
	}
	in := Input{
		App: app.ID, Current: app.Instances, Ready: len(d.ready), Samples: n,
		SampledAt: st.sampledAt, Deploying: !st.done, DeployedAt: st.deployed,
	}
	if n > 0 {
		in.Metric = sum / float64(n)
	}
	dec, next := Decide(ConfigFrom(app.Autoscale), st.policy, in, now)
	st.policy = next
	if dec.Scaled {
		sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		err := r.cfg.Scaler.Scale(sctx, app.ID, dec.Desired)
		cancel()
		if err != nil {
			dec.Scaled, dec.Error = false, err.Error()
			log.WithError(err).WithField("instances", dec.Desired).Warn("scale failed")
		} else {
			// The scale starts a deployment; hold until the snapshot
			// shows it, rather than deciding again on the old count.
			st.done = false
			log.WithFields(logrus.Fields{"from": dec.Current, "to": dec.Desired, "metric": dec.Metric, "rule": dec.Rule}).Info("scaled")
		}
	}
	r.mu.Lock()
	l := r.logs[app.ID]
	if l == nil {
		l = newRing(r.cfg.LogSize)
		r.logs[app.ID] = l
	}
	l.add(dec)
	r.mu.Unlock()
	if r.cfg.OnDecision != nil {
		r.cfg.OnDecision(dec)
	}
}

// forgetGone drops the state of apps no longer autoscaled.
func (r *Runner) forgetGone(live map[string]bool) {
	for id := range r.apps {
		if live[id] {
			continue
		}
		delete(r.apps, id)
		for _, s := range r.cfg.Sources {
			if f, ok := s.(forgetter); ok {
				f.Forget(id)
			}
		}
		r.mu.Lock()
		delete(r.logs, id)
		r.mu.Unlock()
	}
}
