package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/store"
)

// benchState is 10,000 apps and 100,000 RUNNING tasks held by a real
// scheduler (placed from 1,000 simulated agents' offers, made RUNNING by
// status updates through its loop), served by the API over loopback HTTP.
type benchState struct {
	url   string
	srv   *Server
	dep   *deploy.Service
	sched *framework.Scheduler
	in    chan framework.Input
	stop  func()
}

func setupBench(b *testing.B, apps, perApp int) *benchState {
	b.Helper()
	clk := clock.NewFake(t0)
	sched := framework.New(framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(1)),
		Log: logging.Component(logging.Discard(), "framework"), ReconcileSettle: -1})
	st := store.NewMemory(clk, 0)
	ctx, cancel := context.WithCancel(context.Background())
	for i := 0; i < apps; i++ {
		app := appspec.Defaults()
		app.ID = fmt.Sprintf("/bench/team%d/app%d", i%100, i)
		app.Cmd = "sleep 100000"
		app.CPUs, app.Mem, app.Instances = 0.01, 1, perApp
		app.Labels = map[string]string{"team": strconv.Itoa(i % 100)}
		app.Env = map[string]appspec.EnvValue{"MODE": {Value: "bench"}}
		app.HealthChecks = []appspec.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/health", GracePeriodSeconds: 300,
			IntervalSeconds: 10, TimeoutSeconds: 5, MaxConsecutiveFailures: 3}}
		app.Normalize()
		// Restore drops an app that breaks a rule (as a broken item, not
		// an error): the bench must say so, not launch nothing.
		if err := app.ValidateWith(appspec.Limits{}); err != nil {
			b.Fatalf("bench app %s: %v", app.ID, err)
		}
		if _, err := st.PutApp(ctx, app, store.CreateOnly); err != nil {
			b.Fatal(err)
		}
	}
	// The API runs on the wall clock: ListSnapshotMaxAge is about real time.
	dep := newDeploy(b, sched, st, clock.Real{})
	srv, err := New(Config{Scheduler: sched, Store: st, Deploy: dep, Clock: clock.Real{}, Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	if err := dep.Restore(ctx); err != nil {
		b.Fatal(err)
	}
	// The bench measures reads, not the restored state's deployments.
	for _, d := range dep.Deployments() {
		if _, err := dep.Cancel(ctx, d.ID, true); err != nil {
			b.Fatal(err)
		}
	}

	rec := &framework.Recorder{}
	in := make(chan framework.Input) // unbuffered: a send is received before the Sync that follows
	done := make(chan struct{})
	go func() { defer close(done); _ = sched.Run(ctx, in, rec) }()
	sync := func() {
		for err := sched.Sync(ctx); err != nil; err = sched.Sync(ctx) {
			time.Sleep(time.Millisecond)
		}
	}
	in <- framework.SubscribedInput("fw")
	sync()
	const agents = 1000
	var offers []mesos.Offer
	for i := 0; i < agents; i++ {
		offers = append(offers, framework.TestOffer(fmt.Sprintf("o%d", i), fmt.Sprintf("a%d", i), fmt.Sprintf("agent%d.example", i), 64, 1<<20, 31000, 32000, nil))
	}
	in <- framework.OffersInput(offers...)
	sync()
	var launched []mesos.TaskInfo
	for _, c := range rec.Take() {
		launched = append(launched, c.Launched()...)
	}
	if len(launched) != apps*perApp {
		q := sched.Snapshot().Queue
		if len(q) > 0 {
			b.Logf("queue[0]: %+v", q[0])
		}
		b.Fatalf("launched %d tasks, want %d", len(launched), apps*perApp)
	}
	// Each status update is one scheduler step, and a step currently
	// visits every app (publishQueues), so 100,000 updates against 10,000
	// apps take far too long here: updates are sent for a time budget
	// and the rest of the tasks stay STAGING. Listing costs the same for
	// any task state; the rate is reported for the framework's sake.
	healthy := true
	budget := 60 * time.Second
	if v, err := time.ParseDuration(os.Getenv("FLOTILLA_BENCH_UPDATE_BUDGET")); err == nil {
		budget = v
	}
	start := time.Now()
	sent := 0
	for _, ti := range launched {
		if time.Since(start) > budget {
			break
		}
		st := framework.TestStatus(ti.TaskID.Value, ti.AgentID.Value, mesos.TASK_RUNNING, false)
		st.Healthy = &healthy
		in <- framework.UpdateInput(st)
		sent++
	}
	launched = nil
	sync()
	elapsed := time.Since(start)
	rec.Take()
	snap := sched.Snapshot()
	running := 0
	for _, t := range snap.Tasks {
		if t.State == mesos.TASK_RUNNING {
			running++
		}
	}
	if running != sent || len(snap.Tasks) != apps*perApp {
		b.Fatalf("%d tasks running of %d, want %d of %d", running, len(snap.Tasks), sent, apps*perApp)
	}
	b.Logf("setup: %d tasks held, %d made RUNNING by status updates in %v (%.0f updates/s through the scheduler loop with %d apps)",
		len(snap.Tasks), running, elapsed.Round(time.Millisecond), float64(running)/elapsed.Seconds(), apps)
	hs := httptest.NewServer(srv)
	return &benchState{url: hs.URL, srv: srv, dep: dep, sched: sched, in: in, stop: func() {
		hs.Close()
		cancel()
		<-done
	}}
}

func rssMiB() (rss, hwm float64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// timedGet GETs url, reads the body whole and returns how long it took
// and the body's size; anything but a 200 fails the benchmark. The body is
// read with io.Copy into io.Discard: 8 KiB per read.
func timedGet(b *testing.B, client *http.Client, url string) (time.Duration, int64) {
	return timedGetBuf(b, client, url, nil)
}

// readBufSize is the read buffer of the benchmarks' large-read client:
// a 76 MiB answer in 8 KiB reads is ~9,700 read calls (strace -c), each
// a system call and often a wait in the poller for the next segment; in
// 1 MiB reads it is ~100. A client that wants the whole answer can read
// it so: encoding/json's Decoder (go-marathon's) doubles its buffer as a
// value grows and reads into all that is free of it; curl's read buffer
// is 16 KiB unless set larger (CURLOPT_BUFFERSIZE).
const readBufSize = 1 << 20

// timedGetBuf is timedGet reading the body into buf, reused from request
// to request and counted, not kept; nil buf reads as timedGet does.
func timedGetBuf(b *testing.B, client *http.Client, url string, buf []byte) (time.Duration, int64) {
	start := time.Now()
	res, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	if buf == nil {
		n, err = io.Copy(io.Discard, res.Body)
	} else {
		for err == nil {
			var k int
			k, err = res.Body.Read(buf)
			n += int64(k)
		}
		if err == io.EOF {
			err = nil
		}
	}
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		b.Fatalf("GET %s: status %d: %v", url, res.StatusCode, err)
	}
	// net/http fails a body shorter than its Content-Length; a longer
	// one is the server's mistake and would go unseen.
	if res.ContentLength >= 0 && n != res.ContentLength {
		b.Fatalf("GET %s: read %d bytes, Content-Length %d", url, n, res.ContentLength)
	}
	return time.Since(start), n
}

// timedCurl is GET url by curl: its time_total (connect to last byte,
// without the process's start) and the bytes it read.
func timedCurl(b *testing.B, url string) (time.Duration, int64) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Skip("curl is not installed: the curl variants need it")
	}
	out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total} %{size_download}", url).Output()
	if err != nil {
		b.Fatalf("curl %s: %v", url, err)
	}
	var code int
	var secs float64
	var n int64
	if _, err := fmt.Sscan(string(out), &code, &secs, &n); err != nil || code != http.StatusOK {
		b.Fatalf("curl %s: %q (%v)", url, out, err)
	}
	return time.Duration(secs * float64(time.Second)), n
}

// percentile is the p-th (0–1) of lat in milliseconds; it sorts lat.
func percentile(lat []time.Duration, p float64) float64 {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
}

// BenchmarkListApps is GET /v2/apps with 10,000 apps and 100,000 tasks,
// over loopback HTTP, body read whole by the client (8 KiB reads; the
// Read1MiB variants in 1 MiB reads; the Curl variants by curl, which is
// skipped when curl is not installed). Reports p50/p99
// latency, response size and the process's RSS, the churn variant while
// one status update per 10 ms reaches the scheduler. With a static peer
// (staticPeerFromEnv; bench/api/run.sh starts nginx) every variant but
// churn also times the same client reading the same bytes from the peer,
// request after request, as peer-p50-ms and peer-p99-ms. Run it alone:
//
//	go test -run '^$' -bench ListApps -benchtime 200x ./api/
func BenchmarkListApps(b *testing.B) {
	const apps, perApp = 10000, 10
	bs := setupBench(b, apps, perApp)
	defer bs.stop()
	peer := staticPeerFromEnv(b)
	runtime.GC()
	buf := make([]byte, readBufSize)
	for _, q := range []struct {
		name, query string
		buf         []byte // nil: 8 KiB reads (io.Copy into io.Discard)
	}{
		{"plain", "/v2/apps", nil},
		{"embedTasks", "/v2/apps?embed=apps.tasks", nil},
		{"labelFilter", "/v2/apps?label=team==7", nil},
		// The group tree of the same apps (100 groups), with their tasks.
		{"groupsEmbedTasks", "/v2/groups?embed=group.groups&embed=group.apps.tasks", nil},
		// The plain list while one status update every 10 ms reaches the
		// scheduler: nearly every request sees a new snapshot.
		{"churn", "/v2/apps", nil},
		// The large answers again, read in 1 MiB pieces (readBufSize).
		{"plainRead1MiB", "/v2/apps", buf},
		{"groupsEmbedTasksRead1MiB", "/v2/groups?embed=group.groups&embed=group.apps.tasks", buf},
		// And by curl, a client that is not ours (its own time_total).
		{"plainCurl", "/v2/apps", nil},
		{"groupsEmbedTasksCurl", "/v2/groups?embed=group.groups&embed=group.apps.tasks", nil},
	} {
		client, peerClient := &http.Client{}, &http.Client{}
		b.Run(q.name, func(b *testing.B) {
			getter := func(c *http.Client, url string) func() (time.Duration, int64) {
				if strings.HasSuffix(q.name, "Curl") {
					return func() (time.Duration, int64) { return timedCurl(b, url) }
				}
				return func() (time.Duration, int64) { return timedGetBuf(b, c, url, q.buf) }
			}
			get := getter(client, bs.url+q.query)
			var getPeer func() (time.Duration, int64)
			if peer != nil && q.name != "churn" {
				getPeer = getter(peerClient, peer.serve(b, client, bs.url+q.query, q.name))
				runtime.GC() // serve's two copies of the answer are garbage now
			}
			if q.name == "churn" {
				defer bs.churn()()
			}
			lat := make([]time.Duration, 0, b.N)
			var peerLat []time.Duration
			var size int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, n := get()
				lat = append(lat, d)
				size = n
				if getPeer != nil {
					d, _ = getPeer()
					peerLat = append(peerLat, d)
				}
			}
			b.StopTimer()
			rss, hwm := rssMiB()
			b.ReportMetric(percentile(lat, 0.5), "p50-ms")
			b.ReportMetric(percentile(lat, 0.99), "p99-ms")
			if peerLat != nil {
				b.ReportMetric(percentile(peerLat, 0.5), "peer-p50-ms")
				b.ReportMetric(percentile(peerLat, 0.99), "peer-p99-ms")
			}
			b.ReportMetric(float64(size)/(1<<20), "MiB/resp")
			b.ReportMetric(rss, "rss-MiB")
			b.ReportMetric(hwm, "peak-rss-MiB")
			b.ReportMetric(loadAvg(), "load1")
		})
	}
}

// staticPeer is a static file server (bench/api/run.sh starts nginx with
// sendfile) that serves, from dir, the very bytes of each answer the
// benchmark times. The same client reads both, one request after the other,
// so the peer's figure is the floor that client and machine put under any
// server's: nginx does no work per request but send a file.
type staticPeer struct{ url, dir string }

// staticPeerFromEnv is the peer FLOTILLA_BENCH_PEER_URL (its base URL) and
// FLOTILLA_BENCH_PEER_DIR (the directory it serves) name, or nil.
func staticPeerFromEnv(b *testing.B) *staticPeer {
	url, dir := os.Getenv("FLOTILLA_BENCH_PEER_URL"), os.Getenv("FLOTILLA_BENCH_PEER_DIR")
	if url == "" && dir == "" {
		return nil
	}
	if url == "" || dir == "" {
		b.Fatalf("FLOTILLA_BENCH_PEER_URL (%q) and FLOTILLA_BENCH_PEER_DIR (%q) go together", url, dir)
	}
	return &staticPeer{url: strings.TrimSuffix(url, "/"), dir: dir}
}

// serve writes the answer to GET from (read through client) into the
// peer's directory as name.json and returns the peer's URL for it, after
// checking that the peer answers it with the same number of bytes.
func (p *staticPeer) serve(b *testing.B, client *http.Client, from, name string) string {
	body := getWhole(b, client, from)
	if err := os.WriteFile(p.dir+"/"+name+".json", body, 0o644); err != nil {
		b.Fatal(err)
	}
	url := p.url + "/" + name + ".json"
	if got := getWhole(b, client, url); len(got) != len(body) {
		b.Fatalf("the peer answers %s with %d bytes, not the %d written", url, len(got), len(body))
	}
	return url
}

// BenchmarkGroupsFragmentsAB is GET /v2/groups?embed=group.groups&
// embed=group.apps.tasks with 10,000 apps and 100,000 tasks, with kept
// fragments (A) and without (B), the two alternating request by request
// so that both see the same load; it reports both p50/p99 and their
// ratio. Run it alone:
//
//	FLOTILLA_BENCH_UPDATE_BUDGET=20s go test -run '^$' -bench GroupsFragmentsAB -benchtime 60x ./api/
func BenchmarkGroupsFragmentsAB(b *testing.B) {
	const apps, perApp = 10000, 10
	bs := setupBench(b, apps, perApp)
	defer bs.stop()
	defer bs.srv.noFragments.Store(false)
	runtime.GC()
	client := &http.Client{}
	url := bs.url + "/v2/groups?embed=group.groups&embed=group.apps.tasks"
	var with, without []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bs.srv.noFragments.Store(false)
		d, _ := timedGet(b, client, url)
		with = append(with, d)
		bs.srv.noFragments.Store(true)
		d, _ = timedGet(b, client, url)
		without = append(without, d)
	}
	b.StopTimer()
	reportAB(b, with, without)
}

// reportAB reports p50/p99 of the A and B latencies of one run and their
// ratios.
func reportAB(b *testing.B, a, old []time.Duration) {
	b.ReportMetric(percentile(a, 0.5), "A-p50-ms")
	b.ReportMetric(percentile(a, 0.99), "A-p99-ms")
	b.ReportMetric(percentile(old, 0.5), "B-p50-ms")
	b.ReportMetric(percentile(old, 0.99), "B-p99-ms")
	b.ReportMetric(percentile(a, 0.5)/percentile(old, 0.5), "A/B-p50")
	b.ReportMetric(percentile(a, 0.99)/percentile(old, 0.99), "A/B-p99")
}

// churn sends one status update every 10 ms (a task's health flipping,
// round robin over all tasks) until stop is called, which returns how
// many were sent. Each update is a new scheduler generation.
func (bs *benchState) churn() (stop func() int) {
	ids := bs.sched.Snapshot().Tasks
	quit := make(chan struct{})
	done := make(chan int)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		healthy := []bool{true, false}
		for i := 0; ; i++ {
			select {
			case <-quit:
				done <- i
				return
			case <-tick.C:
				t := ids[i%len(ids)]
				st := framework.TestStatus(t.ID, t.AgentID, mesos.TASK_RUNNING, false)
				st.Healthy = &healthy[(i/len(ids))%2]
				bs.in <- framework.UpdateInput(st)
			}
		}
	}()
	return func() int { close(quit); return <-done }
}

// loadAvg is the machine's 1-minute load average (/proc/loadavg), so a
// figure can be read beside how busy the shared machine was.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

// BenchmarkListAppsChurn is GET /v2/apps (10,000 apps, 100,000 tasks)
// while the scheduler keeps changing (one status update every 10 ms), so
// nearly every request sees a new snapshot. A (what serve runs): the
// list reads SnapshotByApp, whose task parts are rebuilt only for the
// apps an update touched, and copies every other app's kept fragment. B:
// the list reads Snapshot (every task copied into one flat list per
// generation) and renders every app. Requests alternate A and B, so both
// see the same load; p50/p99 of each and the ratios are reported, and
// the fresh list without churn (A) beside them. Run it alone:
//
//	FLOTILLA_BENCH_UPDATE_BUDGET=20s go test -run '^$' -bench 'ListAppsChurn' -benchtime 300x -timeout 30m -v ./api/
func BenchmarkListAppsChurn(b *testing.B) {
	const apps, perApp = 10000, 10
	bs := setupBench(b, apps, perApp)
	defer bs.stop()
	defer bs.srv.noFragments.Store(false)
	defer bs.srv.flatSnapshots.Store(false)
	client := &http.Client{}
	url := bs.url + "/v2/apps"
	b.Run("noChurn", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			d, _ := timedGet(b, client, url)
			lat = append(lat, d)
		}
		b.ReportMetric(percentile(lat, 0.5), "p50-ms")
		b.ReportMetric(percentile(lat, 0.99), "p99-ms")
		b.ReportMetric(loadAvg(), "load1")
	})
	b.Run("churnAB", func(b *testing.B) {
		gen0 := bs.sched.SnapshotByApp().Generation
		stop := bs.churn()
		var a, old []time.Duration
		var gensA int
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bs.srv.noFragments.Store(false)
			bs.srv.flatSnapshots.Store(false)
			g := bs.sched.SnapshotByApp().Generation
			d, _ := timedGet(b, client, url)
			a = append(a, d)
			if bs.sched.SnapshotByApp().Generation != g {
				gensA++
			}
			bs.srv.noFragments.Store(true)
			bs.srv.flatSnapshots.Store(true)
			d, _ = timedGet(b, client, url)
			old = append(old, d)
		}
		b.StopTimer()
		sent := stop()
		gens := bs.sched.SnapshotByApp().Generation - gen0
		if b.N >= 20 && (sent == 0 || gens == 0) { // make bench's 1x may end before the first tick
			b.Fatalf("no churn: %d updates sent, %d new generations", sent, gens)
		}
		b.Logf("churn: %d updates sent, %d generations; the state changed during %d of %d A lists; load average %.1f",
			sent, gens, gensA, b.N, loadAvg())
		reportAB(b, a, old)
		b.ReportMetric(loadAvg(), "load1")
	})
}
