package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
)

// proxiedHeader marks a request a standby forwarded, so that two standbys
// that each think the other leads cannot bounce a request forever.
const proxiedHeader = "X-Flotilla-Proxied-By"

// statusWriter records the status for metrics and logs and whether the
// header went out (a panic after that cannot send a 500 any more).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the event stream and the proxy flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap serves http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack is needed by httputil.ReverseProxy for protocol upgrades.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("api: the response writer cannot be hijacked")
	}
	return h.Hijack()
}

func (s *Server) routes() http.Handler {
	metricsHandler := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.clk.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec) // the server's own signal to drop the connection
				}
				s.log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "panic": fmt.Sprint(rec), "stack": string(debug.Stack())}).
					Error("api handler panicked")
				if sw.status == 0 {
					writeJSON(sw, http.StatusInternalServerError, errorf(http.StatusInternalServerError, "internal error: the request handler failed; the incident is logged, retry or report it"))
				}
			}
			s.met.observe(r.Method, sw.status, s.clk.Now().Sub(start))
		}()
		if r.URL.Path == "/ping" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
			sw.WriteHeader(http.StatusOK)
			_, _ = sw.Write([]byte("pong\n"))
			return
		}
		if s.cfg.Auth.enabled() && !s.authorized(r) {
			s.unauthorized(sw)
			return
		}
		if r.URL.Path == "/metrics" {
			metricsHandler.ServeHTTP(sw, r)
			return
		}
		if !s.isLeader() && !(r.URL.Path == "/v2/leader" && r.Method == http.MethodGet) {
			s.proxy(sw, r)
			return
		}
		if s.cfg.Leadership != nil && !s.loaded.Load() && r.URL.Path != "/v2/leader" {
			writeJSON(sw, http.StatusServiceUnavailable, errorf(http.StatusServiceUnavailable,
				"this replica was just elected leader and is still reading apps from the store; retry in a moment"))
			return
		}
		s.dispatch(sw, r)
	})
}

// equalSecret compares in constant time; hashing first hides the length.
func equalSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func (s *Server) authorized(r *http.Request) bool {
	a := s.cfg.Auth
	h := r.Header.Get("Authorization")
	if a.Token != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok && equalSecret(strings.TrimSpace(tok), a.Token) {
			return true
		}
	}
	if a.Username != "" {
		if u, p, ok := r.BasicAuth(); ok {
			// Both compared always, so timing does not tell which one was wrong.
			uok, pok := equalSecret(u, a.Username), equalSecret(p, a.Password)
			return uok && pok
		}
	}
	return false
}

func (s *Server) unauthorized(w http.ResponseWriter) {
	var schemes []string
	if s.cfg.Auth.Username != "" {
		schemes = append(schemes, `Basic realm="flotilla"`)
	}
	if s.cfg.Auth.Token != "" {
		schemes = append(schemes, `Bearer realm="flotilla"`)
	}
	for _, sc := range schemes {
		w.Header().Add("WWW-Authenticate", sc)
	}
	writeJSON(w, http.StatusUnauthorized, errorf(http.StatusUnauthorized,
		"authentication required: send HTTP basic credentials or an 'Authorization: Bearer <token>' header (flotilla app --user/--token, or FLOTILLA_TOKEN)"))
}

// proxy forwards a request to the leader, as Marathon's standbys do.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	if by := r.Header.Get(proxiedHeader); by != "" {
		writeJSON(w, http.StatusServiceUnavailable, errorf(http.StatusServiceUnavailable,
			"this replica is not the leader and the request was already forwarded by %s: leadership is changing; retry in a few seconds", by))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	addr, err := s.cfg.Leadership.LeaderAddress(ctx)
	cancel()
	if err != nil || addr == "" {
		msg := "no leader is known"
		if err != nil {
			msg += ": " + err.Error()
		}
		writeJSON(w, http.StatusServiceUnavailable, errorf(http.StatusServiceUnavailable, "%s; this replica is a standby and cannot serve the request; retry when a leader is elected", msg))
		return
	}
	target, err := leaderURL(addr)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, errorf(http.StatusBadGateway, "%v", err))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set(proxiedHeader, r.Host)
		},
		Transport:     s.cfg.ProxyTransport,
		FlushInterval: -1, // the event stream must not be buffered
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.log.WithError(err).WithField("leader", addr).Warn("forwarding to the leader failed")
			writeJSON(w, http.StatusBadGateway, errorf(http.StatusBadGateway, "forwarding to the leader at %s failed: %v; retry, or check that the leader is reachable from this replica", addr, err))
		},
	}
	rp.ServeHTTP(w, r)
}

func leaderURL(addr string) (*url.URL, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("api: the leader advertises the address %q, which is not host:port or a URL", addr)
	}
	return u, nil
}

func methodNotAllowed(w http.ResponseWriter, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, errorf(http.StatusMethodNotAllowed, "method not allowed; use %s", strings.Join(allow, " or ")))
}

// handlerFunc is a handler that returns its error, written by do.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) do(w http.ResponseWriter, r *http.Request, h handlerFunc) {
	if err := h(w, r); err != nil {
		he := toHTTP(err)
		if he.Status >= 500 {
			s.log.WithError(err).WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path}).Error("api request failed")
		}
		writeJSON(w, he.Status, he)
	}
}

// dispatch routes by prefix: app ids hold slashes (/prod/shop/web), so
// the suffixes /restart, /tasks[/{taskId}] and /versions[/{version}] are
// recognised at the end of the path, as Marathon does.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	m := r.Method
	switch {
	case p == "/v2/apps" || p == "/v2/apps/":
		switch m {
		case http.MethodGet:
			s.do(w, r, s.listApps)
		case http.MethodPost:
			s.do(w, r, s.createApp)
		default:
			methodNotAllowed(w, "GET", "POST")
		}
	case strings.HasPrefix(p, "/v2/apps/"):
		s.dispatchApp(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/v2/apps"), "/"))
	case p == "/v2/tasks" || p == "/v2/tasks/":
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.do(w, r, s.listTasks)
	case p == "/v2/deployments" || p == "/v2/deployments/":
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.do(w, r, s.listDeployments)
	case strings.HasPrefix(p, "/v2/deployments/"):
		if m != http.MethodDelete {
			methodNotAllowed(w, "DELETE")
			return
		}
		id := strings.TrimPrefix(p, "/v2/deployments/")
		s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.deleteDeployment(w, r, id) })
	case p == "/v2/queue":
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.do(w, r, s.queue)
	case p == "/v2/info":
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.do(w, r, s.info)
	case p == "/v2/leader":
		switch m {
		case http.MethodGet:
			s.do(w, r, s.leader)
		case http.MethodDelete:
			s.do(w, r, s.abdicate)
		default:
			methodNotAllowed(w, "GET", "DELETE")
		}
	case p == ViewPath:
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.do(w, r, s.view)
	case p == "/v2/events":
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.events(w, r)
	default:
		writeJSON(w, http.StatusNotFound, errorf(http.StatusNotFound,
			"no such endpoint %s %s; Flotilla serves Marathon's /v2/apps, /v2/tasks, /v2/deployments, /v2/queue, /v2/info, /v2/leader, /v2/events, and /ping, /metrics", m, p))
	}
}

func (s *Server) dispatchApp(w http.ResponseWriter, r *http.Request, rest string) {
	segs := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	n := len(segs)
	join := func(k int) string { return "/" + strings.Join(segs[:k], "/") }
	m := r.Method
	if h, ok := s.cfg.AppHandlers[segs[n-1]]; ok && n >= 2 {
		id := appspec.CanonicalID(join(n - 1))
		if s.idx.get(id) == nil {
			writeJSON(w, http.StatusNotFound, notFoundApp(id))
			return
		}
		h(w, r, id)
		return
	}
	switch {
	case n >= 2 && segs[n-1] == "restart":
		if m != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		id := join(n - 1)
		s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.restartApp(w, r, id) })
	case n >= 2 && segs[n-1] == "tasks":
		id := join(n - 1)
		switch m {
		case http.MethodGet:
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.appTasks(w, r, id) })
		case http.MethodDelete:
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.killTasks(w, r, id, nil) })
		default:
			methodNotAllowed(w, "GET", "DELETE")
		}
	case n >= 3 && segs[n-2] == "tasks":
		if m != http.MethodDelete {
			methodNotAllowed(w, "DELETE")
			return
		}
		id, task := join(n-2), segs[n-1]
		s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.killTasks(w, r, id, []string{task}) })
	case n >= 2 && segs[n-1] == "versions":
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		id := join(n - 1)
		s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.appVersions(w, r, id) })
	case n >= 3 && segs[n-2] == "versions":
		if m != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		id, v := join(n-2), segs[n-1]
		s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.appVersion(w, r, id, v) })
	default:
		id := join(n)
		switch m {
		case http.MethodGet:
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.getApp(w, r, id) })
		case http.MethodPut:
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.putApp(w, r, id, false) })
		case http.MethodPatch:
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.putApp(w, r, id, true) })
		case http.MethodDelete:
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.deleteApp(w, r, id) })
		default:
			methodNotAllowed(w, "GET", "PUT", "PATCH", "DELETE")
		}
	}
}
