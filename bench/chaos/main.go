// Command chaos runs real Flotilla replicas (flotilla serve) against a real
// cmd/localmesos registered in ZooKeeper, kills the leader with SIGKILL
// during deployments, and measures what issue 16 asks: time to a new
// leader answering writes, deployments completing, tasks replaced by a
// failover, task counts above instances + maximumOverCapacity, tasks and
// apps lost, and DNS answers on every replica throughout.
//
//	go build -o bin/ ./cmd/... && go run ./bench/chaos -zk 127.0.0.1:2181 -rounds 20
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

type replica struct {
	i        int
	api, dns string
	cmd      *exec.Cmd
	exited   chan struct{}
}

var (
	bin      = flag.String("bin", "bin", "directory holding flotilla and localmesos")
	zkAddr   = flag.String("zk", os.Getenv("FLOTILLA_TEST_ZK"), "ZooKeeper host:port")
	rounds   = flag.Int("rounds", 5, "leader kills")
	stops    = flag.Int("sigstops", 1, "after the kills, leader SIGSTOPs past the ZooKeeper session, each followed by SIGCONT")
	nApps    = flag.Int("apps", 3, "apps, each with -instances instances")
	inst     = flag.Int("instances", 4, "instances per app")
	basePort = flag.Int("port", 18100, "first port: replica i uses port+10i (API) and port+10i+1 (DNS); the master port+50")
	logDir   = flag.String("logs", "", "directory for the processes' logs (default: a temporary one)")
	session  = flag.Duration("session", 10*time.Second, "the replicas' --zk-session-timeout")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run() error {
	if *zkAddr == "" {
		return errors.New("-zk (or FLOTILLA_TEST_ZK) is required")
	}
	dir := *logDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "flotilla-chaos-"); err != nil {
			return err
		}
	}
	root := fmt.Sprintf("/flotilla-chaos-%d", time.Now().UnixNano())
	masterZK := "zk://" + *zkAddr + root + "/mesos"
	masterAddr := fmt.Sprintf("127.0.0.1:%d", *basePort+50)
	master := start(dir, "localmesos", filepath.Join(*bin, "localmesos"), "--listen", masterAddr, "--zk", masterZK,
		"--executor", "simulated", "--agents", "3", "--resources", "cpus:8;mem:8192;disk:10240;ports:[21000-21999]")
	defer stop(master)
	if err := waitHTTP("http://"+masterAddr+"/master/health", 30*time.Second); err != nil {
		return fmt.Errorf("master: %w (log in %s)", err, dir)
	}
	reps := make([]*replica, 3)
	startReplica := func(i int) {
		r := &replica{i: i, api: fmt.Sprintf("127.0.0.1:%d", *basePort+10*i), dns: fmt.Sprintf("127.0.0.1:%d", *basePort+10*i+1)}
		r.cmd = start(dir, fmt.Sprintf("flotilla-%d", i), filepath.Join(*bin, "flotilla"), "serve",
			"--master", masterZK, "--zk", "zk://"+*zkAddr+root+"/flotilla", "--api-addr", r.api,
			"--dns-addr", r.dns, "--dns-upstream", "127.0.0.1:1", "--hostname", "127.0.0.1", "--zk-session-timeout", session.String())
		r.exited = make(chan struct{})
		go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(r.cmd, r.exited)
		reps[i] = r
	}
	for i := range reps {
		startReplica(i)
	}
	defer func() {
		for _, r := range reps {
			kill(r)
		}
	}()
	leader, err := waitLeader(reps, 60*time.Second)
	if err != nil {
		return err
	}
	apps := make([]string, *nApps)
	for i := range apps {
		apps[i] = fmt.Sprintf("/chaos/app%d", i)
		spec := fmt.Sprintf(`{"id":%q,"cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":%d,"portDefinitions":[{"port":0}],"env":{"V":"0"},
			"upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0.5}}`, apps[i], *inst)
		if code, body := call(leader, "POST", "/v2/apps", spec); code != http.StatusCreated {
			return fmt.Errorf("POST %s: %d %s", apps[i], code, body)
		}
	}
	if err := waitDeployed(reps, apps, 60*time.Second); err != nil {
		return err
	}
	// Every replica answers for every app before the first kill: a standby
	// follows the leader's view once the leader has settled with the
	// master (a few seconds after it starts).
	for _, r := range reps {
		starting.Store(r.dns, true)
		for i := range apps {
			name := fmt.Sprintf("_app%d-chaos._tcp.flotilla.mesos.", i)
			if err := waitDNS(r.dns, name, 30*time.Second); err != nil {
				return err
			}
		}
	}

	// DNS: every replica asked for every app at ≥ 200/s in all.
	var dnsAsked, dnsBad atomic.Int64
	var badMu sync.Mutex
	badSeen := map[string]int{}
	var badLog []string
	stopDNS := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: time.Second}
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-stopDNS:
					return
				case <-tick.C:
				}
				name := fmt.Sprintf("_app%d-chaos._tcp.flotilla.mesos.", n%len(apps))
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeSRV)
				resp, _, err := c.Exchange(m, addr)
				dnsAsked.Add(1)
				why := ""
				switch {
				case err != nil:
					if isDown(addr) {
						continue // this replica is the one killed: not a wrong answer
					}
					why = "error"
				case resp.Rcode != dns.RcodeSuccess:
					why = dns.RcodeToString[resp.Rcode]
				case len(resp.Answer) == 0:
					why = "empty"
				}
				if (why == "SERVFAIL" || why == "error") && isStarting(addr) {
					continue // a replica not yet listening, or with no view yet (SERVFAIL, not cacheable): resolvers try the next
				}
				if why == "" {
					answered(addr)
					continue
				}
				dnsBad.Add(1)
				badMu.Lock()
				badSeen[addr+" "+why]++
				if len(badLog) < 20 {
					badLog = append(badLog, fmt.Sprintf("%s %s %s %s", time.Now().Format("15:04:05.000"), addr, name, why))
				}
				badMu.Unlock()
			}
		}(r.dns)
	}

	var failovers, completions []time.Duration
	var maxOver, replaced, lost int
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < *rounds; round++ {
		leader, err = waitLeader(reps, 60*time.Second)
		if err != nil {
			return err
		}
		before := masterRunning("http://" + masterAddr)
		// A rolling deployment (new env) or a scale-up, then the kill.
		app := apps[rng.Intn(len(apps))]
		body := fmt.Sprintf(`{"env":{"V":"%d"}}`, round+1)
		kind := "roll"
		if round%2 == 1 {
			body, kind = fmt.Sprintf(`{"instances":%d}`, *inst+1), "scale"
		}
		if code, b := call(leader, "PUT", "/v2/apps"+app+"?force=true", body); code != http.StatusOK {
			return fmt.Errorf("round %d: PUT %s: %d %s", round, app, code, b)
		}
		var killed *replica
		for _, r := range reps {
			if r.api == leader {
				killed = r
			}
		}
		markDown(killed.dns)
		t0 := time.Now()
		fmt.Printf("%s round %d: killing %s\n", t0.Format("15:04:05.000"), round, killed.api)
		kill(killed)
		newLeader, err := waitWrite(reps, killed, 60*time.Second)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		failovers = append(failovers, time.Since(t0))
		t1 := time.Now()
		// Watch the task count while the deployment completes.
		deadline := time.Now().Add(90 * time.Second)
		for {
			running := masterRunning("http://" + masterAddr)
			want := wantInstances(newLeader, apps)
			if over := len(running) - want; over > maxOver {
				maxOver = over
			}
			if deps := deployments(newLeader); deps == 0 && len(running) == want {
				completions = append(completions, time.Since(t1))
				// Tasks of apps that were not deployed this round and that
				// are gone now were replaced by the failover.
				for id := range before {
					if !running[id] && !strings.HasPrefix(id, strings.ReplaceAll(strings.TrimPrefix(app, "/"), "/", "_")+".") {
						replaced++
					}
				}
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("round %d (%s of %s): deployment did not complete in 90 s after the failover: %d running, want %d", round, kind, app, len(running), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Printf("round %2d: %-5s %s, leader %s killed, new leader %s answered writes after %v, deployment done %v later\n",
			round, kind, app, killed.api, newLeader, failovers[len(failovers)-1].Round(time.Millisecond), completions[len(completions)-1].Round(time.Millisecond))
		starting.Store(killed.dns, true)
		startReplica(killed.i)
		down.Delete(killed.dns)
		// Scale back so the next scale-up is a change again.
		if kind == "scale" {
			if code, b := call(newLeader, "PUT", "/v2/apps"+app+"?force=true", fmt.Sprintf(`{"instances":%d}`, *inst)); code != http.StatusOK {
				return fmt.Errorf("round %d: scale back: %d %s", round, code, b)
			}
			if err := waitDeployed(reps, apps, 60*time.Second); err != nil {
				return err
			}
		}
	}
	// SIGSTOP: a frozen leader past its session. A new leader takes over;
	// woken, the old one must fence itself and write nothing (checked in
	// its own log and on the master: the task count stays what is asked),
	// and rejoin as a standby.
	for round := 0; round < *stops; round++ {
		leader, err = waitLeader(reps, 60*time.Second)
		if err != nil {
			return err
		}
		var frozen *replica
		for _, r := range reps {
			if r.api == leader {
				frozen = r
			}
		}
		markDown(frozen.dns) // a frozen server answers nothing: not a wrong answer
		if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		t0 := time.Now()
		newLeader, err := waitWrite(reps, frozen, 60*time.Second)
		if err != nil {
			return fmt.Errorf("sigstop %d: %w", round, err)
		}
		took := time.Since(t0)
		// Work for the new leader while the old one sleeps: a scale-up.
		app := apps[round%len(apps)]
		if code, b := call(newLeader, "PUT", "/v2/apps"+app+"?force=true", fmt.Sprintf(`{"instances":%d}`, *inst+1)); code != http.StatusOK {
			return fmt.Errorf("sigstop %d: scale: %d %s", round, code, b)
		}
		if err := waitDeployed(reps, apps, 60*time.Second); err != nil {
			return err
		}
		woke := time.Now()
		if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			return err
		}
		// It rejoins: it names the new leader and its DNS answers again.
		rejoined := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			code, body := call(frozen.api, "GET", "/v2/leader", "")
			if code == http.StatusOK && strings.Contains(body, newLeader) && waitDNS(frozen.dns, "_app0-chaos._tcp.flotilla.mesos.", time.Second) == nil {
				rejoined = true
				break
			}
		}
		time.Sleep(3 * time.Second) // anything it would still do after waking
		down.Delete(frozen.dns)
		writes, fenced := afterWake(filepath.Join(dir, fmt.Sprintf("flotilla-%d.log", frozen.i)), woke)
		running := masterRunning("http://" + masterAddr)
		want := wantInstances(newLeader, apps)
		fmt.Printf("sigstop %d: leader %s frozen, new leader %s answered writes after %v; woken: fenced log line %v, writes logged after waking %d, rejoined as standby %v, master runs %d tasks for %d instances\n",
			round, frozen.api, newLeader, took.Round(time.Millisecond), fenced, writes, rejoined, len(running), want)
		if code, b := call(newLeader, "PUT", "/v2/apps"+app+"?force=true", fmt.Sprintf(`{"instances":%d}`, *inst)); code != http.StatusOK {
			return fmt.Errorf("sigstop %d: scale back: %d %s", round, code, b)
		}
		if err := waitDeployed(reps, apps, 60*time.Second); err != nil {
			return err
		}
	}
	close(stopDNS)
	wg.Wait()
	leader, err = waitLeader(reps, 60*time.Second)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if code, _ := call(leader, "GET", "/v2/apps"+a, ""); code != http.StatusOK {
			lost++
		}
	}
	sort.Slice(failovers, func(i, j int) bool { return failovers[i] < failovers[j] })
	fmt.Printf("\nleader SIGKILLs: %d (ZooKeeper session timeout %v)\n", len(failovers), *session)
	if len(failovers) > 0 {
		fmt.Printf("time to a new leader answering writes: p50 %v, max %v\n",
			failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond))
	}
	sort.Slice(completions, func(i, j int) bool { return completions[i] < completions[j] })
	if len(completions) > 0 {
		fmt.Printf("interrupted deployments completed after the new leader answered writes: p50 %v, max %v (polled every 100 ms)\n",
			completions[len(completions)/2].Round(time.Millisecond), completions[len(completions)-1].Round(time.Millisecond))
	}
	fmt.Printf("tasks replaced by a failover: %d\napps lost: %d\nmost tasks running above the apps' instances: %d (maximumOverCapacity 0.5 allows %d during a deployment of one %d-instance app)\n",
		replaced, lost, maxOver, (*inst+1)/2, *inst)
	fmt.Printf("DNS lookups on every replica: %d, failed or empty (replica being killed excluded): %d %v\n", dnsAsked.Load(), dnsBad.Load(), badSeen)
	for _, l := range badLog {
		fmt.Println("  bad:", l)
	}
	fmt.Printf("logs: %s\n", dir)
	return nil
}

// down: the replica was killed (its silence is not a wrong answer);
// starting: restarted and not yet answered NOERROR (SERVFAIL is its
// honest answer before its first view).
var down, starting sync.Map

func isStarting(addr string) bool { _, ok := starting.Load(addr); return ok }

func markDown(addr string)    { down.Store(addr, true) }
func answered(addr string)    { starting.Delete(addr) } // never clears "down": an answer in flight when the kill began arrives after it
func isDown(addr string) bool { _, ok := down.Load(addr); return ok }
func stop(c *exec.Cmd)        { _ = c.Process.Signal(syscall.SIGTERM); _, _ = c.Process.Wait() }
func kill(r *replica) {
	if r == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
}

func start(dir, name, path string, args ...string) *exec.Cmd {
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	c := exec.Command(path, args...)
	c.Stdout, c.Stderr = f, f
	if err := c.Start(); err != nil {
		panic(fmt.Sprintf("start %s: %v", path, err))
	}
	return c
}

func call(addr, method, path, body string) (int, string) {
	return callWithin(addr, method, path, body, 10*time.Second)
}

// callWithin bounds one call: a frozen replica accepts connections (the
// kernel does) and never answers.
func callWithin(addr, method, path, body string, d time.Duration) (int, string) {
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewBufferString(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: d}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// afterWake reads a replica's log for lines stamped at or after woke: how
// many record a write to Mesos or the store (a kill, a launch, a
// deployment), and whether it logged that it fenced itself.
func afterWake(path string, woke time.Time) (writes int, fenced bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		i := strings.Index(l, `time="`)
		if i < 0 || len(l) < i+6+20 {
			continue
		}
		at, err := time.Parse(time.RFC3339, l[i+6:i+6+20])
		if err != nil || at.Before(woke.Truncate(time.Second)) {
			continue
		}
		switch {
		case strings.Contains(l, "fenced"):
			fenced = true
		case strings.Contains(l, `msg="killing task"`), strings.Contains(l, `msg="deployment started"`), strings.Contains(l, "offers used"):
			writes++
		}
	}
	return writes, fenced
}

func waitDNS(server, name string, d time.Duration) error {
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeSRV)
		if resp, _, err := c.Exchange(m, server); err == nil && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("replica DNS %s did not answer %s within %v", server, name, d)
}

func waitHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %v", url, d)
}

// waitLeader returns the API address of the replica that leads and has
// read its store (GET /v2/leader names it; it answers /v2/apps itself).
func waitLeader(reps []*replica, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, r := range reps {
			code, body := call(r.api, "GET", "/v2/leader", "")
			var l struct{ Leader string }
			if code == http.StatusOK && json.Unmarshal([]byte(body), &l) == nil && l.Leader != "" {
				host := strings.TrimPrefix(strings.TrimPrefix(l.Leader, "http://"), "https://")
				if code, _ := call(host, "GET", "/v2/apps", ""); code == http.StatusOK {
					return host, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no leader within %v", d)
}

// waitWrite waits until a replica other than killed accepts a write (a
// no-op scale of a probe app) and returns the leader it reached.
func waitWrite(reps []*replica, killed *replica, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, r := range reps {
			if r == killed {
				continue
			}
			if code, _ := callWithin(r.api, "PUT", "/v2/apps/chaos-probe?force=true", `{"cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":0}`, time.Second); code == http.StatusOK || code == http.StatusCreated {
				return waitLeader(reps, time.Until(deadline))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("no replica accepted a write within %v of the kill", d)
}

func deployments(leader string) int {
	code, body := call(leader, "GET", "/v2/deployments", "")
	var ds []json.RawMessage
	if code != http.StatusOK || json.Unmarshal([]byte(body), &ds) != nil {
		return -1
	}
	return len(ds)
}

func wantInstances(leader string, apps []string) int {
	n := 0
	for _, a := range apps {
		code, body := call(leader, "GET", "/v2/apps"+a, "")
		var v struct{ App struct{ Instances int } }
		if code == http.StatusOK && json.Unmarshal([]byte(body), &v) == nil {
			n += v.App.Instances
		}
	}
	return n
}

func waitDeployed(reps []*replica, apps []string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if leader, err := waitLeader(reps, time.Until(deadline)); err == nil && deployments(leader) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("deployments of %v not done within %v", apps, d)
}

func masterRunning(master string) map[string]bool {
	out := map[string]bool{}
	resp, err := http.Get(master + "/master/state")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var st struct {
		Frameworks []struct {
			Tasks []struct{ ID, State string } `json:"tasks"`
		} `json:"frameworks"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return out
	}
	for _, f := range st.Frameworks {
		for _, tk := range f.Tasks {
			if tk.State == "TASK_RUNNING" && !strings.HasPrefix(tk.ID, "chaos-probe") {
				out[tk.ID] = true
			}
		}
	}
	return out
}
