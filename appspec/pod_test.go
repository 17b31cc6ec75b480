package appspec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPodMarathonDocs(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/pods/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no pod examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := DecodePod(r)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			a := p.App()
			back := a.PodSpec()
			if a.Pod == nil || a.ID != p.ID || back.Instances() != p.Instances() || len(back.Containers) != len(p.Containers) {
				t.Fatalf("App() lost the pod: %+v", a)
			}
		})
	}
}

func TestPodDefaultsAndApp(t *testing.T) {
	t.Parallel()
	p, err := DecodePod(strings.NewReader(`{"id": "shop/web",
		"containers": [
			{"name": "app", "exec": {"command": {"shell": "./app"}}, "resources": {"cpus": 0.5},
			 "endpoints": [{"name": "http", "hostPort": 0, "labels": {"HAPROXY_GROUP": "external"}}],
			 "healthCheck": {"http": {"endpoint": "http", "path": "/health"}}},
			{"name": "sidecar", "exec": {"command": {"argv": ["./sidecar", "-x"]}}, "resources": {"cpus": 0.25, "mem": 16},
			 "endpoints": [{"name": "metrics", "hostPort": 9100}]}
		],
		"scaling": {"kind": "fixed", "instances": 3},
		"scheduling": {"placement": {"constraints": [{"fieldName": "hostname", "operator": "UNIQUE"}]}, "killSelection": "OLDEST_FIRST"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.ID != "/shop/web" || p.NetworkMode() != PodNetworkHost {
		t.Fatalf("id %q network %q", p.ID, p.NetworkMode())
	}
	app := p.Containers[0]
	if app.Resources.Mem != DefaultPodMem || app.Resources.CPUs != 0.5 {
		t.Fatalf("container resources %+v: mem should default to %v", app.Resources, DefaultPodMem)
	}
	hc := app.HealthCheck
	if hc.GracePeriodSeconds != DefaultPodHealthGrace || hc.IntervalSeconds != DefaultPodHealthPeriod || hc.MaxConsecutiveFailures != 3 {
		t.Fatalf("health check defaults %+v", hc)
	}
	a := p.App()
	// 0.5 + 0.25 containers + 0.1 executor; 128 + 16 + 32 MiB; 0 + 0 + 10 disk.
	if a.CPUs < 0.849 || a.CPUs > 0.851 || a.Mem != 176 || a.Disk != 10 {
		t.Fatalf("app resources cpus %v mem %v disk %v", a.CPUs, a.Mem, a.Disk)
	}
	if a.Instances != 3 || a.KillSelection != "OLDEST_FIRST" || len(a.Constraints) != 1 || a.Constraints[0][1] != "UNIQUE" {
		t.Fatalf("app scheduling %+v", a)
	}
	if len(a.PortDefinitions) != 2 || a.PortDefinitions[0].Name != "http" || a.PortDefinitions[1].Port != 9100 || a.PortDefinitions[0].Labels["HAPROXY_GROUP"] != "external" {
		t.Fatalf("ports %+v", a.PortDefinitions)
	}
	if a.BackoffSeconds != 1 || a.BackoffFactor != 1.15 || a.UpgradeStrategy.MinimumHealthCapacity != 1 {
		t.Fatalf("defaults not carried: %+v", a)
	}
}

func TestPodValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		path, want string
	}{
		{"duplicate container", `{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}}, {"name": "a", "exec": {"command": {"shell": "x"}}}]}`,
			"/containers/1/name", "container names are not unique"},
		{"duplicate endpoint", `{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "web", "hostPort": 0}]}, {"name": "b", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "web", "hostPort": 0}]}]}`,
			"/containers/1/endpoints/0/name", "endpoint names are not unique"},
		{"host port clash", `{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "x", "hostPort": 8080}, {"name": "y", "hostPort": 8080}]}]}`,
			"/containers/0/endpoints/1/hostPort", "host ports are not unique"},
		{"mount without volume", `{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "volumeMounts": [{"name": "data", "mountPath": "d"}]}]}`,
			"/containers/0/volumeMounts/0/name", "Referenced Volume in VolumeMount should exist"},
		{"host mode needs hostPort", `{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "x"}]}]}`,
			"/containers/0/endpoints/0/hostPort", "is required when using host-mode networking"},
		{"health check endpoint", `{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "healthCheck": {"tcp": {"endpoint": "nope"}}}]}`,
			"/containers/0/healthCheck/tcp/endpoint", "not contained in the container endpoints"},
		{"no containers", `{"id": "/p", "containers": []}`, "/containers", "must not be empty"},
		{"executor below Mesos's minimum", `{"id": "/p", "executorResources": {"cpus": 0.1, "mem": 16, "disk": 10}, "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}}]}`,
			"/executorResources/mem", "Mesos's minimum for an executor"},
		{"executor without disk", `{"id": "/p", "executorResources": {"cpus": 0.1, "mem": 32, "disk": 0}, "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}}]}`,
			"/executorResources/disk", "without disk"},
		{"bridge needs containerPort", `{"id": "/p", "networks": [{"mode": "container/bridge"}], "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "x", "hostPort": 0}]}]}`,
			"/containers/0/endpoints/0/containerPort", "is required when using container-mode networking"},
		{"container port clash", `{"id": "/p", "networks": [{"mode": "container/bridge"}], "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "x", "containerPort": 80}]}, {"name": "b", "exec": {"command": {"shell": "x"}}, "endpoints": [{"name": "y", "containerPort": 80}]}]}`,
			"/containers/1/endpoints/0/containerPort", "container ports are not unique"},
		{"named container network", `{"id": "/p", "networks": [{"mode": "container", "name": "dcos"}], "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}}]}`,
			"/networks/0/mode", "not supported yet"},
		{"unused volume", `{"id": "/p", "volumes": [{"name": "v"}], "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}}]}`,
			"/volumes/0", "volume must be referenced by at least one container"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := DecodePod(strings.NewReader(c.body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			err = p.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			for _, d := range ve.Details {
				if d.Path == c.path && strings.Contains(strings.Join(d.Errors, "; "), c.want) {
					return
				}
			}
			t.Fatalf("want %s: %q, got %+v", c.path, c.want, ve.Details)
		})
	}
}

func TestPodDecodeStrict(t *testing.T) {
	t.Parallel()
	_, err := DecodePod(strings.NewReader(`{"id": "/p", "containers": [{"name": "a", "exec": {"command": {"shell": "x"}}, "resorces": {}}],
		"volumes": [{"name": "v", "persistent": {"size": 10}}]}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	got := map[string]string{}
	for _, d := range ve.Details {
		got[d.Path] = strings.Join(d.Errors, "; ")
	}
	if !strings.Contains(got["/containers/0/resorces"], "did you mean") && !strings.Contains(got["/containers/0/resorces"], "unknown field") {
		t.Fatalf("misspelt field not named: %v", got)
	}
	if !strings.Contains(got["/volumes/0/persistent"], "not supported") {
		t.Fatalf("persistent volume not refused by name: %v", got)
	}
	// An app body cannot smuggle a pod in.
	if _, err := Decode(strings.NewReader(`{"id": "/a", "cmd": "x", "pod": {"id": "/a", "containers": []}}`)); err == nil {
		t.Fatal("an app with a pod field was accepted")
	}
}

// TestPodAppRoundTrip: the store keeps a pod as its app's JSON; read back,
// it is the same pod.
func TestPodAppRoundTrip(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/pods/marathon-docs-ephemeral-volume.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := DecodePod(f)
	if err != nil {
		t.Fatal(err)
	}
	p.Version = "2026-01-01T00:00:00.000Z"
	b, err := json.Marshal(p.App())
	if err != nil {
		t.Fatal(err)
	}
	var back App
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(p)
	got, _ := json.Marshal(back.PodSpec())
	if string(got) != string(want) {
		t.Fatalf("round trip\n got %s\nwant %s", got, want)
	}
}
