package api

import (
	"net/http"
	"runtime"
	"testing"
	"time"
)

// BenchmarkGroupTreeAB is GET /v2/groups?embed=group.groups&embed=
// group.apps.tasks with 10,000 apps in 100 groups and 100,000 tasks, from
// the kept tree and chunks (A, grouptree.go) and from the per-request path
// (B: the tree built and every app's kept fragment looked up and copied
// per request, as main served it), requests alternating A and B so that
// both see the same load. "fresh": nothing changes; "churn": one status
// update every 10 ms reaches the scheduler. Run it alone:
//
//	FLOTILLA_BENCH_UPDATE_BUDGET=20s go test -run '^$' -bench GroupTreeAB -benchtime 100x -timeout 30m -v ./api/
func BenchmarkGroupTreeAB(b *testing.B) {
	const apps, perApp = 10000, 10
	bs := setupBench(b, apps, perApp)
	defer bs.stop()
	defer bs.srv.gtree.off.Store(false)
	client := &http.Client{}
	url := bs.url + "/v2/groups?embed=group.groups&embed=group.apps.tasks"
	for _, churn := range []bool{false, true} {
		name := "fresh"
		if churn {
			name = "churn"
		}
		b.Run(name, func(b *testing.B) {
			if churn {
				defer bs.churn()()
			}
			runtime.GC()
			var a, old []time.Duration
			var size int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bs.srv.gtree.off.Store(false)
				d, n := timedGet(b, client, url)
				a = append(a, d)
				size = n
				bs.srv.gtree.off.Store(true)
				d, _ = timedGet(b, client, url)
				old = append(old, d)
			}
			b.StopTimer()
			reportAB(b, a, old)
			b.ReportMetric(float64(size)/(1<<20), "MiB/resp")
			b.ReportMetric(loadAvg(), "load1")
		})
	}
}
