package main

// TestMarathonCorpus: every app and group definition of
// testdata/marathon (taken from Marathon's and marathon-lb's public
// material, sources in its README.md) is put into a running platform as a
// Marathon user would, and what happened is compared with
// testdata/marathon/expectations.json.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/marathon/expectations.json with what the platform did (after features turn refusals into runs)")

const corpusDir = "../../testdata/marathon"

// corpusOutcome is what became of one definition.
type corpusOutcome struct {
	// Result is "runs" (accepted, every app's instances running), "waits"
	// (accepted, but some instances never started; Reasons says why) or
	// "refused" (a 4xx naming Fields).
	Result string   `json:"result"`
	Status int      `json:"status,omitempty"`
	Fields []string `json:"fields,omitempty"`
	// Reasons are the offer rejections of the waiting instances
	// (informational: not compared, they depend on timing).
	Reasons []string `json:"reasons,omitempty"`
}

func (o corpusOutcome) same(p corpusOutcome) bool {
	return o.Result == p.Result && o.Status == p.Status && strings.Join(o.Fields, " ") == strings.Join(p.Fields, " ")
}

func (o corpusOutcome) String() string {
	switch o.Result {
	case "refused":
		return fmt.Sprintf("refused %d %v", o.Status, o.Fields)
	case "waits":
		return fmt.Sprintf("waits %v", o.Reasons)
	}
	return o.Result
}

// corpusItem is one request: a file, or one app of a GET /v2/apps answer.
type corpusItem struct {
	key          string // file, or file#/apps/i
	method, path string
	body         []byte
}

// corpusItems turns a corpus file into the requests a Marathon user would
// send: an app is POSTed to /v2/apps, a group to /v2/groups (the root
// group PUT to /v2/groups/), and Marathon's GET answers ({"app": …},
// {"apps": […]}) are PUT back app by app to /v2/apps/{id}, unchanged.
func corpusItems(t *testing.T, file string, b []byte) []corpusItem {
	t.Helper()
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		// Not JSON: sent as it is, the answer says what is wrong.
		return []corpusItem{{key: file, method: "POST", path: "/v2/apps", body: b}}
	}
	put := func(key string, app json.RawMessage) corpusItem {
		var a struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(app, &a); err != nil || a.ID == "" {
			t.Fatalf("%s: an app of a GET answer without an id: %v", key, err)
		}
		return corpusItem{key: key, method: "PUT", path: "/v2/apps/" + strings.Trim(a.ID, "/"), body: app}
	}
	_, hasID := top["id"]
	switch {
	case len(top) == 1 && top["app"] != nil:
		return []corpusItem{put(file, top["app"])}
	case !hasID && top["apps"] != nil:
		var apps []json.RawMessage
		if err := json.Unmarshal(top["apps"], &apps); err != nil {
			t.Fatalf("%s: apps: %v", file, err)
		}
		var out []corpusItem
		for i, a := range apps {
			out = append(out, put(fmt.Sprintf("%s#/apps/%d", file, i), a))
		}
		return out
	case top["groups"] != nil || (top["apps"] != nil && top["cmd"] == nil && top["container"] == nil):
		var id string
		_ = json.Unmarshal(top["id"], &id)
		if strings.Trim(id, "/") == "" {
			return []corpusItem{{key: file, method: "PUT", path: "/v2/groups/", body: b}}
		}
		return []corpusItem{{key: file, method: "POST", path: "/v2/groups", body: b}}
	}
	return []corpusItem{{key: file, method: "POST", path: "/v2/apps", body: b}}
}

type corpusApp struct {
	ID           string `json:"id"`
	Instances    int    `json:"instances"`
	TasksRunning int    `json:"tasksRunning"`
}

func (e *devEnv) allApps(t *testing.T) []corpusApp {
	t.Helper()
	code, b := e.do(t, "GET", "/v2/apps", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v2/apps: %d %s", code, b)
	}
	var v struct{ Apps []corpusApp }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.Apps
}

var taskIDPattern = regexp.MustCompile(`[a-z0-9_.-]+\.instance-[0-9a-f-]+\._app\.[0-9]+`)

// waitingReasons are the offer rejections the queue gives for apps whose
// instances wait.
func (e *devEnv) waitingReasons(t *testing.T) []string {
	t.Helper()
	code, b := e.do(t, "GET", "/v2/queue", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v2/queue: %d %s", code, b)
	}
	var v struct {
		Queue []struct {
			App struct {
				ID string `json:"id"`
			} `json:"app"`
			Reason  string `json:"reason"`
			Summary struct {
				Last []struct {
					Reason   string `json:"reason"`
					Declined int    `json:"declined"`
				} `json:"rejectSummaryLastOffers"`
			} `json:"processedOffersSummary"`
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range v.Queue {
		if q.Reason != "" {
			// Task ids change from run to run.
			out = append(out, q.App.ID+": "+taskIDPattern.ReplaceAllString(q.Reason, "<task>"))
		}
		for _, r := range q.Summary.Last {
			if r.Declined > 0 {
				out = append(out, q.App.ID+": "+r.Reason)
			}
		}
	}
	sort.Strings(out)
	return out
}

// clear removes every app and group, and waits until none is left.
func (e *devEnv) clear(t *testing.T) {
	t.Helper()
	code, b := e.do(t, "GET", "/v2/groups", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v2/groups: %d %s", code, b)
	}
	var root struct {
		Apps   []struct{ ID string } `json:"apps"`
		Groups []struct{ ID string } `json:"groups"`
	}
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	for _, a := range root.Apps {
		if code, b := e.do(t, "DELETE", "/v2/apps"+a.ID+"?force=true", ""); code != http.StatusOK {
			t.Fatalf("DELETE app %s: %d %s", a.ID, code, b)
		}
	}
	for _, g := range root.Groups {
		if code, b := e.do(t, "DELETE", "/v2/groups"+g.ID+"?force=true", ""); code != http.StatusOK {
			t.Fatalf("DELETE group %s: %d %s", g.ID, code, b)
		}
	}
	waitFor(t, 30*time.Second, "every app to be removed and every deployment to end", func() bool {
		code, b := e.do(t, "GET", "/v2/deployments", "")
		return len(e.allApps(t)) == 0 && code == http.StatusOK && string(bytes.TrimSpace(b)) == "[]"
	})
}

// apply sends one item and says what became of it: refused, or accepted
// and then running (every app's instances) or still waiting after wait.
func (e *devEnv) apply(t *testing.T, it corpusItem, wait time.Duration) corpusOutcome {
	t.Helper()
	code, b := e.do(t, it.method, it.path, string(it.body))
	if code >= 500 || (code >= 300 && code != http.StatusBadRequest && code != http.StatusUnprocessableEntity && code != http.StatusConflict) {
		t.Errorf("%s: %s %s answered %d %s; want 2xx, or 400/409/422 naming what is wrong", it.key, it.method, it.path, code, b)
		return corpusOutcome{Result: "refused", Status: code}
	}
	if code >= 400 {
		var er struct {
			Message string `json:"message"`
			Details []struct {
				Path   string   `json:"path"`
				Errors []string `json:"errors"`
			} `json:"details"`
		}
		if err := json.Unmarshal(b, &er); err != nil || len(er.Details) == 0 {
			t.Errorf("%s: %d without details naming the fields: %s", it.key, code, b)
		}
		seen := map[string]bool{}
		var fields []string
		for _, d := range er.Details {
			if d.Path == "" || len(d.Errors) == 0 {
				t.Errorf("%s: a detail without path or reason: %s", it.key, b)
			}
			if !seen[d.Path] {
				seen[d.Path] = true
				fields = append(fields, d.Path)
			}
		}
		sort.Strings(fields)
		t.Logf("%s: %d %s", it.key, code, b)
		return corpusOutcome{Result: "refused", Status: code, Fields: fields}
	}
	deadline := time.Now().Add(wait)
	for {
		apps := e.allApps(t)
		running := len(apps) > 0
		for _, a := range apps {
			running = running && a.TasksRunning >= a.Instances
		}
		if running {
			return corpusOutcome{Result: "runs"}
		}
		if time.Now().After(deadline) {
			return corpusOutcome{Result: "waits", Reasons: e.waitingReasons(t)}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// roundTrip PUTs every app's GET /v2/apps/{id} answer back unchanged: it
// must be accepted and change nothing (no new configuration version).
func (e *devEnv) roundTrip(t *testing.T, key string) {
	t.Helper()
	for _, a := range e.allApps(t) {
		before := e.appBody(t, a.ID)
		var app struct {
			VersionInfo struct {
				LastConfigChangeAt string `json:"lastConfigChangeAt"`
			} `json:"versionInfo"`
		}
		if err := json.Unmarshal(before, &app); err != nil {
			t.Fatal(err)
		}
		// force: under the simulated executor health checks never pass,
		// so an app with them is still in its first deployment.
		if code, b := e.do(t, "PUT", "/v2/apps"+a.ID+"?force=true", string(before)); code != http.StatusOK {
			t.Errorf("%s: PUT back GET /v2/apps%s: %d %s\nbody: %s", key, a.ID, code, b, before)
			continue
		}
		var after struct {
			VersionInfo struct {
				LastConfigChangeAt string `json:"lastConfigChangeAt"`
			} `json:"versionInfo"`
		}
		if err := json.Unmarshal(e.appBody(t, a.ID), &after); err != nil {
			t.Fatal(err)
		}
		if after.VersionInfo.LastConfigChangeAt != app.VersionInfo.LastConfigChangeAt {
			t.Errorf("%s: PUT back of %s unchanged changed its configuration: lastConfigChangeAt %s, was %s",
				key, a.ID, after.VersionInfo.LastConfigChangeAt, app.VersionInfo.LastConfigChangeAt)
		}
	}
}

// groupRoundTrip PUTs the root group's GET answer (with groups and apps
// embedded, as flotilla migrate reads a Marathon) back unchanged: it must
// be accepted and change no app's configuration.
func (e *devEnv) groupRoundTrip(t *testing.T, key string) {
	t.Helper()
	changed := func() map[string]string {
		out := map[string]string{}
		for _, a := range e.allApps(t) {
			var app struct {
				VersionInfo struct {
					LastConfigChangeAt string `json:"lastConfigChangeAt"`
				} `json:"versionInfo"`
			}
			if err := json.Unmarshal(e.appBody(t, a.ID), &app); err != nil {
				t.Fatal(err)
			}
			out[a.ID] = app.VersionInfo.LastConfigChangeAt
		}
		return out
	}
	before := changed()
	code, root := e.do(t, "GET", "/v2/groups?embed=group.groups&embed=group.apps", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v2/groups: %d %s", code, root)
	}
	if code, b := e.do(t, "PUT", "/v2/groups/?force=true", string(root)); code != http.StatusOK {
		t.Errorf("%s: PUT back GET /v2/groups: %d %s\nbody: %s", key, code, b, root)
		return
	}
	if after := changed(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("%s: the root group PUT back unchanged changed configurations: %v, was %v", key, after, before)
	}
}

// appBody is the app of GET /v2/apps/{id}, as the API gives it.
func (e *devEnv) appBody(t *testing.T, id string) []byte {
	t.Helper()
	code, b := e.do(t, "GET", "/v2/apps"+id, "")
	if code != http.StatusOK {
		t.Fatalf("GET /v2/apps%s: %d %s", id, code, b)
	}
	var v struct {
		App json.RawMessage `json:"app"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.App
}

// TestMarathonCorpus puts each definition of the corpus into a platform
// run with the simulated executor (the corpus's Docker images are not on
// this machine; TestMarathonCorpusDocker runs a few for real) and checks
// it is either accepted and running, or refused with a 4xx naming the
// fields, exactly as expectations.json says. Run with -update-corpus to
// rewrite the file once features change the outcomes.
func TestMarathonCorpus(t *testing.T) {
	t.Parallel()
	// Agents with the rack_id attribute Marathon's constraint examples use.
	agents := devAgents(3)
	for i := range agents {
		agents[i].Attributes["rack_id"] = fmt.Sprintf("rack-%d", i+1)
	}
	env := startDev(t, devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{22500, 22899}, noServicePorts: true, agents: agents})
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d files (%v), want at least 30", len(files), err)
	}
	expPath := filepath.Join(corpusDir, "expectations.json")
	want := map[string]corpusOutcome{}
	if b, err := os.ReadFile(expPath); err == nil {
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", expPath, err)
		}
	} else if !*updateCorpus {
		t.Fatalf("%v; run with -update-corpus to write it", err)
	}
	got := map[string]corpusOutcome{}
	for _, f := range files {
		if filepath.Base(f) == "expectations.json" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range corpusItems(t, filepath.Base(f), b) {
			got[it.key] = env.apply(t, it, 10*time.Second)
			if got[it.key].Result != "refused" {
				env.roundTrip(t, it.key)
				env.groupRoundTrip(t, it.key)
			}
			env.clear(t)
		}
	}
	runs := 0
	keys := slices.Sorted(maps.Keys(got))
	for _, k := range keys {
		if got[k].Result == "runs" {
			runs++
		}
		if *updateCorpus {
			continue
		}
		w, ok := want[k]
		if !ok {
			t.Errorf("%s: %s, and expectations.json does not name it", k, got[k])
			continue
		}
		if !w.same(got[k]) {
			t.Errorf("%s: %s, expectations.json says %s", k, got[k], w)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok && !*updateCorpus {
			t.Errorf("expectations.json names %s, which the corpus does not have", k)
		}
	}
	t.Logf("corpus: %d of %d definitions run (%.0f%%)", runs, len(got), 100*float64(runs)/float64(len(got)))
	if *updateCorpus {
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(got); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(expPath, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", expPath)
	}
}

// dockerCorpus are the corpus definitions TestMarathonCorpusDocker runs
// for real: Docker apps on bridge and host networking, as definitions
// and as Marathon GET answers.
var dockerCorpus = []string{
	"system-docker-http-server.json",           // BRIDGE, legacy form, python:3.5-alpine on 8080
	"marathon-lb-docker-bridge.json",           // container/bridge, nginx on 80, 4 instances
	"marathon-lb-marathon15-apps.json#/apps/0", // Marathon 1.5 GET answer, bridge, python:3 on 80
	"system-unreachable.json",                  // HOST networking, redis, unreachableStrategy
	"basic-3-docker-bridge.json",               // the docs' Docker app, BRIDGE
	"examples-tomcat-docker.json",              // BRIDGE, fixed servicePort, HTTP health check
}

// substituteImage puts the local test image in place of the definition's
// (no registry here): its image becomes testbed.Image, its cmd goes (the
// image's entrypoint is the test application) and, on a bridge, the
// application listens on the first mapping's container port. Everything
// else stays as the definition has it.
func substituteImage(t *testing.T, body []byte) []byte {
	t.Helper()
	var app map[string]any
	if err := json.Unmarshal(body, &app); err != nil {
		t.Fatal(err)
	}
	delete(app, "cmd")
	delete(app, "args")
	c, _ := app["container"].(map[string]any)
	d, _ := c["docker"].(map[string]any)
	if d == nil {
		t.Fatalf("not a Docker app: %s", body)
	}
	d["image"] = testbed.Image
	mappings, _ := c["portMappings"].([]any)
	if legacy, _ := d["portMappings"].([]any); len(legacy) > 0 {
		mappings = legacy
	}
	if len(mappings) > 0 {
		pm, _ := mappings[0].(map[string]any)
		app["args"] = []string{"-port", fmt.Sprint(pm["containerPort"])}
	}
	out, err := json.Marshal(app)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMarathonCorpusDocker runs a few corpus definitions with the real
// Docker engine, the test image substituted for theirs: every instance
// runs and answers HTTP on its host port with its task id.
func TestMarathonCorpusDocker(t *testing.T) {
	t.Parallel()
	testbed.DockerSocket(t)
	env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), ports: [2]uint64{23100, 23299}, noServicePorts: true})
	client := &http.Client{Timeout: 5 * time.Second}
	for _, key := range dockerCorpus {
		file, _, _ := strings.Cut(key, "#")
		b, err := os.ReadFile(filepath.Join(corpusDir, file))
		if err != nil {
			t.Fatal(err)
		}
		var it *corpusItem
		for _, c := range corpusItems(t, file, b) {
			if c.key == key {
				c := c
				it = &c
			}
		}
		if it == nil {
			t.Fatalf("%s: not in the corpus", key)
		}
		it.body = substituteImage(t, it.body)
		if o := env.apply(t, *it, 90*time.Second); o.Result != "runs" {
			t.Errorf("%s with %s: %s; want it running", key, testbed.Image, o)
			env.clear(t)
			continue
		}
		answered := 0
		for _, a := range env.allApps(t) {
			for _, tk := range env.app(t, a.ID).Tasks {
				answered++
				addr := net.JoinHostPort(tk.Host, fmt.Sprint(tk.Ports[0]))
				var code int
				var body string
				waitFor(t, 30*time.Second, key+": task "+tk.ID+" to answer on "+addr, func() bool {
					code, body, err = get(client, addr, "x", "/")
					return err == nil && code == http.StatusOK
				})
				if !strings.HasPrefix(body, tk.ID) {
					t.Errorf("%s: task %s on %s answered %q", key, tk.ID, addr, body)
				}
			}
		}
		if answered == 0 {
			t.Errorf("%s: runs, but no task to ask", key)
		}
		t.Logf("%s with %s: %d tasks answered on their host ports", key, testbed.Image, answered)
		env.clear(t)
	}
}
