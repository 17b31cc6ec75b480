package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/testbed"
	"github.com/flotilla-sched/flotilla/store"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// env is a real framework.Scheduler (driven through a Recorder and a fake
// clock, like framework's own harness), a store, and the API on an
// httptest server.
type env struct {
	t     testing.TB
	clk   *clock.Fake
	sched *framework.Scheduler
	rec   *framework.Recorder
	st    store.Store
	srv   *Server
	dep   *deploy.Service
	hs    *httptest.Server
	in    chan framework.Input
	ctx   context.Context

	mu       sync.Mutex
	offerSeq int
	killed   map[string]bool
}

type envOpt func(*Config, *framework.Config, *deploy.Config)

func newEnv(t testing.TB, opts ...envOpt) *env {
	return newEnvWithStore(t, nil, opts...)
}

func newEnvWithStore(t testing.TB, st store.Store, opts ...envOpt) *env {
	t.Helper()
	// An upper bound, not a timing: the loops stop at cleanup. 60 s
	// expired under go test -race -count=4 on a loaded 2-core machine
	// (TestScaleAndAppHandlers took 79 s: "context deadline exceeded").
	return newEnvFor(t, st, 5*time.Minute, opts...)
}

// newEnvFor is newEnvWithStore whose scheduler and API loops run for
// life: a fuzz worker lives far longer than a test.
func newEnvFor(t testing.TB, st store.Store, life time.Duration, opts ...envOpt) *env {
	t.Helper()
	clk := clock.NewFake(t0)
	scfg := framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(1)),
		Log: logging.Component(logging.Discard(), "framework"), ReconcileSettle: -1}
	if st == nil {
		st = store.NewMemory(clk, 0)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Store: st, Clock: clk, Log: logging.Component(logging.Discard(), "api"), Registry: reg, Version: "test"}
	dcfg := deploy.Config{Store: st, Clock: clk, Rand: rand.New(rand.NewSource(2)), Log: logging.Component(logging.Discard(), "deploy"), Registry: reg}
	for _, o := range opts {
		o(&cfg, &scfg, &dcfg)
	}
	sched := framework.New(scfg)
	cfg.Scheduler, dcfg.Scheduler = sched, sched
	dep, err := deploy.New(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Deploy = dep
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), life)
	e := &env{t: t, clk: clk, sched: sched, rec: &framework.Recorder{}, st: st, srv: srv, dep: dep, in: make(chan framework.Input),
		ctx: ctx, killed: map[string]bool{}}
	// Subscribed before any goroutine runs, as Restore does on a replica:
	// a write and a task's failure can come before dep.Run's goroutine
	// starts (TestResetDelay once waited 15 s for a failure it never saw).
	dep.Attach()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = sched.Run(ctx, e.in, e.rec) }()
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	go func() { defer wg.Done(); _ = dep.Run(ctx) }()
	e.hs = httptest.NewServer(srv)
	t.Cleanup(func() {
		e.hs.CloseClientConnections()
		e.hs.Close()
		cancel()
		wg.Wait()
	})
	e.sync()
	e.send(framework.SubscribedInput("fw-1"))
	return e
}

func (e *env) sync() {
	e.t.Helper()
	err := e.sched.Sync(e.ctx)
	for err == framework.ErrNotRunning && e.ctx.Err() == nil {
		time.Sleep(time.Millisecond)
		err = e.sched.Sync(e.ctx)
	}
	if err != nil {
		e.t.Fatalf("sync: %v", err)
	}
}

func (e *env) send(in framework.Input) {
	e.t.Helper()
	select {
	case e.in <- in:
	case <-e.ctx.Done():
		e.t.Fatal("send: timed out")
	}
	e.sync()
}

// offer sends one big offer and returns the ids of the tasks launched.
func (e *env) offer() []string {
	e.t.Helper()
	e.mu.Lock()
	e.offerSeq++
	n := e.offerSeq
	e.mu.Unlock()
	before := len(e.rec.Launched())
	e.send(framework.OffersInput(framework.TestOffer("o-"+strconv.Itoa(n), "a-1", "host-1", 64, 65536, 31000, 32000, nil)))
	var ids []string
	for _, ti := range e.rec.Launched()[before:] {
		ids = append(ids, ti.TaskID.Value)
	}
	return ids
}

// update sends a status update; healthy nil leaves health unset.
func (e *env) update(taskID string, state mesos.TaskState, healthy *bool) {
	e.t.Helper()
	st := framework.TestStatus(taskID, "a-1", state, true)
	st.Healthy = healthy
	e.send(framework.UpdateInput(st))
}

// launch offers resources and reports every launched task RUNNING (and
// healthy or not, when healthy is set); it also confirms every kill the
// scheduler asked for with TASK_KILLED.
func (e *env) launch(healthy *bool) []string {
	e.t.Helper()
	ids := e.offer()
	for _, id := range ids {
		e.update(id, mesos.TASK_RUNNING, healthy)
	}
	e.confirmKills()
	return ids
}

func (e *env) confirmKills() {
	e.t.Helper()
	// A kill asked for through the API is sent by the scheduler's loop:
	// let it act first.
	e.sync()
	for _, id := range e.rec.Killed() {
		e.mu.Lock()
		done := e.killed[id]
		e.killed[id] = true
		e.mu.Unlock()
		if !done {
			e.update(id, mesos.TASK_KILLED, nil)
		}
	}
}

func ptr[T any](v T) *T { return &v }

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (e *env) do(method, path, body string, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.hs.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) mustDo(method, path, body string, want int) resp {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

// eventually polls cond until it holds; the API's loop runs on its own
// goroutine, so its effects are awaited, never assumed.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) deployments() []map[string]any {
	e.t.Helper()
	r := e.mustDo("GET", "/v2/deployments", "", 200)
	var out []map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatalf("deployments: %v: %s", err, r.body)
	}
	return out
}

func (e *env) waitNoDeployments() {
	e.t.Helper()
	e.eventually("no deployments", func() bool { return e.dep.DeploymentCount() == 0 })
}

func (e *env) app(id string) map[string]any {
	e.t.Helper()
	return e.mustDo("GET", "/v2/apps"+id, "", 200).json(e.t)["app"].(map[string]any)
}

const simpleApp = `{"id": "/prod/shop/web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "instances": 2}`

// newDeploy is a deploy.Service over sched and st for tests that build a
// Server by hand.
func newDeploy(t testing.TB, sched deploy.Scheduler, st store.Store, clk clock.Clock) *deploy.Service {
	t.Helper()
	d, err := deploy.New(deploy.Config{Store: st, Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(2))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// zkStore is a ZooKeeper store of the test bed under root (a new one
// named after name when root is ""), closed when the test ends; it
// returns the root, for a second store (a new leader) on the same data.
func zkStore(t testing.TB, name, root string) (*store.ZK, string) {
	t.Helper()
	addr := testbed.ZooKeeper(t)
	if root == "" {
		root = fmt.Sprintf("/flotilla-%s-%d", name, time.Now().UnixNano())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zk, err := store.NewZK(ctx, store.ZKConfig{Servers: []string{addr}, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(zk.Close)
	return zk, root
}
