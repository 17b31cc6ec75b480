// Command testapp is the application every end-to-end test launches, as a
// Docker image (flotilla/testapp:dev, built by scripts/testbed.sh) or as a
// plain process.
//
// It listens on $PORT0 (or -port) and serves:
//
//	GET  /                      "<task id> <host>\n"
//	GET  /health                200 while healthy, 503 after POST /health?healthy=false
//	POST /health?healthy=B      switch health
//	GET  /ready                 200 once -ready-after has passed, 503 before
//	GET  /burn?millicores=M&seconds=S   load the CPU with about M/1000 cores for S seconds
//	GET  /envhash?name=N        sha256 (hex) of env var N, so tests can check a secret
//	                            arrived without the value ever being printed
//	GET  /metrics               a Prometheus gauge testapp_queue_depth (POST /metrics?queue=N)
//
// With -tcp-echo PORT (or $TCP_ECHO_PORT) it also echoes every TCP
// connection's bytes back and half-closes after the client does; with
// -udp-echo PORT (or $UDP_ECHO_PORT) it sends every UDP datagram back to
// its sender. -port, -tcp-echo and -udp-echo are fixed container ports for
// BRIDGE/USER tasks, whose $PORT0 is the host port, not the one to listen
// on; in a Docker task they are the command's arguments (shell=false keeps
// the image's /testapp entrypoint).
//
// It never prints the value of an environment variable.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	port := flag.String("port", os.Getenv("PORT0"), "port to listen on (default $PORT0, else 8080)")
	readyAfter := flag.Duration("ready-after", 0, "answer /ready with 503 until this long after start")
	tcpEcho := flag.String("tcp-echo", os.Getenv("TCP_ECHO_PORT"), "also echo TCP on this port (default $TCP_ECHO_PORT; empty: off)")
	udpEcho := flag.String("udp-echo", os.Getenv("UDP_ECHO_PORT"), "also echo UDP on this port (default $UDP_ECHO_PORT; empty: off)")
	upstream := flag.String("upstream", os.Getenv("UPSTREAM"), "a sidecar's app, e.g. http://127.0.0.1:8080: /upstream relays its /, and /health passes only while its /health does (default $UPSTREAM; empty: off)")
	flag.Parse()
	// Commands run without a shell (a pod container's argv) cannot
	// expand $ENDPOINT_HTTP themselves: the flags do it.
	*port, *upstream = os.ExpandEnv(*port), os.ExpandEnv(*upstream)
	if *port == "" {
		*port = "8080"
	}
	taskID := os.Getenv("MESOS_TASK_ID")
	host := os.Getenv("HOST")
	if host == "" {
		host, _ = os.Hostname()
	}
	mux := newMux(taskID, host, *readyAfter, time.Now)

	ln, err := net.Listen("tcp", net.JoinHostPort("", *port))
	if err != nil {
		log.Fatalf("testapp: listen on port %s: %v", *port, err)
	}
	srv := &http.Server{Handler: withSidecar(mux, *upstream), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("testapp: task %q listening on %s", taskID, ln.Addr())
	if *tcpEcho != "" {
		el, err := net.Listen("tcp", net.JoinHostPort("", *tcpEcho))
		if err != nil {
			log.Fatalf("testapp: tcp echo on port %s: %v", *tcpEcho, err)
		}
		log.Printf("testapp: tcp echo on %s", el.Addr())
		go serveTCPEcho(el)
	}
	if *udpEcho != "" {
		pc, err := net.ListenPacket("udp", net.JoinHostPort("", *udpEcho))
		if err != nil {
			log.Fatalf("testapp: udp echo on port %s: %v", *udpEcho, err)
		}
		log.Printf("testapp: udp echo on %s", pc.LocalAddr())
		go serveUDPEcho(pc)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		log.Printf("testapp: %v, shutting down", s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("testapp: %v", err)
	}
}

// newMux serves the test app's endpoints; now is injected so tests can
// check readiness without sleeping.
func newMux(taskID, host string, readyAfter time.Duration, now func() time.Time) *http.ServeMux {
	start := now()
	var unhealthy atomic.Bool
	var queue atomic.Int64

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			// Unknown paths fail, so a health check pointed at a wrong
			// path fails as it would on a real service.
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s\n", taskID, host)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, err := strconv.ParseBool(r.URL.Query().Get("healthy"))
			if err != nil {
				http.Error(w, "healthy must be true or false", http.StatusBadRequest)
				return
			}
			unhealthy.Store(!b)
		}
		if unhealthy.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if now().Sub(start) < readyAfter {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		mc, err1 := strconv.Atoi(r.URL.Query().Get("millicores"))
		secs, err2 := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		if err1 != nil || err2 != nil || mc <= 0 || secs <= 0 {
			http.Error(w, "want millicores>0 and seconds>0", http.StatusBadRequest)
			return
		}
		go burn(mc, time.Duration(secs*float64(time.Second)))
		fmt.Fprintf(w, "burning %d millicores for %gs\n", mc, secs)
	})
	mux.HandleFunc("/envhash", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("name"))
		if !ok {
			http.Error(w, "not set", http.StatusNotFound)
			return
		}
		sum := sha256.Sum256([]byte(v))
		fmt.Fprintln(w, hex.EncodeToString(sum[:]))
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, err := strconv.ParseInt(r.URL.Query().Get("queue"), 10, 64)
			if err != nil {
				http.Error(w, "queue must be an integer", http.StatusBadRequest)
				return
			}
			queue.Store(n)
		}
		fmt.Fprintf(w, "# TYPE testapp_queue_depth gauge\ntestapp_queue_depth %d\n", queue.Load())
	})
	return mux
}

// burn spins on enough goroutines to use about mc/1000 cores, duty-cycling
// each one in 10 ms slices.
func burn(mc int, d time.Duration) {
	deadline := time.Now().Add(d)
	workers := (mc + 999) / 1000
	if workers > runtime.NumCPU()*4 {
		workers = runtime.NumCPU() * 4
	}
	share := float64(mc) / float64(workers) / 1000 // fraction of each slice busy
	for i := 0; i < workers; i++ {
		go func() {
			for time.Now().Before(deadline) {
				sliceStart := time.Now()
				busy := time.Duration(share * float64(10*time.Millisecond))
				for time.Since(sliceStart) < busy {
				}
				time.Sleep(10*time.Millisecond - busy)
			}
		}()
	}
}

// withSidecar adds what a pod's sidecar needs in tests: /pid (to kill the
// process from outside) and, with an upstream, /upstream relaying the
// app's / and a /health that reads the app's.
func withSidecar(mux *http.ServeMux, upstream string) http.Handler {
	outer := http.NewServeMux()
	outer.Handle("/", mux)
	outer.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getpid())
	})
	if upstream == "" {
		return outer
	}
	client := &http.Client{Timeout: 2 * time.Second}
	relay := func(w http.ResponseWriter, r *http.Request, path string) {
		resp, err := client.Get(strings.TrimSuffix(upstream, "/") + path)
		if err != nil {
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body) // the client's loss alone
	}
	outer.HandleFunc("/upstream", func(w http.ResponseWriter, r *http.Request) { relay(w, r, "/") })
	outer.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { relay(w, r, "/health") })
	return outer
}
