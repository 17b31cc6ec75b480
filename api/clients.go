package api

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/flotilla-sched/flotilla/internal/connlimit"
)

// ClientLimits bound what clients can hold of the API listener, so that a
// slow or abusive one (10,000 idle connections, a header sent a byte a
// second, hundreds of event streams) cannot starve the others. They are
// about connections; Config.Limits is about app specs. docs/operating.md
// ("Slow and abusive clients") gives each one's reason.
type ClientLimits struct {
	// ReadHeaderTimeout: a request's header must be in within this from
	// its first byte (from the connection's start for the first request).
	ReadHeaderTimeout time.Duration
	// BodyTimeout: a request body must be in within this. Not a whole-
	// request timeout, which would cut /v2/events.
	BodyTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends nothing.
	IdleTimeout time.Duration
	// MaxHeaderBytes: a larger request header is answered 431.
	MaxHeaderBytes int
	// MaxConns caps open connections; beyond it a connection gets 503 and
	// is closed at once. -1: no cap.
	MaxConns int
	// MaxConnsPerIP caps one client address's connections (429 beyond).
	// -1: no cap (behind a proxy every client has the proxy's address).
	MaxConnsPerIP int
	// MaxEventStreams caps /v2/events clients (503 beyond). -1: no cap.
	MaxEventStreams int
	// MaxLogFollows caps task log responses with follow=true open at
	// once (503 beyond): each holds a connection and polls an agent twice
	// a second for as long as the client likes. -1: no cap.
	MaxLogFollows int
}

// DefaultClientLimits are what a zero ClientLimits field takes.
func DefaultClientLimits() ClientLimits {
	return ClientLimits{
		ReadHeaderTimeout: 10 * time.Second,
		BodyTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxConns:          1024,
		MaxConnsPerIP:     256,
		MaxEventStreams:   256,
		MaxLogFollows:     256,
	}
}

// WithDefaults fills zero fields from DefaultClientLimits.
func (c ClientLimits) WithDefaults() ClientLimits {
	d := DefaultClientLimits()
	def := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	defN := func(v *int, dv int) {
		switch {
		case *v == 0:
			*v = dv
		case *v < 0:
			*v = 0 // no cap, as connlimit and the hub read it
		}
	}
	def(&c.ReadHeaderTimeout, d.ReadHeaderTimeout)
	def(&c.BodyTimeout, d.BodyTimeout)
	def(&c.IdleTimeout, d.IdleTimeout)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	defN(&c.MaxConns, d.MaxConns)
	defN(&c.MaxConnsPerIP, d.MaxConnsPerIP)
	defN(&c.MaxEventStreams, d.MaxEventStreams)
	defN(&c.MaxLogFollows, d.MaxLogFollows)
	return c
}

// HTTPServer returns the http.Server to serve the API with: the client
// limits' timeouts and header size. Serve it on Listener(ln), which adds
// the connection caps.
//
// There is no ReadTimeout or WriteTimeout: both would end every event
// stream. The body has its own deadline (serve), and the event stream sets
// one for each write.
func (s *Server) HTTPServer() *http.Server {
	cl := s.cfg.ClientLimits
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cl.ReadHeaderTimeout,
		IdleTimeout:       cl.IdleTimeout,
		MaxHeaderBytes:    cl.MaxHeaderBytes,
	}
}

// Listener wraps the API's listener with the client limits' connection
// caps; flotilla_api_open_connections and
// flotilla_api_connections_refused_total follow the last one made.
func (s *Server) Listener(ln net.Listener) net.Listener {
	cl := s.cfg.ClientLimits
	l := connlimit.New(ln, connlimit.Config{
		Max: cl.MaxConns, MaxPerIP: cl.MaxConnsPerIP, Log: s.log.WithField("listener", "api"),
		Refusal: func(r connlimit.Reason) []byte {
			if r == connlimit.PerIP {
				return refusal(http.StatusTooManyRequests, fmt.Sprintf(
					"this client address has %d connections open to the API, the most one may (--api-max-conns-per-ip); reuse connections or close idle ones", cl.MaxConnsPerIP))
			}
			return refusal(http.StatusServiceUnavailable, fmt.Sprintf(
				"the API has %d connections open, the most it takes (--api-max-conns); retry shortly", cl.MaxConns))
		},
		OnRefuse: func(r connlimit.Reason) { s.met.connsRefused.WithLabelValues(string(r)).Inc() },
	})
	s.conns.Store(l)
	return l
}

// refusal is a whole HTTP response for a connection turned away before any
// request was read, with the JSON error body every other answer has.
func refusal(status int, msg string) []byte {
	body := fmt.Sprintf("{\"message\":%s}\n", strconv.Quote(msg))
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

func (s *Server) openConns() float64 {
	if l := s.conns.Load(); l != nil {
		return float64(l.Open())
	}
	return 0
}

// bodyDeadline gives a request body ClientLimits.BodyTimeout to arrive.
// net/http clears the deadline itself once the body is read to its end,
// so a handler that then waits on the store is not cut off.
func (s *Server) bodyDeadline(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	// A socket deadline is wall-clock time, whatever clock the logic uses.
	err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.ClientLimits.BodyTimeout))
	if err != nil && err != http.ErrNotSupported {
		s.log.WithError(err).Debug("setting the request body deadline")
	}
}
