// Command dnsbench serves a synthetic cluster from Flotilla's DNS for the
// benchmark in run.sh, writes the same records as a zone file for CoreDNS and
// a dnsperf query file, and measures record freshness under task churn.
//
//	go run ./bench/dns serve -addr 127.0.0.1:8653 -apps 200 -instances 5 -out /tmp/dnsbench
//	go run ./bench/dns churn -apps 200 -instances 5 -changes 1000 -interval 1ms
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/cpuprof"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/mesosdns"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsbench serve|churn [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "churn":
		err = churn(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

// cluster is apps×instances published tasks on 50 agents (127.3.x.y: loopback,
// never contacted).
func cluster(apps, instances int) []mesosdns.Task {
	var tasks []mesosdns.Task
	for a := 0; a < apps; a++ {
		for i := 0; i < instances; i++ {
			tasks = append(tasks, task(a, i))
		}
	}
	return tasks
}

func task(app, inst int) mesosdns.Task {
	agent := (app*7 + inst) % 50
	return mesosdns.Task{
		ID:        fmt.Sprintf("app%04d.%d", app, inst),
		Name:      fmt.Sprintf("app%04d", app),
		AgentHost: fmt.Sprintf("agent%02d", agent),
		IPs:       []net.IP{net.IPv4(127, 3, byte(agent/250), byte(agent%250+1))},
		Ports:     []mesosdns.Port{{Number: uint32(31000 + (app*10+inst)%1000), Protocol: "tcp"}},
		Published: true,
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8653", "DNS listen address")
	apps := fs.Int("apps", 200, "apps")
	inst := fs.Int("instances", 5, "instances per app")
	out := fs.String("out", os.TempDir(), "directory for mesos.zone and queries.txt")
	workers := fs.Int("udp-workers", 0, "mesosdns Config.UDPWorkers (0: its default)")
	sockets := fs.Int("udp-sockets", 0, "mesosdns Config.UDPSockets (0: its default)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole serve run to this file")
	_ = fs.Parse(args)
	stopProfile, err := cpuprof.Start(*cpuprofile)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopProfile(); err != nil {
			fmt.Fprintln(os.Stderr, "dnsbench:", err)
		}
	}()

	srv, err := mesosdns.New(mesosdns.Config{Addr: *addr, Upstreams: []string{"127.0.0.1:1"}, Seed: 1,
		UDPWorkers: *workers, UDPSockets: *sockets,
		Log: logging.Component(logging.Discard(), "mesosdns")})
	if err != nil {
		return err
	}
	leader := mesosdns.Master{Host: "m1", IP: net.IPv4(127, 0, 0, 1), Port: 5050}
	if err := srv.Update(cluster(*apps, *inst), leader, []mesosdns.Master{leader}); err != nil {
		return err
	}
	if err := writeZone(filepath.Join(*out, "mesos.zone"), srv.Records()); err != nil {
		return err
	}
	if err := writeQueries(filepath.Join(*out, "queries.txt"), *apps, *inst); err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	fmt.Printf("serving %d records on %s\n", srv.Records().Len(), srv.UDPAddr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func writeZone(path string, rs *mesosdns.RecordSet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "$ORIGIN mesos.\n")
	for _, rr := range rs.RRs() {
		fmt.Fprintln(w, rr.String())
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeQueries writes a dnsperf input mixing what clients ask: A of an app
// (40%), SRV of an app (30%), A of one instance (20%), unknown names (10%).
func writeQueries(path string, apps, inst int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		a := rng.IntN(apps)
		switch p := rng.IntN(10); {
		case p < 4:
			fmt.Fprintf(w, "app%04d.flotilla.mesos A\n", a)
		case p < 7:
			fmt.Fprintf(w, "_app%04d._tcp.flotilla.mesos SRV\n", a)
		case p < 9:
			fmt.Fprintf(w, "%s A\n", canonical(task(a, rng.IntN(inst))))
		default:
			fmt.Fprintf(w, "nope%d.flotilla.mesos A\n", i)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// churn applies task changes to a running server the way the framework will:
// events arrive on a channel stamped with the time they were observed; one
// loop drains whatever is pending and rebuilds from the full snapshot. It
// reports the freshness histogram's p99 and the exact p99, then checks over
// UDP that the final state is served.
func churn(args []string) error {
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	apps := fs.Int("apps", 200, "apps")
	inst := fs.Int("instances", 5, "instances per app")
	changes := fs.Int("changes", 1000, "task changes")
	interval := fs.Duration("interval", time.Millisecond, "time between changes (0: all at once)")
	_ = fs.Parse(args)

	clk := clock.Real{}
	srv, err := mesosdns.New(mesosdns.Config{Addr: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:1"}, Seed: 1, Clock: clk,
		Log: logging.Component(logging.Discard(), "mesosdns")})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Collectors()...)
	tasks := map[string]mesosdns.Task{}
	for _, t := range cluster(*apps, *inst) {
		tasks[t.ID] = t
	}
	snapshot := func() []mesosdns.Task {
		out := make([]mesosdns.Task, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, t)
		}
		return out
	}
	if err := srv.Update(snapshot(), mesosdns.Master{}, nil); err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	// Each change replaces one instance: the old task is killed (unpublished)
	// and a new one, observed running and healthy now, takes its place.
	type event struct {
		slot  [2]int // app, instance
		start mesosdns.Task
	}
	events := make(chan event, *changes)
	go func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < *changes; i++ {
			a, n := rng.IntN(*apps), rng.IntN(*inst)
			nt := task(a, n)
			nt.ID = fmt.Sprintf("app%04d.%d.gen%d", a, n, i)
			nt.Observed = clk.Now()
			events <- event{slot: [2]int{a, n}, start: nt}
			if *interval > 0 {
				time.Sleep(*interval)
			}
		}
		close(events)
	}()
	var lat []time.Duration
	current := map[[2]int]string{}
	updates := 0
	for ev := range events {
		batch := []event{ev}
	drain:
		for {
			select {
			case e, ok := <-events:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		for _, e := range batch {
			if id, ok := current[e.slot]; ok {
				delete(tasks, id)
			} else {
				delete(tasks, task(e.slot[0], e.slot[1]).ID)
			}
			tasks[e.start.ID] = e.start
			current[e.slot] = e.start.ID
		}
		if err := srv.Update(snapshot(), mesosdns.Master{}, nil); err != nil {
			return err
		}
		updates++
		now := clk.Now()
		for _, e := range batch {
			lat = append(lat, now.Sub(e.start.Observed))
		}
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	hp99, err := histogramQuantile(reg, 0.99)
	if err != nil {
		return err
	}
	// Every final instance must be served, the replaced ones gone.
	c := &dns.Client{Timeout: 2 * time.Second, Net: "tcp"}
	for key, id := range current {
		want := canonical(tasks[id])
		resp, _, err := c.Exchange(new(dns.Msg).SetQuestion(want, dns.TypeA), srv.TCPAddr().String())
		if err != nil || len(resp.Answer) != 1 {
			return fmt.Errorf("final state: %s not served (%v)", want, err)
		}
		gone := canonical(task(key[0], key[1]))
		resp, _, err = c.Exchange(new(dns.Msg).SetQuestion(gone, dns.TypeA), srv.TCPAddr().String())
		if err != nil || resp.Rcode != dns.RcodeNameError {
			return fmt.Errorf("final state: replaced %s still served (%v)", gone, err)
		}
	}
	fmt.Printf("tasks=%d changes=%d interval=%s updates=%d freshness p50=%s p99=%s max=%s histogram-p99<=%.4fs verified=%d\n",
		len(tasks), len(lat), *interval, updates, p(0.5), p(0.99), lat[len(lat)-1], hp99, len(current))
	return nil
}

// histogramQuantile returns the upper bound of the bucket holding quantile q
// of the freshness histogram, as /metrics would let an operator read it.
func histogramQuantile(reg *prometheus.Registry, q float64) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "flotilla_dns_record_freshness_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		target := q * float64(h.GetSampleCount())
		for _, b := range h.GetBucket() {
			if float64(b.GetCumulativeCount()) >= target {
				return b.GetUpperBound(), nil
			}
		}
	}
	return 0, fmt.Errorf("freshness histogram not found")
}

// canonical is the per-instance name of t (the target of its SRV records),
// taken from mesosdns itself rather than re-derived here.
func canonical(t mesosdns.Task) string {
	t.Published = true
	rs, err := mesosdns.BuildRecords(mesosdns.Config{}, []mesosdns.Task{t}, mesosdns.Master{}, nil)
	if err != nil {
		panic(err)
	}
	return rs.Lookup("_"+t.Name+"._tcp.flotilla.mesos.", dns.TypeSRV)[0].(*dns.SRV).Target
}
