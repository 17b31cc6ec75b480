// Command gateway is the benchmark harness of bench/gateway/run.sh:
//
//	gateway backend -addr 127.0.0.1:19101 -id web.1
//	gateway serve -external 127.0.0.1:19080 -internal 127.0.0.1:19082 \
//	        -backends 127.0.0.1:19101,127.0.0.1:19102,127.0.0.1:19103
//	gateway latency -n 20000 -targets direct=127.0.0.1:19101,gateway=127.0.0.1:19080
//	gateway latency -h2c -n 20000 -targets gateway=127.0.0.1:19082,nginx=127.0.0.1:19083
//
// "backend" is a tiny keep-alive HTTP server answering "<id>\n"; "serve"
// runs Flotilla's gateway, with metrics on, routing one external app
// (vhost bench.example.com, DNS name bench.flotilla.mesos) to the backends.
// Both listen on loopback only and stop on SIGINT or SIGTERM. "latency"
// sends one request at a time to each target in turn, over one kept-alive
// connection per target, so background load on a shared machine falls on
// all targets alike, and prints their latency percentiles; -h2c asks over
// HTTP/2 with prior knowledge (bench/gateway/run-h2.sh). "serve" with
// -tls-cert and -tls-key puts TLS on the external listener, where clients
// negotiate h2 or HTTP/1.1 by ALPN.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/internal/cpuprof"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: gateway backend|serve [flags]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "backend":
		err = backend(ctx, os.Args[2:])
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "latency":
		err = latency(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		log.Fatalf("bench/gateway: %v", err)
	}
}

func backend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19101", "listen address")
	id := fs.String("id", "web.1", "task ID to answer with")
	fs.Parse(args)
	body := *id + "\n"
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		}),
	}
	return run(ctx, srv.ListenAndServe, srv.Shutdown)
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	external := fs.String("external", "127.0.0.1:19080", "external listener")
	internal := fs.String("internal", "127.0.0.1:19082", "internal listener")
	backends := fs.String("backends", "127.0.0.1:19101", "comma-separated backend host:port list")
	balance := fs.String("balance", gateway.RoundRobin, "round-robin or least-conn")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	tlsCert := fs.String("tls-cert", "", "certificate file: TLS (h2 by ALPN, and HTTP/1.1) on the external listener")
	tlsKey := fs.String("tls-key", "", "key file of -tls-cert")
	eventLoop := fs.Bool("event-loop", gateway.EventLoopSupported, "serve the plain listeners from epoll event loops (gateway.Config.EventLoop), as flotilla does by default; false: the goroutine path")
	fs.Parse(args)
	stopProfile, err := cpuprof.Start(*cpuprofile)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopProfile(); err != nil {
			log.Print(err)
		}
	}()

	app := gateway.App{
		ID:       "/bench",
		DNSName:  "bench.flotilla.mesos",
		Exposure: appspec.Exposure{Mode: appspec.ExposureExternal, VHosts: []string{"bench.example.com"}},
	}
	for i, a := range strings.Split(*backends, ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("backend %q: %w", a, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return fmt.Errorf("backend %q: %w", a, err)
		}
		app.Backends = append(app.Backends, gateway.Backend{TaskID: fmt.Sprintf("bench.%d", i+1), Host: host, Port: uint32(p)})
	}
	gw, err := gateway.New(gateway.Config{
		ExternalAddr: *external,
		InternalAddr: *internal,
		Balance:      *balance,
		TLSCertFile:  *tlsCert,
		TLSKeyFile:   *tlsKey,
		EventLoop:    *eventLoop,
		Log:          logging.Component(logging.Discard(), "gateway"),
		Registerer:   prometheus.NewRegistry(),
	})
	if err != nil {
		return err
	}
	gw.Update([]gateway.App{app})
	if p := gw.Problems(); len(p) > 0 {
		return fmt.Errorf("routes: %v", p)
	}
	if err := gw.Start(); err != nil {
		return err
	}
	fmt.Println("serving")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if rps := gw.RequestRate("/bench"); len(rps) > 0 {
		fmt.Printf("request rate over the last window: %v\n", rps)
	}
	return gw.Shutdown(sctx)
}

func run(ctx context.Context, serve func() error, shutdown func(context.Context) error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return shutdown(sctx)
}

func latency(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	n := fs.Int("n", 20000, "requests per target")
	targets := fs.String("targets", "", "comma-separated name=host:port list; the first is the baseline")
	host := fs.String("host", "bench.example.com", "Host header")
	h2c := fs.Bool("h2c", false, "speak HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1")
	fs.Parse(args)
	type target struct {
		name, url string
		client    *http.Client
		samples   []time.Duration
	}
	var ts []*target
	for _, t := range strings.Split(*targets, ",") {
		name, addr, ok := strings.Cut(t, "=")
		if !ok {
			return fmt.Errorf("target %q: want name=host:port", t)
		}
		var tr http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		if *h2c {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			tr = &http.Transport{Protocols: &p, MaxIdleConnsPerHost: 1, DisableCompression: true}
		}
		defer tr.(interface{ CloseIdleConnections() }).CloseIdleConnections()
		ts = append(ts, &target{name: name, url: "http://" + addr + "/", client: &http.Client{Transport: tr, Timeout: 10 * time.Second}})
	}
	if len(ts) == 0 {
		return fmt.Errorf("no targets")
	}
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		for _, t := range ts {
			req, err := http.NewRequestWithContext(ctx, "GET", t.url, nil)
			if err != nil {
				return err
			}
			req.Host = *host
			start := time.Now()
			resp, err := t.client.Do(req)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				return fmt.Errorf("%s: status %d, %v", t.name, resp.StatusCode, err)
			}
			if *h2c && resp.ProtoMajor != 2 {
				return fmt.Errorf("%s: answered over %s, not HTTP/2", t.name, resp.Proto)
			}
			if i >= *n/20 { // the first 5% warm connections and caches
				t.samples = append(t.samples, time.Since(start))
			}
		}
	}
	q := func(s []time.Duration, p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	base := ts[0]
	for _, t := range ts {
		slices.Sort(t.samples)
	}
	for _, t := range ts {
		fmt.Printf("%s p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f added_p50 %.3f added_p99 %.3f\n", t.name,
			ms(q(t.samples, .5)), ms(q(t.samples, .9)), ms(q(t.samples, .99)), ms(q(t.samples, .999)),
			ms(q(t.samples, .5)-q(base.samples, .5)), ms(q(t.samples, .99)-q(base.samples, .99)))
	}
	return nil
}
