package health

import (
	"net"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// outcome is what one probe says.
type outcome int

const (
	healthy outcome = iota
	unhealthy
	ignored // an HTTP 1xx answer with ignoreHttp1xx: no result at all
)

// httpOutcome classifies an HTTP(S) answer's status as Marathon's
// HealthCheckWorker does: 200-399 healthy; 100-199 ignored when asked,
// for HTTP only (Marathon's HTTPS branch has no such case); else a failure.
func httpOutcome(status int, hc appspec.HealthCheck) outcome {
	switch {
	case status >= 200 && status < 400:
		return healthy
	case status >= 100 && status < 200 && hc.IgnoreHTTP1xx && hc.Protocol == "HTTP":
		return ignored
	}
	return unhealthy
}

// probe is one check to run now.
type probe struct {
	taskID  string
	check   int
	hc      appspec.HealthCheck
	addr    string // host:port
	timeout time.Duration
}

// result is a probe's answer.
type result struct {
	taskID  string
	check   int
	outcome outcome
	cause   string // for a failure: the status line or the error
}

// decision is what to tell the scheduler about a result.
type decision struct {
	report bool // record res for the check
	res    framework.CheckResult
	kill   bool // and then kill the task
}

// tracker decides which checks to probe when and what their results
// mean; pure, so it is tested by stepping time.
type tracker struct {
	apps     map[string]*appspec.App
	tasks    map[string]*tracked
	inFlight int
}

type tracked struct {
	t framework.Task
	// checks are the task's version's, fixed when it was first seen: an
	// app update launches new tasks, it does not change the old ones'.
	checks []appspec.HealthCheck
	state  []checkState
	since  time.Time // running since: grace and delay count from here
	killed bool
}

type checkState struct {
	res      framework.CheckResult
	next     time.Time
	inFlight bool
}

func newTracker() *tracker {
	return &tracker{apps: map[string]*appspec.App{}, tasks: map[string]*tracked{}}
}

// Reset rebuilds the view from a snapshot (framework.Follower). Probes in
// flight are forgotten: their results find nothing in flight and are
// dropped; the records are the scheduler's, reloaded from the snapshot.
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
	k := tr.tasks[id]
	if k == nil {
		return
	}
	for _, s := range k.state {
		if s.inFlight {
			tr.inFlight--
		}
	}
	delete(tr.tasks, id)
}

// task follows a task while it is active and not being killed, if its
// app version has checks the scheduler runs. A task of another version
// than its app's current one is not checked when first seen (after a
// failover or a resync during a roll): its checks are not known here.
func (tr *tracker) task(t framework.Task, now time.Time) {
	if !t.Active() || t.Killing {
		tr.forget(t.ID)
		return
	}
	k := tr.tasks[t.ID]
	if k == nil {
		app := tr.apps[t.AppID]
		if app == nil || app.Version != t.AppVersion || !schedulerChecks(app) {
			return
		}
		k = &tracked{checks: app.HealthChecks, state: make([]checkState, len(app.HealthChecks))}
		for i := range k.state {
			if i < len(t.Checks) {
				k.state[i].res = t.Checks[i] // what the scheduler recorded (a resync)
			}
		}
		tr.tasks[t.ID] = k
	}
	k.t = t
	if t.State == mesos.TASK_RUNNING && k.since.IsZero() {
		k.since = t.StartedAt
		if k.since.IsZero() {
			k.since = now
		}
		for i, hc := range k.checks {
			k.state[i].next = k.since.Add(seconds(hc.DelaySeconds))
		}
	}
}

func schedulerChecks(app *appspec.App) bool {
	for _, hc := range app.HealthChecks {
		if !hc.RunByMesos() {
			return true
		}
	}
	return false
}

// due returns the probes to start now, at most max in flight in all, and
// marks them in flight. Only running tasks are probed.
func (tr *tracker) due(now time.Time, max int) []probe {
	var out []probe
	for id, k := range tr.tasks {
		if k.killed || k.since.IsZero() || k.t.State != mesos.TASK_RUNNING {
			continue
		}
		for i, hc := range k.checks {
			if tr.inFlight >= max {
				return out
			}
			s := &k.state[i]
			if hc.RunByMesos() || s.inFlight || now.Before(s.next) {
				continue
			}
			addr, ok := address(k.t, hc)
			if !ok {
				// An adopted task may lack its ports; look again later.
				s.next = now.Add(seconds(hc.IntervalSeconds))
				continue
			}
			s.inFlight = true
			tr.inFlight++
			out = append(out, probe{taskID: id, check: i, hc: hc, addr: addr, timeout: seconds(hc.TimeoutSeconds)})
		}
	}
	return out
}

// address is where a check probes: the task's host, and the host port at
// portIndex, or the check's fixed port.
func address(t framework.Task, hc appspec.HealthCheck) (string, bool) {
	if t.Host == "" {
		return "", false
	}
	var port uint64
	switch {
	case hc.Port != nil:
		port = uint64(*hc.Port)
	case hc.PortIndex != nil && *hc.PortIndex >= 0 && *hc.PortIndex < len(t.Ports):
		port = t.Ports[*hc.PortIndex]
	default:
		return "", false
	}
	return net.JoinHostPort(t.Host, strconv.FormatUint(port, 10)), true
}

// done records a probe's result and says what to tell the scheduler;
// false when nothing (the task went away, is being killed, or the result
// is ignored).
func (tr *tracker) done(r result, now time.Time) (decision, bool) {
	k := tr.tasks[r.taskID]
	if k == nil || r.check < 0 || r.check >= len(k.state) || !k.state[r.check].inFlight {
		return decision{}, false
	}
	s, hc := &k.state[r.check], k.checks[r.check]
	s.inFlight = false
	tr.inFlight--
	s.next = now.Add(seconds(hc.IntervalSeconds))
	if k.killed {
		return decision{}, false
	}
	switch r.outcome {
	case healthy:
		s.res = s.res.Update(true, "", now)
		return decision{report: true, res: s.res}, true
	case unhealthy:
		// HealthCheckActor.ignoreFailures: a task not running, or in its
		// grace period before its first success.
		if k.t.State != mesos.TASK_RUNNING || s.res.FirstSuccess.IsZero() && now.Before(k.since.Add(seconds(hc.GracePeriodSeconds))) {
			return decision{}, false
		}
		// checkConsecutiveFailures looks at the count before this
		// failure: with maxConsecutiveFailures 3 the fourth failure in a
		// row kills.
		kill := hc.MaxConsecutiveFailures > 0 && s.res.ConsecutiveFailures >= hc.MaxConsecutiveFailures
		s.res = s.res.Update(false, r.cause, now)
		if kill {
			k.killed = true
		}
		return decision{report: true, res: s.res, kill: kill}, true
	}
	return decision{}, false
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
