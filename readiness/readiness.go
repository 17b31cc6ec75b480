package readiness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Scheduler is what the Checker needs of framework.Scheduler.
type Scheduler interface {
	Snapshot() *framework.Snapshot
	SetReadiness(taskID string, ready bool) error
}

// Config wires a Checker. Scheduler and Log are required.
type Config struct {
	Scheduler Scheduler
	Log       *logrus.Entry
	// Events subscribes to the scheduler's events; default the
	// Scheduler's own Subscribe when it has one (framework.Scheduler).
	Events func(buffer int) (events <-chan framework.Event, stop func())
	// Clock times the checks' intervals; default the real clock.
	Clock clock.Clock
	// Tick is how often due probes are looked for; default 100ms.
	Tick time.Duration
	// MaxInFlight bounds the probes running at once (a large deployment
	// must not open thousands of connections at the same moment); default
	// 64. The others wait for the next tick.
	MaxInFlight int
	// Transport carries the probes; default a fresh one that does not
	// verify HTTPS certificates (a readiness check asks whether the task
	// answers, not who it is; Marathon did not verify either).
	Transport http.RoundTripper
}

// Checker runs readiness checks for the leader's scheduler.
type Checker struct {
	cfg    Config
	client *http.Client
	done   chan result
}

type result struct {
	taskID string
	ready  bool
	detail string
}

// New checks cfg and returns a Checker; Run starts it.
func New(cfg Config) (*Checker, error) {
	if cfg.Scheduler == nil || cfg.Log == nil {
		return nil, errors.New("readiness: Config needs a Scheduler and a Log")
	}
	if cfg.Events == nil {
		var ok bool
		if cfg.Events, ok = framework.EventsOf(cfg.Scheduler); !ok {
			return nil, errors.New("readiness: Config needs Events, or a Scheduler with Subscribe")
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:               nil, // tasks are reached directly
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see Config.Transport
			DisableKeepAlives:   true,                                  // one probe per interval: nothing to keep
			MaxIdleConnsPerHost: -1,
		}
	}
	return &Checker{cfg: cfg, client: &http.Client{Transport: cfg.Transport, CheckRedirect: noRedirects},
		done: make(chan result, 64)}, nil
}

// A redirect is an answer: its status decides, as in Marathon.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Run checks tasks until ctx ends.
func (c *Checker) Run(ctx context.Context) error {
	tr := newTracker()
	return framework.FollowLoop[result]{
		Events: c.cfg.Events, Snapshot: c.cfg.Scheduler.Snapshot, Clock: c.cfg.Clock, Tick: c.cfg.Tick, View: tr,
		OnTick: func(now time.Time) {
			for _, p := range tr.due(now, c.cfg.MaxInFlight) {
				go c.probe(ctx, p)
			}
		},
		Results: c.done, OnResult: func(r result) { c.finish(tr, r) },
	}.Run(ctx)
}

func (c *Checker) finish(tr *tracker, r result) {
	now := c.cfg.Clock.Now()
	if !tr.done(r.taskID, r.ready, now) {
		return // the task went away or was killed meanwhile
	}
	log := c.cfg.Log.WithField("task", r.taskID)
	if !r.ready {
		log.WithField("result", r.detail).Debug("not ready yet")
		return
	}
	if err := c.cfg.Scheduler.SetReadiness(r.taskID, true); err != nil && !errors.Is(err, framework.ErrUnknownTask) {
		log.WithError(err).Warn("could not record readiness")
		return
	}
	log.WithField("result", r.detail).Info("task ready")
}

// probe runs one check and reports to Run.
func (c *Checker) probe(ctx context.Context, p probe) {
	ready, detail := c.get(ctx, p)
	select {
	case c.done <- result{taskID: p.taskID, ready: ready, detail: detail}:
	case <-ctx.Done():
	}
}

func (c *Checker) get(ctx context.Context, p probe) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return slices.Contains(p.codes, resp.StatusCode), resp.Status
}

// probe is one check to run: where, how long to wait, what counts as ready.
type probe struct {
	taskID  string
	url     string
	timeout time.Duration
	codes   []int
}

// tracker decides which tasks to probe when; pure, so it is tested by
// stepping time.
type tracker struct {
	apps     map[string]*appspec.App
	tasks    map[string]*tracked
	inFlight int
}

type tracked struct {
	t        framework.Task
	next     time.Time // first probe as soon as the task is eligible
	inFlight bool
}

func newTracker() *tracker {
	return &tracker{apps: map[string]*appspec.App{}, tasks: map[string]*tracked{}}
}

// Reset rebuilds the view from a snapshot (framework.Follower); results
// of probes in flight are dropped.
func (tr *tracker) Reset(snap *framework.Snapshot, now time.Time) {
	*tr = *newTracker()
	tr.load(snap, now)
}

func (tr *tracker) load(snap *framework.Snapshot, now time.Time) {
	for _, a := range snap.Apps {
		tr.apps[a.ID] = a
	}
	for _, t := range snap.Tasks {
		tr.task(t, now)
	}
}

// Event applies one scheduler event (framework.Follower).
func (tr *tracker) Event(ev framework.Event, now time.Time) {
	switch ev.Type {
	case framework.EventApp:
		tr.apps[ev.App.ID] = ev.App
	case framework.EventAppRemoved:
		delete(tr.apps, ev.App.ID)
	case framework.EventTask:
		tr.task(*ev.Task, now)
	case framework.EventTaskRemoved:
		tr.forget(ev.Task.ID)
	}
}

func (tr *tracker) forget(id string) {
	if k := tr.tasks[id]; k != nil {
		if k.inFlight {
			tr.inFlight--
		}
		delete(tr.tasks, id)
	}
}

// waiting: launched for an app with a readiness check and not ready yet.
func (tr *tracked) waiting() bool {
	return tr.t.Ready != nil && !*tr.t.Ready && tr.t.Active() && !tr.t.Killing
}

// task follows a task while it waits to be ready.
func (tr *tracker) task(t framework.Task, now time.Time) {
	cur := tr.tasks[t.ID]
	if cur == nil {
		cur = &tracked{next: now}
	}
	cur.t = t
	if !cur.waiting() {
		tr.forget(t.ID)
		return
	}
	tr.tasks[t.ID] = cur
}

// due returns the probes to start now, at most max in flight in all, and
// marks them in flight. A task is probed once it runs and, if its app has
// health checks, passes them.
func (tr *tracker) due(now time.Time, max int) []probe {
	var out []probe
	for id, k := range tr.tasks {
		if tr.inFlight >= max {
			break
		}
		if k.inFlight || now.Before(k.next) || k.t.State != mesos.TASK_RUNNING {
			continue
		}
		app := tr.apps[k.t.AppID]
		if app == nil || len(app.ReadinessChecks) == 0 {
			continue
		}
		if len(app.HealthChecks) > 0 && (k.t.Healthy == nil || !*k.t.Healthy) {
			continue
		}
		rc := app.ReadinessChecks[0]
		i := app.PortIndex(rc.PortName)
		if i < 0 || i >= len(k.t.Ports) || k.t.Host == "" {
			continue // validation makes the port exist; an adopted task may lack ports
		}
		scheme := "http"
		if rc.Protocol == "HTTPS" {
			scheme = "https"
		}
		k.inFlight = true
		tr.inFlight++
		out = append(out, probe{
			taskID:  id,
			url:     fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(k.t.Host, strconv.FormatUint(k.t.Ports[i], 10)), rc.Path),
			timeout: seconds(rc.TimeoutSeconds),
			codes:   rc.HTTPStatusCodesForReady,
		})
	}
	return out
}

// done records a probe's end and reports whether its task is still
// waiting (so the result matters). A ready task is no longer followed.
func (tr *tracker) done(taskID string, ready bool, now time.Time) bool {
	k := tr.tasks[taskID]
	if k == nil || !k.inFlight {
		return false
	}
	k.inFlight = false
	tr.inFlight--
	if ready {
		delete(tr.tasks, taskID)
		return true
	}
	if app := tr.apps[k.t.AppID]; app != nil && len(app.ReadinessChecks) > 0 {
		k.next = now.Add(seconds(app.ReadinessChecks[0].IntervalSeconds))
	}
	return true
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
