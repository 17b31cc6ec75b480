package mesosdns

import (
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are per server, never on the global registry; Collectors hands them
// to whichever registry serves /metrics.
type metrics struct {
	freshness     prometheus.Histogram
	updates       *prometheus.CounterVec
	records       prometheus.Gauge
	queries       *prometheus.CounterVec
	byRcode       map[int]prometheus.Counter // resolved once: no label hashing per query
	forwarded     prometheus.Counter
	forwardFailed prometheus.Counter
	overload      prometheus.Counter
	tcpRefused    prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		freshness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flotilla_dns_record_freshness_seconds",
			Help: "Seconds from a task being observed running, healthy and ready to its record being served.",
			// 0.5 ms to ~65 s: the goal is < 100 ms; Mesos-DNS's is up to 60 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_dns_updates_total",
			Help: "Record set rebuilds by result (ok, error: the previous set was kept).",
		}, []string{"result"}),
		records: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flotilla_dns_records",
			Help: "Resource records in the record set being served.",
		}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_dns_local_responses_total",
			Help: "Responses built by this server (not forwarded), by rcode.",
		}, []string{"rcode"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flotilla_dns_forwarded_total",
			Help: "Queries forwarded to upstream resolvers.",
		}),
		forwardFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flotilla_dns_forward_failures_total",
			Help: "Forwarded queries that no upstream answered in time (SERVFAIL).",
		}),
		overload: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flotilla_dns_overload_total",
			Help: "Queries answered SERVFAIL because MaxInFlight queries were already waiting.",
		}),
		tcpRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flotilla_dns_tcp_connections_refused_total",
			Help: "TCP connections closed at once because MaxTCPConns were open, or MaxTCPConnsPerIP from the client's address.",
		}),
		byRcode: map[int]prometheus.Counter{},
	}
	for _, rc := range []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
		dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers} {
		m.byRcode[rc] = m.queries.WithLabelValues(dns.RcodeToString[rc])
	}
	return m
}

func (m *metrics) count(rcode int) {
	if c, ok := m.byRcode[rcode]; ok {
		c.Inc()
	}
}

// Collectors returns the server's metrics for registration on the caller's
// registry (there is no global default registry in Flotilla).
func (s *Server) Collectors() []prometheus.Collector {
	m := s.metrics
	return []prometheus.Collector{m.freshness, m.updates, m.records, m.queries, m.forwarded, m.forwardFailed, m.overload, m.tcpRefused}
}
