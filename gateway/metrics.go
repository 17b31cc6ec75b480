package gateway

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics live per Gateway and are registered on the Registerer the caller
// gives, never on the global registry.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inFlight  *prometheus.GaugeVec
	ejections *prometheus.CounterVec
	unrouted  *prometheus.CounterVec
	skipped   prometheus.Gauge
	updates   prometheus.Counter
	refused   *prometheus.CounterVec
	handoffs  *prometheus.CounterVec
	// service ports
	svcConns      *prometheus.CounterVec
	svcBytes      *prometheus.CounterVec
	svcOpen       *prometheus.GaugeVec
	svcBindErrors *prometheus.CounterVec
	svcListeners  prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_requests_total",
			Help: "Requests proxied, by app, backend task (empty when none was reached) and status class.",
		}, []string{"app", "task", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flotilla_gateway_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its response, by app (WebSocket sessions excluded).",
			// 0.25 ms to ~16 s.
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 17),
		}, []string{"app"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flotilla_gateway_in_flight_requests",
			Help: "Requests being proxied, by app.",
		}, []string{"app"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_backend_ejections_total",
			Help: "Backends taken out of rotation after a refused or failed connection, by app.",
		}, []string{"app"}),
		unrouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_unrouted_requests_total",
			Help: "Requests answered 404 because no route matched, by listener.",
		}, []string{"listener"}),
		skipped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flotilla_gateway_skipped_items",
			Help: "Apps and backends the last route update skipped (see the gateway's log for why).",
		}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flotilla_gateway_route_updates_total",
			Help: "Route tables swapped in.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_connections_refused_total",
			Help: "Client connections closed at once, by listener and reason: max_conns (--gateway-max-conns, 503) or max_conns_per_ip (--gateway-max-conns-per-ip, 429).",
		}, []string{"listener", "reason"}),
		svcConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_service_connections_total",
			Help: "TCP-mode connections to a service port, by port, app and result: ok (piped to a backend), backend_failed (every backend tried refused), no_backend (none in rotation).",
		}, []string{"port", "app", "result"}),
		svcBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_service_bytes_total",
			Help: "Bytes piped through TCP-mode service ports, by port and direction (in: client to backend), counted when a connection ends.",
		}, []string{"port", "direction"}),
		svcOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flotilla_gateway_service_open_connections",
			Help: "TCP-mode connections being piped, by service port.",
		}, []string{"port"}),
		svcBindErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_service_bind_errors_total",
			Help: "Failed attempts to bind a service port (in use, not permitted, bad certificate), by port and app; each is retried every --gateway-bind-retry.",
		}, []string{"port", "app"}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_loop_handoffs_total",
			Help: "Client connections an event loop (--gateway-event-loop) handed to the goroutine path, by listener and reason; they are served there from then on.",
		}, []string{"listener", "reason"}),
		svcListeners: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flotilla_gateway_service_listeners",
			Help: "Service-port listeners open.",
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.inFlight, m.ejections, m.unrouted, m.skipped, m.updates, m.refused, m.handoffs,
		m.svcConns, m.svcBytes, m.svcOpen, m.svcBindErrors, m.svcListeners}
}

// codeClass buckets status codes so the requests counter stays small.
func codeClass(status int) int {
	if status < 100 || status > 599 {
		return 5
	}
	return status/100 - 1
}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// rateWindow counts events per second of the gateway clock over the last
// len(counts) seconds; the autoscaler reads requests/s from it.
type rateWindow struct {
	mu     sync.Mutex
	secs   []int64
	counts []uint64
}

func newRateWindow(seconds int) *rateWindow {
	return &rateWindow{secs: make([]int64, seconds), counts: make([]uint64, seconds)}
}

func (w *rateWindow) add(sec int64) {
	i := int(uint64(sec) % uint64(len(w.secs)))
	w.mu.Lock()
	if w.secs[i] != sec {
		w.secs[i], w.counts[i] = sec, 0
	}
	w.counts[i]++
	w.mu.Unlock()
}

// sum counts the events of the seconds in (now-len, now].
func (w *rateWindow) sum(now int64) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n uint64
	for i, s := range w.secs {
		if s > now-int64(len(w.secs)) && s <= now {
			n += w.counts[i]
		}
	}
	return n
}

// latencyBounds are the upper bounds of the latency window's buckets:
// 50 µs growing by 20% to about 60 s, so a percentile is within 20%.
var latencyBounds = func() []time.Duration {
	var b []time.Duration
	for d := 50e-6; d < 60; d *= 1.2 {
		b = append(b, time.Duration(d*float64(time.Second)))
	}
	return append(b, time.Duration(math.MaxInt64))
}()

// latencyWindow keeps a small histogram per second of the gateway clock, so
// percentiles cover the same sliding window as the request rate.
type latencyWindow struct {
	mu     sync.Mutex
	secs   []int64
	counts [][]uint32
}

func newLatencyWindow(seconds int) *latencyWindow {
	w := &latencyWindow{secs: make([]int64, seconds), counts: make([][]uint32, seconds)}
	for i := range w.counts {
		w.counts[i] = make([]uint32, len(latencyBounds))
	}
	return w
}

func (w *latencyWindow) add(sec int64, d time.Duration) {
	b := sort.Search(len(latencyBounds), func(i int) bool { return latencyBounds[i] >= d })
	i := int(uint64(sec) % uint64(len(w.secs)))
	w.mu.Lock()
	if w.secs[i] != sec {
		w.secs[i] = sec
		clear(w.counts[i])
	}
	w.counts[i][b]++
	w.mu.Unlock()
}

// Latency is an app's request latency over the gateway's sliding window.
// Percentiles are bucket upper bounds, at most 20% above the true value.
type Latency struct {
	Count         uint64
	P50, P90, P99 time.Duration
}

func (w *latencyWindow) latency(now int64) Latency {
	merged := make([]uint64, len(latencyBounds))
	var total uint64
	w.mu.Lock()
	for i, s := range w.secs {
		if s > now-int64(len(w.secs)) && s <= now {
			for b, c := range w.counts[i] {
				merged[b] += uint64(c)
				total += uint64(c)
			}
		}
	}
	w.mu.Unlock()
	l := Latency{Count: total}
	if total == 0 {
		return l
	}
	q := func(p float64) time.Duration {
		rank := uint64(math.Ceil(p * float64(total)))
		var cum uint64
		for b, c := range merged {
			cum += c
			if cum >= rank {
				return latencyBounds[b]
			}
		}
		return latencyBounds[len(latencyBounds)-1]
	}
	l.P50, l.P90, l.P99 = q(0.50), q(0.90), q(0.99)
	return l
}

func (l Latency) String() string {
	return fmt.Sprintf("n=%d p50=%v p90=%v p99=%v", l.Count, l.P50, l.P90, l.P99)
}
