package main

import (
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

// Config is one chaos run.
type Config struct {
	Bin        string // directory holding flotilla and localmesos
	ZK         string // ZooKeeper host:port
	Rounds     int    // leader SIGKILLs, each during a rolling deployment or a scale-up
	Stops      int    // leader SIGSTOPs past the session, after the kills
	Apps       int
	Instances  int
	BasePort   int    // replica i: BasePort+10i (API), +1 (DNS); master BasePort+50
	AgentPorts string // the agents' ports range, e.g. 21000-21999
	LogDir     string // default: a temporary directory
	Session    time.Duration
	Out        io.Writer // progress lines; nil: none
	// Faults run after the kills and stops, in order: "zk" (ZooKeeper
	// restarted; needs OwnZK), "agent" (the busiest agent removed), "vault"
	// (Vault cut while an app with a secret deploys; needs VaultAddr),
	// "zkcut" (every replica's ZooKeeper cut: the frozen view; needs
	// OwnZK), "master" (localmesos failed over: streams dropped, tasks
	// kept).
	Faults []string
	// OwnZK: start a ZooKeeper of the harness's own on BasePort+60 instead
	// of using ZK (which may then be empty).
	OwnZK bool
	// VaultAddr (http://host:port) and VaultToken: the replicas reach this
	// Vault through a proxy on BasePort+61 that the "vault" fault cuts.
	VaultAddr, VaultToken string
	// Executor is localmesos's: "simulated" (default) or "process", with
	// Testapp (cmd/testapp) as every app's command and a MESOS_HTTP health
	// check — real backends for the gateways.
	Executor, Testapp string
	// Gateway: every replica serves its internal gateway on
	// BasePort+10i+2, asked with HTTP throughout (needs Executor process).
	Gateway bool
	// Edge: a `flotilla edge` node (BasePort+70 DNS, +71 gateway, +72
	// HTTP) following the replicas (--api, or --zk with EdgeZK), its DNS
	// and gateway asked with the replicas'.
	Edge, EdgeZK bool
	// Freshness: scale-ups of one app after the stops, each timed on
	// every DNS server against the leader's.
	Freshness int
}

// Result is what a run measured. Every field is filled as far as the run
// got, also when Run returns an error.
type Result struct {
	Failovers []time.Duration // kill to a replica accepting a write
	// ZKExpiry: kill to the killed leader's znode deleted (ZooKeeper's
	// part); Takeover: from then to a write accepted (Flotilla's).
	ZKExpiry, Takeover []time.Duration
	Completions        []time.Duration // then to the deployment done and the master running exactly the instances
	MaxOver            int             // most tasks running above the apps' instances
	Replaced           int             // tasks of apps not deployed in a round that vanished over its failover
	Lost               int             // apps gone at the end
	DNSAsked           int64
	DNSBad             int64 // failed, NXDOMAIN or empty answers (replica killed or starting excluded)
	// DNSExcused: NXDOMAIN or empty answers for an app the master had run
	// no healthy task of for the last dnsGrace (every serving instance lost
	// with an agent): the honest answer, not counted as bad.
	DNSExcused int64
	// DNSRetried: queries that timed out once and were answered when
	// asked again, as a stub resolver asks again (glibc's attempts:2,
	// dig's +tries=3): a UDP reply lost on a loaded machine is not a
	// failed lookup; counted and printed, so a rise shows.
	DNSRetried int64
	BadSeen    map[string]int // "addr why" → count
	BadLog     []string       // the first bad answers, stamped
	Stops      []StopResult
	Faults     []FaultResult
	// SecretLeaks counts occurrences of the test secret's value in the
	// processes' logs (with VaultAddr).
	SecretLeaks int
	// Freshness per follower (Config.Freshness probes).
	Freshness map[string]FreshnessResult
	// HTTP through the gateways: requests, failures (for apps with ≥ 2
	// running tasks, listener not killed), and those excused.
	HTTPAsked, HTTPFailed, HTTPExcused int64
	HTTPSeen                           map[string]int
	// HTTPFailedIn: the failures by phase ("kills", "sigstops", or the
	// fault's name).
	HTTPFailedIn map[string]int64
	HTTPLog      []string
	LogDir       string
}

// StopResult is one SIGSTOP past the session.
type StopResult struct {
	Took               time.Duration // to a new leader answering writes
	Fenced             bool          // the woken leader logged that it fenced itself
	WritesAfterWake    int           // kills, launches or deployments it logged after waking
	Rejoined           bool          // named the new leader and answered DNS again
	Running, Instances int
	// CallsAfterWake: scheduler calls the master counted on the frozen
	// leader's stream after it woke (by type; "refused" ones too): it
	// must send nothing.
	CallsAfterWake map[string]int
}

type replica struct {
	i                 int
	api, dns, gateway string
	cmd               *exec.Cmd
	exited            chan struct{}
}

type harness struct {
	cfg        Config
	dir        string
	master     string // host:port
	masterProc *exec.Cmd
	reps       []*replica
	root       string
	res        *Result

	// down: the replica was killed (its silence is not a wrong answer);
	// starting: restarted and not yet answered NOERROR (SERVFAIL is its
	// honest answer before its first view).
	down, starting sync.Map

	zk         *zkServer
	candidates *leaderWatch // nil: not watched
	zkProxy    *proxy       // the replicas' way to zk, cut by the zkcut fault
	vault      *proxy
	secret     string

	// runningSince: per app (DNS name), since when the master has run at
	// least one of its tasks, healthy where checked, without a break;
	// absent while it runs none.
	runningMu    sync.Mutex
	runningSince map[string]time.Time
	twoSince     map[string]time.Time // the same for at least 2 tasks
	// polled is closed (and replaced) each time watchMaster has looked at
	// the master, so a judgment can wait for a look taken after an answer.
	polled chan struct{}
	edge   *edgeNode
	http   httpStats
	phase  atomic.Value // string: what the run is doing, for HTTPFailedIn

	dnsAsked, dnsBad, dnsExcused, dnsRetried atomic.Int64
	badMu                                    sync.Mutex
}

func (c Config) withDefaults() Config {
	if c.Apps <= 0 {
		c.Apps = 3
	}
	if c.Instances <= 0 {
		c.Instances = 4
	}
	if c.BasePort == 0 {
		c.BasePort = 18100
	}
	if c.AgentPorts == "" {
		c.AgentPorts = "21000-21999"
	}
	if c.Session == 0 {
		c.Session = 10 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Executor == "" {
		c.Executor = "simulated"
	}
	return c
}

// Run starts a master and three replicas, deploys the apps, then kills and
// stops leaders as Config says while DNS is asked on every replica.
func Run(cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if cfg.ZK == "" && !cfg.OwnZK {
		return nil, errNoZK
	}
	h := &harness{cfg: cfg, res: &Result{BadSeen: map[string]int{}}, dir: cfg.LogDir,
		secret: fmt.Sprintf("chaos-secret-%x", rand.New(rand.NewSource(time.Now().UnixNano())).Uint64())}
	if h.dir == "" {
		var err error
		if h.dir, err = os.MkdirTemp("", "flotilla-chaos-"); err != nil {
			return nil, err
		}
	}
	h.res.LogDir = h.dir
	defer h.close()
	var err error
	if cfg.OwnZK {
		if h.zk, err = startZK(h.dir, cfg.BasePort+60); err != nil {
			return h.res, err
		}
		h.cfg.ZK = h.zk.addr
		if h.zkProxy, err = newProxy(fmt.Sprintf("127.0.0.1:%d", cfg.BasePort+62), h.zk.addr); err != nil {
			return h.res, err
		}
	}
	if cfg.VaultAddr != "" {
		if h.vault, err = newProxy(fmt.Sprintf("127.0.0.1:%d", cfg.BasePort+61), strings.TrimPrefix(strings.TrimPrefix(cfg.VaultAddr, "http://"), "https://")); err != nil {
			return h.res, err
		}
	}
	err = h.run()
	if cfg.VaultAddr != "" {
		h.res.SecretLeaks = h.secretLeaks()
	}
	h.res.DNSAsked, h.res.DNSBad, h.res.DNSExcused, h.res.DNSRetried = h.dnsAsked.Load(), h.dnsBad.Load(), h.dnsExcused.Load(), h.dnsRetried.Load()
	h.res.HTTPAsked, h.res.HTTPFailed, h.res.HTTPExcused = h.http.asked.Load(), h.http.failed.Load(), h.http.excused.Load()
	h.http.mu.Lock()
	h.res.HTTPSeen, h.res.HTTPLog, h.res.HTTPFailedIn = h.http.seen, h.http.log, h.http.byPhase
	h.http.mu.Unlock()
	return h.res, err
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.cfg.Out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func (h *harness) masterZK() string { return "zk://" + h.cfg.ZK + h.root + "/mesos" }

// replicaZK is the replicas' ZooKeeper root: through the proxy with the
// harness's own ZooKeeper.
func (h *harness) replicaZK() string {
	if h.zkProxy != nil {
		return "zk://" + h.zkProxy.addr() + h.root
	}
	return "zk://" + h.cfg.ZK + h.root
}

func (h *harness) startMaster() error {
	h.master = fmt.Sprintf("127.0.0.1:%d", h.cfg.BasePort+50)
	h.masterProc = start(h.dir, "localmesos", filepath.Join(h.cfg.Bin, "localmesos"), "--listen", h.master, "--zk", h.masterZK(),
		"--executor", h.cfg.Executor, "--agents", "3", "--resources", "cpus:8;mem:8192;disk:10240;ports:["+h.cfg.AgentPorts+"]")
	if err := waitHTTP("http://"+h.master+"/master/health", 30*time.Second); err != nil {
		return fmt.Errorf("master: %w (log in %s)", err, h.dir)
	}
	return nil
}

func (h *harness) startReplica(i int) {
	c := h.cfg
	r := &replica{i: i, api: fmt.Sprintf("127.0.0.1:%d", c.BasePort+10*i), dns: fmt.Sprintf("127.0.0.1:%d", c.BasePort+10*i+1)}
	args := []string{"serve", "--master", h.replicaZK() + "/mesos", "--zk", h.replicaZK() + "/flotilla", "--api-addr", r.api,
		"--dns-addr", r.dns, "--dns-upstream", "127.0.0.1:1", "--hostname", "127.0.0.1", "--zk-session-timeout", c.Session.String()}
	if c.Gateway {
		r.gateway = fmt.Sprintf("127.0.0.1:%d", c.BasePort+10*i+2)
		args = append(args, "--internal-gateway-addr", r.gateway, "--gateway-service-ports", "false")
	}
	var env []string
	if h.vault != nil {
		env = []string{"VAULT_ADDR=http://" + h.vault.addr(), "VAULT_TOKEN=" + c.VaultToken}
	}
	r.cmd = startEnv(h.dir, fmt.Sprintf("flotilla-%d", i), env, filepath.Join(c.Bin, "flotilla"), args...)
	r.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(r.cmd, r.exited)
	h.reps[i] = r
}

func (h *harness) close() {
	for _, r := range h.reps {
		kill(r)
	}
	if h.edge != nil {
		h.edge.cmd.stop()
	}
	if h.masterProc != nil {
		stop(h.masterProc)
		h.masterProc = nil
	}
	if h.candidates != nil {
		h.candidates.close()
	}
	if h.zk != nil {
		h.zk.stop()
	}
	if h.zkProxy != nil {
		h.zkProxy.close()
	}
	if h.vault != nil {
		h.vault.close()
	}
}

// appCmd is every app's command: testapp (HTTP on $PORT0) with the
// process executor, else a sleep.
func (h *harness) appCmd() string {
	if h.cfg.Executor == "process" && h.cfg.Testapp != "" {
		return h.cfg.Testapp
	}
	return "sleep 100000"
}

// healthChecks: with real backends, a task is published once it answers.
func (h *harness) healthChecks() string {
	if h.cfg.Executor != "process" {
		return ""
	}
	return `,"healthChecks":[{"protocol":"MESOS_HTTP","path":"/health","portIndex":0,"intervalSeconds":1,"timeoutSeconds":1,"gracePeriodSeconds":15,"delaySeconds":0,"maxConsecutiveFailures":3}]`
}

func (h *harness) appName(i int) string { return fmt.Sprintf("_app%d-chaos._tcp.flotilla.mesos.", i) }

func (h *harness) run() error {
	cfg, res := h.cfg, h.res
	h.root = fmt.Sprintf("/flotilla-chaos-%d", time.Now().UnixNano())
	if err := h.startMaster(); err != nil {
		return err
	}
	h.reps = make([]*replica, 3)
	for i := range h.reps {
		h.startReplica(i)
	}
	reps := h.reps
	leader, err := waitLeader(reps, 60*time.Second)
	if err != nil {
		return err
	}
	if h.candidates, err = watchCandidates(h.cfg.ZK, h.root+"/flotilla/leader"); err != nil {
		return fmt.Errorf("watching the election: %w", err)
	}
	apps := make([]string, cfg.Apps)
	for i := range apps {
		apps[i] = fmt.Sprintf("/chaos/app%d", i)
		spec := fmt.Sprintf(`{"id":%q,"cmd":%q,"cpus":0.01,"mem":8,"instances":%d,"portDefinitions":[{"port":0}],"env":{"V":"0"},
			"upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0.5}%s}`, apps[i], h.appCmd(), cfg.Instances, h.healthChecks())
		if code, body := call(leader, "POST", "/v2/apps", spec); code != http.StatusCreated {
			return fmt.Errorf("POST %s: %d %s", apps[i], code, body)
		}
	}
	if err := waitDeployed(reps, apps, 60*time.Second); err != nil {
		return err
	}
	if cfg.Edge {
		if err := h.startEdge(); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
	}
	// Every replica answers for every app before the first kill: a standby
	// follows the leader's view once the leader has settled with the
	// master (a few seconds after it starts).
	waitFor := []string{}
	for _, r := range reps {
		waitFor = append(waitFor, r.dns)
	}
	if h.edge != nil {
		waitFor = append(waitFor, h.edge.dns)
	}
	for _, addr := range waitFor {
		h.starting.Store(addr, true)
		for i := range apps {
			if err := waitDNS(addr, h.appName(i), 60*time.Second); err != nil {
				return err
			}
		}
	}

	// DNS: every replica asked for every app at ≥ 200/s in all.
	stopDNS := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.watchMaster(apps, stopDNS)
	}()
	dnsAddrs := []string{}
	for _, r := range reps {
		dnsAddrs = append(dnsAddrs, r.dns)
	}
	if h.edge != nil {
		dnsAddrs = append(dnsAddrs, h.edge.dns)
	}
	for _, addr := range dnsAddrs {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			h.hammerDNS(addr, len(apps), stopDNS)
		}(addr)
	}
	h.http.seen = map[string]int{}
	for _, t := range h.gatewayTargets() {
		wg.Add(1)
		go func(t target) {
			defer wg.Done()
			h.hammerHTTP(t, len(apps), &h.http, stopDNS)
		}(t)
	}
	defer func() {
		close(stopDNS)
		wg.Wait()
	}()

	rng := rand.New(rand.NewSource(1))
	h.phase.Store("kills")
	for round := 0; round < cfg.Rounds; round++ {
		leader, err = waitLeader(reps, 60*time.Second)
		if err != nil {
			return err
		}
		before := masterRunning("http://" + h.master)
		// A rolling deployment (new env) or a scale-up, then the kill.
		app := apps[rng.Intn(len(apps))]
		body := fmt.Sprintf(`{"env":{"V":"%d"}}`, round+1)
		kind := "roll"
		if round%2 == 1 {
			body, kind = fmt.Sprintf(`{"instances":%d}`, cfg.Instances+1), "scale"
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
		h.down.Store(killed.dns, true)
		t0 := time.Now()
		h.logf("round %d: killing %s", round, killed.api)
		kill(killed)
		newLeader, wrote, err := waitWrite(reps, killed, 60*time.Second)
		if err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		res.Failovers = append(res.Failovers, wrote.Sub(t0))
		h.splitOf(t0, res.Failovers[len(res.Failovers)-1])
		t1 := wrote
		// Watch the task count while the deployment completes.
		deadline := time.Now().Add(90 * time.Second)
		dumped := false
		for {
			if !dumped && time.Since(t1) > slowCompletion {
				// Past the bar: say what the deployment waits for
				// while it still waits (its tasks as the leader sees them).
				dumped = true
				h.logf("round %d: %s of %s not done %v after the new leader answered writes; %s", round, kind, app, slowCompletion, waitingFor(newLeader, app))
			}
			running := masterRunning("http://" + h.master)
			want := wantInstances(newLeader, apps)
			if over := len(running) - want; over > res.MaxOver {
				res.MaxOver = over
			}
			deps := deployments(newLeader)
			if deps == 0 && len(running) == want {
				res.Completions = append(res.Completions, time.Since(t1))
				// Tasks of apps that were not deployed this round and that
				// are gone now were replaced by the failover.
				for id := range before {
					if !running[id] && !strings.HasPrefix(id, strings.ReplaceAll(strings.TrimPrefix(app, "/"), "/", "_")+".") {
						res.Replaced++
					}
				}
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("round %d (%s of %s): deployment did not complete in 90 s after the failover: %d running on the master, want %d; deployments on %s: %d",
					round, kind, app, len(running), want, newLeader, deps)
			}
			time.Sleep(100 * time.Millisecond)
		}
		h.logf("round %2d: %-5s %s, leader %s killed, new leader %s answered writes after %v, deployment done %v later",
			round, kind, app, killed.api, newLeader, res.Failovers[len(res.Failovers)-1].Round(time.Millisecond), res.Completions[len(res.Completions)-1].Round(time.Millisecond))
		h.starting.Store(killed.dns, true)
		h.startReplica(killed.i)
		h.down.Delete(killed.dns)
		// Scale back so the next scale-up is a change again.
		if kind == "scale" {
			if code, b := call(newLeader, "PUT", "/v2/apps"+app+"?force=true", fmt.Sprintf(`{"instances":%d}`, cfg.Instances)); code != http.StatusOK {
				return fmt.Errorf("round %d: scale back: %d %s", round, code, b)
			}
			if err := waitDeployed(reps, apps, 60*time.Second); err != nil {
				return err
			}
		}
	}
	h.phase.Store("sigstops")
	for round := 0; round < cfg.Stops; round++ {
		if err := h.sigstop(round, apps); err != nil {
			return err
		}
	}
	h.phase.Store("freshness")
	if err := h.freshness(cfg.Freshness, apps); err != nil {
		return err
	}
	if err := h.faults(apps); err != nil {
		return err
	}
	leader, err = waitLeader(reps, 60*time.Second)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if code, _ := call(leader, "GET", "/v2/apps"+a, ""); code != http.StatusOK {
			res.Lost++
		}
	}
	return nil
}

// sigstop: a frozen leader past its session. A new leader takes over;
// woken, the old one must fence itself and write nothing (checked in its
// own log and on the master: the task count stays what is asked), and
// rejoin as a standby.
func (h *harness) sigstop(round int, apps []string) error {
	reps, cfg := h.reps, h.cfg
	leader, err := waitLeader(reps, 60*time.Second)
	if err != nil {
		return err
	}
	var frozen *replica
	for _, r := range reps {
		if r.api == leader {
			frozen = r
		}
	}
	h.down.Store(frozen.dns, true) // a frozen server answers nothing: not a wrong answer
	_, current := masterCalls("http://" + h.master)
	var oldStream string
	for _, sid := range current {
		oldStream = sid // one framework
	}
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	t0 := time.Now()
	newLeader, wrote, err := waitWrite(reps, frozen, 60*time.Second)
	if err != nil {
		return fmt.Errorf("sigstop %d: %w", round, err)
	}
	sr := StopResult{Took: wrote.Sub(t0)}
	// Work for the new leader while the old one sleeps: a scale-up.
	app := apps[round%len(apps)]
	if code, b := call(newLeader, "PUT", "/v2/apps"+app+"?force=true", fmt.Sprintf(`{"instances":%d}`, cfg.Instances+1)); code != http.StatusOK {
		return fmt.Errorf("sigstop %d: scale: %d %s", round, code, b)
	}
	var awake []*replica // asking the frozen one would wait for its timeout
	for _, r := range reps {
		if r != frozen {
			awake = append(awake, r)
		}
	}
	if err := waitDeployed(awake, apps, 60*time.Second); err != nil {
		return err
	}
	woke := time.Now()
	before, _ := masterCalls("http://" + h.master)
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	// It rejoins: it names the new leader and its DNS answers again.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body := call(frozen.api, "GET", "/v2/leader", "")
		if code == http.StatusOK && strings.Contains(body, newLeader) && waitDNS(frozen.dns, h.appName(0), time.Second) == nil {
			sr.Rejoined = true
			break
		}
	}
	time.Sleep(3 * time.Second) // anything it would still do after waking
	h.down.Delete(frozen.dns)
	sr.WritesAfterWake, sr.Fenced = afterWake(filepath.Join(h.dir, fmt.Sprintf("flotilla-%d.log", frozen.i)), woke)
	after, _ := masterCalls("http://" + h.master)
	sr.CallsAfterWake = map[string]int{}
	for k, n := range after[oldStream] {
		if d := n - before[oldStream][k]; d > 0 {
			sr.CallsAfterWake[k] = d
		}
	}
	sr.Running, sr.Instances = len(masterRunning("http://"+h.master)), wantInstances(newLeader, apps)
	h.res.Stops = append(h.res.Stops, sr)
	h.logf("sigstop %d: leader %s frozen, new leader %s answered writes after %v; woken: fenced log line %v, writes logged after waking %d, calls on its old stream after waking (master) %v, rejoined as standby %v, master runs %d tasks for %d instances",
		round, frozen.api, newLeader, sr.Took.Round(time.Millisecond), sr.Fenced, sr.WritesAfterWake, sr.CallsAfterWake, sr.Rejoined, sr.Running, sr.Instances)
	if code, b := call(newLeader, "PUT", "/v2/apps"+app+"?force=true", fmt.Sprintf(`{"instances":%d}`, cfg.Instances)); code != http.StatusOK {
		return fmt.Errorf("sigstop %d: scale back: %d %s", round, code, b)
	}
	return waitDeployed(reps, apps, 60*time.Second)
}

// hammerDNS asks addr for the apps' SRV records every 10 ms until stop.
func (h *harness) hammerDNS(addr string, apps int, stop <-chan struct{}) {
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	paced(stop, 10*time.Millisecond, func(n int) {
		name := h.appName(n % apps)
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeSRV)
		resp, _, err := c.Exchange(m, addr)
		if err != nil {
			if _, down := h.down.Load(addr); !down {
				if resp, _, err = c.Exchange(m, addr); err == nil {
					h.dnsRetried.Add(1)
				}
			}
		}
		h.dnsAsked.Add(1)
		why := ""
		switch {
		case err != nil:
			if _, down := h.down.Load(addr); down {
				return // this replica is the one killed: not a wrong answer
			}
			why = "error"
		case resp.Rcode != dns.RcodeSuccess:
			why = dns.RcodeToString[resp.Rcode]
		case len(resp.Answer) == 0:
			why = "empty"
		}
		if why == "NXDOMAIN" || why == "empty" {
			// The replicas learn of lost tasks from the scheduler, maybe
			// before the watcher's last look at the master did: judge by
			// the looks taken after the answer (two, since one may have
			// been under way), up to a second if the master stops answering.
			h.afterPolls(2, time.Second)
			if !h.ranFor(n%apps, dnsGrace) {
				h.dnsExcused.Add(1)
				return
			}
		}
		if _, starting := h.starting.Load(addr); (why == "SERVFAIL" || why == "error") && starting {
			return // a replica not yet listening, or with no view yet (SERVFAIL, not cacheable): resolvers try the next
		}
		if why == "" {
			h.starting.Delete(addr) // never clears "down": an answer in flight when the kill began arrives after it
			return
		}
		h.dnsBad.Add(1)
		h.badMu.Lock()
		h.res.BadSeen[addr+" "+why]++
		if len(h.res.BadLog) < 20 {
			h.res.BadLog = append(h.res.BadLog, fmt.Sprintf("%s %s %s %s", time.Now().Format("15:04:05.000"), addr, name, why))
		}
		h.badMu.Unlock()
	})
}

// paced calls fn(0), fn(1), … every period until stop closes (the rate of
// a hammer, not a wait).
func paced(stop <-chan struct{}, every time.Duration, fn func(n int)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		fn(n)
	}
}

// dnsGrace is how long an app must have run a task on the master
// before its name must resolve on every replica.
const dnsGrace = 2 * time.Second

// watchMaster keeps runningSince from the master's state every 100 ms.
func (h *harness) watchMaster(apps []string, stop <-chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		tasks := masterTasks("http://" + h.master)
		if tasks == nil {
			h.signalPoll()
			continue // the master did not answer: keep what is known
		}
		now := time.Now()
		h.runningMu.Lock()
		if h.runningSince == nil {
			h.runningSince, h.twoSince = map[string]time.Time{}, map[string]time.Time{}
		}
		for i, a := range apps {
			prefix := strings.ReplaceAll(strings.TrimPrefix(a, "/"), "/", "_") + "."
			n := 0
			for _, t := range tasks {
				// Serving: running, and healthy where checked (every app
				// is, on the process executor).
				serving := t.State == "TASK_RUNNING" && (h.cfg.Executor != "process" || t.Healthy != nil && *t.Healthy)
				if serving && strings.HasPrefix(t.ID, prefix) {
					n++
				}
			}
			name := h.appName(i)
			for _, m := range []struct {
				since map[string]time.Time
				min   int
			}{{h.runningSince, 1}, {h.twoSince, 2}} {
				if _, had := m.since[name]; n >= m.min && !had {
					m.since[name] = now
				} else if n < m.min {
					delete(m.since, name)
				}
			}
		}
		h.runningMu.Unlock()
		h.signalPoll()
	}
}

// signalPoll wakes whoever waits for the watcher's next look.
func (h *harness) signalPoll() {
	h.runningMu.Lock()
	defer h.runningMu.Unlock()
	if h.polled != nil {
		close(h.polled)
	}
	h.polled = make(chan struct{})
}

// afterPolls waits until the watcher has looked at the master n more
// times, or for at most limit (the watcher stopped, or the master is slow).
func (h *harness) afterPolls(n int, limit time.Duration) {
	timeout := time.After(limit)
	for range n {
		h.runningMu.Lock()
		if h.polled == nil {
			h.polled = make(chan struct{})
		}
		ch := h.polled
		h.runningMu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			return
		}
	}
}

// ranFor says whether app i has run a task on the master for at least d
// (true until the watcher's first look: the apps were deployed before).
func (h *harness) ranFor(i int, d time.Duration) bool {
	h.runningMu.Lock()
	defer h.runningMu.Unlock()
	if h.runningSince == nil {
		return true
	}
	since, ok := h.runningSince[h.appName(i)]
	return ok && time.Since(since) >= d
}

// ranTwoFor says whether app i has run at least 2 tasks on the master
// for at least d (true until the watcher's first look).
func (h *harness) ranTwoFor(i int, d time.Duration) bool {
	h.runningMu.Lock()
	defer h.runningMu.Unlock()
	if h.twoSince == nil {
		return true
	}
	since, ok := h.twoSince[h.appName(i)]
	return ok && time.Since(since) >= d
}

// Print writes the run's figures.
func (res *Result) Print(w io.Writer, cfg Config) {
	cfg = cfg.withDefaults()
	failovers := append([]time.Duration(nil), res.Failovers...)
	sort.Slice(failovers, func(i, j int) bool { return failovers[i] < failovers[j] })
	fmt.Fprintf(w, "\nleader SIGKILLs: %d (ZooKeeper session timeout %v)\n", len(failovers), cfg.Session)
	if len(failovers) > 0 {
		fmt.Fprintf(w, "time to a new leader answering writes: p50 %v, max %v\n",
			failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond))
	}
	if len(res.ZKExpiry) > 0 {
		e50, emax := p50max(res.ZKExpiry)
		t50, tmax := p50max(res.Takeover)
		fmt.Fprintf(w, "of which kill to the leader's znode deleted (ZooKeeper): p50 %v, max %v; then to a write accepted (Flotilla): p50 %v, max %v\n",
			e50.Round(time.Millisecond), emax.Round(time.Millisecond), t50.Round(time.Millisecond), tmax.Round(time.Millisecond))
	}
	completions := append([]time.Duration(nil), res.Completions...)
	sort.Slice(completions, func(i, j int) bool { return completions[i] < completions[j] })
	if len(completions) > 0 {
		fmt.Fprintf(w, "interrupted deployments completed after the new leader answered writes: p50 %v, max %v (polled every 100 ms)\n",
			completions[len(completions)/2].Round(time.Millisecond), completions[len(completions)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(w, "tasks replaced by a failover: %d\napps lost: %d\nmost tasks running above the apps' instances: %d (maximumOverCapacity 0.5 allows %d during a deployment of one %d-instance app)\n",
		res.Replaced, res.Lost, res.MaxOver, (cfg.Instances+1)/2, cfg.Instances)
	fmt.Fprintf(w, "DNS lookups on every replica: %d, failed or empty (replica being killed excluded): %d %v; NXDOMAIN while the master ran no healthy task of the app (for %v): %d; answered only when asked again after a 1 s timeout: %d\n",
		res.DNSAsked, res.DNSBad, res.BadSeen, dnsGrace, res.DNSExcused, res.DNSRetried)
	for _, l := range res.BadLog {
		fmt.Fprintln(w, "  bad:", l)
	}
	if res.HTTPAsked > 0 {
		fmt.Fprintf(w, "HTTP through the gateways: %d requests, failed for apps with ≥ 2 healthy running tasks (listener not killed): %d %v, by phase %v; failures while an app had fewer than 2 healthy running tasks: %d\n",
			res.HTTPAsked, res.HTTPFailed, res.HTTPSeen, res.HTTPFailedIn, res.HTTPExcused)
		for _, l := range res.HTTPLog {
			fmt.Fprintln(w, "  failed:", l)
		}
	}
	whos := make([]string, 0, len(res.Freshness))
	for who := range res.Freshness {
		whos = append(whos, who)
	}
	sort.Strings(whos)
	for _, who := range whos {
		f := res.Freshness[who]
		fmt.Fprintf(w, "freshness on %s after the leader's DNS (%d scale-ups): p50 %v, p99 %v, max %v\n", who, f.N, f.P50.Round(100*time.Microsecond), f.P99.Round(100*time.Microsecond), f.Max.Round(100*time.Microsecond))
	}
	for _, f := range res.Faults {
		fmt.Fprintf(w, "fault %-5s: deployment done %v after it began; master runs %d tasks for %d instances; %s\n", f.Name, f.Done.Round(time.Millisecond), f.Running, f.Instances, f.Note)
	}
	if cfg.VaultAddr != "" {
		fmt.Fprintf(w, "test secret's value in the processes' logs: %d times\n", res.SecretLeaks)
	}
	fmt.Fprintf(w, "logs: %s\n", res.LogDir)
}
