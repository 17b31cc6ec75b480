package main

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// srvCount is how many SRV records a replica's DNS serves for a name, or
// -1 when the lookup failed or answered other than NOERROR.
func srvCount(server, name string) int {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeSRV)
	r, _, err := c.Exchange(m, server)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return -1
	}
	return len(r.Answer)
}

// TestStandbysServeTheView: a standby's DNS answers for the leader's apps
// (it used to answer NXDOMAIN for all of them), follows a scale within
// seconds, and keeps answering while the leader dies and it takes over.
func TestStandbysServeTheView(t *testing.T) {
	t.Parallel()
	zkAddr := testbed.ZooKeeper(t)
	root := "/flotilla-e2e-" + randomString(t)
	// The master is found through ZooKeeper, as in production.
	masterZK := "zk://" + zkAddr + root + "-mesos/mesos"
	o := devOpts{executor: "simulated", upstream: fakeUpstream(t), zk: "zk://" + zkAddr + root, ports: [2]uint64{27500, 27699}, masterZK: masterZK}
	log := testLog(t, nil)
	startMaster(t, o, log)
	master := masterZK

	a, stopA := startPlatform(t, o, master, log)
	waitLeading(t, a)
	a.deploy(t, `{"id":"/web","cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":2,"portDefinitions":[{"port":0,"name":"http"}]}`)
	waitFor(t, 30*time.Second, "2 running tasks of /web", func() bool { return len(runningTasks(t, a, "/web")) == 2 })

	b, _ := startPlatform(t, o, master, log)
	const name = "_web._tcp.flotilla.mesos."
	var seen int
	waitFor(t, 20*time.Second, "the standby's DNS to serve /web's 2 tasks", func() bool {
		seen = srvCount(b.dns, name)
		return seen == 2
	})
	// The standby's internal gateway routes the app too (its backends are
	// simulated, so proxying fails: 502/503 naming the app, not a 404).
	waitFor(t, 20*time.Second, "the standby's gateway to route /web", func() bool {
		code, body, err := get(http.DefaultClient, b.internal, "web.flotilla.mesos", "/")
		return err == nil && (code == http.StatusBadGateway || code == http.StatusServiceUnavailable) && strings.Contains(body, "app /web")
	})
	if code, body := a.do(t, "PUT", "/v2/apps/web", `{"instances":3}`); code != http.StatusOK {
		t.Fatalf("scale: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, "the standby's DNS to follow the scale to 3", func() bool {
		seen = srvCount(b.dns, name)
		return seen == 3
	})
	// leader.mesos names the master the detector found in ZooKeeper.
	waitFor(t, 10*time.Second, "leader.mesos on the standby", func() bool {
		r := query(t, "udp", b.dns, "leader.mesos.", dns.TypeA)
		return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "127.0.0.1"
	})
	code, body := b.do(t, "GET", "/metrics", "")
	if code != http.StatusOK || !strings.Contains(string(body), "flotilla_discovery_view_age_seconds") {
		t.Errorf("GET /metrics on the standby: %d, no flotilla_discovery_view_age_seconds", code)
	}

	// The leader dies; the standby answers throughout and takes over.
	var asked, bad atomic.Int64
	var firstBad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond) // the lookup rate, not a wait
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			asked.Add(1)
			if n := srvCount(b.dns, name); n < 2 {
				if bad.Add(1) == 1 {
					firstBad.Store(n)
				}
			}
		}
	}()
	stopA()
	waitLeading(t, b)
	settled(t, b, "/probe")
	waitFor(t, 30*time.Second, "the new leader's DNS to serve /web's 3 tasks", func() bool {
		seen = srvCount(b.dns, name)
		return seen == 3
	})
	close(stop)
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of %d lookups on the standby during the failover answered fewer than 2 records (first: %v)", bad.Load(), asked.Load(), firstBad.Load())
	}
	t.Logf("%d lookups during the failover, %d short", asked.Load(), bad.Load())
}
