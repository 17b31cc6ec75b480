package executor

import (
	"context"
	"errors"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

func ptrF(v float64) *float64 { return &v }
func ptrU(v uint32) *uint32   { return &v }

type checkEvent struct {
	healthy, ignored bool
}

// stepChecker runs a healthChecker on a fake clock: each element of results
// is the outcome of one check, and the clock is stepped exactly to the next
// check. It returns the reports, the events and whether kill was called.
func stepChecker(t *testing.T, def *mesos.HealthCheck, results []bool) (reports []bool, events []checkEvent, killed bool) {
	t.Helper()
	c := clock.NewFake(time.Unix(0, 0))
	var mu sync.Mutex
	i := 0
	obs := make(chan checkEvent, 1)
	killCh := make(chan struct{})
	h := &healthChecker{
		clock: c, def: def, log: logging.Component(logging.Discard(), "test"),
		probe: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			ok := results[i]
			i++
			if ok {
				return nil
			}
			return errors.New("probe failed")
		},
		report:  func(b bool) { mu.Lock(); reports = append(reports, b); mu.Unlock() },
		kill:    func() { close(killCh) },
		observe: func(h, ig bool) { obs <- checkEvent{h, ig} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { h.run(ctx); close(done) }()
	waitArmed := func() {
		for d := time.Now().Add(5 * time.Second); c.Waiters() != 1; {
			if time.Now().After(d) {
				t.Fatal("checker never armed its timer")
			}
			time.Sleep(time.Millisecond)
		}
	}
	next := seconds(def.GetDelaySeconds())
	for range results {
		if next > 0 {
			waitArmed()
			c.Step(next)
		}
		next = seconds(def.GetIntervalSeconds())
		select {
		case ev := <-obs:
			events = append(events, ev)
		case <-time.After(5 * time.Second):
			t.Fatal("no check result")
		}
	}
	// observe runs after kill, so kill has happened by now if it will.
	select {
	case <-killCh:
		killed = true
		<-done
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]bool(nil), reports...), events, killed
}

func TestHealthCheckerSemantics(t *testing.T) {
	t.Parallel()
	base := func(grace float64, failures uint32) *mesos.HealthCheck {
		return &mesos.HealthCheck{
			Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1},
			GracePeriodSeconds: ptrF(grace), ConsecutiveFailures: ptrU(failures),
		}
	}
	tests := []struct {
		name        string
		def         *mesos.HealthCheck
		results     []bool
		wantReports []bool
		wantIgnored int
		wantKilled  bool
	}{
		{"healthy reported once", base(0, 3), []bool{true, true, true}, []bool{true}, 0, false},
		{"changes only", base(0, 3), []bool{true, false, false, true, true, false, true}, []bool{true, false, true, false, true}, 0, false},
		{"killed after 3 failures", base(0, 3), []bool{true, false, false, false}, []bool{true, false}, 0, true},
		{"first result unhealthy", base(0, 2), []bool{false, false}, []bool{false}, 0, true},
		{"success resets the count", base(0, 2), []bool{false, true, false, true, false}, []bool{false, true, false, true, false}, 0, false},
		// Defaults: delay 15 s, interval 10 s, grace 10 s: the check at 15 s
		// is already outside grace.
		{"mesos defaults", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}},
			[]bool{false, false, false}, []bool{false}, 0, true},
		// grace 25 s with delay 15 and interval 10: checks at 15 and 25 are
		// inside grace and ignored; 35, 45, 55 count.
		{"grace ignores early failures", base(25, 3), []bool{false, false, false, false, false}, []bool{false}, 2, true},
		// once healthy, grace no longer protects
		{"grace ends at first success", base(100, 2), []bool{true, false, false}, []bool{true, false}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reports, events, killed := stepChecker(t, tc.def, tc.results)
			if !reflect.DeepEqual(reports, tc.wantReports) {
				t.Errorf("reports = %v, want %v", reports, tc.wantReports)
			}
			ignored := 0
			for _, e := range events {
				if e.ignored {
					ignored++
				}
			}
			if ignored != tc.wantIgnored {
				t.Errorf("ignored %d results, want %d (%v)", ignored, tc.wantIgnored, events)
			}
			if killed != tc.wantKilled {
				t.Errorf("killed = %v, want %v", killed, tc.wantKilled)
			}
		})
	}
}

func TestHealthCheckTimeoutUsesClock(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(time.Unix(0, 0))
	def := &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1},
		DelaySeconds: ptrF(0), TimeoutSeconds: ptrF(20)}
	h := &healthChecker{clock: c, def: def, log: logging.Component(logging.Discard(), "test"),
		probe: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	errc := make(chan error, 1)
	go func() { errc <- h.once(context.Background()) }()
	for c.Waiters() != 1 {
		time.Sleep(time.Millisecond)
	}
	c.Step(19 * time.Second)
	select {
	case err := <-errc:
		t.Fatalf("check ended before its timeout: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.Step(time.Second)
	select {
	case err := <-errc:
		if err == nil || !contains(err.Error(), "timed out after 20s") {
			t.Fatalf("err = %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("check did not time out")
	}
}

// A probe that panics is a failed check, logged with the panic and the
// stack that led to it (the stack was not logged: nothing said where).
func TestHealthCheckProbePanicIsAFailure(t *testing.T) {
	t.Parallel()
	l, hook := logtest.NewNullLogger()
	h := &healthChecker{clock: clock.Real{}, def: &mesos.HealthCheck{TimeoutSeconds: ptrF(1)},
		log: l.WithField("component", "test"), probe: func(context.Context) error { panic("boom") }}
	if err := h.once(context.Background()); err == nil || !contains(err.Error(), "panicked") {
		t.Fatalf("err = %v, want a panic failure", err)
	}
	e := hook.LastEntry()
	if e == nil || e.Level != logrus.ErrorLevel || e.Data["panic"] != "boom" {
		t.Fatalf("logged %+v, want an error with the panic", e)
	}
	if stack, _ := e.Data["stack"].(string); !contains(stack, "TestHealthCheckProbePanicIsAFailure") {
		t.Errorf("stack field %q does not lead back to the probe's caller", stack)
	}
}

func TestValidateHealthCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hc   *mesos.HealthCheck
		want string // substring of the error, "" for valid
	}{
		{"nil", nil, ""},
		{"http", &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 80}}, ""},
		{"http no port", &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{}}, "port 0"},
		{"http bad scheme", &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 1, Scheme: strPtr("ftp")}}, "scheme"},
		{"http missing", &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP}, "without http"},
		{"tcp", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 70000}}, "out of range"},
		{"command", &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: strPtr("true")}}, ""},
		{"command empty", &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{}}, "without a command"},
		{"unknown type", &mesos.HealthCheck{}, "not supported"},
		{"negative interval", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}, IntervalSeconds: ptrF(-1)}, "interval_seconds"},
		{"NaN timeout", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}, TimeoutSeconds: ptrF(math.NaN())}, "timeout_seconds"},
		{"infinite delay", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}, DelaySeconds: ptrF(math.Inf(1))}, "delay_seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateHealthCheck(tc.hc)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
