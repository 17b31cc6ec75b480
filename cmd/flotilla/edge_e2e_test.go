package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/gateway"
)

// TestEdgeFollowsTheLeader: `flotilla edge` serves DNS for the apps of a
// platform it only knows by API URL, skipping a replica that does not
// answer, and keeps its last view when every replica is gone.
func TestEdgeFollowsTheLeader(t *testing.T) {
	t.Parallel()
	o := devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{28400, 28499}}
	log := testLog(t, nil)
	m := startMaster(t, o, log)
	env, stop := startPlatform(t, o, m.URL(), log)
	waitLeading(t, env)
	env.deploy(t, `{"id":"/web","cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":2,"portDefinitions":[{"port":0}],"labels":{"HAPROXY_GROUP":"external","HAPROXY_0_VHOST":"web.example.com"}}`)

	// A closed port first: the edge must move on to the next replica.
	dead := "http://127.0.0.1:1"
	e, err := newEdge(edgeConfig{APIs: []string{dead, env.api}, HTTPAddr: "127.0.0.1:0", DNSAddr: "127.0.0.1:0",
		DNSDomain: "mesos", DNSUpstreams: []string{o.upstream}, FrameworkName: "flotilla",
		GatewayAddr: "127.0.0.1:0", Groups: []string{"external"}, GatewayServices: gateway.Config{EventLoop: o.gatewayLoops()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge stopped with %v", err)
		}
	})
	waitFor(t, 10*time.Second, "the edge's DNS and gateway to listen", func() bool {
		return e.dns.UDPAddr() != nil && e.gateway.Addr(gateway.External) != nil
	})
	dnsAddr := e.dns.UDPAddr().String()
	const name = "_web._tcp.flotilla.mesos."
	waitFor(t, 30*time.Second, "the edge's DNS to serve /web's 2 tasks", func() bool { return srvCount(dnsAddr, name) == 2 })

	// The external gateway routes the external app (its backends are
	// simulated, so the proxying itself fails: 502 or 503 naming the app,
	// not the 404 of no route).
	gw := e.gateway.Addr(gateway.External).String()
	var code int
	var body string
	waitFor(t, 10*time.Second, "the edge's gateway to route web.example.com", func() bool {
		var err error
		code, body, err = get(http.DefaultClient, gw, "web.example.com", "/")
		return err == nil && (code == http.StatusBadGateway || code == http.StatusServiceUnavailable) && strings.Contains(body, "app /web")
	})

	// Every replica gone: the last view stays, and its age shows.
	stop()
	if n := srvCount(dnsAddr, name); n != 2 {
		t.Fatalf("with no replica left the edge serves %d records, want the last view's 2", n)
	}
	metrics := func() string {
		resp, err := http.Get("http://" + e.ln.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	waitFor(t, 30*time.Second, "flotilla_discovery_view_age_seconds to grow past 1 s", func() bool {
		for _, l := range strings.Split(metrics(), "\n") {
			if v, ok := strings.CutPrefix(l, "flotilla_discovery_view_age_seconds "); ok {
				return v != "0" && !strings.HasPrefix(v, "0.")
			}
		}
		return false
	})
	if n := srvCount(dnsAddr, name); n != 2 {
		t.Fatalf("after the view aged the edge serves %d records, want 2", n)
	}
}
