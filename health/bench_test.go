package health

import (
	"strconv"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// BenchmarkDue is the tracker's cost per tick (every 100 ms by default)
// with 10,000 running tasks whose HTTP check is not due: the scan the
// leader pays between probes.
func BenchmarkDue(b *testing.B) {
	tr := newTracker()
	tr.Event(framework.Event{Type: framework.EventApp, App: checkedApp(appspec.HealthCheck{Path: "/h", DelaySeconds: 3600, IntervalSeconds: 60, TimeoutSeconds: 20})}, t0)
	for i := range 10_000 {
		tr.task(runningTask("web."+strconv.Itoa(i)), t0)
	}
	b.ResetTimer()
	for range b.N {
		if ps := tr.due(t0.Add(time.Minute), 256); len(ps) != 0 {
			b.Fatal("probes due")
		}
	}
}
