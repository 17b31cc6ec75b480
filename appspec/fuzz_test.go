package appspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// tightLimits are far below the defaults, so that fuzzed inputs reach
// every limit check; anything they accept, DefaultLimits accepts too.
var tightLimits = Limits{
	MaxInstances: 8, MaxPorts: 3, MaxLabels: 3, MaxLabelKeyBytes: 8, MaxLabelValueBytes: 16,
	MaxEnv: 3, MaxEnvNameBytes: 8, MaxEnvValueBytes: 16, MaxConstraints: 2, MaxHealthChecks: 1, MaxSecrets: 2,
	MaxVHosts: 2, MaxPaths: 2,
}

// FuzzDecode: no input makes Decode, Validate or ValidateWith panic; an
// accepted app's JSON is a fixed point (it decodes back to an app with the
// same JSON and the same verdict); an app valid under tight limits is
// valid under the defaults; and a valid app keeps every limit and range.
// `go test` runs the seeds in testdata/fuzz/FuzzDecode and Marathon's
// documents; `go test -fuzz FuzzDecode ./appspec/` explores.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "marathon", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := Decode(bytes.NewReader(body))
		if err != nil {
			var ve *ValidationError
			if !errors.Is(err, ErrTooLarge) && !errors.As(err, &ve) {
				t.Fatalf("Decode error of an unknown kind: %T %v", err, err)
			}
			return
		}
		verdict := a.Validate()
		tight := a.ValidateWith(tightLimits)
		if tight == nil && verdict != nil {
			t.Fatalf("valid under tight limits, refused under the defaults: %v", verdict)
		}
		for _, e := range []error{verdict, tight} {
			var ve *ValidationError
			if e != nil && (!errors.As(e, &ve) || len(ve.Details) == 0 || errors.Is(e, ErrMalformed)) {
				t.Fatalf("Validate error without details, or called malformed: %#v", e)
			}
		}
		_ = a.EffectiveExposure()
		enc, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("accepted app does not encode: %v", err)
		}
		b, err := Decode(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("own encoding refused: %v\n%s", err, enc)
		}
		enc2, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("re-decoded app does not encode: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", enc, enc2)
		}
		if again := b.Validate(); (again == nil) != (verdict == nil) {
			t.Fatalf("verdict changed across a round trip: %v, then %v", verdict, again)
		}
		if verdict == nil {
			checkValid(t, a)
		}
	})
}

// checkValid asserts what the scheduler relies on in every valid app.
func checkValid(t *testing.T, a *App) {
	t.Helper()
	l := DefaultLimits()
	if a.Instances < 0 || a.Instances > l.MaxInstances {
		t.Fatalf("valid app with %d instances", a.Instances)
	}
	if len(a.PortDefinitions) > l.MaxPorts || len(a.Env) > l.MaxEnv || len(a.Labels) > l.MaxLabels ||
		len(a.Constraints) > l.MaxConstraints || len(a.HealthChecks) > l.MaxHealthChecks || len(a.Secrets) > l.MaxSecrets {
		t.Fatalf("valid app over a count limit: %d ports, %d env, %d labels, %d constraints, %d health checks, %d secrets",
			len(a.PortDefinitions), len(a.Env), len(a.Labels), len(a.Constraints), len(a.HealthChecks), len(a.Secrets))
	}
	if e := a.EffectiveExposure(); len(e.VHosts) > l.MaxVHosts || len(e.Paths) > l.MaxPaths {
		t.Fatalf("valid app with %d vhosts and %d paths", len(e.VHosts), len(e.Paths))
	}
	if err := CheckID(a.ID); err != nil || len(a.ID) > MaxIDLength {
		t.Fatalf("valid app with a bad id %q: %v", a.ID, err)
	}
	for name, x := range map[string]float64{"cpus": a.CPUs, "mem": a.Mem, "disk": a.Disk, "backoffSeconds": a.BackoffSeconds,
		"backoffFactor": a.BackoffFactor, "maxLaunchDelaySeconds": a.MaxLaunchDelaySeconds, "progressDeadlineSeconds": a.ProgressDeadlineSeconds} {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			t.Fatalf("valid app with %s %v", name, x)
		}
	}
	for _, x := range []float64{a.BackoffSeconds, a.MaxLaunchDelaySeconds, a.ProgressDeadlineSeconds} {
		if x > MaxSeconds {
			t.Fatalf("valid app with a duration of %v s", x)
		}
	}
	for _, h := range a.HealthChecks {
		if !(h.IntervalSeconds >= 1) || !(h.TimeoutSeconds > 0) || h.IntervalSeconds > MaxSeconds || h.TimeoutSeconds > MaxSeconds {
			t.Fatalf("valid app with health check interval %v, timeout %v", h.IntervalSeconds, h.TimeoutSeconds)
		}
	}
}
