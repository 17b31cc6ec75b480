package appspec

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// Limits bound how much one app spec may ask for. They are enforced by
// ValidateWith at submit and, with the same call, on apps read back from
// the store, so that nothing accepted once (or written by hand, or by an
// older version) can make the scheduler hold unbounded state. Each bound
// is documented in docs/app-spec.md ("Limits") with its reason.
//
// A zero or negative field means "the default": Limits{} behaves as
// DefaultLimits(), and a caller can set one field alone.
type Limits struct {
	// MaxInstances bounds instances (and autoscale.max). Marathon's own
	// bound is int32 (app.raml: instances, format int32); ours is lower
	// because every instance is scheduler state. `--max-instances`.
	MaxInstances int
	// MaxPorts bounds portDefinitions, and each list of portMappings.
	MaxPorts int
	// MaxLabels bounds labels (of the app, and of each port definition).
	MaxLabels          int
	MaxLabelKeyBytes   int
	MaxLabelValueBytes int
	// MaxEnv bounds env entries.
	MaxEnv           int
	MaxEnvNameBytes  int
	MaxEnvValueBytes int
	MaxConstraints   int
	MaxHealthChecks  int
	MaxSecrets       int
	// MaxVHosts and MaxPaths bound the vhosts and the paths of the app's
	// effective exposure (its exposure field, or marathon-lb's labels).
	MaxVHosts int
	MaxPaths  int

	// Role is the framework's Mesos role (--mesos-role): the only role an
	// app may name, and with "*" the only ones its acceptedResourceRoles
	// may name; "" means "*".
	Role string
	// GPUResources: the gpu_resources feature is on (--enable-features),
	// so apps may ask for gpus.
	GPUResources bool
}

// Defaults of Limits. Marathon sets none of these counts (its RAML and
// AppValidation.scala bound only shapes); each value here is ours, chosen
// so that a real Marathon app never meets it while one request cannot
// make a task, a TaskInfo or the scheduler's state unbounded.
const (
	// DefaultMaxInstances: 100,000 instances of one app cost the scheduler
	// about 1.2 GB with waiting instances held per instance (issue 22);
	// far above what one app runs, far below what takes a leader down.
	DefaultMaxInstances = 100_000
	// DefaultMaxPorts: Mesos agents offer ports 31000-32000 by default
	// (1,001 ports), so more than 1,000 ports cannot be placed on a
	// default agent; every port is also a PORTn variable and SRV records
	// per task.
	DefaultMaxPorts = 1_000
	// Every label is exported to each task as MARATHON_APP_LABEL_<KEY>
	// (framework/taskinfo.go), so labels share env's bounds: Linux refuses
	// an exec whose single NAME=value string passes MAX_ARG_STRLEN
	// (128 KiB); 1 KiB names and 64 KiB values stay inside it, and the
	// 1 MiB spec keeps the whole environment under ARG_MAX (2 MiB).
	DefaultMaxLabels          = 1_000
	DefaultMaxLabelKeyBytes   = 1 << 10
	DefaultMaxLabelValueBytes = 64 << 10
	DefaultMaxEnv             = 1_000
	DefaultMaxEnvNameBytes    = 1 << 10
	DefaultMaxEnvValueBytes   = 64 << 10
	// DefaultMaxConstraints: each constraint is evaluated against every
	// offer for every instance placed; Marathon apps use a handful.
	DefaultMaxConstraints = 100
	// DefaultMaxHealthChecks: every check runs (one by Mesos, the others
	// probed by the leader), so each costs a probe per task per interval;
	// Marathon sets no limit (AppValidation.scala), real apps use one or two.
	DefaultMaxHealthChecks = 16
	// DefaultMaxSecrets: every secret in use is a Vault read at each
	// launch and at each rotation poll (--secret-poll).
	DefaultMaxSecrets = 100
	// DefaultMaxVHosts and DefaultMaxPaths: the gateway routes every vhost
	// with every path, on both listeners, so an app claims vhosts × paths
	// routes. 20,000 vhosts with 100 paths took flotilla dev from 23 MiB
	// to 780 MiB in 15 s (bench/fuzzapi); one HAPROXY_0_VHOST label of
	// 64 KiB holds 5,000 names. 100 × 100 is 10,000 routes per listener.
	DefaultMaxVHosts = 100
	DefaultMaxPaths  = 100
)

// Fixed bounds. They follow from Mesos, DNS and time arithmetic, so they
// are not configurable.
const (
	// MaxIDSegment is the longest segment of an app id: one DNS label
	// (RFC 1035), as Mesos-DNS names are built from the segments.
	MaxIDSegment = 63
	// MaxIDLength is the longest app id, leading "/" included. A task id
	// is the id without its "/" (slashes as "_") plus
	// ".instance-<36-char uuid>._app.1" (framework.NewTaskID, Marathon's
	// scheme): len(id)+52 characters. Mesos refuses any id longer than
	// NAME_MAX, 255 (src/common/validation.cpp, validateID), so a longer
	// app id could never launch a task. The DNS name needs no tighter
	// bound: Mesos-DNS cuts the task label to 63 characters
	// (mesosdns/names.go), so {label}.{framework}.{domain} stays within
	// 253 for any sane framework name and domain.
	MaxIDLength = 255 - 52
	// MaxSeconds bounds every field counted in seconds. Marathon types
	// them as int32 (app.raml backoffSeconds, maxLaunchDelaySeconds;
	// healthCheck.raml; readinessCheck.raml), and 2^31 s (68 years) still
	// fits a time.Duration (292 years), so no conversion overflows: 1e18 s
	// would wrap to a negative delay.
	MaxSeconds = math.MaxInt32
)

// DefaultLimits returns the limits `flotilla serve` and `flotilla dev` run
// with unless flags change them.
func DefaultLimits() Limits {
	return Limits{
		MaxInstances:       DefaultMaxInstances,
		MaxPorts:           DefaultMaxPorts,
		MaxLabels:          DefaultMaxLabels,
		MaxLabelKeyBytes:   DefaultMaxLabelKeyBytes,
		MaxLabelValueBytes: DefaultMaxLabelValueBytes,
		MaxEnv:             DefaultMaxEnv,
		MaxEnvNameBytes:    DefaultMaxEnvNameBytes,
		MaxEnvValueBytes:   DefaultMaxEnvValueBytes,
		MaxConstraints:     DefaultMaxConstraints,
		MaxHealthChecks:    DefaultMaxHealthChecks,
		MaxSecrets:         DefaultMaxSecrets,
		MaxVHosts:          DefaultMaxVHosts,
		MaxPaths:           DefaultMaxPaths,
	}
}

// WithDefaults returns l with every unset (zero or negative) field set to
// its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	for _, f := range []struct{ v, def *int }{
		{&l.MaxInstances, &d.MaxInstances}, {&l.MaxPorts, &d.MaxPorts},
		{&l.MaxLabels, &d.MaxLabels}, {&l.MaxLabelKeyBytes, &d.MaxLabelKeyBytes}, {&l.MaxLabelValueBytes, &d.MaxLabelValueBytes},
		{&l.MaxEnv, &d.MaxEnv}, {&l.MaxEnvNameBytes, &d.MaxEnvNameBytes}, {&l.MaxEnvValueBytes, &d.MaxEnvValueBytes},
		{&l.MaxConstraints, &d.MaxConstraints}, {&l.MaxHealthChecks, &d.MaxHealthChecks}, {&l.MaxSecrets, &d.MaxSecrets},
		{&l.MaxVHosts, &d.MaxVHosts}, {&l.MaxPaths, &d.MaxPaths},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

// validateLimits checks the sizes: counts of lists and maps, and the bytes
// of label and env entries. Each message names the limit, so a client
// knows what to change and an operator what the server enforces.
func (a *App) validateLimits(v *ValidationError, l Limits) {
	if a.Instances > l.MaxInstances {
		v.addf("/instances", "must be at most %d, this server's limit of instances per app (--max-instances); got %d", l.MaxInstances, a.Instances)
	}
	if a.Autoscale != nil && a.Autoscale.Max > l.MaxInstances {
		v.addf("/autoscale/max", "must be at most %d, this server's limit of instances per app (--max-instances); got %d", l.MaxInstances, a.Autoscale.Max)
	}
	count(v, "/portDefinitions", "port definitions", len(a.PortDefinitions), l.MaxPorts)
	if c := a.Container; c != nil {
		count(v, "/container/portMappings", "port mappings", len(c.PortMappings), l.MaxPorts)
		if c.Docker != nil {
			count(v, "/container/docker/portMappings", "port mappings", len(c.Docker.PortMappings), l.MaxPorts)
		}
	}
	for i, p := range a.PortDefinitions {
		checkLabels(v, fmt.Sprintf("/portDefinitions/%d/labels", i), p.Labels, l)
	}
	checkLabels(v, "/labels", a.Labels, l)
	count(v, "/env", "env entries", len(a.Env), l.MaxEnv)
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		p := "/env/" + pointerToken(k)
		if len(k) > l.MaxEnvNameBytes {
			v.addf(p, "the name is %d bytes; at most %d are allowed (env name limit)", len(k), l.MaxEnvNameBytes)
		}
		if n := len(a.Env[k].Value); n > l.MaxEnvValueBytes {
			v.addf(p, "the value is %d bytes; at most %d are allowed (env value limit); keep large data out of the environment", n, l.MaxEnvValueBytes)
		}
	}
	count(v, "/secrets", "secrets", len(a.Secrets), l.MaxSecrets)
	count(v, "/constraints", "constraints", len(a.Constraints), l.MaxConstraints)
	count(v, "/healthChecks", "health checks", len(a.HealthChecks), l.MaxHealthChecks)
	vhosts, paths := "/exposure/vhosts", "/exposure/paths"
	if a.Exposure == nil {
		vhosts, paths = "/labels/"+LabelHAProxyVHost, "/labels/"+LabelHAProxyPath
	}
	e := a.EffectiveExposure()
	count(v, vhosts, "vhosts", len(e.VHosts), l.MaxVHosts)
	count(v, paths, "paths", len(e.Paths), l.MaxPaths)
}

func count(v *ValidationError, path, what string, n, max int) {
	if n > max {
		v.addf(path, "has %d %s; at most %d are allowed (limit per app)", n, what, max)
	}
}

func checkLabels(v *ValidationError, path string, labels map[string]string, l Limits) {
	count(v, path, "labels", len(labels), l.MaxLabels)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		p := path + "/" + pointerToken(k)
		if len(k) > l.MaxLabelKeyBytes {
			v.addf(p, "the key is %d bytes; at most %d are allowed (label key limit)", len(k), l.MaxLabelKeyBytes)
		}
		if n := len(labels[k]); n > l.MaxLabelValueBytes {
			v.addf(p, "the value is %d bytes; at most %d are allowed (label value limit)", n, l.MaxLabelValueBytes)
		}
	}
}

// validateRanges checks every number counted in seconds, and the backoff
// factor: finite, not below Marathon's minimum, not above MaxSeconds.
// NaN fails every comparison, so each test is written to fail on it.
func (a *App) validateRanges(v *ValidationError) {
	// app.raml: backoffSeconds and maxLaunchDelaySeconds are int32 ≥ 0.
	seconds(v, "/backoffSeconds", a.BackoffSeconds, 0, "")
	seconds(v, "/maxLaunchDelaySeconds", a.MaxLaunchDelaySeconds, 0, "")
	if g := a.TaskKillGracePeriodSeconds; g != nil {
		seconds(v, "/taskKillGracePeriodSeconds", *g, 0, "")
	}
	// app.raml: backoffFactor is a double ≥ 1.0 with no maximum; the delay
	// it grows is capped by maxLaunchDelaySeconds (as Marathon's
	// RateLimiter caps it), so any finite factor is safe and accepted.
	if !(a.BackoffFactor >= 1) || math.IsInf(a.BackoffFactor, 1) {
		v.addf("/backoffFactor", "must be a finite number, 1 or more (got %v); the default is %v", a.BackoffFactor, DefaultBackoffFactor)
	}
	seconds(v, "/progressDeadlineSeconds", a.ProgressDeadlineSeconds, 0, "0 is no deadline")
	if un := a.UnreachableStrategy; !un.Disabled {
		// unreachableStrategy.raml says int64 ≥ 1; Flotilla keeps 0 for
		// "replace at once", and caps at MaxSeconds so time.Duration holds it.
		seconds(v, "/unreachableStrategy/inactiveAfterSeconds", un.InactiveAfterSeconds, 0, "")
		seconds(v, "/unreachableStrategy/expungeAfterSeconds", un.ExpungeAfterSeconds, 0, "")
	}
	for i, h := range a.HealthChecks {
		p := fmt.Sprintf("/healthChecks/%d/", i)
		// healthCheck.raml: integer seconds, minimum 0. An interval of 0
		// makes the agent run the check back to back (a COMMAND check
		// forks without pause), so the floor is Marathon's smallest
		// useful whole second. A timeout of 0 fails every check at once.
		seconds(v, p+"intervalSeconds", h.IntervalSeconds, 1, "0 would run the check without pause")
		if !(h.TimeoutSeconds > 0) {
			v.addf(p+"timeoutSeconds", "must be greater than 0 (got %v): a check with no time to answer always fails", h.TimeoutSeconds)
		} else {
			seconds(v, p+"timeoutSeconds", h.TimeoutSeconds, 0, "")
		}
		seconds(v, p+"gracePeriodSeconds", h.GracePeriodSeconds, 0, "")
		seconds(v, p+"delaySeconds", h.DelaySeconds, 0, "")
	}
	for i, r := range a.ReadinessChecks {
		// readinessCheck.raml: int32 seconds; timeout < interval is
		// checked in validateReadiness.
		p := fmt.Sprintf("/readinessChecks/%d/intervalSeconds", i)
		if !(r.IntervalSeconds > 0) {
			v.addf(p, "must be greater than 0 (got %v)", r.IntervalSeconds)
		} else {
			seconds(v, p, r.IntervalSeconds, 0, "")
		}
	}
	if s := a.Autoscale; s != nil {
		if !(s.Tolerance >= 0) || math.IsInf(s.Tolerance, 1) {
			v.addf("/autoscale/tolerance", "must be a finite number, 0 or more (got %v)", s.Tolerance)
		}
		for _, n := range []struct {
			name string
			val  float64
		}{{"intervalSeconds", s.IntervalSeconds}, {"scaleUpWindowSeconds", s.ScaleUpWindowSeconds}, {"scaleDownWindowSeconds", s.ScaleDownWindowSeconds}, {"cooldownSeconds", s.CooldownSeconds}} {
			seconds(v, "/autoscale/"+n.name, n.val, 0, "")
		}
	}
}

// seconds checks a duration in seconds: min ≤ val ≤ MaxSeconds. why, when
// set, says what the minimum protects.
func seconds(v *ValidationError, path string, val, min float64, why string) {
	switch {
	case !(val >= min):
		if why != "" {
			v.addf(path, "must be %v or more (got %v); %s", min, val, why)
		} else {
			v.addf(path, "must be %v or more (got %v)", min, val)
		}
	case val > MaxSeconds:
		v.addf(path, "must be at most %d seconds, about 68 years (Marathon's int32 limit); got %v", MaxSeconds, val)
	}
}
