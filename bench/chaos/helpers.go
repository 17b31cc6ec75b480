package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

func stop(c *exec.Cmd) { _ = c.Process.Signal(syscall.SIGTERM); _, _ = c.Process.Wait() }
func kill(r *replica) {
	if r == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
}

func start(dir, name, path string, args ...string) *exec.Cmd {
	return startEnv(dir, name, nil, path, args...)
}

// startEnv starts path with the harness's environment plus env.
func startEnv(dir, name string, env []string, path string, args ...string) *exec.Cmd {
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	c := exec.Command(path, args...)
	c.Stdout, c.Stderr = f, f
	if env != nil {
		c.Env = append(os.Environ(), env...)
	}
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
// no-op scale of a probe app) and returns when that happened and the
// leader it reached. The leader is looked up without asking killed: a
// frozen replica accepts the connection and never answers, and asking it
// first cost 10 s, which the SIGSTOP figures once counted as failover
// time (one of three SIGSTOPs in make chaos read 20.1 s for 9.1 s).
func waitWrite(reps []*replica, killed *replica, d time.Duration) (string, time.Time, error) {
	var others []*replica
	for _, r := range reps {
		if r != killed {
			others = append(others, r)
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, r := range others {
			if code, _ := callWithin(r.api, "PUT", "/v2/apps/chaos-probe?force=true", `{"cmd":"sleep 100000","cpus":0.01,"mem":8,"instances":0}`, time.Second); code == http.StatusOK || code == http.StatusCreated {
				wrote := time.Now()
				leader, err := waitLeader(others, time.Until(deadline))
				return leader, wrote, err
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", time.Time{}, fmt.Errorf("no replica accepted a write within %v of the kill", d)
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

// slowCompletion is issue 16's bar for an interrupted deployment: done
// within 5 s of the new leader.
const slowCompletion = 5 * time.Second

// waitingFor describes app's deployment and tasks as leader sees them:
// each task's state, version and health, for a deployment that is slow.
func waitingFor(leader, app string) string {
	_, deps := call(leader, "GET", "/v2/deployments", "")
	code, body := call(leader, "GET", "/v2/apps"+app+"/tasks", "")
	var v struct {
		Tasks []struct {
			ID, State, Version string
			HealthCheckResults []struct{ Alive bool } `json:"healthCheckResults"`
		} `json:"tasks"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
		return fmt.Sprintf("deployments %s; tasks: %d %.200s", deps, code, body)
	}
	var b strings.Builder
	for _, t := range v.Tasks {
		health := "no result"
		if len(t.HealthCheckResults) > 0 {
			health = fmt.Sprintf("alive %v", t.HealthCheckResults[0].Alive)
		}
		fmt.Fprintf(&b, " [%s %s %s %s]", t.ID, t.State, t.Version, health)
	}
	return fmt.Sprintf("deployments %s; tasks:%s", deps, b.String())
}
