package gateway

import (
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/flotilla-sched/flotilla/internal/connlimit"
)

// limitListener puts listener l's connection caps in front of its server
// (fasthttp has caps of its own, but counts only one kind of refusal and
// stops serving on EMFILE; connlimit backs off).
func (g *Gateway) limitListener(l Listener, ln net.Listener) *connlimit.Listener {
	name := l.String()
	refusals := map[connlimit.Reason][]byte{
		connlimit.Total: refusal(fasthttp.StatusServiceUnavailable, fmt.Sprintf(
			"flotilla gateway: this listener has %d connections open, the most it takes (--gateway-max-conns); retry shortly\n", g.cfg.MaxConns)),
		connlimit.PerIP: refusal(fasthttp.StatusTooManyRequests, fmt.Sprintf(
			"flotilla gateway: your address has %d connections open to this listener, the most one may (--gateway-max-conns-per-ip)\n", g.cfg.MaxConnsPerIP)),
	}
	counters := map[connlimit.Reason]prometheus.Counter{
		connlimit.Total: g.m.refused.WithLabelValues(name, string(connlimit.Total)),
		connlimit.PerIP: g.m.refused.WithLabelValues(name, string(connlimit.PerIP)),
	}
	cl := connlimit.New(ln, connlimit.Config{
		Max: g.cfg.MaxConns, MaxPerIP: g.cfg.MaxConnsPerIP, Log: g.log.WithField("listener", name),
		Refusal:  func(r connlimit.Reason) []byte { return refusals[r] },
		OnRefuse: func(r connlimit.Reason) { counters[r].Inc() },
	})
	g.conns[l].Store(cl)
	return cl
}

// refusal is a whole response for a connection turned away before its
// request was read; plain text, as the gateway's own answers are.
func refusal(status int, body string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
		status, fasthttp.StatusMessage(status), len(body), body)
}

// OpenConns is the number of client connections listener l holds.
func (g *Gateway) OpenConns(l Listener) int {
	if cl := g.conns[l].Load(); cl != nil {
		return cl.Open()
	}
	return 0
}

// connCollectors are flotilla_gateway_open_connections, one per listener.
func (g *Gateway) connCollectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, l := range []Listener{Internal, External} {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "flotilla_gateway_open_connections",
			Help:        "Client connections open on a listener.",
			ConstLabels: prometheus.Labels{"listener": l.String()},
		}, func() float64 { return float64(g.OpenConns(l)) }))
	}
	return cs
}
