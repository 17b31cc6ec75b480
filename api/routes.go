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

	"github.com/sirupsen/logrus"
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

// serve is the API's one entry: it finds the route, and unless the route
// is open, checks credentials before anything else happens, so no route can
// be added that skips the check.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
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
	rt, allow, args := s.table.match(r.Method, r.URL.Path)
	if (rt == nil || !rt.open) && s.cfg.Auth.enabled() && !s.authorized(r) {
		s.unauthorized(sw)
		return
	}
	switch {
	case rt == nil && len(allow) > 0:
		methodNotAllowed(sw, allow...)
	case rt == nil:
		writeJSON(sw, http.StatusNotFound, errorf(http.StatusNotFound,
			"no such endpoint %s %s; Flotilla serves Marathon's /v2/apps, /v2/tasks, /v2/deployments, /v2/queue, /v2/info, /v2/leader, /v2/events, and /ping, /metrics", r.Method, r.URL.Path))
	case !rt.local && !s.isLeader():
		s.bodyDeadline(sw, r)
		s.proxy(sw, r)
	case !rt.local && s.cfg.Leadership != nil && !s.dep.Loaded():
		writeJSON(sw, http.StatusServiceUnavailable, errorf(http.StatusServiceUnavailable,
			"this replica was just elected leader and is still reading apps from the store; retry in a moment"))
	default:
		s.bodyDeadline(sw, r)
		rt.serve(sw, r, args)
	}
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
