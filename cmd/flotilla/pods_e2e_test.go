package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// podStatusView is what the pod tests read of GET /v2/pods/{id}::status.
type podStatusView struct {
	Status    string `json:"status"`
	Instances []struct {
		ID            string `json:"id"`
		Status        string `json:"status"`
		AgentHostname string `json:"agentHostname"`
		SpecReference string `json:"specReference"`
		Containers    []struct {
			Name       string `json:"name"`
			Status     string `json:"status"`
			Conditions []struct {
				Name, Value string
			} `json:"conditions"`
			Endpoints []struct {
				Name string `json:"name"`
				Port uint64 `json:"allocatedHostPort"`
			} `json:"endpoints"`
		} `json:"containers"`
	} `json:"instances"`
}

func (e *devEnv) podStatus(t *testing.T, id string) podStatusView {
	t.Helper()
	code, b := e.do(t, "GET", "/v2/pods"+id+"::status", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v2/pods%s::status: %d %s", id, code, b)
	}
	var v podStatusView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("pod status %s: %v", b, err)
	}
	return v
}

// stable counts the instances whose every container runs and, where it
// is health checked, is healthy.
func (v podStatusView) stable() int {
	n := 0
	for _, in := range v.Instances {
		if in.Status == "STABLE" {
			n++
		}
	}
	return n
}

func (v podStatusView) describe() string {
	b, _ := json.Marshal(v)
	return string(b)
}

func getBody(url string) (int, string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestDevPods: a pod of the test app and a sidecar that reads the app
// over localhost (the test image's binary twice, on the process
// executor) through /v2/pods as Marathon's clients use it. Created with 2
// instances, all healthy; the sidecar relays the app of its own instance;
// killing the sidecar's process ends the whole instance, which is
// replaced; a rolling update keeps minimumHealthCapacity; scaled; deleted.
// A pod definition from Marathon's docs deploys unchanged beside it.
func TestDevPods(t *testing.T) {
	t.Parallel()
	// Built from this tree: the sidecar needs -upstream, which a test
	// bed's prebuilt binary may predate.
	bin := filepath.Join(t.TempDir(), "testapp")
	build := exec.Command("go", "build", "-o", bin, "../testapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build testapp: %v\n%s", err, out)
	}
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{21500, 21599}})
	pod := func(instances int, version string) string {
		return fmt.Sprintf(`{"id": "/shop/web",
		"labels": {"team": "shop"},
		"containers": [
			{"name": "app", "exec": {"command": {"shell": "exec %[1]s -port $ENDPOINT_HTTP"}},
			 "resources": {"cpus": 0.05, "mem": 32},
			 "endpoints": [{"name": "http", "hostPort": 0}],
			 "environment": {"VERSION": "%[3]s"},
			 "healthCheck": {"http": {"endpoint": "http", "path": "/health"}, "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 0.5, "delaySeconds": 0}},
			{"name": "sidecar", "exec": {"command": {"shell": "exec %[1]s -port $ENDPOINT_SIDECAR -upstream http://127.0.0.1:$ENDPOINT_HTTP"}},
			 "resources": {"cpus": 0.05, "mem": 32},
			 "endpoints": [{"name": "sidecar", "hostPort": 0}],
			 "healthCheck": {"http": {"endpoint": "sidecar", "path": "/health"}, "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 0.5, "delaySeconds": 0}}
		],
		"scaling": {"kind": "fixed", "instances": %[2]d},
		"scheduling": {"upgrade": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
		               "backoff": {"backoff": 1, "backoffFactor": 1.15, "maxLaunchDelay": 10}}}`, bin, instances, version)
	}
	if code, b := env.do(t, "POST", "/v2/pods", pod(2, "one")); code != http.StatusCreated {
		t.Fatalf("POST /v2/pods: %d %s", code, b)
	}
	var st podStatusView
	waitFor(t, 90*time.Second, "2 stable instances", func() bool {
		st = env.podStatus(t, "/shop/web")
		return st.stable() == 2 && st.Status == "STABLE"
	})
	// Every container runs healthy, and each sidecar reads its own
	// instance's app over localhost.
	for _, in := range st.Instances {
		ports := map[string]uint64{}
		for _, c := range in.Containers {
			if c.Status != "TASK_RUNNING" || len(c.Conditions) != 1 || c.Conditions[0].Value != "true" {
				t.Fatalf("instance %s container %s: %+v, want running and healthy", in.ID, c.Name, c)
			}
			ports[c.Endpoints[0].Name] = c.Endpoints[0].Port
		}
		code, body, err := getBody(fmt.Sprintf("http://127.0.0.1:%d/upstream", ports["sidecar"]))
		if err != nil || code != http.StatusOK || !strings.HasPrefix(body, in.ID+".app ") {
			t.Fatalf("sidecar of %s relayed %d %q (%v), want its app's answer %q", in.ID, code, body, err, in.ID+".app …")
		}
	}

	// DNS: an SRV record per endpoint, one per instance, on that
	// endpoint's host port.
	for _, ep := range []string{"http", "sidecar"} {
		want := map[uint16]bool{}
		for _, in := range st.Instances {
			for _, c := range in.Containers {
				if c.Endpoints[0].Name == ep {
					want[uint16(c.Endpoints[0].Port)] = true
				}
			}
		}
		name := "_" + ep + "._web-shop._tcp.flotilla.mesos."
		waitFor(t, 10*time.Second, "SRV "+name, func() bool {
			got := map[uint16]bool{}
			for _, rr := range query(t, "udp", env.dns, name, dns.TypeSRV).Answer {
				got[rr.(*dns.SRV).Port] = true
			}
			return fmt.Sprint(got) == fmt.Sprint(want)
		})
	}

	// Kill the sidecar's process: the whole instance goes and is replaced.
	victim := st.Instances[0]
	var sidecarPort, appPort uint64
	for _, c := range victim.Containers {
		switch c.Name {
		case "sidecar":
			sidecarPort = c.Endpoints[0].Port
		case "app":
			appPort = c.Endpoints[0].Port
		}
	}
	_, pidText, err := getBody(fmt.Sprintf("http://127.0.0.1:%d/pid", sidecarPort))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(pidText))
	if err != nil {
		t.Fatalf("sidecar pid %q: %v", pidText, err)
	}
	_, appPidText, err := getBody(fmt.Sprintf("http://127.0.0.1:%d/pid", appPort))
	if err != nil {
		t.Fatal(err)
	}
	appPid, _ := strconv.Atoi(strings.TrimSpace(appPidText))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the sidecar (pid %d): %v", pid, err)
	}
	waitFor(t, 90*time.Second, "the killed instance replaced by a new stable one", func() bool {
		st = env.podStatus(t, "/shop/web")
		for _, in := range st.Instances {
			if in.ID == victim.ID {
				return false
			}
		}
		return st.stable() == 2
	})
	// The app container of the killed instance went with it.
	waitFor(t, 30*time.Second, "the killed instance's app process gone", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/status", appPid))
		if err != nil {
			return true
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", appPid))
		return strings.Contains(string(b), "State:\tZ")
	})

	// A rolling update: never fewer than minimumHealthCapacity × 2 = 1
	// stable instance, until both run the new version.
	before := map[string]bool{}
	for _, in := range st.Instances {
		before[in.ID] = true
	}
	if code, b := env.do(t, "PUT", "/v2/pods/shop/web", pod(2, "two")); code != http.StatusOK {
		t.Fatalf("PUT /v2/pods/shop/web: %d %s", code, b)
	}
	minStable := 2
	waitFor(t, 120*time.Second, "the roll to finish", func() bool {
		st = env.podStatus(t, "/shop/web")
		minStable = min(minStable, st.stable())
		fresh := 0
		for _, in := range st.Instances {
			if !before[in.ID] && in.Status == "STABLE" {
				fresh++
			}
		}
		return fresh == 2 && len(st.Instances) == 2 && st.Status == "STABLE"
	})
	if minStable < 1 {
		t.Fatalf("the roll went down to %d stable instances; minimumHealthCapacity 0.5 of 2 keeps 1", minStable)
	}

	// Scale to 1 with the CLI, which follows the deployment to its end.
	var out, errOut strings.Builder
	cli := func(args ...string) string {
		t.Helper()
		out.Reset()
		errOut.Reset()
		args = append([]string{"--api", env.api, "--timeout", "90s"}, args...)
		if err := runPodIO(context.Background(), args, &out, &errOut, func(string) string { return "" }, strings.NewReader("")); err != nil {
			t.Fatalf("flotilla pod %v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		return out.String()
	}
	if got := cli("scale", "/shop/web", "1"); !strings.Contains(got, "succeeded") && !strings.Contains(got, "finished") {
		t.Fatalf("flotilla pod scale said %q", got)
	}
	st = env.podStatus(t, "/shop/web")
	if len(st.Instances) != 1 || st.stable() != 1 || st.Status != "STABLE" {
		t.Fatalf("after the scale to 1: %s", st.describe())
	}
	if got := cli("status", "/shop/web"); !strings.Contains(got, st.Instances[0].ID) || !strings.Contains(got, "sidecar") || !strings.Contains(got, "STABLE") {
		t.Fatalf("flotilla pod status printed %q", got)
	}

	// Pods from Marathon's docs, unchanged: one container, and two
	// sharing an ephemeral volume.
	for file, id := range map[string]string{"marathon-docs-simplepod.json": "/simplepod", "marathon-docs-ephemeral-volume.json": "/with-ephemeral-vol"} {
		doc, err := os.ReadFile("../../appspec/testdata/pods/" + file)
		if err != nil {
			t.Fatal(err)
		}
		if code, b := env.do(t, "POST", "/v2/pods", string(doc)); code != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", file, code, b)
		}
		waitFor(t, 60*time.Second, id+" stable", func() bool {
			return env.podStatus(t, id).Status == "STABLE"
		})
	}

	for _, id := range []string{"/shop/web", "/simplepod", "/with-ephemeral-vol"} {
		if code, b := env.do(t, "DELETE", "/v2/pods"+id, ""); code != http.StatusAccepted {
			t.Fatalf("DELETE %s: %d %s", id, code, b)
		}
	}
	waitFor(t, 60*time.Second, "the pods gone", func() bool {
		code, _ := env.do(t, "GET", "/v2/pods/shop/web", "")
		code2, b := env.do(t, "GET", "/v2/deployments", "")
		return code == http.StatusNotFound && code2 == http.StatusOK && strings.TrimSpace(string(b)) == "[]"
	})
}
