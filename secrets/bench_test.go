package secrets

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// BenchmarkResolve10 measures the launch overhead of an app with 10
// secrets on 10 distinct KV v2 paths of the real Vault: "cached" is a launch
// within the cache TTL, "uncached" steps the clock past it before every
// launch so each one reads all 10 paths (mount detection stays cached, as in
// production). It reports p50 and p99 per launch.
//
//	go test -run '^$' -bench Resolve10 -benchtime 2000x ./secrets/
func BenchmarkResolve10(b *testing.B) {
	bd := newBed(b)
	app := &appspec.App{Env: map[string]appspec.EnvValue{}, Secrets: map[string]appspec.Secret{}}
	for i := range 10 {
		p := bd.putV2(b, fmt.Sprintf("s%d", i), map[string]any{"password": fmt.Sprintf("pw-%d-%s", i, randHex(b, 8))})
		name := fmt.Sprintf("s%d", i)
		app.Env[fmt.Sprintf("SECRET_%d", i)] = appspec.EnvValue{Secret: name}
		app.Secrets[name] = appspec.Secret{Source: p + "#password"}
	}
	v := newVault(b, bd.tokenConfig(), clock.Real{}, nil)
	for _, c := range []struct {
		name   string
		cached bool
	}{{"cached", true}, {"uncached", false}} {
		b.Run(c.name, func(b *testing.B) {
			clk := fakeClock()
			r := NewResolver(v, clk, 10*time.Second, discard)
			if _, err := r.Resolve(testCtx(b), app); err != nil { // warm mounts and, for cached, values
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				if !c.cached {
					clk.Step(10 * time.Second)
				}
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a launch's deadline
				env, err := r.Resolve(ctx, app)
				cancel()
				lat = append(lat, time.Since(start))
				if err != nil || len(env) != 10 {
					b.Fatalf("resolve: %v", err)
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
		})
	}
}
