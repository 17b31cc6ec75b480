package main

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// freshness scales app 0 up by one, n times, and measures per DNS server
// (every replica, the edge node) how long after the leader's DNS first
// served the new task's record that server served it too: what a task
// change costs a follower. Each probe scales back afterwards.
func (h *harness) freshness(n int, apps []string) error {
	if n == 0 {
		return nil
	}
	servers := map[string]string{}
	for _, r := range h.reps {
		servers[r.dns] = "replica " + r.api
	}
	if h.edge != nil {
		servers[h.edge.dns] = "edge"
	}
	lags := map[string][]time.Duration{}
	name := h.appName(0)
	for p := 0; p < n; p++ {
		leader, err := waitLeader(h.reps, 60*time.Second)
		if err != nil {
			return err
		}
		var leaderDNS string
		for _, r := range h.reps {
			if r.api == leader {
				leaderDNS = r.dns
			}
		}
		want := h.cfg.Instances + 1
		// Every server polls every 2 ms for want records from the scale on.
		first := map[string]time.Time{}
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for addr := range servers {
			wg.Add(1)
			go func(addr string) {
				defer wg.Done()
				c := &dns.Client{Net: "udp", Timeout: time.Second}
				paced(stop, 2*time.Millisecond, func(int) {
					mu.Lock()
					_, done := first[addr]
					mu.Unlock()
					if done {
						return
					}
					m := new(dns.Msg)
					m.SetQuestion(name, dns.TypeSRV)
					if r, _, err := c.Exchange(m, addr); err == nil && len(r.Answer) >= want {
						mu.Lock()
						first[addr] = time.Now()
						mu.Unlock()
					}
				})
			}(addr)
		}
		if code, b := call(leader, "PUT", "/v2/apps"+apps[0]+"?force=true", fmt.Sprintf(`{"instances":%d}`, want)); code != http.StatusOK {
			close(stop)
			wg.Wait()
			return fmt.Errorf("freshness %d: scale: %d %s", p, code, b)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			all := len(first) == len(servers)
			mu.Unlock()
			if all || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if len(first) != len(servers) {
			return fmt.Errorf("freshness %d: within 60 s only %d of %d DNS servers served %d records of %s", p, len(first), len(servers), want, name)
		}
		for addr, at := range first {
			if addr != leaderDNS {
				lags[servers[addr]] = append(lags[servers[addr]], max(0, at.Sub(first[leaderDNS])))
			}
		}
		if code, b := call(leader, "PUT", "/v2/apps"+apps[0]+"?force=true", fmt.Sprintf(`{"instances":%d}`, h.cfg.Instances)); code != http.StatusOK {
			return fmt.Errorf("freshness %d: scale back: %d %s", p, code, b)
		}
		if err := waitDeployed(h.reps, apps, 60*time.Second); err != nil {
			return err
		}
	}
	h.res.Freshness = map[string]FreshnessResult{}
	for who, ds := range lags {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		h.res.Freshness[who] = FreshnessResult{N: len(ds), P50: ds[len(ds)/2], P99: ds[(len(ds)*99)/100], Max: ds[len(ds)-1]}
	}
	return nil
}

// FreshnessResult is how long after the leader's DNS a follower's served a
// new task (a replica that was the leader in a probe is counted in the
// others).
type FreshnessResult struct {
	N             int
	P50, P99, Max time.Duration
}
