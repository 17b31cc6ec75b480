package main

import (
	"net/http"
	"testing"
	"time"
)

// TestDevGatewayGroups: with --gateway-groups external, serve and dev
// route only the apps of that marathon-lb group, on both listeners, as an
// edge node does; an app outside it is the 404 of no route.
func TestDevGatewayGroups(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{28500, 28599},
		gatewayGroups: []string{"external"}, goroutineGateway: true}) // the one dev test on --gateway-event-loop=false
	env.deploy(t, `{"id":"/pub","cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":1,"portDefinitions":[{"port":0}],"labels":{"HAPROXY_GROUP":"external","HAPROXY_0_VHOST":"pub.example.com"}}`)
	env.deploy(t, `{"id":"/priv","cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":1,"portDefinitions":[{"port":0}],"labels":{"HAPROXY_GROUP":"internal","HAPROXY_0_VHOST":"priv.example.com"}}`)
	// Simulated backends do not listen: a routed app answers 502 or 503
	// naming it, an unrouted one 404.
	routed := func(addr, host string) (int, bool) {
		code, _, err := get(http.DefaultClient, addr, host, "/")
		return code, err == nil && (code == http.StatusBadGateway || code == http.StatusServiceUnavailable)
	}
	waitFor(t, 20*time.Second, "pub.example.com routed on both listeners", func() bool {
		_, a := routed(env.external, "pub.example.com")
		_, b := routed(env.internal, "pub.example.com")
		return a && b
	})
	for _, tc := range []struct{ addr, host string }{
		{env.internal, "priv.example.com"}, {env.internal, "priv.flotilla.mesos"}, {env.external, "priv.example.com"},
	} {
		if code, _, err := get(http.DefaultClient, tc.addr, tc.host, "/"); err != nil || code != http.StatusNotFound {
			t.Errorf("%s on %s: %d %v; want 404 (group internal is not served)", tc.host, tc.addr, code, err)
		}
	}
}
