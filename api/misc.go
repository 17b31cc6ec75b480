package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/offers"
)

type reasonJSON struct {
	Reason    string `json:"reason"`
	Declined  int    `json:"declined"`
	Processed int    `json:"processed"`
}

type offersSummaryJSON struct {
	ProcessedOffersCount       int          `json:"processedOffersCount"`
	UnusedOffersCount          int          `json:"unusedOffersCount"`
	RejectSummaryLastOffers    []reasonJSON `json:"rejectSummaryLastOffers"`
	RejectSummaryLaunchAttempt []reasonJSON `json:"rejectSummaryLaunchAttempt"`
}

type queueEntryJSON struct {
	Count int `json:"count"`
	Delay struct {
		TimeLeftSeconds int  `json:"timeLeftSeconds"`
		Overdue         bool `json:"overdue"`
	} `json:"delay"`
	App                    json.RawMessage   `json:"app"`
	ProcessedOffersSummary offersSummaryJSON `json:"processedOffersSummary"`
	LastUnusedOffers       []any             `json:"lastUnusedOffers"`
	// Reason is Flotilla's: why the instances wait when it is not about
	// resources ("secret db: permission denied at secret/db", constraints).
	Reason string `json:"reason,omitempty"`
}

func reasons(s offers.Summary) []reasonJSON {
	out := make([]reasonJSON, 0, len(s.Reasons))
	for _, r := range s.Reasons {
		out = append(out, reasonJSON{Reason: string(r.Reason), Declined: r.Declined, Processed: r.Processed})
	}
	return out
}

// queue serves GET /v2/queue from the scheduler's snapshot.
func (s *Server) queue(w http.ResponseWriter, r *http.Request) error {
	snap := s.sched.SnapshotByApp()
	now := s.now()
	out := make([]queueEntryJSON, 0, len(snap.Queue))
	for _, q := range snap.Queue {
		e := queueEntryJSON{Count: q.Count, LastUnusedOffers: []any{}, Reason: q.Reason}
		if left := q.BackoffUntil.Sub(now); left > 0 {
			e.Delay.TimeLeftSeconds = int(math.Ceil(left.Seconds()))
		} else {
			e.Delay.Overdue = true
		}
		if m := s.dep.App(q.AppID); m != nil {
			def := append(append([]byte(nil), m.Spec...), `,"version":`...)
			e.App = append(appendString(def, m.App.Version), '}')
		} else if a := snap.App(q.AppID); a != nil {
			e.App, _ = json.Marshal(a)
		} else {
			e.App = json.RawMessage(`{"id":` + strconv.Quote(q.AppID) + `}`)
		}
		if f := s.lastTF.get(q.AppID); f != nil {
			// Why the last instance ended (with its stderr's last lines
			// once read from the agent): the usual reason an app waits.
			var tf taskFailure
			if json.Unmarshal(f, &tf) == nil && tf.Message != "" {
				if e.Reason != "" {
					e.Reason += "; "
				}
				e.Reason += "last task failure (" + tf.State + "): " + tf.Message
			}
		}
		rs := reasons(q.LastRejection)
		e.ProcessedOffersSummary = offersSummaryJSON{
			ProcessedOffersCount: q.LastRejection.ProcessedOffers, UnusedOffersCount: q.LastRejection.UnusedOffers,
			RejectSummaryLastOffers: rs, RejectSummaryLaunchAttempt: rs,
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": out})
	return nil
}

func (s *Server) leaderAddress(r *http.Request) (string, error) {
	if s.cfg.Leadership == nil {
		return r.Host, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	return s.cfg.Leadership.LeaderAddress(ctx)
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	leader, err := s.leaderAddress(r)
	if err != nil {
		s.log.WithError(err).Warn("leader address unknown for /v2/info")
	}
	fid := ""
	if s.cfg.FrameworkID != nil {
		fid = s.cfg.FrameworkID()
	}
	sp := s.dep.ServicePortRange()
	cfg := map[string]any{"framework_name": "flotilla", "default_progress_deadline_seconds": s.dep.ProgressDeadline().Seconds(),
		"local_port_min": sp.Min, "local_port_max": sp.Max}
	for k, v := range s.cfg.Info {
		cfg[k] = v
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "flotilla", "version": s.cfg.Version, "elected": s.isLeader(), "leader": leader,
		"frameworkId": fid, "marathon_config": cfg, "http_config": map[string]any{},
		"event_subscriber": map[string]string{"type": "sse"},
		"auth_enabled":     s.cfg.Auth.enabled(),
		// Flotilla's own: stored items the last restore could not read.
		"store_problems": s.dep.BrokenItems(),
	})
	return nil
}

func (s *Server) leader(w http.ResponseWriter, r *http.Request) error {
	addr, err := s.leaderAddress(r)
	if err != nil || addr == "" {
		msg := "There is no leader"
		if err != nil {
			msg += ": " + err.Error()
		}
		return errorf(http.StatusNotFound, "%s; retry when a replica is elected", msg)
	}
	writeJSON(w, http.StatusOK, map[string]string{"leader": addr})
	return nil
}

func (s *Server) abdicate(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Leadership == nil {
		return errorf(http.StatusBadRequest, "this Flotilla runs without leader election (no ZooKeeper), so no other replica could take over; start replicas with --zk to use DELETE /v2/leader")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.cfg.Leadership.Abdicate(ctx); err != nil {
		if errors.Is(err, framework.ErrNotLeader) {
			return errorf(http.StatusServiceUnavailable, "this replica stopped leading before it could abdicate; ask the new leader (GET /v2/leader)")
		}
		return fmt.Errorf("api: abdicate: %w", err)
	}
	s.log.WithField("remote", r.RemoteAddr).Warn("leadership abdicated on request")
	writeJSON(w, http.StatusOK, map[string]string{"message": "Leadership abdicated"})
	return nil
}

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	sseClients   prometheus.Gauge
	sseRefused   prometheus.Counter
	connsRefused *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flotilla_api_requests_total",
			Help: "API requests by method and status code."}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flotilla_api_request_duration_seconds",
			Help: "API request latency by method (event streams count their whole life).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"method"}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flotilla_api_event_stream_clients",
			Help: "Clients attached to /v2/events."}),
		sseRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "flotilla_api_event_streams_refused_total",
			Help: "/v2/events clients refused with 503 because --api-max-event-streams were attached."}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flotilla_api_connections_refused_total",
			Help: "API connections closed at once, by reason: max_conns (--api-max-conns), max_conns_per_ip (--api-max-conns-per-ip)."}, []string{"reason"}),
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.sseClients, m.sseRefused, m.connsRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flotilla_api_open_connections", Help: "Connections open on the API listener."},
			s.openConns),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flotilla_api_apps", Help: "Apps the API serves."},
			func() float64 { return float64(s.dep.AppCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flotilla_api_deployments", Help: "Deployments in progress."},
			func() float64 { return float64(s.dep.DeploymentCount()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics (one Server per registry): %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(method string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.requests.WithLabelValues(method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
}
