package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/store"
)

type sseEv struct {
	typ  string
	data map[string]any
}

// readSSE parses an event stream into a channel until the body ends.
func readSSE(t *testing.T, res *http.Response) <-chan sseEv {
	ch := make(chan sseEv, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var typ string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var m map[string]any
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m); err != nil {
					t.Errorf("event data is not JSON: %s", line)
				}
				ch <- sseEv{typ, m}
			}
		}
	}()
	return ch
}

func openStream(t *testing.T, e *env, query string) (<-chan sseEv, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.hs.URL+"/v2/events"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: status %d type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	return readSSE(t, res), func() { cancel(); res.Body.Close() }
}

func waitEv(t *testing.T, ch <-chan sseEv) sseEv {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no event")
	}
	return sseEv{}
}

// waitEvOfType reads events until one of type typ and fails, naming the
// types it skipped, if none arrives within 15 s of the last one.
func waitEvOfType(t *testing.T, ch <-chan sseEv, typ string) sseEv {
	t.Helper()
	var skipped []string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %s (skipped %v)", typ, skipped)
			}
			if ev.typ == typ {
				return ev
			}
			skipped = append(skipped, ev.typ)
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s event within 15 s (skipped %v)", typ, skipped)
		}
	}
}

// The event stream over a real HTTP connection: Marathon's event types and
// fields, and the event_type filter.
func TestEventStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all, closeAll := openStream(t, e, "")
	defer closeAll()
	if ev := waitEv(t, all); ev.typ != eventStreamAttached || ev.data["eventType"] != eventStreamAttached {
		t.Fatalf("first event %v", ev)
	}
	filtered, closeFiltered := openStream(t, e, "?event_type=status_update_event&event_type=health_status_changed_event")
	defer closeFiltered()
	e.eventually("two stream clients", func() bool { return e.srv.hub.count() == 2 })

	e.mustDo("POST", "/v2/apps", healthApp, 201)
	ids := e.launch(ptr(true))

	want := []string{eventAPIPost, deploy.EventDeploymentInfo, eventGroupChangeSuccess, eventStatusUpdate}
	for _, typ := range want {
		ev := waitEv(t, all)
		if ev.typ != typ || ev.data["eventType"] != typ || ev.data["timestamp"] == nil {
			t.Fatalf("got %s %v, want %s", ev.typ, ev.data, typ)
		}
		if typ == eventAPIPost && ev.data["appDefinition"].(map[string]any)["id"] != "/web" {
			t.Errorf("api_post_event = %v", ev.data)
		}
	}
	var running, alive bool
	for !running || !alive {
		ev := waitEv(t, filtered)
		switch {
		case ev.typ != eventStatusUpdate && ev.typ != eventHealthChanged:
			t.Fatalf("filter let %s through", ev.typ)
		case ev.typ == eventStatusUpdate && ev.data["taskId"] == ids[0] && ev.data["taskStatus"] == "TASK_RUNNING":
			running = true
			for _, f := range []string{"slaveId", "host", "ports", "version", "ipAddresses", "appId"} {
				if _, ok := ev.data[f]; !ok {
					t.Errorf("status_update_event lacks %s", f)
				}
			}
		case ev.typ == eventHealthChanged && ev.data["taskId"] == ids[0]:
			if !running || ev.data["alive"] != true || ev.data["appId"] != "/web" {
				t.Fatalf("health_status_changed_event %v (after running: %v)", ev.data, running)
			}
			alive = true
		}
	}
	// The stream goes on: the deployment ends.
	for {
		ev := waitEv(t, all)
		if ev.typ == deploy.EventDeploymentSuccess {
			if ev.data["id"] == "" || ev.data["plan"] == nil {
				t.Errorf("deployment_success = %v", ev.data)
			}
			break
		}
	}
	e.mustDo("DELETE", "/v2/apps/web", "", 200)
	for {
		if ev := waitEv(t, all); ev.typ == eventAppTerminated {
			if ev.data["appId"] != "/web" {
				t.Errorf("app_terminated_event = %v", ev.data)
			}
			break
		}
	}
}

// A client that falls behind is told so and disconnected, never silently
// fed a stream with holes.
func TestEventStreamLagged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := e.srv.hub.subscribe()
	for i := 0; i < subscriberBuffer+1; i++ {
		e.srv.publish("test", map[string]int{"i": i})
	}
	n := 0
	for range sub.ch {
		n++
	}
	if !sub.lagged || n != subscriberBuffer {
		t.Errorf("lagged %v after %d events", sub.lagged, n)
	}
	e.srv.hub.unsubscribe(sub) // harmless after the hub dropped it
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.Auth = Auth{Username: "ops", Password: "s3cret", Token: "tok-123"}
	})
	tests := []struct {
		name   string
		path   string
		hdr    []string
		status int
	}{
		{"ping is open", "/ping", nil, 200},
		{"no credentials", "/v2/apps", nil, 401},
		{"metrics need credentials", "/metrics", nil, 401},
		{"bearer", "/v2/apps", []string{"Authorization", "Bearer tok-123"}, 200},
		{"wrong bearer", "/v2/apps", []string{"Authorization", "Bearer tok-124"}, 401},
		{"basic", "/v2/apps", []string{"Authorization", "Basic b3BzOnMzY3JldA=="}, 200},          // ops:s3cret
		{"wrong password", "/v2/apps", []string{"Authorization", "Basic b3BzOnMzY3JldDI="}, 401}, // ops:s3cret2
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.do("GET", tc.path, "", tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 401 {
				if got := r.header.Values("WWW-Authenticate"); len(got) != 2 {
					t.Errorf("WWW-Authenticate = %v", got)
				}
				if strings.Contains(string(r.body), "s3cret") || strings.Contains(string(r.body), "tok-123") {
					t.Errorf("401 body leaks a credential: %s", r.body)
				}
			}
		})
	}
}

type fakeLeadership struct {
	leader bool
	addr   string
	err    error
}

func (f *fakeLeadership) IsLeader() bool { return f.leader }
func (f *fakeLeadership) LeaderAddress(context.Context) (string, error) {
	return f.addr, f.err
}
func (f *fakeLeadership) Abdicate(context.Context) error {
	if !f.leader {
		return framework.ErrNotLeader
	}
	f.leader = false
	return nil
}

// Standbys forward API calls to the leader; with no leader they say so.
func TestStandbyProxy(t *testing.T) {
	t.Parallel()
	leader := newEnv(t)
	leader.mustDo("POST", "/v2/apps", simpleApp, 201)
	addr := strings.TrimPrefix(leader.hs.URL, "http://")

	standby := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) { c.Leadership = &fakeLeadership{addr: addr} })
	orphan := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.Leadership = &fakeLeadership{err: errors.New("framework: no candidates under /flotilla/leader")}
	})
	tests := []struct {
		name   string
		e      *env
		method string
		path   string
		status int
		want   string
	}{
		{"standby lists the leader's apps", standby, "GET", "/v2/apps", 200, `"id":"/prod/shop/web"`},
		{"standby forwards writes", standby, "PUT", "/v2/apps/prod/shop/web?force=true", 200, `"deploymentId"`},
		{"standby answers leader itself", standby, "GET", "/v2/leader", 200, addr},
		{"standby pings itself", standby, "GET", "/ping", 200, "pong"},
		{"no leader", orphan, "GET", "/v2/apps", 503, "no leader is known"},
		{"no leader to show", orphan, "GET", "/v2/leader", 404, "There is no leader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "PUT" {
				body = `{"instances": 4}`
			}
			r := tc.e.do(tc.method, tc.path, body)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("status %d, want %d with %q: %s", r.status, tc.status, tc.want, r.body)
			}
		})
	}
	if got := leader.app("/prod/shop/web")["instances"].(float64); got != 4 {
		t.Errorf("forwarded PUT did not reach the leader: instances %v", got)
	}
	// A request already forwarded once is not forwarded again.
	r := standby.do("GET", "/v2/apps", "", proxiedHeader, "other-standby")
	if r.status != 503 {
		t.Errorf("double-forwarded request: status %d", r.status)
	}
}

// A new leader (Restore) brings back every app and running deployment
// from the store.
func TestRestore(t *testing.T) {
	t.Parallel()
	first := newEnv(t)
	first.mustDo("POST", "/v2/apps", simpleApp, 201)
	first.launch(nil)
	first.waitNoDeployments()
	first.mustDo("POST", "/v2/apps", `{"id": "/pending", "cmd": "x", "cpus": 1000}`, 201)

	second := newEnvWithStore(t, first.st)
	if err := second.dep.Restore(second.ctx); err != nil {
		t.Fatal(err)
	}
	r := second.mustDo("GET", "/v2/apps", "", 200)
	if !strings.Contains(string(r.body), `"id":"/prod/shop/web"`) || !strings.Contains(string(r.body), `"id":"/pending"`) {
		t.Fatalf("restored apps: %s", r.body)
	}
	if n := len(second.sched.Snapshot().Apps); n != 2 {
		t.Errorf("scheduler got %d apps", n)
	}
	ds := second.deployments()
	if len(ds) != 1 || ds[0]["affectedApps"].([]any)[0] != "/pending" {
		t.Errorf("restored deployments = %v", ds)
	}
	// The tasks come back through reconciliation: adopted, not relaunched.
	for _, ti := range first.rec.Launched() {
		second.update(ti.TaskID.Value, mesos.TASK_RUNNING, nil)
	}
	if app := second.app("/prod/shop/web"); app["tasksRunning"].(float64) != 2 {
		t.Errorf("after reconciliation: %v", app["tasksRunning"])
	}
}

// The same API against the ZooKeeper store: apps survive a new leader.
func TestZooKeeperStore(t *testing.T) {
	t.Parallel()
	zk, root := zkStore(t, "api-test", "")
	e := newEnvWithStore(t, zk)
	e.mustDo("POST", "/v2/apps", simpleApp, 201)
	e.mustDo("POST", "/v2/apps", simpleApp, 409)
	e.launch(nil)
	e.waitNoDeployments()
	e.mustDo("PUT", "/v2/apps/prod/shop/web", `{"instances": 1}`, 200)

	zk2, _ := zkStore(t, "", root)
	next := newEnvWithStore(t, zk2)
	if err := next.dep.Restore(next.ctx); err != nil {
		t.Fatal(err)
	}
	app := next.app("/prod/shop/web")
	if app["instances"].(float64) != 1 || app["cmd"] != "sleep 1000" {
		t.Errorf("restored from ZooKeeper: %v", app)
	}
	vs := next.mustDo("GET", "/v2/apps/prod/shop/web/versions", "", 200).json(t)["versions"].([]any)
	if len(vs) != 2 {
		t.Errorf("versions = %v", vs)
	}
}

type panickySched struct{ *framework.Scheduler }

func (panickySched) Snapshot() *framework.Snapshot      { panic("snapshot exploded") }
func (panickySched) SnapshotByApp() *framework.Snapshot { panic("snapshot exploded") }

// A panic in a handler is answered with a 500 and logged with its stack,
// and the server keeps serving.
func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	l := logrus.New()
	l.Out = &logs
	sched, st := panickySched{framework.New(framework.Config{})}, store.NewMemory(nil, 0)
	srv, err := New(Config{Scheduler: sched, Store: st, Deploy: newDeploy(t, sched, st, nil), Log: l.WithField("component", "api")})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "/v2/apps", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), "internal error") {
		t.Errorf("status %d: %s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "snapshot exploded") || !strings.Contains(logs.String(), "stack=") {
		t.Errorf("panic not logged with its stack: %s", logs.String())
	}
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "/ping", nil))
	if w.Code != 200 {
		t.Errorf("ping after panic: %d", w.Code)
	}
}

// When Run ends (leadership lost), attached clients are told and
// disconnected so they reconnect through the proxy to the new leader.
func TestEventStreamEndsWithLeadership(t *testing.T) {
	t.Parallel()
	sched, st := framework.New(framework.Config{}), store.NewMemory(nil, 0)
	srv, err := New(Config{Scheduler: sched, Store: st, Deploy: newDeploy(t, sched, st, nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	sub := srv.hub.subscribe()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for range sub.ch {
	}
	if !sub.lagged || !strings.Contains(sub.why, "stopped leading") {
		t.Errorf("lagged %v why %q", sub.lagged, sub.why)
	}
}

// TestRestoreAppOverTheLimits: an app already in the store that asks for
// more than today's limits (written by hand, or before --max-instances
// was lowered) is reported, not scheduled: 10^9 stored instances must not
// cost a new leader its memory.
func TestRestoreAppOverTheLimits(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(clock.NewFake(t0), 0)
	huge, err := appspec.Decode(strings.NewReader(`{"id": "/huge", "cmd": "x", "cpus": 0.001, "mem": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	huge.Instances = 1_000_000_000 // bypassing the API, as a hand-written node would
	if _, err := st.PutApp(context.Background(), huge, store.CreateOnly); err != nil {
		t.Fatal(err)
	}
	e := newEnvWithStore(t, st)
	e.mustDo("POST", "/v2/apps", `{"id": "/fine", "cmd": "x", "cpus": 0.1, "mem": 16}`, 201)
	if err := e.dep.Restore(e.ctx); err != nil {
		t.Fatal(err)
	}
	if apps := e.sched.Snapshot().Apps; len(apps) != 1 || apps[0].ID != "/fine" {
		t.Errorf("scheduler apps after restore: %+v; want /fine alone", apps)
	}
	r := e.mustDo("GET", "/v2/apps/huge", "", 409)
	if !strings.Contains(string(r.body), "instances") {
		t.Errorf("GET of the stored app over the limit: %s; want the rule it breaks", r.body)
	}
	info := e.mustDo("GET", "/v2/info", "", 200)
	if !strings.Contains(string(info.body), `/huge`) || !strings.Contains(string(info.body), "store_problems") {
		t.Errorf("/v2/info does not list the stored app over the limit: %s", info.body)
	}
}

// TestNewLeaderWaitsForItsStore: a replica just elected answers 503 until
// it has read the store, never an empty app list (Marathon #2532); the
// failover e2e test caught a client reading [] from such a leader.
func TestNewLeaderWaitsForItsStore(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(clock.NewFake(t0), 0)
	app, err := appspec.Decode(strings.NewReader(`{"id": "/web", "cmd": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutApp(context.Background(), app, store.CreateOnly); err != nil {
		t.Fatal(err)
	}
	e := newEnvWithStore(t, st, func(c *Config, _ *framework.Config, _ *deploy.Config) { c.Leadership = &fakeLeadership{leader: true} })
	if r := e.do("GET", "/v2/apps", ""); r.status != 503 || !strings.Contains(string(r.body), "still reading apps from the store") {
		t.Fatalf("GET /v2/apps before the restore: %d %s, want 503", r.status, r.body)
	}
	if err := e.dep.Restore(e.ctx); err != nil {
		t.Fatal(err)
	}
	if r := e.mustDo("GET", "/v2/apps", "", 200); !strings.Contains(string(r.body), `"id":"/web"`) {
		t.Fatalf("GET /v2/apps after the restore: %s", r.body)
	}
}
