package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// BenchmarkZK measures the ZooKeeper store against the test bed's server
// with 1,000 apps stored. Run with:
//
//	go test -run '^$' -bench BenchmarkZK -benchtime 3000x ./store/
func BenchmarkZK(b *testing.B) {
	env := newZKEnv(b)
	s := env.open(b, clock.Real{}, DefaultHistory)
	const apps = 1000
	putMany(b, s, apps)
	ctx := context.Background()
	ids := make([]string, apps)
	for i := range ids {
		ids[i] = fmt.Sprintf("/team%d/svc-%04d", i%10, i)
	}
	opsPerSec := func(b *testing.B, start time.Time, n int) {
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "ops/s")
	}

	b.Run("Put", func(b *testing.B) {
		a := testApp("/x")
		start := time.Now()
		for i := 0; i < b.N; i++ {
			a.ID = ids[i%apps]
			a.Instances = i
			if _, err := s.PutApp(ctx, a, AnyRevision); err != nil {
				b.Fatal(err)
			}
		}
		opsPerSec(b, start, b.N)
	})
	b.Run("PutParallel16", func(b *testing.B) {
		b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 writers
		start := time.Now()
		next := make(chan int, 1)
		next <- 0
		b.RunParallel(func(pb *testing.PB) {
			a := testApp("/x")
			for pb.Next() {
				i := <-next
				next <- i + 1
				a.ID = ids[i%apps]
				if _, err := s.PutApp(ctx, a, AnyRevision); err != nil {
					b.Error(err)
					return
				}
			}
		})
		opsPerSec(b, start, b.N)
	})
	b.Run("Get", func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := s.GetApp(ctx, ids[i%apps]); err != nil {
				b.Fatal(err)
			}
		}
		opsPerSec(b, start, b.N)
	})
	b.Run("List1000", func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			list, err := s.ListApps(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(list) != apps {
				b.Fatalf("listed %d apps, want %d", len(list), apps)
			}
		}
		b.ReportMetric(float64(b.N*apps)/time.Since(start).Seconds(), "apps/s")
		opsPerSec(b, start, b.N)
	})
}
