package main

import (
	"context"
	"fmt"
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
	// An edge node that knows only the replicas' ZooKeeper: it reads the
	// leader from their election (without joining it) and follows it.
	e, err := newEdge(edgeConfig{ZK: o.zk, ZKSessionTimeout: 4 * time.Second, DNSAddr: "127.0.0.1:0",
		DNSDomain: "mesos", DNSUpstreams: []string{o.upstream}, FrameworkName: "flotilla"}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	edgeDone := make(chan error, 1)
	go func() { edgeDone <- e.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-edgeDone; err != nil {
			t.Errorf("edge stopped with %v", err)
		}
	})
	waitFor(t, 10*time.Second, "the edge's DNS to listen", func() bool { return e.dns.UDPAddr() != nil })
	edgeDNS := e.dns.UDPAddr().String()
	const name = "_web._tcp.flotilla.mesos."
	waitFor(t, 20*time.Second, "the --zk edge's DNS to serve /web's 2 tasks", func() bool { return srvCount(edgeDNS, name) == 2 })
	if cs, err := e.zk.Candidates(ctx); err != nil || len(cs) != 2 || cs[0] != a.api {
		t.Errorf("the edge reads the replicas %v (%v) from the election, want 2, the leader %s first", cs, err, a.api)
	}
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
			for _, server := range []string{b.dns, edgeDNS} {
				asked.Add(1)
				if n := srvCount(server, name); n < 2 {
					if bad.Add(1) == 1 {
						firstBad.Store(fmt.Sprint(server, " answered ", n))
					}
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
	// The edge follows the new leader, found through ZooKeeper.
	waitFor(t, 30*time.Second, "the --zk edge's DNS to serve /web's 3 tasks from the new leader", func() bool {
		return srvCount(edgeDNS, name) == 3
	})
	if code, body := b.do(t, "PUT", "/v2/apps/web", `{"instances":4}`); code != http.StatusOK {
		t.Fatalf("scale on the new leader: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "the --zk edge's DNS to follow the new leader's scale to 4", func() bool {
		return srvCount(edgeDNS, name) == 4
	})
	close(stop)
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of %d lookups on the standby and the --zk edge during the failover answered fewer than 2 records (first: %v)", bad.Load(), asked.Load(), firstBad.Load())
	}
	t.Logf("%d lookups during the failover, %d short", asked.Load(), bad.Load())
}
