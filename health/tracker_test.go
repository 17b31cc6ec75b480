package health

import (
	"strconv"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

var t0 = time.Unix(1_000_000, 0)

func ptr[T any](v T) *T { return &v }

// checkedApp has an HTTP check (index 0) run by the scheduler and a
// MESOS_TCP one (index 1) run by Mesos.
func checkedApp(hc appspec.HealthCheck) *appspec.App {
	if hc.Protocol == "" {
		hc.Protocol = "HTTP"
	}
	if hc.PortIndex == nil && hc.Port == nil {
		hc.PortIndex = ptr(1)
	}
	return &appspec.App{ID: "/web", Version: "v1",
		PortDefinitions: []appspec.PortDefinition{{}, {}},
		HealthChecks:    []appspec.HealthCheck{hc, {Protocol: "MESOS_TCP", PortIndex: ptr(0)}}}
}

func runningTask(id string) framework.Task {
	return framework.Task{ID: id, AppID: "/web", AppVersion: "v1", Host: "127.0.0.1", Ports: []uint64{31000, 31001},
		State: mesos.TASK_RUNNING, StartedAt: t0}
}

// stepper drives a tracker with one task through probes and results.
type stepper struct {
	t  *testing.T
	tr *tracker
}

func newStepper(t *testing.T, hc appspec.HealthCheck) *stepper {
	tr := newTracker()
	tr.Event(framework.Event{Type: framework.EventApp, App: checkedApp(hc)}, t0)
	tr.task(runningTask("web.1"), t0)
	return &stepper{t: t, tr: tr}
}

// probe expects exactly one probe due at `at` and answers it with o.
func (s *stepper) probe(at time.Duration, o outcome) (decision, bool) {
	s.t.Helper()
	ps := s.tr.due(t0.Add(at), 64)
	if len(ps) != 1 {
		s.t.Fatalf("at +%v: %d probes due, want 1: %+v", at, len(ps), ps)
	}
	cause := ""
	if o == unhealthy {
		cause = "503 Service Unavailable"
	}
	return s.tr.done(result{taskID: ps[0].taskID, check: ps[0].check, outcome: o, cause: cause}, t0.Add(at))
}

func (s *stepper) none(at time.Duration) {
	s.t.Helper()
	if ps := s.tr.due(t0.Add(at), 64); len(ps) != 0 {
		s.t.Fatalf("at +%v: probes %+v, want none", at, ps)
	}
}

// The first probe comes delaySeconds after the task started running, then
// one every intervalSeconds, only for the check the scheduler runs, at
// the task's host and the host port at portIndex.
func TestSchedule(t *testing.T) {
	t.Parallel()
	s := newStepper(t, appspec.HealthCheck{Path: "/health", DelaySeconds: 5, IntervalSeconds: 10, TimeoutSeconds: 2, GracePeriodSeconds: 0})
	s.none(4900 * time.Millisecond)
	ps := s.tr.due(t0.Add(5*time.Second), 64)
	if len(ps) != 1 || ps[0].check != 0 || ps[0].addr != "127.0.0.1:31001" || ps[0].timeout != 2*time.Second {
		t.Fatalf("first probe %+v, want check 0 at 127.0.0.1:31001 (port index 1) with a 2s timeout", ps)
	}
	s.none(6 * time.Second) // in flight
	if d, ok := s.tr.done(result{taskID: "web.1", check: 0, outcome: healthy}, t0.Add(6*time.Second)); !ok || !d.report || !d.res.Alive() {
		t.Fatalf("a success: %+v %v, want reported alive", d, ok)
	}
	s.none(15900 * time.Millisecond)
	if d, _ := s.probe(16*time.Second, healthy); d.res.FirstSuccess != t0.Add(6*time.Second) || d.res.LastSuccess != t0.Add(16*time.Second) {
		t.Fatalf("second success %+v: firstSuccess must stay the first", d.res)
	}
}

// A staging task is not probed, nor one being killed; a fixed port wins
// over the task's ports.
func TestWhatIsProbed(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	tr.Event(framework.Event{Type: framework.EventApp, App: checkedApp(appspec.HealthCheck{Protocol: "TCP", Port: ptr(uint32(9000))})}, t0)
	tk := runningTask("web.1")
	tk.State = mesos.TASK_STAGING
	tr.task(tk, t0)
	if ps := tr.due(t0.Add(time.Hour), 64); len(ps) != 0 {
		t.Fatalf("a staging task was probed: %+v", ps)
	}
	tk.State = mesos.TASK_RUNNING
	tr.task(tk, t0.Add(time.Minute))
	ps := tr.due(t0.Add(time.Minute), 64)
	if len(ps) != 1 || ps[0].addr != "127.0.0.1:9000" {
		t.Fatalf("probes %+v, want one at the fixed port 9000", ps)
	}
	tk.Killing = true
	tr.task(tk, t0.Add(time.Minute))
	if len(tr.tasks) != 0 || tr.inFlight != 0 {
		t.Fatalf("a task being killed is still followed (%d tasks, %d in flight)", len(tr.tasks), tr.inFlight)
	}
	// A task of another version than the app's is not known here.
	old := runningTask("web.2")
	old.AppVersion = "v0"
	tr.task(old, t0)
	if len(tr.tasks) != 0 {
		t.Fatal("a task of an unknown version is followed")
	}
}

// Failures before the first success are ignored within the grace period,
// counted after it; after a success the grace period no longer applies.
func TestGracePeriod(t *testing.T) {
	t.Parallel()
	s := newStepper(t, appspec.HealthCheck{Path: "/h", IntervalSeconds: 10, TimeoutSeconds: 1, GracePeriodSeconds: 30, MaxConsecutiveFailures: 3})
	for _, at := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		if d, ok := s.probe(at, unhealthy); ok {
			t.Fatalf("a failure at +%v within the 30s grace period counted: %+v", at, d)
		}
	}
	d, ok := s.probe(30*time.Second, unhealthy)
	if !ok || d.res.ConsecutiveFailures != 1 || d.res.Alive() || d.res.LastFailureCause != "503 Service Unavailable" || d.res.LastFailure != t0.Add(30*time.Second) {
		t.Fatalf("a failure after the grace period: %+v %v, want 1 failure recorded with its cause and time", d, ok)
	}

	// A success inside the grace period ends it: the next failure counts.
	s = newStepper(t, appspec.HealthCheck{Path: "/h", IntervalSeconds: 10, TimeoutSeconds: 1, GracePeriodSeconds: 300, MaxConsecutiveFailures: 3})
	s.probe(0, healthy)
	if d, ok := s.probe(10*time.Second, unhealthy); !ok || d.res.ConsecutiveFailures != 1 || d.res.Alive() {
		t.Fatalf("a failure after the first success, within grace: %+v %v, want counted", d, ok)
	}
}

// As Marathon's checkConsecutiveFailures: the count before a failure is
// compared with maxConsecutiveFailures, so with 3 the fourth failure in a
// row kills; a success in between starts over; 0 never kills.
func TestKillDecision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		max    int
		script []outcome
		killAt int // index into script; -1: never
	}{
		{"fourth failure in a row kills", 3, []outcome{unhealthy, unhealthy, unhealthy, unhealthy}, 3},
		{"a success resets the count", 3, []outcome{unhealthy, unhealthy, unhealthy, healthy, unhealthy, unhealthy, unhealthy, unhealthy}, 7},
		{"1: the second failure kills", 1, []outcome{unhealthy, unhealthy}, 1},
		{"0 never kills", 0, []outcome{unhealthy, unhealthy, unhealthy, unhealthy, unhealthy, unhealthy, unhealthy, unhealthy, unhealthy, unhealthy}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStepper(t, appspec.HealthCheck{Path: "/h", IntervalSeconds: 1, TimeoutSeconds: 1, MaxConsecutiveFailures: tc.max})
			for i, o := range tc.script {
				at := time.Duration(i) * time.Second
				d, ok := s.probe(at, o)
				if !ok || !d.report {
					t.Fatalf("result %d not reported", i)
				}
				if d.kill != (i == tc.killAt) {
					t.Fatalf("result %d (%d consecutive failures): kill %v, want kill only at %d", i, d.res.ConsecutiveFailures, d.kill, tc.killAt)
				}
				if d.kill {
					// Killed once: no more probes, late results dropped.
					s.none(at + time.Hour)
					return
				}
			}
			if tc.killAt >= 0 {
				t.Fatal("never killed")
			}
			if got := s.tr.tasks["web.1"].state[0].res.ConsecutiveFailures; tc.max == 0 && got != len(tc.script) {
				t.Fatalf("%d consecutive failures recorded, want %d", got, len(tc.script))
			}
		})
	}
}

// HTTP status rules (HealthCheckWorker): 200-399 healthy, 1xx ignored
// for HTTP with ignoreHttp1xx, everything else a failure; an ignored
// answer changes nothing but waits for the next interval.
func TestHTTPOutcome(t *testing.T) {
	t.Parallel()
	httpIgn := appspec.HealthCheck{Protocol: "HTTP", IgnoreHTTP1xx: true}
	for _, tc := range []struct {
		status int
		hc     appspec.HealthCheck
		want   outcome
	}{
		{200, appspec.HealthCheck{Protocol: "HTTP"}, healthy},
		{204, appspec.HealthCheck{Protocol: "HTTP"}, healthy},
		{302, appspec.HealthCheck{Protocol: "HTTP"}, healthy},
		{399, appspec.HealthCheck{Protocol: "HTTPS"}, healthy},
		{400, appspec.HealthCheck{Protocol: "HTTP"}, unhealthy},
		{503, httpIgn, unhealthy},
		{101, appspec.HealthCheck{Protocol: "HTTP"}, unhealthy},
		{101, httpIgn, ignored},
		{199, httpIgn, ignored},
		{101, appspec.HealthCheck{Protocol: "HTTPS", IgnoreHTTP1xx: true}, unhealthy},
	} {
		if got := httpOutcome(tc.status, tc.hc); got != tc.want {
			t.Errorf("%s %d ignoreHttp1xx=%v: %d, want %d", tc.hc.Protocol, tc.status, tc.hc.IgnoreHTTP1xx, got, tc.want)
		}
	}
	s := newStepper(t, appspec.HealthCheck{Path: "/h", IntervalSeconds: 10, TimeoutSeconds: 1, IgnoreHTTP1xx: true, MaxConsecutiveFailures: 1})
	s.probe(0, unhealthy)
	if d, ok := s.probe(10*time.Second, ignored); ok {
		t.Fatalf("an ignored answer was reported: %+v", d)
	}
	s.none(19 * time.Second)
	if d, _ := s.probe(20*time.Second, unhealthy); !d.kill {
		t.Fatal("the ignored answer broke the run of failures (Marathon keeps the old health)")
	}
}

// After a resync (events lost) the tracker starts from the scheduler's
// records, so a run of failures is not forgotten.
func TestResyncKeepsCounts(t *testing.T) {
	t.Parallel()
	app := checkedApp(appspec.HealthCheck{Path: "/h", IntervalSeconds: 1, TimeoutSeconds: 1, MaxConsecutiveFailures: 2})
	tk := runningTask("web.1")
	tk.Checks = []framework.CheckResult{framework.CheckResult{}.Update(false, "x", t0).Update(false, "x", t0.Add(time.Second)), {}}
	tr := newTracker()
	tr.load(&framework.Snapshot{Apps: []*appspec.App{app}, Tasks: []framework.Task{tk}}, t0.Add(2*time.Second))
	s := &stepper{t: t, tr: tr}
	if d, _ := s.probe(2*time.Second, unhealthy); !d.kill || d.res.ConsecutiveFailures != 3 {
		t.Fatalf("%+v: want the third failure recorded and a kill (2 were recorded before the resync)", d)
	}
}

// No more than max probes run at once.
func TestBoundsProbesInFlight(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	tr.Event(framework.Event{Type: framework.EventApp, App: checkedApp(appspec.HealthCheck{Path: "/h", IntervalSeconds: 1, TimeoutSeconds: 1})}, t0)
	for i := range 5 {
		tr.task(runningTask("web."+strconv.Itoa(i)), t0)
	}
	first := tr.due(t0, 2)
	if len(first) != 2 || len(tr.due(t0, 2)) != 0 {
		t.Fatalf("%d probes at once, want 2", len(first))
	}
	tr.done(result{taskID: first[0].taskID, check: 0, outcome: healthy}, t0)
	if n := len(tr.due(t0, 2)); n != 1 {
		t.Fatalf("%d probes after one finished, want 1", n)
	}
	tr.Event(framework.Event{Type: framework.EventTaskRemoved, Task: &framework.Task{ID: first[1].taskID}}, t0)
	if tr.inFlight != 1 {
		t.Fatalf("%d in flight after a task with a probe in flight went away, want 1", tr.inFlight)
	}
}
