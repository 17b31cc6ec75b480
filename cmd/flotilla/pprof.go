package main

import (
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/sirupsen/logrus"
)

// servePprof serves Go's profiles (/debug/pprof/) on their own listener,
// never on the API's: a profile shows the process's internals, so it is
// opt-in (--pprof-addr of dev and serve) and meant for loopback. bench/idle/run.sh
// profiles an idle leader through it. It returns once the listener is
// bound; serving errors are logged.
func servePprof(addr string, log *logrus.Entry) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("pprof listener stopped")
		}
	}()
	return func() { _ = srv.Close() }, nil
}
