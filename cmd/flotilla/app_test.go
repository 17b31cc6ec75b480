package main

import (
	"bytes"
	"context"
	"math/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-sched/flotilla/api"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/store"
)

// cliEnv is the API handler on an httptest server, over a real scheduler
// driven through a Recorder (no Mesos), for the CLI to talk to.
type cliEnv struct {
	t     *testing.T
	sched *framework.Scheduler
	rec   *framework.Recorder
	in    chan framework.Input
	url   string
	ctx   context.Context
	clk   *clock.Fake

	mu     sync.Mutex
	offers int
	seen   map[string]bool
}

func newCLIEnv(t *testing.T, auth api.Auth) *cliEnv {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	sched := framework.New(framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(1)), ReconcileSettle: -1,
		Log: logging.Component(logging.Discard(), "framework")})
	st, reg := store.NewMemory(clk, 0), prometheus.NewRegistry()
	dep, err := deploy.New(deploy.Config{Store: st, Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(2)),
		Registry: reg, ProgressDeadline: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Scheduler: sched, Store: st, Deploy: dep, Clock: clk, Registry: reg, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	e := &cliEnv{t: t, sched: sched, rec: &framework.Recorder{}, in: make(chan framework.Input), ctx: ctx, clk: clk, seen: map[string]bool{}}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = sched.Run(ctx, e.in, e.rec) }()
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	go func() { defer wg.Done(); _ = dep.Run(ctx) }()
	hs := httptest.NewServer(srv)
	e.url = hs.URL
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		wg.Wait()
	})
	e.send(framework.SubscribedInput("fw"))
	return e
}

func (e *cliEnv) send(in framework.Input) {
	e.t.Helper()
	select {
	case e.in <- in:
	case <-e.ctx.Done():
		e.t.Fatal("send timed out")
	}
	for err := e.sched.Sync(e.ctx); err != nil; err = e.sched.Sync(e.ctx) {
		if e.ctx.Err() != nil {
			e.t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// launch offers resources and runs every task launched, healthy or not.
func (e *cliEnv) launch(healthy bool) {
	e.mu.Lock()
	e.offers++
	n := e.offers
	e.mu.Unlock()
	e.send(framework.OffersInput(framework.TestOffer("o-"+strconv.Itoa(n), "a-1", "host-1", 64, 65536, 31000, 32000, nil)))
	for _, ti := range e.rec.Launched() {
		id := ti.TaskID.Value
		if e.seen[id] {
			continue
		}
		e.seen[id] = true
		st := framework.TestStatus(id, "a-1", mesos.TASK_RUNNING, true)
		st.Healthy = &healthy
		e.send(framework.UpdateInput(st))
	}
	for _, id := range e.rec.Killed() {
		if !e.seen["killed:"+id] {
			e.seen["killed:"+id] = true
			e.send(framework.UpdateInput(framework.TestStatus(id, "a-1", mesos.TASK_KILLED, true)))
		}
	}
}

func (e *cliEnv) run(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "FLOTILLA_API" {
			return e.url
		}
		return ""
	}
	err := runAppIO(e.ctx, append(args, "--poll", "5ms"), &out, &errOut, env, strings.NewReader(""))
	return out.String(), errOut.String(), err
}

// runWhile runs a following command while drive makes its deployment
// progress.
func (e *cliEnv) runWhile(drive func(), args ...string) (string, error) {
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := e.run(args...)
		done <- result{out, err}
	}()
	for {
		select {
		case r := <-done:
			return r.out, r.err
		case <-time.After(20 * time.Millisecond):
			drive()
		}
	}
}

const cliApp1 = `{"id": "/prod/shop/web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "instances": 2,
 "healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 0}]}`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppCLI(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t, api.Auth{})
	file := writeFile(t, cliApp1)

	out, err := e.runWhile(func() { e.launch(true) }, "deploy", "-f", file)
	if err != nil || !strings.Contains(out, "deployment ") || !strings.Contains(out, "succeeded") {
		t.Fatalf("deploy: %v\n%s", err, out)
	}

	tests := []struct {
		name string
		args []string
		want []string // substrings, in order
	}{
		{"list", []string{"list"}, []string{"ID", "INSTANCES", "RUNNING", "HEALTHY", "/prod/shop/web", "2", "2", "2"}},
		{"list json", []string{"--json", "list"}, []string{`"apps": [`, `"tasksRunning": 2`}},
		{"show", []string{"show", "/prod/shop/web"}, []string{"id:", "/prod/shop/web", "instances:", "2 (running 2", "TASK", "TASK_RUNNING", "healthy"}},
		{"show without slash", []string{"show", "prod/shop/web", "--json"}, []string{`"app": {`, `"id": "/prod/shop/web"`}},
		{"tasks", []string{"tasks", "/prod/shop/web"}, []string{"TASK", "HOST", "prod_shop_web.instance-", "host-1", "TASK_RUNNING", "healthy"}},
		{"deployments", []string{"deployments"}, []string{"ID", "ACTION", "PROGRESS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := e.run(tc.args...)
			if err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%v: output lacks %q (in order):\n%s", tc.args, w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}

	out, err = e.runWhile(func() { e.launch(true) }, "scale", "/prod/shop/web", "3")
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("scale: %v\n%s", err, out)
	}
	if a := e.sched.Snapshot().App("/prod/shop/web"); a == nil || a.Instances != 3 {
		t.Fatalf("after scale: %+v", a)
	}
	out, err = e.runWhile(func() { e.launch(true) }, "restart", "/prod/shop/web")
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	out, _, err = e.run("scale", "/prod/shop/web", "1", "--detach")
	if err != nil || !strings.Contains(out, "started") || strings.Contains(out, "succeeded") {
		t.Fatalf("detached scale: %v\n%s", err, out)
	}
	_, _, err = e.run("scale", "/prod/shop/web", "5")
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("scale during a deployment: %v", err)
	}
	out, err = e.runWhile(func() { e.launch(true) }, "rm", "/prod/shop/web", "--force")
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("rm: %v\n%s", err, out)
	}
}

// A deployment that fails (deadline, rollback) makes deploy exit non-zero
// with the reason; API refusals are shown path by path.
func TestAppCLIErrors(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t, api.Auth{})
	bad := writeFile(t, `{"id": "/bad", "cmd": "x", "cpus": 0, "mem": -1}`)
	_, _, err := e.run("deploy", "-f", bad)
	if err == nil {
		t.Fatal("invalid app deployed")
	}
	for _, want := range []string{"422", "/cpus: must be greater than 0", "/mem:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	never := writeFile(t, `{"id": "/never", "cmd": "x", "cpus": 1000}`)
	_, err = e.runWhile(func() { e.clk.Step(30 * time.Second) }, "deploy", "-f", never)
	if err == nil || !strings.Contains(err.Error(), "failed: progress deadline of 1m0s passed") {
		t.Fatalf("deploy that cannot be placed: %v", err)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"scale needs a number", []string{"scale", "/x", "many"}, "not a number"},
		{"show unknown", []string{"show", "/nope"}, "404"},
		{"deploy without file", []string{"deploy"}, "-f app.json"},
		{"bad api", []string{"list", "--api", "ftp://x"}, "not an http"},
		{"api down", []string{"list", "--api", "http://127.0.0.1:1"}, "is Flotilla running"},
	}
	// Not parallel: a parallel subtest waits for the package's other
	// parallel tests (end-to-end ones take a minute on a busy machine), by
	// when the env's one-minute context may have ended.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.run(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestAppCLIAuth(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t, api.Auth{Token: "t0k"})
	_, _, err := e.run("list")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("without token: %v", err)
	}
	if _, _, err := e.run("list", "--token", "t0k"); err != nil {
		t.Fatalf("with token: %v", err)
	}
}
