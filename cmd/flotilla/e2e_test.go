package main

// End-to-end tests of the whole platform as `flotilla dev` assembles it:
// localmesos with real executors, the framework, the API, DNS and the
// gateway, driven only through their public interfaces (HTTP, DNS).

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/api"
	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos"
)

type devEnv struct {
	api      string // http://host:port
	dns      string // host:port
	external string // gateway listeners, host:port
	internal string
	mesos    string   // the local master's URL
	auth     api.Auth // credentials do sends
}

// devOpts vary the platform of one test.
type devOpts struct {
	executor      string // docker, process or simulated
	upstream      string // DNS server outside names are forwarded to
	log           *logrus.Logger
	zk            string    // zk://…: ZooKeeper store and election instead of memory
	vault         [2]string // address and token; empty: no Vault
	secretEnvType string
	ports         [2]uint64 // the agents' ports range; tests running side by side need their own
	secretPoll    time.Duration
	maxInstances  int    // 0: the default
	masterZK      string // zk://…: the master registers there (as Mesos masters do)
	auth          api.Auth
	gatewayGroups []string // --gateway-groups
	// servicePorts is the range service ports are assigned from; tests
	// that reach apps on their service ports take a range of their own,
	// since every platform's gateway binds them on 127.0.0.1.
	servicePorts [2]uint32
	clientLimits api.ClientLimits       // zero: the defaults
	role         string                 // --mesos-role; "" is "*"
	roles        roleConfig             // --mesos-user, --enable-features…
	agents       []localmesos.AgentSpec // nil: devAgents(3) with the ports range
	workDir      string                 // the agents' sandboxes; "": a t.TempDir
	// noServicePorts keeps the gateway from binding service ports, for
	// tests whose apps ask for fixed ones outside the test's port range.
	noServicePorts bool
	// goroutineGateway: --gateway-event-loop=false.
	goroutineGateway bool
}

// gatewayLoops says whether a dev test's gateway runs on its event loops:
// as the command's default (--gateway-event-loop) does, unless the test
// asks for the goroutine path or FLOTILLA_GATEWAY_EVENT_LOOP=0 asks it of
// every test.
func (o devOpts) gatewayLoops() bool {
	return gateway.EventLoopSupported && !o.goroutineGateway && os.Getenv("FLOTILLA_GATEWAY_EVENT_LOOP") != "0"
}

// logTail keeps the last logTailMax bytes written to it.
type logTail struct {
	mu  sync.Mutex
	buf []byte
}

const logTailMax = 64 << 10

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - logTailMax; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// startDev runs the platform and its local master until the test ends.
func startDev(t *testing.T, o devOpts) *devEnv {
	t.Helper()
	log := testLog(t, o.log)
	m := startMaster(t, o, log)
	env, _ := startPlatform(t, o, m.URL(), log)
	env.auth = o.auth
	waitLeading(t, env) // the API answers 503 until the store was read
	return env
}

// testLog is o's logger, or one that keeps warnings and errors and shows
// them if the test fails, so a failure in CI says more than what it timed
// out waiting for.
func testLog(t *testing.T, l *logrus.Logger) *logrus.Logger {
	if l != nil {
		return l
	}
	tail := &logTail{}
	log, _ := logging.New(logging.Options{Level: "warn", Out: tail})
	if testing.Verbose() && os.Getenv("FLOTILLA_E2E_LOG") != "" {
		log, _ = logging.New(logging.Options{Level: os.Getenv("FLOTILLA_E2E_LOG")})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("platform warnings and errors (last %d KiB):\n%s", logTailMax>>10, tail.String())
		}
	})
	return log
}

// startMaster runs a local master with three agents until the test ends.
func startMaster(t *testing.T, o devOpts, log *logrus.Logger) *localmesos.Master {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	name, factory, err := localmesos.ExecutorByName(ctx, o.executor, "", log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// A ports range of its own, so tasks of this package's tests never meet
	// those of other packages (which use Mesos's default 31000-32000) nor
	// the kernel's ephemeral ports (32768 and up) that listeners on port 0
	// get.
	res := localmesos.DefaultResources()
	res.Ports = []localmesos.PortRange{{Begin: o.ports[0], End: o.ports[1]}}
	specs, work := o.agents, o.workDir
	if specs == nil {
		specs = devAgents(3)
	}
	if work == "" {
		work = t.TempDir()
	}
	m, err := localmesos.Start(ctx, localmesos.Config{Listen: "127.0.0.1:0", AgentSpecs: specs, Executor: factory, Resources: res,
		NoSandbox: name == "simulated", Clock: clock.Real{}, Log: log, WorkDir: work, ZK: o.masterZK})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logTaskStderr(t, work)
		cancel()
		m.Close()
	})
	return m
}

// startPlatform runs one Flotilla replica against master until the test
// ends or stop is called (it returns once the replica has stopped): a
// replica that goes away while its master and ZooKeeper stay.
func startPlatform(t *testing.T, o devOpts, master string, log *logrus.Logger) (env *devEnv, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := newPlatform(ctx, platformConfig{
		Master: master, APIAddr: "127.0.0.1:0", FrameworkName: "flotilla", Role: cmp.Or(o.role, "*"), Roles: o.roles, FailoverTimeout: time.Hour,
		DNSAddr: "127.0.0.1:0", DNSDomain: "mesos", DNSUpstreams: []string{o.upstream}, ZK: o.zk,
		GatewayAddr: "127.0.0.1:0", InternalGWAddr: "127.0.0.1:0", SecretEnvType: o.secretEnvType, SecretPoll: o.secretPoll,
		MaxInstances: o.maxInstances, Auth: o.auth, GatewayGroups: o.gatewayGroups, APIClientLimits: o.clientLimits,
		ServicePorts:   appspec.PortRange{Min: o.servicePorts[0], Max: o.servicePorts[1]},
		GatewayClients: gateway.Config{DisableServicePorts: o.noServicePorts, EventLoop: o.gatewayLoops()},
		Getenv: func(k string) string {
			switch k {
			case "VAULT_ADDR":
				return o.vault[0]
			case "VAULT_TOKEN":
				return o.vault[1]
			}
			return ""
		},
	}, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	var once sync.Once
	end := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("platform stopped with %v", err)
			}
		})
	}
	t.Cleanup(end)
	env = &devEnv{api: "http://" + p.ln.Addr().String(), mesos: master}
	waitFor(t, 20*time.Second, "the DNS server and gateway to listen", func() bool {
		return p.dns.UDPAddr() != nil && p.gateway.Addr(gateway.External) != nil && p.gateway.Addr(gateway.Internal) != nil
	})
	env.dns = p.dns.UDPAddr().String()
	env.external = p.gateway.Addr(gateway.External).String()
	env.internal = p.gateway.Addr(gateway.Internal).String()
	return env, end
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *devEnv) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	e.auth.Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type appView struct {
	Version      string `json:"version"`
	TasksRunning int    `json:"tasksRunning"`
	TasksHealthy int    `json:"tasksHealthy"`
	Deployments  []struct {
		ID string `json:"id"`
	} `json:"deployments"`
	Env   map[string]any `json:"env"`
	Tasks []struct {
		ID      string   `json:"id"`
		Host    string   `json:"host"`
		Ports   []uint64 `json:"ports"`
		Version string   `json:"version"`
		State   string   `json:"state"`
		Health  []struct {
			Alive bool `json:"alive"`
		} `json:"healthCheckResults"`
	} `json:"tasks"`
}

func (e *devEnv) app(t *testing.T, id string) appView {
	t.Helper()
	code, b := e.do(t, "GET", "/v2/apps"+id+"?embed=apps.tasks", "")
	if code != http.StatusOK {
		t.Fatalf("GET app %s: %d %s", id, code, b)
	}
	var v struct{ App appView }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.App
}

func (e *devEnv) deploy(t *testing.T, spec string) {
	t.Helper()
	if code, b := e.do(t, "POST", "/v2/apps", spec); code != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %d %s", code, b)
	}
}

func query(t *testing.T, network, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, dns.TypeToString[qtype], name, err)
	}
	return r
}

// fakeUpstream is the resolver outside names are forwarded to: a DNS
// server on loopback that knows one name.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "outside.example.org." {
			rr, _ := dns.NewRR("outside.example.org. 30 IN A 127.0.0.9")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestDevDNS: A and SRV answers for a deployed app, NXDOMAIN for an unknown
// one, forwarding of an outside name, TCP for an answer too big for UDP,
// and a scale-down that removes records at once.
func TestDevDNS(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{30600, 30999}})
	env.deploy(t, `{"id":"/many","cmd":"sleep 1000","instances":100,"cpus":0.01,"mem":1,"portDefinitions":[{"port":0}]}`)
	waitFor(t, 60*time.Second, "100 running tasks", func() bool { return env.app(t, "/many").TasksRunning == 100 })

	var srvs []dns.RR
	waitFor(t, 10*time.Second, "100 SRV records over TCP", func() bool {
		srvs = query(t, "tcp", env.dns, "_many._tcp.flotilla.mesos.", dns.TypeSRV).Answer
		return len(srvs) == 100
	})
	udp := query(t, "udp", env.dns, "_many._tcp.flotilla.mesos.", dns.TypeSRV)
	if !udp.Truncated || len(udp.Answer) >= 100 {
		t.Fatalf("UDP answer of 100 SRV records: truncated=%v with %d answers, want the TC bit", udp.Truncated, len(udp.Answer))
	}
	ips := map[string]bool{}
	for _, rr := range query(t, "udp", env.dns, "many.flotilla.mesos.", dns.TypeA).Answer {
		ips[rr.(*dns.A).A.String()] = true
	}
	if len(ips) != 3 || !ips["127.0.0.1"] || !ips["127.0.0.2"] || !ips["127.0.0.3"] {
		t.Fatalf("A many.flotilla.mesos = %v, want the three agents 127.0.0.1-3", ips)
	}
	nx := query(t, "udp", env.dns, "nothere.flotilla.mesos.", dns.TypeA)
	if nx.Rcode != dns.RcodeNameError || len(nx.Ns) != 1 || nx.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("unknown name: rcode %s, authority %v; want NXDOMAIN with the SOA", dns.RcodeToString[nx.Rcode], nx.Ns)
	}
	out := query(t, "udp", env.dns, "outside.example.org.", dns.TypeA)
	if len(out.Answer) != 1 || out.Answer[0].(*dns.A).A.String() != "127.0.0.9" {
		t.Fatalf("outside name not forwarded: %v", out)
	}

	if code, b := env.do(t, "PATCH", "/v2/apps/many", `{"instances":2}`); code != http.StatusOK {
		t.Fatalf("scale down: %d %s", code, b)
	}
	var left []dns.RR
	waitFor(t, 30*time.Second, "2 SRV records after the scale-down", func() bool {
		left = query(t, "tcp", env.dns, "_many._tcp.flotilla.mesos.", dns.TypeSRV).Answer
		return len(left) == 2
	})
	running := map[string]bool{}
	for _, tk := range env.app(t, "/many").Tasks {
		if tk.State == "TASK_RUNNING" {
			running[fmt.Sprint(tk.Ports[0])] = true
		}
	}
	for _, rr := range left {
		if p := fmt.Sprint(rr.(*dns.SRV).Port); !running[p] {
			t.Errorf("SRV record for port %s survives but no running task has it (running: %v)", p, running)
		}
	}
}

func testappBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FLOTILLA_TESTAPP"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	bin := filepath.Join(t.TempDir(), "testapp")
	cmd := exec.Command("go", "build", "-o", bin, "../testapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build testapp: %v\n%s", err, out)
	}
	return bin
}

func get(client *http.Client, addr, host, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// webSpec is an external app of the test application run as a process,
// with fast health checks.
func webSpec(bin, env, healthPath string, deadline int) string {
	return fmt.Sprintf(`{"id":"/web","cmd":%q,"instances":3,"cpus":0.05,"mem":32,
	  "portDefinitions":[{"port":0,"name":"http"}],
	  "env":{"V":%q},
	  "healthChecks":[{"protocol":"MESOS_HTTP","path":%q,"portIndex":0,"delaySeconds":0,
	    "gracePeriodSeconds":3,"intervalSeconds":1,"timeoutSeconds":1,"maxConsecutiveFailures":3}],
	  "upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0},
	  "progressDeadlineSeconds":%d,
	  "exposure":{"mode":"external","vhosts":["web.example.com"]}}`, bin, env, healthPath, deadline)
}

// TestDevGatewayAndDeployments runs the test application as real
// processes: the external app is reachable on both listeners and shares
// load over its 3 instances, the internal app only inside; a task killed
// under steady load loses no request; a new version rolls without ever
// going under 2 healthy instances (minimumHealthCapacity 0.5, read from
// the event stream); a version whose health check fails is rolled back
// when its progress deadline passes. The gateway runs on its event loops,
// the command's default.
func TestDevGatewayAndDeployments(t *testing.T) {
	t.Parallel()
	bin := testappBinary(t)
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{30000, 30299}})
	env.deploy(t, webSpec(bin, "1", "/health", 600))
	env.deploy(t, fmt.Sprintf(`{"id":"/api","cmd":%q,"instances":1,"cpus":0.05,"mem":32,"portDefinitions":[{"port":0}]}`, bin))
	waitFor(t, 60*time.Second, "3 healthy web tasks and a running api task", func() bool {
		return env.app(t, "/web").TasksHealthy == 3 && env.app(t, "/api").TasksRunning == 1
	})
	waitFor(t, 20*time.Second, "both deployments to finish", func() bool {
		return len(env.app(t, "/web").Deployments) == 0 && len(env.app(t, "/api").Deployments) == 0
	})

	client := &http.Client{Timeout: 5 * time.Second}
	// The gateway learns of healthy tasks from the same events as DNS.
	waitFor(t, 10*time.Second, "the external route", func() bool {
		code, _, err := get(client, env.external, "web.example.com", "/")
		return err == nil && code == http.StatusOK
	})
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		code, body, err := get(client, env.external, "web.example.com", "/")
		if err != nil || code != http.StatusOK {
			t.Fatalf("external GET web: %d %v", code, err)
		}
		seen[strings.Fields(body)[0]]++
	}
	if len(seen) != 3 {
		t.Fatalf("30 requests reached %d instances (%v), want all 3", len(seen), seen)
	}
	if code, _, err := get(client, env.internal, "web.flotilla.mesos", "/"); err != nil || code != http.StatusOK {
		t.Fatalf("internal GET web by its DNS name: %d %v", code, err)
	}
	if code, body, err := get(client, env.internal, "api.flotilla.mesos", "/"); err != nil || code != http.StatusOK || !strings.HasPrefix(body, "api.") {
		t.Fatalf("internal GET api: %d %q %v", code, body, err)
	}
	codeInt, bodyInt, _ := get(client, env.external, "api.flotilla.mesos", "/")
	codeUnknown, bodyUnknown, _ := get(client, env.external, "nothere.example.com", "/")
	if codeInt != http.StatusNotFound || codeInt != codeUnknown || bodyInt != bodyUnknown {
		t.Fatalf("internal app on the external listener: %d %q; unknown host: %d %q; want the same 404",
			codeInt, bodyInt, codeUnknown, bodyUnknown)
	}

	// Kill one instance under steady load: every request must succeed.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := get(client, env.external, "web.example.com", "/")
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v", code, err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	before := env.app(t, "/web")
	victim := before.Tasks[0].ID
	if code, b := env.do(t, "DELETE", "/v2/apps/web/tasks/"+victim, ""); code != http.StatusOK {
		t.Fatalf("kill %s: %d %s", victim, code, b)
	}
	waitFor(t, 60*time.Second, "the killed task to be replaced by a healthy one", func() bool {
		a := env.app(t, "/web")
		if a.TasksHealthy != 3 {
			return false
		}
		for _, tk := range a.Tasks {
			if tk.ID == victim {
				return false
			}
		}
		return true
	})
	// Load on the replacement too: 100 more requests after it became
	// healthy (spread over the three tasks).
	mark := ok.Load()
	waitFor(t, 30*time.Second, "100 requests served after the replacement", func() bool { return ok.Load() >= mark+100 || failed.Load() != 0 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("under load while a task was killed and replaced: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	t.Logf("kill under load: %d requests, 0 failed", ok.Load())

	// A rolling upgrade, watched through the event stream.
	events := openEvents(t, env)
	healthy := map[string]bool{}
	for _, tk := range env.app(t, "/web").Tasks {
		if len(tk.Health) > 0 && tk.Health[0].Alive {
			healthy[tk.ID] = true
		}
	}
	if len(healthy) != 3 {
		t.Fatalf("%d healthy before the upgrade, want 3", len(healthy))
	}
	if code, b := env.do(t, "PUT", "/v2/apps/web", webSpec(bin, "2", "/health", 600)); code != http.StatusOK {
		t.Fatalf("PUT v2: %d %s", code, b)
	}
	low := 3
	events.until(t, 120*time.Second, "deployment_success of /web", func(typ string, ev map[string]any) bool {
		trackHealth("/web", typ, ev, healthy)
		if len(healthy) < low {
			low = len(healthy)
		}
		return typ == "deployment_success" && strings.Contains(fmt.Sprint(ev), "/web")
	})
	if low < 2 {
		t.Fatalf("the rolling upgrade went down to %d healthy instances; minimumHealthCapacity 0.5 of 3 allows 2", low)
	}
	v2 := env.app(t, "/web")
	if v2.TasksHealthy != 3 || fmt.Sprint(v2.Env["V"]) != "2" {
		t.Fatalf("after the upgrade: %d healthy, env V=%v", v2.TasksHealthy, v2.Env["V"])
	}
	for _, tk := range v2.Tasks {
		if tk.Version != v2.Version {
			t.Fatalf("task %s still at version %s after the upgrade to %s", tk.ID, tk.Version, v2.Version)
		}
	}
	t.Logf("rolling upgrade: never fewer than %d healthy", low)

	// A version that never turns healthy: rolled back at its deadline.
	if code, b := env.do(t, "PUT", "/v2/apps/web", webSpec(bin, "3", "/nope", 8)); code != http.StatusOK {
		t.Fatalf("PUT failing version: %d %s", code, b)
	}
	events.until(t, 90*time.Second, "deployment_failed of /web", func(typ string, ev map[string]any) bool {
		return typ == "deployment_failed" && strings.Contains(fmt.Sprint(ev), "/web")
	})
	waitFor(t, 90*time.Second, "the rollback to settle with 3 healthy tasks of the previous spec", func() bool {
		a := env.app(t, "/web")
		return fmt.Sprint(a.Env["V"]) == "2" && a.TasksHealthy == 3 && len(a.Deployments) == 0
	})
}

// events reads the API's Server-Sent Events stream.
type events struct {
	r   *bufio.Reader
	ch  chan [2]string
	err chan error
}

// openEvents subscribes to the API's event stream, to the given event
// types only when some are given.
func openEvents(t *testing.T, env *devEnv, types ...string) *events {
	t.Helper()
	query := ""
	if len(types) > 0 {
		query = "?event_type=" + strings.Join(types, ",")
	}
	req, _ := http.NewRequest("GET", env.api+"/v2/events"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("open /v2/events: %v %v", err, resp)
	}
	e := &events{r: bufio.NewReader(resp.Body), ch: make(chan [2]string, 1024), err: make(chan error, 1)}
	go func() {
		var typ string
		var data bytes.Buffer
		for {
			line, err := e.r.ReadString('\n')
			if err != nil {
				e.err <- err
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case strings.HasPrefix(line, "event:"):
				typ = strings.TrimSpace(line[len("event:"):])
			case strings.HasPrefix(line, "data:"):
				data.WriteString(strings.TrimSpace(line[len("data:"):]))
			case line == "":
				if data.Len() > 0 {
					e.ch <- [2]string{typ, data.String()}
				}
				typ = ""
				data.Reset()
			}
		}
	}()
	return e
}

func (e *events) until(t *testing.T, d time.Duration, what string, f func(typ string, ev map[string]any) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-e.ch:
			var ev map[string]any
			if err := json.Unmarshal([]byte(m[1]), &ev); err != nil {
				t.Fatalf("event %s: bad JSON %q", m[0], m[1])
			}
			typ := m[0]
			if typ == "" {
				typ, _ = ev["eventType"].(string)
			}
			if typ == "event_stream_lagged" {
				t.Fatalf("the event stream lagged while waiting for %s", what)
			}
			if f(typ, ev) {
				return
			}
		case err := <-e.err:
			t.Fatalf("event stream ended while waiting for %s: %v", what, err)
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// trackHealth keeps the set of healthy tasks of appID from Marathon's
// events.
func trackHealth(appID, typ string, ev map[string]any, healthy map[string]bool) {
	if ev["appId"] != appID {
		return
	}
	id, _ := ev["taskId"].(string)
	switch typ {
	case "health_status_changed_event":
		if alive, _ := ev["alive"].(bool); alive {
			healthy[id] = true
		} else {
			delete(healthy, id)
		}
	case "status_update_event":
		if st, _ := ev["taskStatus"].(string); st != "TASK_RUNNING" {
			delete(healthy, id)
		}
	}
}

// TestDevNamesItsLeader: without ZooKeeper the lone replica leads, and
// /v2/leader and /v2/info say where (found by bench/fuzzapi, which waited
// on /v2/leader: it answered 404 "There is no leader").
func TestDevNamesItsLeader(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{28600, 28609}})
	// It advertises the port its listener got, not the :0 it was given.
	want := `"leader":"` + env.api + `"`
	code, b := env.do(t, "GET", "/v2/leader", "")
	if code != http.StatusOK || !strings.Contains(string(b), want) {
		t.Fatalf("GET /v2/leader: %d %s", code, b)
	}
	if code, b := env.do(t, "GET", "/v2/info", ""); code != http.StatusOK || !strings.Contains(string(b), want) {
		t.Fatalf("GET /v2/info: %d %s", code, b)
	}
}
