package executor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// ValidateHealthCheck reports what is wrong with a health check definition,
// the way Mesos's master validates it, so an agent can answer TASK_ERROR
// before launching. A nil check is valid (there is none).
func ValidateHealthCheck(hc *mesos.HealthCheck) error {
	if hc == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"delay_seconds", hc.GetDelaySeconds()},
		{"interval_seconds", hc.GetIntervalSeconds()},
		{"timeout_seconds", hc.GetTimeoutSeconds()},
		{"grace_period_seconds", hc.GetGracePeriodSeconds()},
	} {
		// NaN and huge values would make timers fire at once (a busy loop)
		// or overflow time.Duration.
		if math.IsNaN(f.v) || f.v < 0 || f.v > maxCheckSeconds {
			return fmt.Errorf("executor: health check %s must be between 0 and %g seconds, got %v", f.name, float64(maxCheckSeconds), f.v)
		}
	}
	switch hc.GetType() {
	case mesos.HealthCheck_HTTP:
		if hc.HTTP == nil {
			return errors.New("executor: HTTP health check without http field")
		}
		if p := hc.HTTP.GetPort(); p == 0 || p > 65535 {
			return fmt.Errorf("executor: HTTP health check port %d out of range 1-65535", p)
		}
		if s := hc.HTTP.GetScheme(); s != "" && s != "http" && s != "https" {
			return fmt.Errorf("executor: HTTP health check scheme %q (want http or https)", s)
		}
	case mesos.HealthCheck_TCP:
		if hc.TCP == nil {
			return errors.New("executor: TCP health check without tcp field")
		}
		if p := hc.TCP.GetPort(); p == 0 || p > 65535 {
			return fmt.Errorf("executor: TCP health check port %d out of range 1-65535", p)
		}
	case mesos.HealthCheck_COMMAND:
		if hc.Command == nil || (hc.Command.GetValue() == "" && len(hc.Command.GetArguments()) == 0) {
			return errors.New("executor: COMMAND health check without a command value")
		}
	default:
		return fmt.Errorf("executor: health check type %s not supported (want HTTP, TCP or COMMAND)", hc.GetType())
	}
	return nil
}

// maxCheckSeconds bounds health check timings (about three years).
const maxCheckSeconds = 1e8

// minCheckInterval keeps a zero interval from turning the checker into a
// busy loop.
const minCheckInterval = 10 * time.Millisecond

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// probe runs one check; nil means healthy.
type probe func(ctx context.Context) error

// healthChecker runs one task's health check the way Mesos's health checker
// does: first check after delay, then every interval, each bounded by
// timeout. Failures are ignored during the grace period until the first
// success; after that, consecutive_failures failures in a row ask for the
// task to be killed. Unlike Mesos, which sends an update on every failure,
// it reports only changes of healthiness (and the first result), which is
// all a scheduler acts on.
type healthChecker struct {
	clock  clock.Clock
	def    *mesos.HealthCheck
	probe  probe
	log    *logrus.Entry
	report func(healthy bool)
	// kill is called once, from the checker's goroutine, when the task has
	// failed too often; the checker stops afterwards.
	kill func()
	// observe, when set (tests), sees every counted or ignored result after
	// its report and kill have been made.
	observe func(healthy bool, ignored bool)
}

func (h *healthChecker) run(ctx context.Context) {
	start := h.clock.Now()
	grace := seconds(h.def.GetGracePeriodSeconds())
	interval := max(seconds(h.def.GetIntervalSeconds()), minCheckInterval)
	maxFailures := h.def.GetConsecutiveFailures()
	var (
		initializing = true
		failures     uint32
		last         *bool
	)
	wait := seconds(h.def.GetDelaySeconds())
	for {
		if !h.sleep(ctx, wait) {
			return
		}
		wait = interval
		err := h.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			initializing = false
			failures = 0
			if last == nil || !*last {
				b := true
				last = &b
				h.report(true)
			}
			if h.observe != nil {
				h.observe(true, false)
			}
			continue
		}
		if initializing && grace > 0 && h.clock.Now().Sub(start) <= grace {
			h.log.WithError(err).Debug("ignoring health check failure in grace period")
			if h.observe != nil {
				h.observe(false, true)
			}
			continue
		}
		initializing = false
		failures++
		h.log.WithError(err).WithField("consecutive_failures", failures).Info("health check failed")
		if last == nil || *last {
			b := false
			last = &b
			h.report(false)
		}
		if failures >= maxFailures {
			h.log.WithField("consecutive_failures", failures).Warn("killing task after failed health checks")
			h.kill()
		}
		if h.observe != nil {
			h.observe(false, false)
		}
		if failures >= maxFailures {
			return
		}
	}
}

// sleep waits d on the injected clock; false means ctx ended.
func (h *healthChecker) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := h.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// once runs the probe bounded by timeout_seconds on the injected clock, and
// turns a panic in a probe into a failed check rather than a dead agent.
func (h *healthChecker) once(ctx context.Context) (err error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if to := seconds(h.def.GetTimeoutSeconds()); to > 0 {
		t := h.clock.NewTimer(to)
		defer t.Stop()
		go func() {
			select {
			case <-t.C():
				cancel(fmt.Errorf("executor: health check timed out after %v", to))
			case <-cctx.Done():
			}
		}()
	}
	defer func() {
		if r := recover(); r != nil {
			h.log.WithField("panic", r).WithField("stack", string(debug.Stack())).Error("health check probe panicked")
			err = fmt.Errorf("executor: health check probe panicked: %v", r)
		}
	}()
	err = h.probe(cctx)
	if err != nil && cctx.Err() != nil {
		if cause := context.Cause(cctx); cause != nil && ctx.Err() == nil {
			return cause
		}
	}
	return err
}

// httpProbe GETs scheme://127.0.0.1:port/path; 200-399 is healthy, as
// Mesos's curl-based check treats it. Certificates are not verified (curl -k).
// dial, when set, opens the connection (inside a container's namespace).
func httpProbe(def *mesos.HealthCheck_HTTPCheckInfo, dial dialer) probe {
	scheme := def.GetScheme()
	if scheme == "" {
		scheme = "http"
	}
	path := def.GetPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(def.GetPort()))) + path
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       dial,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // Mesos's check runs curl -k
	}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("executor: http health check: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("executor: http health check: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("executor: http health check %s answered %s", url, resp.Status)
		}
		return nil
	}
}

// tcpProbe connects to 127.0.0.1:port, through dial when set.
func tcpProbe(def *mesos.HealthCheck_TCPCheckInfo, dial dialer) probe {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(def.GetPort())))
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return func(ctx context.Context) error {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("executor: tcp health check: %w", err)
		}
		return c.Close()
	}
}

// networkProbe returns the probe for HTTP and TCP checks, or nil for
// others; dial nil probes the agent's own network.
func networkProbe(hc *mesos.HealthCheck, dial dialer) probe {
	switch hc.GetType() {
	case mesos.HealthCheck_HTTP:
		return httpProbe(hc.HTTP, dial)
	case mesos.HealthCheck_TCP:
		return tcpProbe(hc.TCP, dial)
	}
	return nil
}
