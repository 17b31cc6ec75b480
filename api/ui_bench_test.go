package api

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/chromedp/chromedp"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// BenchmarkUIAppList is the web UI's apps list in Debian's headless
// Chromium against 10,000 apps and 100,000 tasks (setupBench: a real
// scheduler and deploy service behind this package's Server over loopback
// HTTP, events flowing to /v2/events). Each iteration loads the page afresh
// and times (render), from navigation start, the moment the first rows are on
// screen (the page's performance mark "flotilla:apps-rendered"). Then, with
// the list open (events100), 100 task status updates a second (health flapping, so
// each is a status and a health event) reach the page; the page's
// main thread is probed every 50 ms, and the delay of each probe is what
// a keypress or scroll would have waited. Run it alone:
//
//	go test -run '^$' -bench UIAppList -benchtime 5x -timeout 30m ./api/
//
// (events100 runs b.N spells of 10 s.)
func BenchmarkUIAppList(b *testing.B) {
	const apps, perApp = 10000, 10
	br := testbed.NewBrowser(b, 1280, 800) // before the long setup: a missing Chromium says so at once
	bs := setupBench(b, apps, perApp)
	defer bs.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = bs.srv.Run(ctx) }()
	go func() { _ = bs.dep.Run(ctx) }()

	b.Run("render", func(b *testing.B) {
		renders := make([]float64, 0, b.N)
		for i := 0; i < b.N; i++ {
			var ms float64
			br.Run(b, "load the apps list", chromedp.Navigate(fmt.Sprintf("%s/?load=%d#/", bs.url, i)),
				chromedp.Poll(`(() => { const m = performance.getEntriesByName('flotilla:apps-rendered')[0];
					return m && document.querySelector('.vrow') ? m.startTime : null; })()`, &ms, chromedp.WithPollingTimeout(50*time.Second)))
			renders = append(renders, ms)
		}
		b.StopTimer()
		var rows int
		br.Run(b, "count the rows in the DOM", chromedp.Evaluate(`document.querySelectorAll('.vrow').length`, &rows))
		sort.Float64s(renders)
		b.ReportMetric(renders[len(renders)/2], "render-p50-ms")
		b.ReportMetric(renders[len(renders)-1], "render-max-ms")
		b.ReportMetric(float64(rows), "rows-in-DOM")
	})
	// Each iteration is 10 s of 100 updates a second on the open list.
	b.Run("events100", func(b *testing.B) {
		br.Run(b, "open the apps list", chromedp.Navigate(bs.url+"/?events#/"),
			chromedp.Poll(`document.querySelector('.vrow') !== null`, nil, chromedp.WithPollingTimeout(50*time.Second)))
		// A probe of the page's main thread, and a count of the events it
		// receives and of the list reads they cause.
		br.Run(b, "install the probe", chromedp.Evaluate(`(() => {
			const p = window.__probe = { lags: [], events: 0, refreshes: [] };
			let last = performance.now();
			setInterval(() => { const now = performance.now(); p.lags.push(Math.max(0, now - last - 50)); last = now; }, 50);
			const es = new EventSource('/v2/events');
			for (const t of ['status_update_event', 'health_status_changed_event']) es.addEventListener(t, () => p.events++);
			new PerformanceObserver(l => { for (const e of l.getEntries()) if (e.name === 'flotilla:apps-refresh') p.refreshes.push(e.duration); }).observe({ type: 'measure' });
		})()`, nil))
		tasks := bs.sched.Snapshot().Tasks
		const rate = 100
		spell := time.Duration(b.N) * 10 * time.Second
		unhealthy := false // setup made them healthy: every update is a change
		start := time.Now()
		sent := 0
		tick := time.NewTicker(10 * time.Millisecond)
		// Sent on a schedule that catches up: a send blocks while the
		// scheduler's loop is busy, and a plain ticker would drop the
		// updates owed meanwhile.
		for time.Since(start) < spell {
			<-tick.C
			for owed := int(time.Since(start).Seconds() * rate); sent < owed; sent++ {
				t := tasks[(sent*7919)%len(tasks)] // spread over apps
				st := framework.TestStatus(t.ID, t.AgentID, mesos.TASK_RUNNING, false)
				st.Healthy = &unhealthy
				bs.in <- framework.UpdateInput(st)
			}
		}
		tick.Stop()
		elapsed := time.Since(start)
		var probe struct {
			Lags      []float64 `json:"lags"`
			Events    int       `json:"events"`
			Refreshes []float64 `json:"refreshes"`
		}
		br.Run(b, "read the probe", chromedp.Evaluate(`window.__probe`, &probe))
		if len(probe.Lags) == 0 || probe.Events == 0 || len(probe.Refreshes) == 0 {
			b.Fatalf("under %d updates the page probed %d times, saw %d events and re-read the list %d times; want all > 0",
				sent, len(probe.Lags), probe.Events, len(probe.Refreshes))
		}
		sort.Float64s(probe.Lags)
		sort.Float64s(probe.Refreshes)
		pct := func(v []float64, p float64) float64 { return v[min(len(v)-1, int(p*float64(len(v))))] }
		b.ReportMetric(float64(sent)/elapsed.Seconds(), "updates/s")
		b.ReportMetric(float64(probe.Events)/elapsed.Seconds(), "page-events/s")
		b.ReportMetric(pct(probe.Lags, 0.5), "input-delay-p50-ms")
		b.ReportMetric(pct(probe.Lags, 0.99), "input-delay-p99-ms")
		b.ReportMetric(probe.Lags[len(probe.Lags)-1], "input-delay-max-ms")
		b.ReportMetric(float64(len(probe.Refreshes))/elapsed.Seconds(), "list-reads/s")
		b.ReportMetric(pct(probe.Refreshes, 0.5), "list-read-p50-ms")
	})
}
