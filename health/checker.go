package health

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Scheduler is what the Checker needs of framework.Scheduler.
type Scheduler interface {
	Snapshot() *framework.Snapshot
	ReportHealth(taskID string, check int, r framework.CheckResult) error
	KillUnhealthy(taskID string, check int) error
}

// Config wires a Checker. Scheduler and Log are required.
type Config struct {
	Scheduler Scheduler
	Log       *logrus.Entry
	// Events subscribes to the scheduler's events; default the
	// Scheduler's own Subscribe when it has one (framework.Scheduler).
	Events func(buffer int) (events <-chan framework.Event, stop func())
	// Clock times intervals, grace periods and results; default the real
	// clock.
	Clock clock.Clock
	// Tick is how often due probes are looked for; default 100ms.
	Tick time.Duration
	// MaxInFlight bounds the probes running at once (10,000 tasks must
	// not open 10,000 connections in the same millisecond); default 256.
	// The others wait for the next tick.
	MaxInFlight int
	// Transport carries HTTP(S) probes; default a fresh one that does not
	// verify HTTPS certificates (Marathon did not either: a health check
	// asks whether the task answers, not who it is).
	Transport http.RoundTripper
	// Dial opens TCP probes' connections; default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Checker runs the HTTP, HTTPS and TCP health checks for the leader's
// scheduler.
type Checker struct {
	cfg    Config
	client *http.Client
	done   chan result
}

// New checks cfg and returns a Checker; Run starts it.
func New(cfg Config) (*Checker, error) {
	if cfg.Scheduler == nil || cfg.Log == nil {
		return nil, errors.New("health: Config needs a Scheduler and a Log")
	}
	if cfg.Events == nil {
		var ok bool
		if cfg.Events, ok = framework.EventsOf(cfg.Scheduler); !ok {
			return nil, errors.New("health: Config needs Events, or a Scheduler with Subscribe")
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			Proxy:             nil, // tasks are reached directly
			DialContext:       cfg.Dial,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see Config.Transport
			DisableKeepAlives: true,                                  // one probe per interval: nothing to keep
		}
	}
	return &Checker{cfg: cfg, client: &http.Client{Transport: cfg.Transport, CheckRedirect: noRedirects},
		done: make(chan result, 256)}, nil
}

// A redirect is an answer: its status (3xx, healthy) decides, as in
// Marathon, which does not follow it.
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
	d, ok := tr.done(r, c.cfg.Clock.Now())
	if !ok {
		return
	}
	log := c.cfg.Log.WithFields(logrus.Fields{"task": r.taskID, "check": r.check})
	if r.outcome == unhealthy {
		log.WithFields(logrus.Fields{"cause": r.cause, "consecutive_failures": d.res.ConsecutiveFailures}).Info("health check failed")
	}
	if err := c.cfg.Scheduler.ReportHealth(r.taskID, r.check, d.res); err != nil {
		if !errors.Is(err, framework.ErrUnknownTask) {
			log.WithError(err).Warn("could not record a health check result")
		}
		return
	}
	if d.kill {
		if err := c.cfg.Scheduler.KillUnhealthy(r.taskID, r.check); err != nil && !errors.Is(err, framework.ErrUnknownTask) {
			log.WithError(err).Error("could not kill a task that failed its health checks; it keeps running unhealthy")
		}
	}
}

// probe runs one check and reports to Run.
func (c *Checker) probe(ctx context.Context, p probe) {
	out, cause := c.check(ctx, p)
	select {
	case c.done <- result{taskID: p.taskID, check: p.check, outcome: out, cause: cause}:
	case <-ctx.Done():
	}
}

func (c *Checker) check(ctx context.Context, p probe) (outcome, string) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if p.hc.Protocol == "TCP" {
		conn, err := c.cfg.Dial(ctx, "tcp", p.addr)
		if err != nil {
			return unhealthy, err.Error()
		}
		conn.Close()
		return healthy, ""
	}
	scheme := "http"
	if p.hc.Protocol == "HTTPS" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+p.addr+p.hc.Path, nil)
	if err != nil {
		return unhealthy, err.Error()
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return unhealthy, err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // forget about the body, as Marathon does
	resp.Body.Close()
	return httpOutcome(resp.StatusCode, p.hc), resp.Status
}
