package mesosdns

import (
	"encoding/json"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// HTTPHandler serves Mesos-DNS's HTTP API, with the same paths and JSON
// shapes, so tools written against Mesos-DNS keep working:
//
//	GET /v1/version          {"Service","URL","Version"}
//	GET /v1/config           the configuration, under Mesos-DNS's key names
//	GET /v1/hosts/{host}     [{"host","ip"}]
//	GET /v1/services/{srv}   [{"service","host","ip","port"}]
//
// Like Mesos-DNS, an unknown name yields a one-element list of empty strings.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", s.httpVersion)
	mux.HandleFunc("GET /v1/config", s.httpConfig)
	mux.HandleFunc("GET /v1/hosts/{host}", s.httpHost)
	mux.HandleFunc("GET /v1/hosts/{host}/ports", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "To be implemented...", http.StatusNotImplemented)
	})
	mux.HandleFunc("GET /v1/services/{service}", s.httpService)
	return s.recoverHTTP(mux)
}

func (s *Server) recoverHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				s.log.WithField("panic", p).WithField("stack", string(debug.Stack())).Error("http handler panic")
				http.Error(w, "mesosdns: internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.WithError(err).Debug("write http reply")
	}
}

func (s *Server) httpVersion(w http.ResponseWriter, _ *http.Request) {
	s.writeJSON(w, map[string]string{
		"Service": "Flotilla (Mesos-DNS compatible)",
		"Version": s.cfg.Version,
		"URL":     "https://github.com/flotilla-sched/flotilla",
	})
}

// httpConfig reports the configuration with Mesos-DNS's field names (its
// records.Config has no JSON tags, so the keys are the Go names). Fields that
// have no meaning here carry the value that describes our behaviour: there is
// no refresh period because updates are event driven.
func (s *Server) httpConfig(w http.ResponseWriter, _ *http.Request) {
	host, port, _ := net.SplitHostPort(s.cfg.Addr)
	if a := s.UDPAddr(); a != nil {
		host, port, _ = net.SplitHostPort(a.String())
	}
	p, _ := strconv.Atoi(port)
	s.mu.Lock()
	ups := append([]string{}, s.upstreams...)
	s.mu.Unlock()
	rs := s.rs.Load()
	s.writeJSON(w, map[string]any{
		"Masters":        []string{},
		"RefreshSeconds": 0,
		"TTL":            s.cfg.TTL,
		"Port":           p,
		"Domain":         s.cfg.Domain,
		"Resolvers":      ups,
		"Timeout":        int(s.cfg.ForwardTimeout.Seconds()),
		"Listener":       host,
		"DNSOn":          true,
		"HTTPOn":         true,
		"ExternalOn":     len(ups) > 0,
		"RecurseOn":      true,
		"SOAMname":       rs.nsName,
		"SOARname":       rs.mbox,
		"SOASerial":      rs.serial,
		"SOARefresh":     s.cfg.TTL,
		"SOARetry":       600,
		"SOAExpire":      86400,
		"SOAMinttl":      s.cfg.TTL,
		"IPSources":      []string{"host"},
		"EnforceRFC952":  false,
		"SetTruncateBit": true,
	})
}

// qualify makes a path parameter an absolute lowercase name, dropping
// Mesos-DNS's ".*" wildcard marks as it does.
func qualify(name string) string {
	name = strings.ToLower(strings.ReplaceAll(name, ".*", ""))
	return dns.Fqdn(name)
}

func (s *Server) httpHost(w http.ResponseWriter, r *http.Request) {
	type record struct {
		Host string `json:"host"`
		IP   string `json:"ip"`
	}
	name := qualify(r.PathValue("host"))
	rs := s.rs.Load()
	out := []record{}
	for _, rr := range rs.Lookup(name, dns.TypeA) {
		out = append(out, record{name, rr.(*dns.A).A.String()})
	}
	for _, rr := range rs.Lookup(name, dns.TypeAAAA) {
		out = append(out, record{name, rr.(*dns.AAAA).AAAA.String()})
	}
	if len(out) == 0 {
		out = append(out, record{})
	}
	s.writeJSON(w, out)
}

func (s *Server) httpService(w http.ResponseWriter, r *http.Request) {
	type record struct {
		Service string `json:"service"`
		Host    string `json:"host"`
		IP      string `json:"ip"`
		Port    string `json:"port"`
	}
	service := r.PathValue("service")
	name := qualify(service)
	rs := s.rs.Load()
	out := []record{}
	for _, rr := range rs.Lookup(name, dns.TypeSRV) {
		srv := rr.(*dns.SRV)
		port := strconv.Itoa(int(srv.Port))
		// Mesos-DNS gives the first address of each target.
		if a := rs.Lookup(srv.Target, dns.TypeA); len(a) > 0 {
			out = append(out, record{service, srv.Target, a[0].(*dns.A).A.String(), port})
		}
		if a := rs.Lookup(srv.Target, dns.TypeAAAA); len(a) > 0 {
			out = append(out, record{service, srv.Target, a[0].(*dns.AAAA).AAAA.String(), port})
		}
	}
	if len(out) == 0 {
		out = append(out, record{})
	}
	s.writeJSON(w, out)
}
