package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// BenchmarkGroupTreeAB is GET /v2/groups?embed=group.groups&embed=
// group.apps.tasks with 10,000 apps in 100 groups and 100,000 tasks,
// requests alternating between variants so that all see the same load:
//
//   - new: the kept tree and chunks (grouptree.go) written as one
//     net.Buffers (writev), the body read in 1 MiB pieces (readBufSize);
//   - old: the kept path written a Write per piece, the body read with
//     io.Copy into io.Discard (8 KiB reads): what main served and measured
//     before;
//   - write1m: old's server, new's client (what the writev path alone
//     does); read8k: new's server, old's client (what the client alone
//     does);
//   - perReq: the per-request path (the tree built and every app's kept
//     fragment looked up and copied), new's client.
//
// Before the timed requests each variant's answer is read whole once and
// must be valid JSON; in "fresh" (nothing changes) every variant's answer
// must be the same bytes, and every timed answer the same length. "churn":
// one status update every 10 ms reaches the scheduler. Run it alone:
//
//	FLOTILLA_BENCH_UPDATE_BUDGET=120s go test -run '^$' -bench GroupTreeAB -benchtime 100x -timeout 30m -v ./api/
func BenchmarkGroupTreeAB(b *testing.B) {
	const apps, perApp = 10000, 10
	bs := setupBench(b, apps, perApp)
	defer bs.stop()
	g := &bs.srv.gtree
	defer g.off.Store(false)
	defer g.segWrites.Store(false)
	buf := make([]byte, readBufSize)
	type variant struct {
		name           string
		perReq, perSeg bool
		readBuf        []byte
		lat            []time.Duration
	}
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
			vs := []*variant{{name: "new", readBuf: buf}, {name: "old", perSeg: true},
				{name: "write1m", perSeg: true, readBuf: buf}, {name: "read8k"}, {name: "perReq", perReq: true, readBuf: buf}}
			set := func(v *variant) { g.off.Store(v.perReq); g.segWrites.Store(v.perSeg) }
			var first []byte
			for _, v := range vs {
				set(v)
				body := getWhole(b, client, url)
				if !json.Valid(body) {
					b.Fatalf("%s: the answer (%d bytes) is not valid JSON", v.name, len(body))
				}
				if first == nil {
					first = body
				} else if !churn && !bytes.Equal(body, first) {
					b.Fatalf("%s: the answer (%d bytes) differs from %s's (%d bytes)", v.name, len(body), vs[0].name, len(first))
				}
			}
			size := int64(len(first))
			first = nil
			runtime.GC()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, v := range vs {
					set(v)
					d, n := timedGetBuf(b, client, url, v.readBuf)
					if !churn && n != size {
						b.Fatalf("%s: %d bytes, want %d", v.name, n, size)
					}
					v.lat = append(v.lat, d)
				}
			}
			b.StopTimer()
			for _, v := range vs {
				b.ReportMetric(percentile(v.lat, 0.5), v.name+"-p50-ms")
				b.ReportMetric(percentile(v.lat, 0.99), v.name+"-p99-ms")
			}
			b.ReportMetric(percentile(vs[0].lat, 0.5)/percentile(vs[1].lat, 0.5), "new/old-p50")
			b.ReportMetric(percentile(vs[0].lat, 0.99)/percentile(vs[1].lat, 0.99), "new/old-p99")
			b.ReportMetric(float64(size)/(1<<20), "MiB/resp")
			b.ReportMetric(loadAvg(), "load1")
		})
	}
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
