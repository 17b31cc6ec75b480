package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkGroupTreeAB is GET /v2/groups?embed=group.groups&embed=
// group.apps.tasks (76 MiB) and GET /v2/apps (9 MiB) with 10,000 apps in
// 100 groups and 100,000 tasks, requests alternating between variants so
// that all see the same load:
//
//   - new: the answer written from its kept pieces as one net.Buffers
//     (pieces.go: writev), the body read in 1 MiB pieces (readBufSize);
//   - old: what main served and measured before: the group tree's kept
//     pieces a Write each, the app list through a 64 KiB bufio.Writer,
//     chunked; the body read with io.Copy into io.Discard (8 KiB reads);
//   - write1m: old's server, new's client (what the client alone does);
//     read8k: new's server, old's client (what the server alone does);
//   - perReq: for the group tree the per-request path (the tree built and
//     every app's kept fragment looked up and copied); for the app list
//     the pieces app by app, each app's kept fragment looked up (no
//     chunks); new's client.
//
// Each variant's p50 and p99 latency and median CPU time per request
// (cpu-ms: the whole process, server and client) are reported.
//
// Before the timed requests each variant's answer is read whole once and
// must be valid JSON; with nothing changing every variant's answer must
// be the same bytes, and every timed answer the same length. The churn
// variants: one status update every 10 ms reaches the scheduler. Run it
// alone:
//
//	FLOTILLA_BENCH_UPDATE_BUDGET=150s go test -run '^$' -bench GroupTreeAB -benchtime 100x -timeout 30m -v ./api/
func BenchmarkGroupTreeAB(b *testing.B) {
	const apps, perApp = 10000, 10
	bs := setupBench(b, apps, perApp)
	defer bs.stop()
	srv := bs.srv
	defer srv.gtree.off.Store(false)
	defer srv.gtree.segWrites.Store(false)
	defer srv.streamedLists.Store(false)
	defer srv.lists.off.Store(false)
	buf := make([]byte, readBufSize)
	client := &http.Client{}
	groups := bs.url + "/v2/groups?embed=group.groups&embed=group.apps.tasks"
	groupOld := func(v *abVariant) { srv.gtree.off.Store(v.perReq); srv.gtree.segWrites.Store(v.old) }
	appsOld := func(v *abVariant) { srv.streamedLists.Store(v.old); srv.lists.off.Store(v.perReq) }
	for _, c := range []struct {
		name, url string
		churn     bool
		set       func(*abVariant)
	}{
		{"fresh", groups, false, groupOld},
		{"churn", groups, true, groupOld},
		{"appsFresh", bs.url + "/v2/apps", false, appsOld},
		{"appsChurn", bs.url + "/v2/apps", true, appsOld},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.churn {
				defer bs.churn()()
			}
			vs := []*abVariant{{name: "new", readBuf: buf}, {name: "old", old: true},
				{name: "write1m", old: true, readBuf: buf}, {name: "read8k"}}
			vs = append(vs, &abVariant{name: "perReq", perReq: true, readBuf: buf})
			size := sameAnswers(b, client, c.url, vs, c.set, !c.churn)
			runtime.GC()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, v := range vs {
					c.set(v)
					cpu0 := processCPU(b)
					d, n := timedGetBuf(b, client, c.url, v.readBuf)
					v.cpu = append(v.cpu, processCPU(b)-cpu0)
					if !c.churn && n != size {
						b.Fatalf("%s: %d bytes, want %d", v.name, n, size)
					}
					v.lat = append(v.lat, d)
				}
			}
			b.StopTimer()
			for _, v := range vs {
				b.ReportMetric(percentile(v.lat, 0.5), v.name+"-p50-ms")
				b.ReportMetric(percentile(v.lat, 0.99), v.name+"-p99-ms")
				b.ReportMetric(percentile(v.cpu, 0.5), v.name+"-cpu-ms")
			}
			b.ReportMetric(percentile(vs[0].lat, 0.5)/percentile(vs[1].lat, 0.5), "new/old-p50")
			b.ReportMetric(percentile(vs[0].lat, 0.99)/percentile(vs[1].lat, 0.99), "new/old-p99")
			b.ReportMetric(float64(size)/(1<<20), "MiB/resp")
			b.ReportMetric(loadAvg(), "load1")
		})
	}
}

// abVariant is one server path and client of BenchmarkGroupTreeAB.
type abVariant struct {
	name        string
	old, perReq bool   // the server's old path; the per-request path
	readBuf     []byte // nil: 8 KiB reads
	lat         []time.Duration
	// cpu is the process's CPU time (user and system, all threads) over
	// each request: server and client, which share the process, and in
	// the churn variants the scheduler's work meanwhile. Less moved by
	// the other processes on the machine than the latency.
	cpu []time.Duration
}

// processCPU is the CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sameAnswers reads url's answer whole once per variant; each must be
// valid JSON and, when equal is set (nothing changes meanwhile), the same
// bytes. It returns the first answer's length.
func sameAnswers(b *testing.B, client *http.Client, url string, vs []*abVariant, set func(*abVariant), equal bool) int64 {
	var first []byte
	for _, v := range vs {
		set(v)
		body := getWhole(b, client, url)
		if !json.Valid(body) {
			b.Fatalf("%s: the answer (%d bytes) is not valid JSON", v.name, len(body))
		}
		if first == nil {
			first = body
		} else if equal && !bytes.Equal(body, first) {
			b.Fatalf("%s: the answer (%d bytes) differs from %s's (%d bytes) at byte %d", v.name, len(body), vs[0].name, len(first), firstDiff(body, first))
		}
	}
	return int64(len(first))
}

// getWhole GETs url and returns its body, failing on anything but a 200.
func getWhole(b *testing.B, client *http.Client, url string) []byte {
	res, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		b.Fatal(fmt.Errorf("GET %s: status %d: %v", url, res.StatusCode, err))
	}
	return body
}
