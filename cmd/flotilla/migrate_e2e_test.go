package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func (e *devEnv) migrate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(string) string { return "" }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := runMigrateIO(ctx, append([]string{"--api", e.api, "--poll", "100ms"}, args...), &out, &errOut, env, strings.NewReader(""))
	t.Logf("flotilla migrate %s:\n%s%s(err: %v)", strings.Join(args, " "), out.String(), errOut.String(), err)
	return out.String(), err
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("the report lacks %q", l)
		}
	}
}

// TestMigrate: flotilla migrate against a running platform with Marathon's
// own exports from the corpus. --dry-run prints the per-app report and
// changes nothing; without it the tree is deployed in one group
// deployment and every app runs; an app Flotilla refuses stops the
// migration, or is left out with --skip-refused.
func TestMigrate(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "simulated", upstream: fakeUpstream(t), ports: [2]uint64{22900, 23099}, noServicePorts: true})

	// Marathon's GET /v2/groups answer from its RAML: a report, nothing
	// deployed.
	out, err := env.migrate(t, "--from", filepath.Join(corpusDir, "raml-group.json"), "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	wantLines(t, out,
		"Marathon export ../../testdata/marathon/raml-group.json: group /, 3 apps",
		"/tools/oauth-server: new",
		"service ports: #0 1980 kept",
		"health check 0: HTTP / on port index 0: probed by the leading Flotilla from its own host",
		"kills after 3 failures; grace 300 s, interval 20 s, timeout 20 s",
		"deprecated, translated: ports [1980] → portDefinitions; container.docker.network HOST → networks",
		"ports [5000] dropped (they repeat the port mappings' service ports)",
		"container.docker.network BRIDGE → networks; container.docker.portMappings → container.portMappings",
		"service ports: #0 5000 kept",
		"ignored (status of the export): version, versionInfo",
		"3 apps: 3 to deploy, 0 refused",
		"dry run: nothing was changed")
	if apps := env.allApps(t); len(apps) != 0 {
		t.Fatalf("a dry run deployed %d apps", len(apps))
	}
	if code, b := env.do(t, "GET", "/v2/deployments", ""); string(bytes.TrimSpace(b)) != "[]" {
		t.Fatalf("a dry run started deployments: %d %s", code, b)
	}

	// The same export read from a Marathon's URL (a file server standing
	// in for Marathon: migrate only GETs /v2/groups with apps embedded).
	export, err := os.ReadFile(filepath.Join(corpusDir, "raml-group.json"))
	if err != nil {
		t.Fatal(err)
	}
	marathon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/groups" || r.URL.RawQuery != "embed=group.groups&embed=group.apps" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(export)
	}))
	defer marathon.Close()
	out, err = env.migrate(t, "--from", marathon.URL, "--dry-run")
	if err != nil {
		t.Fatalf("dry run from a URL: %v", err)
	}
	wantLines(t, out, "group /, 3 apps", "/tools/docker/registry: new", "dry run: nothing was changed")

	// Marathon's example group with dependencies and the deprecated
	// ports: deployed, and every app runs.
	out, err = env.migrate(t, "--from", filepath.Join(corpusDir, "examples-group-1.json"))
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	wantLines(t, out, "/department-a/product-a/service-b: new", "service ports: #0 assigned by Flotilla",
		"deprecated, translated: ports [0] → portDefinitions", "3 apps: 3 to deploy, 0 refused", "migrated: 3 apps running")
	for _, id := range []string{"/department-a/service-common", "/department-a/product-a/service-a", "/department-a/product-a/service-b"} {
		if a := env.app(t, id); a.TasksRunning != 2 {
			t.Errorf("%s: %d tasks running, want 2", id, a.TasksRunning)
		}
	}
	// Again: every app is there already and is replaced by itself.
	out, err = env.migrate(t, "--from", filepath.Join(corpusDir, "examples-group-1.json"), "--dry-run")
	if err != nil {
		t.Fatalf("dry run of a migrated group: %v", err)
	}
	wantLines(t, out, "/department-a/service-common: replaces the app of this id in Flotilla")

	// A GET /v2/apps answer with an app Flotilla refuses (marathon-lb's
	// slave_public role) beside one it takes.
	blue, err := os.ReadFile(filepath.Join(corpusDir, "marathon-lb-zdd-app-blue.json"))
	if err != nil {
		t.Fatal(err)
	}
	sleep, err := os.ReadFile(filepath.Join(corpusDir, "system-sleep-app.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Apps []json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(blue, &list); err != nil {
		t.Fatal(err)
	}
	list.Apps = append(list.Apps, sleep)
	mixed, _ := json.Marshal(list)
	file := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(file, mixed, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = env.migrate(t, "--from", file)
	if err == nil || !strings.Contains(err.Error(), "1 apps are refused") {
		t.Fatalf("an export with a refused app: err %v, want it refused", err)
	}
	wantLines(t, out, "/nginx-green: refused", "refused: /acceptedResourceRoles: acceptedResourceRoles can only contain * (got \"slave_public\")", "refused: /labels/HAPROXY_DEPLOYMENT_GROUP: Flotilla does not implement this marathon-lb label",
		"deprecated, translated: ports [10000] dropped", "2 apps: 1 to deploy, 1 refused")
	// The group of this export is the root: the department-a group runs
	// there and is not in it, so nothing is deployed either way.
	out, err = env.migrate(t, "--from", file, "--skip-refused")
	if err == nil || !strings.Contains(err.Error(), "not in the export") {
		t.Fatalf("an export that would remove running apps: err %v, want it refused", err)
	}
	wantLines(t, out, "/department-a/service-common: runs in Flotilla but is not in the export")
	env.clear(t)
	out, err = env.migrate(t, "--from", file, "--skip-refused")
	if err != nil {
		t.Fatalf("--skip-refused: %v", err)
	}
	wantLines(t, out, "/nginx-green: left out (refused)", "migrated: 1 apps running")
	if apps := env.allApps(t); len(apps) != 1 || apps[0].ID != "/sleep" || apps[0].TasksRunning != 1 {
		t.Fatalf("apps after --skip-refused: %+v, want /sleep running alone", apps)
	}
}
