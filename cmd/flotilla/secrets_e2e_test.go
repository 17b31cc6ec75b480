package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	vault "github.com/hashicorp/vault/api"

	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func randomString(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// zkDump concatenates the paths and data of every znode under root.
func zkDump(t *testing.T, addr, root string) string {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out strings.Builder
	var walk func(p string)
	walk = func(p string) {
		data, _, err := conn.Get(p)
		if err != nil {
			t.Fatalf("zk get %s: %v", p, err)
		}
		fmt.Fprintf(&out, "%s %s\n", p, data)
		kids, _, err := conn.Children(p)
		if err != nil {
			t.Fatalf("zk children %s: %v", p, err)
		}
		for _, k := range kids {
			walk(p + "/" + k)
		}
	}
	walk(root)
	return out.String()
}

// TestDevSecretCanary: a random value stored in Vault reaches the task's
// environment (checked by hash from the task side) and nowhere else: not in
// any API response, the event stream, the logs at trace level, Flotilla's
// ZooKeeper tree or the Mesos master's state.
func TestDevSecretCanary(t *testing.T) {
	t.Parallel()
	vaddr, vtoken := testbed.Vault(t)
	zkAddr := testbed.ZooKeeper(t)

	canary := "canary-" + randomString(t)
	vc, err := vault.NewClient(&vault.Config{Address: vaddr})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(vtoken)
	path := "flotilla-e2e/" + randomString(t)
	ctx := context.Background()
	if _, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"password": canary}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vc.KVv2("secret").DeleteMetadata(context.Background(), path) })

	logs := &syncBuffer{}
	log, err := logging.New(logging.Options{Level: "trace", Out: logs})
	if err != nil {
		t.Fatal(err)
	}
	root := "/flotilla-e2e-" + randomString(t)
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), log: log, zk: "zk://" + zkAddr + root,
		vault: [2]string{vaddr, vtoken}, ports: [2]uint64{30300, 30599}})
	events := &syncBuffer{}
	go captureEvents(t, env, events)

	// Submit-time check: a reference Flotilla cannot read is refused, by name.
	code, body := env.do(t, "POST", "/v2/apps", fmt.Sprintf(`{"id":"/broken","cmd":"sleep 100","cpus":0.01,"mem":8,
		"env":{"DB_PASSWORD":{"secret":"db"}},"secrets":{"db":{"source":"secret/%s-missing#password"}}}`, path))
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "db") {
		t.Fatalf("app with an unreadable secret: %d %s, want 422 naming the secret", code, body)
	}

	bin := testappBinary(t)
	env.deploy(t, fmt.Sprintf(`{"id":"/vaulted","cmd":%q,"instances":1,"cpus":0.05,"mem":32,
		"portDefinitions":[{"port":0}],
		"env":{"DB_PASSWORD":{"secret":"db"},"PLAIN":"visible"},
		"secrets":{"db":{"source":"secret/%s#password"}}}`, bin, path))
	waitFor(t, 60*time.Second, "the app with a secret to run", func() bool { return env.app(t, "/vaulted").TasksRunning == 1 })
	var host string
	var port uint64
	for _, tk := range env.app(t, "/vaulted").Tasks {
		if tk.State == "TASK_RUNNING" && len(tk.Ports) > 0 {
			host, port = tk.Host, tk.Ports[0]
		}
	}
	if port == 0 {
		t.Fatalf("no running task with a port: %+v", env.app(t, "/vaulted").Tasks)
	}
	url := fmt.Sprintf("http://%s:%d/envhash?name=DB_PASSWORD", host, port)
	var got string
	waitFor(t, 20*time.Second, "the task to answer", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = strings.TrimSpace(string(b))
		return resp.StatusCode == http.StatusOK
	})
	sum := sha256.Sum256([]byte(canary))
	if got != hex.EncodeToString(sum[:]) {
		t.Fatalf("the task's DB_PASSWORD hashes to %s, want the hash of the Vault value", got)
	}

	// Everything a user or operator can see.
	var seen strings.Builder
	for _, p := range []string{"/v2/apps?embed=apps.tasks&embed=apps.deployments&embed=apps.lastTaskFailure",
		"/v2/apps/vaulted", "/v2/apps/vaulted/tasks", "/v2/apps/vaulted/versions", "/v2/tasks", "/v2/queue",
		"/v2/deployments", "/v2/info", "/metrics"} {
		code, b := env.do(t, "GET", p, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", p, code)
		}
		seen.Write(b)
	}
	for _, p := range []string{"/master/state", "/state"} {
		resp, err := http.Get(env.mesos + p)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen.Write(b)
		}
	}
	// The event stream has caught up once it carries an event caused after
	// everything above: the creation of a marker app that runs nothing.
	if code, b := env.do(t, "POST", "/v2/apps", `{"id":"/marker","cmd":"sleep 100","instances":0,"cpus":0.01,"mem":8}`); code != http.StatusCreated {
		t.Fatalf("create the marker app: %d %s", code, b)
	}
	waitFor(t, 20*time.Second, "the event stream to carry the marker app", func() bool { return strings.Contains(events.String(), "/marker") })
	dump := zkDump(t, zkAddr, root)
	if !strings.Contains(dump, "secret/"+path+"#password") {
		t.Fatalf("the ZooKeeper tree does not hold the app's secret reference; is the dump real?\n%.2000s", dump)
	}
	if !strings.Contains(logs.String(), "/vaulted") || !strings.Contains(events.String(), "/vaulted") {
		t.Fatal("the captured logs or events do not mention the app; the search below would prove nothing")
	}
	forms := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), hex.EncodeToString([]byte(canary))}
	for name, text := range map[string]string{
		"API responses and the master's state": seen.String(),
		"event stream":                         events.String(),
		"logs (trace level)":                   logs.String(),
		"ZooKeeper tree":                       dump,
	} {
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("the secret value appears in the %s", name)
			}
		}
	}
}

// captureEvents copies the API's event stream into buf until the test ends.
func captureEvents(t *testing.T, env *devEnv, buf io.Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", env.api+"/v2/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	io.Copy(buf, resp.Body)
}

// TestDevSecretRotation: a new version of a secret in Vault rolls the app
// that uses it under its upgradeStrategy (never fewer than one of two
// healthy), and every task ends with the new value.
func TestDevSecretRotation(t *testing.T) {
	t.Parallel()
	vaddr, vtoken := testbed.Vault(t)
	vc, err := vault.NewClient(&vault.Config{Address: vaddr})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(vtoken)
	ctx := context.Background()
	path := "flotilla-e2e/" + randomString(t)
	v1, v2 := "one-"+randomString(t), "two-"+randomString(t)
	if _, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"password": v1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vc.KVv2("secret").DeleteMetadata(context.Background(), path) })

	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), vault: [2]string{vaddr, vtoken},
		ports: [2]uint64{29300, 29599}, secretPoll: time.Second})
	bin := testappBinary(t)
	env.deploy(t, fmt.Sprintf(`{"id":"/rotating","cmd":%q,"instances":2,"cpus":0.05,"mem":32,
		"portDefinitions":[{"port":0}],
		"env":{"DB_PASSWORD":{"secret":"db"}},
		"secrets":{"db":{"source":"secret/%s#password"}},
		"healthChecks":[{"protocol":"MESOS_HTTP","path":"/health","portIndex":0,"delaySeconds":0,
		  "gracePeriodSeconds":3,"intervalSeconds":1,"timeoutSeconds":1,"maxConsecutiveFailures":3}],
		"upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0}}`, bin, path))
	hashOf := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	allHave := func(want string) bool {
		a := env.app(t, "/rotating")
		if a.TasksHealthy != 2 || len(a.Deployments) != 0 {
			return false
		}
		for _, tk := range a.Tasks {
			resp, err := http.Get(fmt.Sprintf("http://%s:%d/envhash?name=DB_PASSWORD", tk.Host, tk.Ports[0]))
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(b)) != hashOf(want) {
				return false
			}
		}
		return true
	}
	waitFor(t, 60*time.Second, "2 healthy tasks with the first value", func() bool { return allHave(v1) })
	before := env.app(t, "/rotating").Version

	events := openEvents(t, env)
	healthy := map[string]bool{}
	for _, tk := range env.app(t, "/rotating").Tasks {
		healthy[tk.ID] = true
	}
	if _, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"password": v2}); err != nil {
		t.Fatal(err)
	}
	low := 2
	events.until(t, 90*time.Second, "the rotation's deployment_success", func(typ string, ev map[string]any) bool {
		trackHealth("/rotating", typ, ev, healthy)
		low = min(low, len(healthy))
		return typ == "deployment_success" && strings.Contains(fmt.Sprint(ev), "/rotating")
	})
	if low < 1 {
		t.Fatalf("the rotation went down to %d healthy tasks; minimumHealthCapacity 0.5 of 2 allows 1", low)
	}
	waitFor(t, 60*time.Second, "every task to hold the new value", func() bool { return allHave(v2) })
	if env.app(t, "/rotating").Version == before {
		t.Fatal("the app's version did not change: the rotation was not a deployment")
	}
}

// TestDevVaultOutage: with Vault down, running tasks are untouched and a
// new launch waits with the reason in /v2/queue (fail closed, never
// launched without its secret); when Vault is back, launches resume on
// their own.
func TestDevVaultOutage(t *testing.T) {
	t.Parallel()
	dv := testbed.StartVault(t)
	put := func(value string) {
		vc, err := vault.NewClient(&vault.Config{Address: dv.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		vc.SetToken(dv.Token)
		if _, err := vc.KVv2("secret").Put(context.Background(), "outage/db", map[string]any{"password": value}); err != nil {
			t.Fatal(err)
		}
	}
	put("before")
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), vault: [2]string{dv.Addr(), dv.Token},
		ports: [2]uint64{29600, 29899}})
	bin := testappBinary(t)
	env.deploy(t, fmt.Sprintf(`{"id":"/needs-vault","cmd":%q,"instances":1,"cpus":0.05,"mem":32,
		"portDefinitions":[{"port":0}], "backoffSeconds":1, "maxLaunchDelaySeconds":2,
		"env":{"DB_PASSWORD":{"secret":"db"}},"secrets":{"db":{"source":"secret/outage/db#password"}}}`, bin))
	waitFor(t, 60*time.Second, "the first task to run", func() bool { return env.app(t, "/needs-vault").TasksRunning == 1 })
	first := env.app(t, "/needs-vault").Tasks[0].ID

	dv.Stop()
	// Past the resolver's cache (10 s), so the next launch must ask Vault.
	time.Sleep(11 * time.Second)
	if code, b := env.do(t, "PATCH", "/v2/apps/needs-vault", `{"instances":2}`); code != http.StatusOK {
		t.Fatalf("scale up during the outage: %d %s", code, b)
	}
	var queue string
	waitFor(t, 30*time.Second, "the queue to say why the task waits", func() bool {
		_, b := env.do(t, "GET", "/v2/queue", "")
		queue = string(b)
		return strings.Contains(queue, "/needs-vault") && strings.Contains(queue, "secret db: vault unreachable")
	})
	t.Logf("queue during the outage names the reason: %s", queue[strings.Index(queue, "secret db: "):][:60])
	a := env.app(t, "/needs-vault")
	if a.TasksRunning != 1 || a.Tasks[0].ID != first {
		t.Fatalf("during the outage: %d running (want the first task alone, untouched): %+v", a.TasksRunning, a.Tasks)
	}

	dv.Start() // a dev server comes back empty
	put("after")
	waitFor(t, 60*time.Second, "launches to resume once Vault is back", func() bool {
		return env.app(t, "/needs-vault").TasksRunning == 2
	})
}
