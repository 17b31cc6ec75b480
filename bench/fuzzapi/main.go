// Command fuzzapi is the process-level fuzzer of `make fuzz-api` (issue
// 22): it starts `flotilla dev --executor simulated` on free loopback
// ports under a memory ceiling, and for -duration sends it app
// definitions that are valid but for one field pushed to an extreme
// (instances up to the limit and past it, 1e308 cpus, 300-character ids,
// thousands of ports, labels and env entries, deep nesting, 1 MiB
// strings, …; see mutate.go), each created, sometimes replaced and
// listed, then deleted. It fails on a crash of the process, any 5xx, a
// request that takes longer than -timeout (a hang), or an RSS above
// -ceiling, and prints requests, status counts and the peak RSS.
//
//	go run ./bench/fuzzapi -flotilla bin/flotilla -duration 10m
//
// The ceiling is enforced twice: GOMEMLIMIT is set to 3/4 of it in the
// process's environment, so the Go runtime collects before reaching it,
// and /proc/<pid>/status VmRSS is read every -rss-every.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
)

type config struct {
	flotilla     string
	duration     time.Duration
	timeout      time.Duration
	ceiling      int64 // bytes
	rssEvery     time.Duration
	seed         int64
	maxInstances int
	logFile      string
	only         map[string]bool // mutations to use; empty: all
}

func main() {
	var c config
	var ceilingMiB int64
	flag.StringVar(&c.flotilla, "flotilla", "bin/flotilla", "the flotilla binary to run")
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long to send requests")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Second, "a request taking longer is a hang")
	flag.Int64Var(&ceilingMiB, "ceiling", 1024, "RSS ceiling of the flotilla process, MiB")
	flag.DurationVar(&c.rssEvery, "rss-every", 100*time.Millisecond, "how often RSS is read")
	flag.Int64Var(&c.seed, "seed", 1, "seed of the mutations")
	flag.IntVar(&c.maxInstances, "max-instances", appspec.DefaultMaxInstances, "--max-instances of flotilla dev; mutations push instances to it and past it")
	flag.StringVar(&c.logFile, "log", "", "file for flotilla's log (default: a temporary file, named at the end)")
	only := flag.String("only", "", "comma-separated mutation names to use (default all), to reproduce one")
	flag.Parse()
	if *only != "" {
		c.only = map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(n)] = true
		}
	}
	c.ceiling = ceilingMiB << 20
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "fuzzapi: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("fuzzapi: PASS")
}

// freePorts returns n free loopback TCP ports (also free for UDP at the
// time of asking, for DNS).
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			u.Close()
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// proc is the flotilla process under test.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // after exited
	api    string
}

func start(c config) (*proc, string, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, "", err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	logPath := c.logFile
	var logf *os.File
	if logPath == "" {
		logf, err = os.CreateTemp("", "fuzzapi-flotilla-*.log")
	} else {
		logf, err = os.Create(logPath)
	}
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(c.flotilla, "dev", "--executor", "simulated",
		"--api-addr", addr(0), "--mesos-addr", addr(1), "--dns-addr", addr(2),
		"--gateway-addr", addr(3), "--internal-gateway-addr", addr(4),
		"--max-instances", strconv.Itoa(c.maxInstances), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "GOMEMLIMIT="+strconv.FormatInt(c.ceiling*3/4, 10))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{cmd: cmd, exited: make(chan struct{}), api: "http://" + addr(0)}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, logf.Name(), nil
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// rss reads VmRSS of pid, in bytes.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS line")
}

// stats are the run's figures; fails are its failures, first ones kept.
type stats struct {
	mu        sync.Mutex
	requests  int
	codes     map[int]int
	byMut     map[string]map[int]int
	peak      int64
	baseline  int64
	fails     []string
	failCount int
	slowest   time.Duration
	resets    int // oversized bodies answered by a closed connection
	// recent are the last requests, printed when the run fails: the
	// input that took the process over the ceiling is among them.
	recent [16]string
	next   int
}

func (s *stats) note(line string) {
	s.recent[s.next%len(s.recent)] = line
	s.next++
}

func (s *stats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCount++
	if len(s.fails) < 20 {
		s.fails = append(s.fails, fmt.Sprintf(format, args...))
	}
}

type client struct {
	c   config
	hc  *http.Client
	api string
	st  *stats
}

// do sends one request and records its status under mutation mut. A
// transport error or timeout is a failure (the process hung or died).
func (cl *client) do(ctx context.Context, mut, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	rctx, cancel := context.WithTimeout(ctx, cl.c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, cl.api+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := cl.hc.Do(req)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
	}
	d := time.Since(t0)
	cl.st.mu.Lock()
	cl.st.requests++
	cl.st.slowest = max(cl.st.slowest, d)
	code := 0
	cl.st.note(fmt.Sprintf("%s %s %s (%s, %d bytes): %v after %v", t0.Format("15:04:05.000"), method, abbrev(path), mut, len(body),
		func() any {
			if err != nil {
				return err
			}
			return resp.StatusCode
		}(), d.Round(time.Millisecond)))
	if err == nil {
		code = resp.StatusCode
		cl.st.codes[code]++
		if cl.st.byMut[mut] == nil {
			cl.st.byMut[mut] = map[int]int{}
		}
		cl.st.byMut[mut][code]++
	}
	cl.st.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		if len(body) > appspec.MaxBodyBytes && !errors.Is(err, context.DeadlineExceeded) {
			// The server answers 413 before reading all of an oversized
			// body and may close the connection while it is still being
			// sent: the client then sees a reset instead of the 413.
			cl.st.mu.Lock()
			cl.st.resets++
			cl.st.mu.Unlock()
			return 0, nil, nil
		}
		return 0, nil, fmt.Errorf("%s %s (%s): no answer after %v: %w", method, abbrev(path), mut, d.Round(time.Millisecond), err)
	}
	if code >= 500 {
		cl.st.fail("%s %s (%s) answered %d: %.300s", method, abbrev(path), mut, code, b)
	}
	return code, b, nil
}

func abbrev(s string) string {
	if len(s) > 80 {
		return s[:76] + "…"
	}
	return s
}

func run(ctx context.Context, c config) error {
	p, logPath, err := start(c)
	if err != nil {
		return fmt.Errorf("start flotilla: %w", err)
	}
	pid := p.cmd.Process.Pid
	defer func() {
		if p.alive() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(20 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		fmt.Println("flotilla log:", logPath)
	}()
	st := &stats{codes: map[int]int{}, byMut: map[string]map[int]int{}}
	cl := &client{c: c, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}, api: p.api, st: st}

	// Ready: the API answers and this replica leads.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if !p.alive() {
			return fmt.Errorf("flotilla exited at start: %v (log %s)", p.err, logPath)
		}
		resp, err := cl.hc.Get(p.api + "/v2/leader")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("flotilla did not lead within 60 s (log %s)", logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.baseline, err = rss(pid); err != nil {
		return err
	}
	st.peak = st.baseline
	fmt.Printf("flotilla pid %d, API %s, RSS at start %.1f MiB, ceiling %d MiB (GOMEMLIMIT %d MiB), --max-instances %d\n",
		pid, p.api, mib(st.baseline), c.ceiling>>20, c.ceiling*3/4>>20, c.maxInstances)

	runCtx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	watchErr := make(chan error, 1)
	go func() {
		err := watch(runCtx, p, pid, c, st)
		if err != nil {
			cancel() // stop sending: the run has failed
		}
		watchErr <- err
	}()

	t0 := time.Now()
	loopErr := loop(runCtx, c, cl)
	cancel()
	werr := <-watchErr
	elapsed := time.Since(t0)

	// Once more after the load: the process must still answer.
	if p.alive() && werr == nil && loopErr == nil {
		if code, _, err := cl.do(context.Background(), "final", "GET", "/ping", nil); err != nil || code != 200 {
			loopErr = fmt.Errorf("after the run /ping answered %d, %v", code, err)
		}
	}
	report(st, elapsed, c)
	if p.alive() {
		fmt.Println("left in flotilla at the end:", census(cl))
	}
	switch {
	case werr != nil && loopErr != nil:
		return fmt.Errorf("%w; and the requests stopped with: %w", werr, loopErr)
	case werr != nil:
		return werr
	case loopErr != nil:
		return loopErr
	case st.failCount > 0:
		return fmt.Errorf("%d failures (first: %s)", st.failCount, st.fails[0])
	}
	return nil
}

// watch samples RSS until ctx ends; the process exiting or RSS above the
// ceiling ends the run.
func watch(ctx context.Context, p *proc, pid int, c config, st *stats) error {
	t := time.NewTicker(c.rssEvery)
	defer t.Stop()
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("flotilla exited during the run: %v", p.err)
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r, err := rss(pid)
		if err != nil {
			if !p.alive() {
				return fmt.Errorf("flotilla exited during the run: %v", p.err)
			}
			return err
		}
		st.mu.Lock()
		st.peak = max(st.peak, r)
		st.mu.Unlock()
		if r > c.ceiling {
			return fmt.Errorf("flotilla RSS %.1f MiB is over the ceiling of %d MiB", mib(r), c.ceiling>>20)
		}
	}
}

// loop sends mutated apps until ctx ends or a request hangs.
func loop(ctx context.Context, c config, cl *client) error {
	r := rand.New(rand.NewSource(c.seed))
	var muts []mutation
	for _, m := range mutations() {
		if len(c.only) == 0 || c.only[m.name] {
			muts = append(muts, m)
		}
	}
	if len(muts) == 0 {
		return fmt.Errorf("-only names no mutation")
	}
	// The bases must be valid: otherwise every mutation of them is refused
	// for the wrong reason.
	for i := 0; i < 4; i++ {
		a := base(rand.New(rand.NewSource(int64(i))), fmt.Sprintf("/fuzz/base%d", i))
		b, _ := encode(a)
		code, body, err := cl.do(ctx, "base", "POST", "/v2/apps", b)
		if err != nil {
			return err
		}
		if code != http.StatusCreated {
			return fmt.Errorf("base app %d refused with %d: %s", i, code, body)
		}
		if _, _, err := cl.do(ctx, "base", "DELETE", "/v2/apps"+a["id"].(string)+"?force=true", nil); err != nil {
			return err
		}
	}
	for n := 0; ctx.Err() == nil; n++ {
		id := fmt.Sprintf("/fuzz/a%d", n)
		app := base(r, id)
		m := muts[r.Intn(len(muts))]
		m.apply(app, r, c.maxInstances)
		b, err := encode(app)
		if err != nil {
			return fmt.Errorf("mutation %s does not encode: %w", m.name, err)
		}
		code, _, err := cl.do(ctx, m.name, "POST", "/v2/apps", b)
		if err != nil {
			return ignoreEnd(ctx, err)
		}
		created := code == http.StatusCreated
		if created {
			// The accepted id, as the server canonicalised it.
			aid := appspec.CanonicalID(fmt.Sprint(app["id"]))
			// Sometimes replace it with another mutation, read it in the
			// lists, scale it: the big app is rendered and re-planned.
			if r.Intn(3) == 0 {
				m2 := muts[r.Intn(len(muts))]
				app2 := base(r, aid)
				m2.apply(app2, r, c.maxInstances)
				app2["id"] = aid
				b2, err := encode(app2)
				if err != nil {
					return fmt.Errorf("mutation %s does not encode: %w", m2.name, err)
				}
				if _, _, err := cl.do(ctx, m2.name+" (PUT)", "PUT", "/v2/apps"+aid+"?force=true", b2); err != nil {
					return ignoreEnd(ctx, err)
				}
			}
			for _, path := range []string{"/v2/apps?embed=apps.tasks", "/v2/queue", "/v2/tasks", "/v2/apps" + aid} {
				if r.Intn(4) == 0 {
					if _, _, err := cl.do(ctx, "read", "GET", path, nil); err != nil {
						return ignoreEnd(ctx, err)
					}
				}
			}
			if r.Intn(5) == 0 {
				if _, _, err := cl.do(ctx, "scale", "PUT", "/v2/apps"+aid+"?force=true", []byte(fmt.Sprintf(`{"instances":%d}`, []int{0, 1, c.maxInstances, c.maxInstances + 1}[r.Intn(4)]))); err != nil {
					return ignoreEnd(ctx, err)
				}
			}
			if _, _, err := cl.do(ctx, "delete", "DELETE", "/v2/apps"+aid+"?force=true", nil); err != nil {
				return ignoreEnd(ctx, err)
			}
		}
	}
	return nil
}

// census counts what the process holds: apps, tasks, waiting instances.
func census(cl *client) string {
	var apps struct{ Apps []json.RawMessage }
	var tasks struct{ Tasks []json.RawMessage }
	var queue struct{ Queue []struct{ Count int } }
	for _, x := range []struct {
		path string
		v    any
	}{{"/v2/apps", &apps}, {"/v2/tasks", &tasks}, {"/v2/queue", &queue}} {
		code, b, err := cl.do(context.Background(), "census", "GET", x.path, nil)
		if err != nil || code != http.StatusOK || json.Unmarshal(b, x.v) != nil {
			return fmt.Sprintf("unknown (GET %s: %d, %v)", x.path, code, err)
		}
	}
	waiting := 0
	for _, q := range queue.Queue {
		waiting += q.Count
	}
	return fmt.Sprintf("%d apps, %d tasks, %d instances waiting", len(apps.Apps), len(tasks.Tasks), waiting)
}

func ignoreEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func report(st *stats, elapsed time.Duration, c config) {
	st.mu.Lock()
	defer st.mu.Unlock()
	codes := make([]int, 0, len(st.codes))
	for k := range st.codes {
		codes = append(codes, k)
	}
	sort.Ints(codes)
	var parts []string
	fives := 0
	for _, k := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", k, st.codes[k]))
		if k >= 500 {
			fives += st.codes[k]
		}
	}
	fmt.Printf("duration %v, requests %d (%.1f/s), slowest %v\n", elapsed.Round(time.Second), st.requests,
		float64(st.requests)/elapsed.Seconds(), st.slowest.Round(time.Millisecond))
	fmt.Printf("status codes: %s; 5xx: %d; connections closed on an oversized body: %d\n", strings.Join(parts, ", "), fives, st.resets)
	fmt.Printf("RSS: start %.1f MiB, peak %.1f MiB, ceiling %d MiB\n", mib(st.baseline), mib(st.peak), c.ceiling>>20)
	names := make([]string, 0, len(st.byMut))
	for k := range st.byMut {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Println("by mutation (status: count):")
	for _, n := range names {
		var ps []string
		ks := make([]int, 0)
		for k := range st.byMut[n] {
			ks = append(ks, k)
		}
		sort.Ints(ks)
		for _, k := range ks {
			ps = append(ps, fmt.Sprintf("%d: %d", k, st.byMut[n][k]))
		}
		fmt.Printf("  %-34s %s\n", n, strings.Join(ps, ", "))
	}
	for _, f := range st.fails {
		fmt.Println("failure:", f)
	}
	if st.failCount > 0 || st.peak > c.ceiling {
		fmt.Println("last requests:")
		for i := max(0, st.next-len(st.recent)); i < st.next; i++ {
			fmt.Println("  " + st.recent[i%len(st.recent)])
		}
	}
}
