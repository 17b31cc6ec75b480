package appspec

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// oneDetail fails unless err is a ValidationError with exactly one detail,
// at path, whose message contains substr.
func oneDetail(t *testing.T, err error, path, substr string) {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error = %v, want a *ValidationError", err)
	}
	if len(verr.Details) != 1 {
		t.Fatalf("want one detail at %s, got %+v", path, verr.Details)
	}
	d := verr.Details[0]
	if d.Path != path || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], substr) {
		t.Fatalf("detail = %s %q, want %s containing %q", d.Path, d.Errors, path, substr)
	}
}

func nLabels(n, keyBytes, valueBytes int) map[string]string {
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%d", i)
		if keyBytes > 0 {
			k = strings.Repeat("k", keyBytes)
		}
		m[k] = strings.Repeat("v", valueBytes)
	}
	return m
}

func nEnv(n int) map[string]EnvValue {
	m := make(map[string]EnvValue, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("E%d", i)] = EnvValue{Value: "x"}
	}
	return m
}

func nPorts(n int) []PortDefinition {
	ps := make([]PortDefinition, n)
	for i := range ps {
		ps[i] = PortDefinition{Protocol: "tcp"}
	}
	return ps
}

func nSecrets(n int) map[string]Secret {
	m := make(map[string]Secret, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("s%d", i)] = Secret{Source: "secret/db#password"}
	}
	return m
}

func nConstraints(n int) [][]string {
	cs := make([][]string, n)
	for i := range cs {
		cs[i] = []string{"rack", "GROUP_BY"}
	}
	return cs
}

func nChecks(n int) []HealthCheck {
	hs := make([]HealthCheck, n)
	for i := range hs {
		// One Mesos check at most (haveAtMostOneMesosHealthCheck); the
		// others are run by the scheduler.
		hs[i] = hc(HealthCheck{Protocol: "TCP"})
	}
	if n > 0 {
		hs[0] = hc(HealthCheck{Protocol: "COMMAND", Command: &CommandCheck{Value: "true"}})
	}
	return hs
}

func nHosts(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("h%d.example.com", i)
	}
	return hs
}

func nPaths(n int) []string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("/p%d", i)
	}
	return ps
}

// idOf returns an id of n characters made of segments of at most seg.
func idOf(n, seg int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteByte('/')
		b.WriteString(strings.Repeat("a", min(seg, n-b.Len())))
	}
	return b.String()
}

// TestLimits: each size limit accepts an app at the limit and refuses one
// past it, naming the field and the limit.
func TestLimits(t *testing.T) {
	d := DefaultLimits()
	tests := []struct {
		name     string
		limits   Limits // zero: the defaults
		set      func(a *App, n int)
		limit    int
		path     string
		substr   string
		mustPass bool // "at the limit" is checked; false when the field is refused anyway
	}{
		{name: "instances", set: func(a *App, n int) { a.Instances = n }, limit: d.MaxInstances,
			path: "/instances", substr: "at most 100000, this server's limit of instances per app (--max-instances)"},
		{name: "instances, configured", limits: Limits{MaxInstances: 5}, set: func(a *App, n int) { a.Instances = n }, limit: 5,
			path: "/instances", substr: "at most 5"},
		{name: "autoscale max", set: func(a *App, n int) { a.Autoscale = &Autoscale{Min: 1, Max: n, Metric: "cpu", Target: 0.5} }, limit: d.MaxInstances,
			path: "/autoscale/max", substr: "--max-instances"},
		{name: "port definitions", set: func(a *App, n int) { a.PortDefinitions = nPorts(n) }, limit: d.MaxPorts,
			path: "/portDefinitions", substr: "has 1001 port definitions; at most 1000"},
		{name: "labels of a port", set: func(a *App, n int) { a.PortDefinitions[0].Labels = nLabels(n, 0, 1) }, limit: d.MaxLabels,
			path: "/portDefinitions/0/labels", substr: "at most 1000"},
		{name: "labels", set: func(a *App, n int) { a.Labels = nLabels(n, 0, 1) }, limit: d.MaxLabels,
			path: "/labels", substr: "has 1001 labels; at most 1000"},
		{name: "label key bytes", set: func(a *App, n int) { a.Labels = nLabels(1, n, 1) }, limit: d.MaxLabelKeyBytes,
			path: "/labels/" + strings.Repeat("k", 1025), substr: "label key limit"},
		{name: "label value bytes", set: func(a *App, n int) { a.Labels = map[string]string{"k": strings.Repeat("v", n)} }, limit: d.MaxLabelValueBytes,
			path: "/labels/k", substr: "at most 65536 are allowed (label value limit)"},
		{name: "env entries", set: func(a *App, n int) { a.Env = nEnv(n) }, limit: d.MaxEnv,
			path: "/env", substr: "has 1001 env entries; at most 1000"},
		{name: "env name bytes", set: func(a *App, n int) { a.Env = map[string]EnvValue{strings.Repeat("A", n): {Value: "x"}} }, limit: d.MaxEnvNameBytes,
			path: "/env/" + strings.Repeat("A", 1025), substr: "env name limit"},
		{name: "env value bytes", set: func(a *App, n int) { a.Env = map[string]EnvValue{"V": {Value: strings.Repeat("v", n)}} }, limit: d.MaxEnvValueBytes,
			path: "/env/V", substr: "at most 65536 are allowed (env value limit)"},
		{name: "secrets", set: func(a *App, n int) { a.Secrets = nSecrets(n) }, limit: d.MaxSecrets,
			path: "/secrets", substr: "has 101 secrets; at most 100"},
		{name: "constraints", set: func(a *App, n int) { a.Constraints = nConstraints(n) }, limit: d.MaxConstraints,
			path: "/constraints", substr: "has 101 constraints; at most 100"},
		{name: "health checks", set: func(a *App, n int) { a.HealthChecks = nChecks(n) }, limit: d.MaxHealthChecks,
			path: "/healthChecks", substr: "has 17 health checks; at most 16"},
		{name: "exposure vhosts", set: func(a *App, n int) { a.Exposure = &Exposure{Mode: ExposureExternal, VHosts: nHosts(n)} }, limit: d.MaxVHosts,
			path: "/exposure/vhosts", substr: "has 101 vhosts; at most 100"},
		{name: "exposure paths", set: func(a *App, n int) { a.Exposure = &Exposure{Mode: ExposureInternal, Paths: nPaths(n)} }, limit: d.MaxPaths,
			path: "/exposure/paths", substr: "has 101 paths; at most 100"},
		{name: "marathon-lb vhosts", set: func(a *App, n int) {
			a.Labels = map[string]string{LabelHAProxyGroup: "external", LabelHAProxyVHost: strings.Join(nHosts(n), ",")}
		}, limit: d.MaxVHosts, path: "/labels/" + LabelHAProxyVHost, substr: "has 101 vhosts; at most 100"},
		{name: "marathon-lb paths", set: func(a *App, n int) {
			a.Labels = map[string]string{LabelHAProxyGroup: "external", LabelHAProxyVHost: "a.example.com", LabelHAProxyPath: strings.Join(nPaths(n), " ")}
		}, limit: d.MaxPaths, path: "/labels/" + LabelHAProxyPath, substr: "has 101 paths; at most 100"},
		{name: "vhosts, configured", limits: Limits{MaxVHosts: 2}, set: func(a *App, n int) { a.Exposure = &Exposure{Mode: ExposureExternal, VHosts: nHosts(n)} }, limit: 2,
			path: "/exposure/vhosts", substr: "has 3 vhosts; at most 2"},
		{name: "id segment", set: func(a *App, n int) { a.ID = "/prod/" + strings.Repeat("a", n) }, limit: MaxIDSegment,
			path: "/id", substr: "is 64 characters; a segment is one DNS label, at most 63"},
		{name: "id length", set: func(a *App, n int) { a.ID = idOf(n, MaxIDSegment) }, limit: MaxIDLength,
			path: "/id", substr: "app id is 204 characters; at most 203 fit in a Mesos task id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			at := validApp()
			tc.set(at, tc.limit)
			if err := at.ValidateWith(tc.limits); err != nil {
				t.Fatalf("at the limit (%d): %v", tc.limit, err)
			}
			past := validApp()
			tc.set(past, tc.limit+1)
			oneDetail(t, past.ValidateWith(tc.limits), tc.path, tc.substr)
		})
	}
}

// Port mappings are refused as unsupported; a list of them past the limit
// is also told so, before anything else is done with it.
func TestPortMappingLimit(t *testing.T) {
	t.Parallel()
	a := validApp()
	a.Container.PortMappings = make([]PortMapping, 3)
	err := a.ValidateWith(Limits{MaxPorts: 2})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error = %v", err)
	}
	for _, d := range verr.Details {
		if d.Path == "/container/portMappings" && strings.Contains(strings.Join(d.Errors, " "), "has 3 port mappings; at most 2") {
			return
		}
	}
	t.Fatalf("no limit detail in %+v", verr.Details)
}

// TestRanges: numbers are finite, not below Marathon's minimum, and not
// above MaxSeconds where they count seconds. ok values are accepted; each
// bad value is refused with one detail at path.
func TestRanges(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	over := float64(MaxSeconds) + 1
	command := func(a *App) *HealthCheck {
		a.HealthChecks = nChecks(1)
		return &a.HealthChecks[0]
	}
	tests := []struct {
		name   string
		set    func(a *App, x float64)
		ok     []float64
		bad    []float64
		path   string
		substr string
	}{
		{"backoffSeconds", func(a *App, x float64) { a.BackoffSeconds = x }, []float64{0, 1, MaxSeconds}, []float64{-1, over, 1e18, inf, nan},
			"/backoffSeconds", ""},
		{"maxLaunchDelaySeconds", func(a *App, x float64) { a.MaxLaunchDelaySeconds = x }, []float64{0, 3600, MaxSeconds}, []float64{-1, over, inf, nan},
			"/maxLaunchDelaySeconds", ""},
		{"backoffSeconds cap", func(a *App, x float64) { a.BackoffSeconds = x }, nil, []float64{over, 1e18, inf},
			"/backoffSeconds", "at most 2147483647 seconds"},
		// Marathon bounds the factor only below; the delay is capped by maxLaunchDelaySeconds.
		{"backoffFactor", func(a *App, x float64) { a.BackoffFactor = x }, []float64{1, 1.15, 1e308}, []float64{0.999, 0, -1, inf, nan},
			"/backoffFactor", "finite number, 1 or more"},
		{"progressDeadlineSeconds", func(a *App, x float64) { a.ProgressDeadlineSeconds = x }, []float64{0, MaxSeconds}, []float64{-1, over, nan},
			"/progressDeadlineSeconds", ""},
		{"health intervalSeconds", func(a *App, x float64) { command(a).IntervalSeconds = x }, []float64{1, 60, MaxSeconds}, []float64{0, 0.5, -1, over, nan},
			"/healthChecks/0/intervalSeconds", ""},
		{"COMMAND intervalSeconds 0", func(a *App, x float64) { command(a).IntervalSeconds = x }, nil, []float64{0},
			"/healthChecks/0/intervalSeconds", "must be 1 or more (got 0); 0 would run the check without pause"},
		{"health timeoutSeconds", func(a *App, x float64) { command(a).TimeoutSeconds = x }, []float64{0.5, 20, MaxSeconds}, []float64{0, -1, over, nan},
			"/healthChecks/0/timeoutSeconds", ""},
		{"health gracePeriodSeconds", func(a *App, x float64) { command(a).GracePeriodSeconds = x }, []float64{0, 300, MaxSeconds}, []float64{-1, over, nan},
			"/healthChecks/0/gracePeriodSeconds", ""},
		{"health delaySeconds", func(a *App, x float64) { command(a).DelaySeconds = x }, []float64{0, MaxSeconds}, []float64{-1, over, nan},
			"/healthChecks/0/delaySeconds", ""},
		{"readiness intervalSeconds", func(a *App, x float64) {
			a.ReadinessChecks = []ReadinessCheck{{PortName: "http", IntervalSeconds: x, TimeoutSeconds: 0.5}}
			a.Normalize()
		}, []float64{1, MaxSeconds}, []float64{over, inf}, "/readinessChecks/0/intervalSeconds", "at most 2147483647"},
		{"inactiveAfterSeconds", func(a *App, x float64) {
			a.UnreachableStrategy = UnreachableStrategy{InactiveAfterSeconds: x, ExpungeAfterSeconds: MaxSeconds}
		},
			[]float64{0, 300, MaxSeconds}, []float64{-1}, "/unreachableStrategy/inactiveAfterSeconds", "0 or more"},
		{"expungeAfterSeconds", func(a *App, x float64) {
			a.UnreachableStrategy = UnreachableStrategy{InactiveAfterSeconds: 0, ExpungeAfterSeconds: x}
		},
			[]float64{0, MaxSeconds}, []float64{over, 1e18}, "/unreachableStrategy/expungeAfterSeconds", "at most 2147483647"},
		{"autoscale cooldownSeconds", func(a *App, x float64) {
			a.Autoscale = &Autoscale{Min: 1, Max: 2, Metric: "cpu", Target: 0.5, CooldownSeconds: x}
		},
			[]float64{0, MaxSeconds}, []float64{-1, over, nan}, "/autoscale/cooldownSeconds", ""},
		{"autoscale tolerance", func(a *App, x float64) {
			a.Autoscale = &Autoscale{Min: 1, Max: 2, Metric: "cpu", Target: 0.5, Tolerance: x}
		},
			[]float64{0, 0.1, 5}, []float64{-0.1, inf, nan}, "/autoscale/tolerance", "finite number"},
		// Large resources are accepted as Marathon accepts them (no agent may
		// ever fit them: the queue says so); only non-finite ones are refused.
		{"cpus", func(a *App, x float64) { a.CPUs = x }, []float64{0.001, 1e308}, []float64{0, inf, nan}, "/cpus", "greater than 0"},
		{"mem", func(a *App, x float64) { a.Mem = x }, []float64{0, 1e308}, []float64{-1, inf, nan}, "/mem", "0 or more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, x := range tc.ok {
				a := validApp()
				tc.set(a, x)
				if err := a.Validate(); err != nil {
					t.Errorf("%v refused: %v", x, err)
				}
			}
			for _, x := range tc.bad {
				t.Run(fmt.Sprint(x), func(t *testing.T) {
					a := validApp()
					tc.set(a, x)
					oneDetail(t, a.Validate(), tc.path, tc.substr)
				})
			}
		})
	}
}

// Explicit zeros from JSON reach Validate (Normalize no longer turns them
// into Marathon's defaults), so a COMMAND check polling without pause is
// refused at submit.
func TestHealthCheckZeroFromJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, check, path string }{
		{"interval", `{"protocol":"COMMAND","command":{"value":"true"},"intervalSeconds":0}`, "/healthChecks/0/intervalSeconds"},
		{"timeout", `{"protocol":"MESOS_TCP","timeoutSeconds":0}`, "/healthChecks/0/timeoutSeconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := decodeOK(t, `{"id":"/a","cmd":"x","healthChecks":[`+tc.check+`]}`)
			oneDetail(t, a.Validate(), tc.path, "")
		})
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	t.Parallel()
	got := Limits{MaxInstances: 7, MaxPorts: -1}.WithDefaults()
	want := DefaultLimits()
	want.MaxInstances = 7
	if got != want {
		t.Fatalf("WithDefaults = %+v, want %+v", got, want)
	}
	if (Limits{}).WithDefaults() != DefaultLimits() {
		t.Fatal("the zero Limits is not the defaults")
	}
}
