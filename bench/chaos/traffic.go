package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// edgeNode is `flotilla edge` following the replicas' API: its DNS is
// hammered with the replicas', its gateway with theirs.
type edgeNode struct {
	dns, gateway, http string
	cmd                *startedProc
}

type startedProc struct {
	stop func()
}

// startEdge starts `flotilla edge --api <every replica>` on BasePort+70..72.
func (h *harness) startEdge() error {
	c := h.cfg
	e := &edgeNode{dns: fmt.Sprintf("127.0.0.1:%d", c.BasePort+70), gateway: fmt.Sprintf("127.0.0.1:%d", c.BasePort+71),
		http: fmt.Sprintf("127.0.0.1:%d", c.BasePort+72)}
	apis := make([]string, len(h.reps))
	for i, r := range h.reps {
		apis[i] = "http://" + r.api
	}
	args := []string{"edge", "--api", strings.Join(apis, ","), "--dns-addr", e.dns, "--dns-upstream", "127.0.0.1:1",
		"--internal-gateway-addr", e.gateway, "--http-addr", e.http, "--gateway-service-ports", "false"}
	if h.zkProxy != nil && c.EdgeZK {
		args = []string{"edge", "--zk", h.replicaZK() + "/flotilla", "--dns-addr", e.dns, "--dns-upstream", "127.0.0.1:1",
			"--internal-gateway-addr", e.gateway, "--http-addr", e.http, "--gateway-service-ports", "false"}
	}
	cmd := start(h.dir, "edge", filepath.Join(c.Bin, "flotilla"), args...)
	e.cmd = &startedProc{stop: func() { stop(cmd) }}
	h.edge = e
	return waitHTTP("http://"+e.http+"/ping", 30*time.Second)
}

// gateways lists the gateway listeners the HTTP hammer uses: every
// replica's internal one and the edge node's.
func (h *harness) gatewayTargets() []target {
	var out []target
	if h.cfg.Gateway {
		for _, r := range h.reps {
			out = append(out, target{name: "replica " + r.api, gw: r.gateway, dns: r.dns})
		}
	}
	if h.edge != nil {
		out = append(out, target{name: "edge", gw: h.edge.gateway})
	}
	return out
}

type target struct{ name, gw, dns string }

// httpStats counts the HTTP hammer's requests per target.
type httpStats struct {
	asked, failed, excused atomic.Int64
	mu                     sync.Mutex
	seen                   map[string]int
	byPhase                map[string]int64
	log                    []string
}

// hammerHTTP sends GET / for the apps in turn through gw every 4 ms (with
// each app's DNS name as Host) until stop. A failure counts unless the
// listener is a replica killed or starting (its silence, as for DNS), or
// the app has had fewer than 2 healthy running tasks on the master within
// the last dnsGrace, as seen by the master's next two looks after the
// answer (the bar: apps with ≥ 2 healthy instances).
func (h *harness) hammerHTTP(t target, apps int, st *httpStats, stop <-chan struct{}) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	paced(stop, 4*time.Millisecond, func(n int) {
		i := n % apps
		req, _ := http.NewRequest("GET", "http://"+t.gw+"/", nil)
		req.Host = fmt.Sprintf("app%d-chaos.flotilla.mesos", i)
		resp, err := c.Do(req)
		st.asked.Add(1)
		why := ""
		if err != nil {
			why = "error"
			if t.dns != "" {
				if _, down := h.down.Load(t.dns); down {
					return
				}
				if _, starting := h.starting.Load(t.dns); starting {
					return
				}
			}
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				why = resp.Status
			}
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" && t.dns != "" {
				if _, starting := h.starting.Load(t.dns); starting {
					return // no view yet: the gateway's honest answer, as DNS's SERVFAIL
				}
			}
		}
		if why == "" {
			return
		}
		// As for DNS: the gateways learn of lost tasks from the scheduler,
		// maybe before the watcher's last look at the master did (make
		// chaos counted 10 requests in the 70 ms after an agent holding
		// every task of an app was removed). Judge by the looks taken
		// after the answer.
		h.afterPolls(2, time.Second)
		if !h.ranTwoFor(i, dnsGrace) {
			st.excused.Add(1)
			return
		}
		st.failed.Add(1)
		st.mu.Lock()
		st.seen[t.name+" "+why]++
		phase, _ := h.phase.Load().(string)
		if st.byPhase == nil {
			st.byPhase = map[string]int64{}
		}
		st.byPhase[phase]++
		if len(st.log) < 20 {
			st.log = append(st.log, fmt.Sprintf("%s %s %s %s", time.Now().Format("15:04:05.000"), t.name, req.Host, why))
		}
		st.mu.Unlock()
	})
}
