package autoscale

import (
	"fmt"
	"math"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Defaults for the fields an app's autoscale block may leave out. They are
// Kubernetes HPA's, except the interval (HPA syncs every 15 s as well).
const (
	DefaultTolerance  = 0.1
	DefaultInterval   = 15 * time.Second
	DefaultUpWindow   = 0 * time.Second
	DefaultDownWindow = 300 * time.Second
)

// Rules name what held a decision back from the raw recommendation. They
// are stable strings: the API and events show them to users.
const (
	RuleTolerance  = "tolerance"
	RuleUpWindow   = "scale-up window"
	RuleDownWindow = "scale-down window"
	RuleMaxStep    = "max step"
	RuleMin        = "min"
	RuleMax        = "max"
	RuleMissing    = "missing metrics"
	RuleStale      = "stale metrics"
	RuleNoReady    = "no ready tasks"
	RuleDeploying  = "deployment in progress"
	RuleCooldown   = "cooldown"
)

// Config is one app's policy, with defaults applied.
type Config struct {
	Min, Max   int
	Target     float64
	Tolerance  float64
	Interval   time.Duration
	UpWindow   time.Duration
	DownWindow time.Duration
	// MaxStep bounds |desired − current| per evaluation; 0 means no bound.
	MaxStep  int
	Cooldown time.Duration
}

// ConfigFrom turns an app's validated autoscale block into a Config.
// appspec leaves zero for "not set", so zero tolerance, interval and
// down-window take the defaults; a zero up-window is the default anyway.
func ConfigFrom(s *appspec.Autoscale) Config {
	c := Config{
		Min: s.Min, Max: s.Max, Target: s.Target, Tolerance: s.Tolerance,
		Interval:   seconds(s.IntervalSeconds),
		UpWindow:   seconds(s.ScaleUpWindowSeconds),
		DownWindow: seconds(s.ScaleDownWindowSeconds),
		MaxStep:    s.MaxStep,
		Cooldown:   seconds(s.CooldownSeconds),
	}
	if c.Tolerance <= 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.DownWindow <= 0 {
		c.DownWindow = DefaultDownWindow
	}
	return c
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Input is what one evaluation knows about an app.
type Input struct {
	App string
	// Current is the app's configured instances: what a scale changes.
	Current int
	// Ready counts the tasks that serve: running and, when health checked,
	// healthy. Only they enter the metric, as in HPA, because a starting
	// task's numbers say nothing about load.
	Ready int
	// Metric is the mean over the Samples ready tasks that reported one.
	Metric  float64
	Samples int
	// SampledAt is when the metric was collected; zero when never.
	SampledAt time.Time
	// Deploying is set while a deployment of the app runs; DeployedAt is
	// when the last one finished (zero when unknown).
	Deploying  bool
	DeployedAt time.Time
}

// State is what the policy remembers between evaluations of one app: the
// recommendations within the longer stabilisation window.
type State struct {
	Recs []Rec
}

// Rec is one past recommendation.
type Rec struct {
	At      time.Time
	Desired int
}

// Decision is one evaluation, with enough to explain it to a user.
type Decision struct {
	At      time.Time `json:"at"`
	App     string    `json:"appId"`
	Current int       `json:"current"`
	Ready   int       `json:"ready"`
	Samples int       `json:"samples"`
	Metric  float64   `json:"metric"`
	Target  float64   `json:"target"`
	// Raw is ceil(ready × metric / target) before any rule; Desired is
	// what the app is scaled to (Current when nothing changes).
	Raw     int `json:"raw"`
	Desired int `json:"desired"`
	// Rule is the last rule that moved Desired away from Raw ("" when
	// none did); Reason says it in words.
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
	Scaled bool   `json:"scaled"`
	// Error is set by the Runner when the scale call failed.
	Error string `json:"error,omitempty"`
	// Repeat counts identical evaluations folded into this log entry.
	Repeat int `json:"repeat,omitempty"`
}

// Decide is the whole policy: a pure function of the app's config, what
// it remembers, this evaluation's input and the time. It follows HPA's
// target tracking: raw = ceil(ready × metric / target) unless within
// tolerance; then stabilisation (scale up to the lowest recommendation of
// the up-window, down to the highest of the down-window, so one spike or
// dip never moves the app), the max step, min and max. Metrics that are
// missing, partial or stale never shrink the app.
func Decide(c Config, st State, in Input, now time.Time) (Decision, State) {
	d := Decision{
		At: now, App: in.App, Current: in.Current, Ready: in.Ready, Samples: in.Samples,
		Metric: in.Metric, Target: c.Target, Raw: in.Current, Desired: in.Current,
	}
	st = State{Recs: prune(st.Recs, now, max(c.UpWindow, c.DownWindow))}

	// Holds that no metric can lift, checked before the metric is trusted.
	switch {
	case in.Deploying:
		return d.hold(c, RuleDeploying, "a deployment of the app is in progress"), st
	case c.Cooldown > 0 && !in.DeployedAt.IsZero() && now.Sub(in.DeployedAt) < c.Cooldown:
		return d.hold(c, RuleCooldown, fmt.Sprintf("last deployment finished %v ago, cooldown is %v", now.Sub(in.DeployedAt), c.Cooldown)), st
	case in.Ready == 0:
		return d.hold(c, RuleNoReady, "no task is running and healthy, so there is no load to measure"), st
	case in.Samples == 0 || in.SampledAt.IsZero():
		return d.hold(c, RuleMissing, "no ready task reported the metric"), st
	case now.Sub(in.SampledAt) > 2*c.Interval:
		return d.hold(c, RuleStale, fmt.Sprintf("newest metric is %v old, more than 2 intervals", now.Sub(in.SampledAt))), st
	}

	ratio := in.Metric / c.Target
	partial := in.Samples < in.Ready
	if partial && ratio > 1 {
		// As HPA does: a ready task without a sample counts as idle when
		// scaling up, so that missing numbers cannot inflate the load.
		ratio = ratio * float64(in.Samples) / float64(in.Ready)
	}
	raw := in.Current
	within := math.Abs(ratio-1) <= c.Tolerance
	if !within {
		raw = int(math.Ceil(float64(in.Ready) * ratio))
	}
	d.Raw = raw
	if partial && raw < in.Current {
		return d.hold(c, RuleMissing, fmt.Sprintf("only %d of %d ready tasks reported the metric; never scale down on partial metrics", in.Samples, in.Ready)), st
	}
	st.Recs = append(st.Recs, Rec{At: now, Desired: raw})
	if within {
		d.Raw = in.Current
		d.Rule = RuleTolerance
		d.Reason = fmt.Sprintf("metric %.3g is within %.0f%% of target %.3g", in.Metric, c.Tolerance*100, c.Target)
	} else {
		d.Reason = fmt.Sprintf("metric %.3g against target %.3g over %d ready tasks asks for %d", in.Metric, c.Target, in.Ready, raw)
	}

	desired := in.Current
	upRec, downRec := raw, raw
	for _, r := range st.Recs {
		if now.Sub(r.At) <= c.UpWindow {
			upRec = min(upRec, r.Desired)
		}
		if now.Sub(r.At) <= c.DownWindow {
			downRec = max(downRec, r.Desired)
		}
	}
	if desired < upRec {
		desired = upRec
	}
	if desired > downRec {
		desired = downRec
	}
	switch {
	case raw > in.Current && desired < raw:
		d.Rule, d.Reason = RuleUpWindow, fmt.Sprintf("%s; the lowest recommendation within the %v scale-up window is %d", d.Reason, c.UpWindow, upRec)
	case raw < in.Current && desired > raw:
		d.Rule, d.Reason = RuleDownWindow, fmt.Sprintf("%s; the highest recommendation within the %v scale-down window is %d", d.Reason, c.DownWindow, downRec)
	}

	if c.MaxStep > 0 && abs(desired-in.Current) > c.MaxStep {
		if desired > in.Current {
			desired = in.Current + c.MaxStep
		} else {
			desired = in.Current - c.MaxStep
		}
		d.Rule, d.Reason = RuleMaxStep, fmt.Sprintf("%s; limited to %d per evaluation", d.Reason, c.MaxStep)
	}
	d.Desired = desired
	return d.clamp(c), st
}

// hold keeps the current count, still bringing it within [min, max]: the
// bounds are the user's, not a reading of the metric.
func (d Decision) hold(c Config, rule, reason string) Decision {
	d.Desired, d.Rule, d.Reason = d.Current, rule, reason
	return d.clamp(c)
}

func (d Decision) clamp(c Config) Decision {
	switch {
	case d.Desired < c.Min:
		d.Desired, d.Rule = c.Min, RuleMin
		d.Reason = fmt.Sprintf("%s; raised to min %d", d.Reason, c.Min)
	case c.Max > 0 && d.Desired > c.Max:
		d.Desired, d.Rule = c.Max, RuleMax
		d.Reason = fmt.Sprintf("%s; capped at max %d", d.Reason, c.Max)
	}
	d.Scaled = d.Desired != d.Current
	return d
}

// prune drops recommendations older than the window; it copies so that a
// State handed out is never changed behind its holder's back.
func prune(recs []Rec, now time.Time, window time.Duration) []Rec {
	out := make([]Rec, 0, len(recs)+1)
	for _, r := range recs {
		if now.Sub(r.At) <= window {
			out = append(out, r)
		}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
