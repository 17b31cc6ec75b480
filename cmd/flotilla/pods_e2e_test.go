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

// podRig is what differs between executors in TestDevPods: how the two
// containers are written, how the sidecar's process is killed, and how
// the app's process is seen gone.
type podRig struct {
	pod         func(instances int, version string) string
	killSidecar func(t *testing.T, instance string, sidecarPort uint64)
	appGone     func(t *testing.T, instance string, appPort uint64) func() bool
	// vhost, when set, is the app endpoint's HAPROXY_VHOST (its only
	// external endpoint): the gateway must route it and nothing else.
	vhost string
}

// TestDevPods: a pod of the test app and a sidecar that reads the app
// over localhost through /v2/pods as Marathon's clients use it, on the
// process executor (the test app's binary twice) and on the docker
// executor (the test image twice, Mesos containerizer style: an image
// and an argv). Created with 2 instances, all healthy; DNS answers an SRV
// record per endpoint; the sidecar relays the app of its own instance;
// killing the sidecar's process ends the whole instance, which is
// replaced; a rolling update keeps minimumHealthCapacity; scaled with
// `flotilla pod`; deleted. Pod definitions from Marathon's docs deploy
// unchanged beside it (process executor).
func TestDevPods(t *testing.T) {
	t.Parallel()
	// Built from this tree: the sidecar needs -upstream, which a test
	// bed's prebuilt binary or image may predate.
	dir := t.TempDir()
	bin := filepath.Join(dir, "testapp")
	build := exec.Command("go", "build", "-o", bin, "../testapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build testapp: %v\n%s", err, out)
	}
	health := `"healthCheck": {"http": {"endpoint": "%s", "path": "/health"}, "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 0.5, "delaySeconds": 0}`
	podJSON := func(app, sidecar string, instances int, version string) string {
		return fmt.Sprintf(`{"id": "/shop/web",
		"labels": {"team": "shop"},
		"containers": [
			{"name": "app", %s,
			 "resources": {"cpus": 0.05, "mem": 32},
			 "endpoints": [{"name": "http", "hostPort": 0}],
			 "environment": {"VERSION": "%s"},
			 `+fmt.Sprintf(health, "http")+`},
			{"name": "sidecar", %s,
			 "resources": {"cpus": 0.05, "mem": 32},
			 "endpoints": [{"name": "sidecar", "hostPort": 0}],
			 `+fmt.Sprintf(health, "sidecar")+`}
		],
		"scaling": {"kind": "fixed", "instances": %d},
		"scheduling": {"upgrade": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
		               "backoff": {"backoff": 1, "backoffFactor": 1.15, "maxLaunchDelay": 10}}}`, app, version, sidecar, instances)
	}
	procGone := func(t *testing.T, pid int) func() bool {
		return func() bool {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			return err != nil || strings.Contains(string(b), "State:\tZ")
		}
	}
	pidOf := func(t *testing.T, port uint64) int {
		t.Helper()
		_, text, err := getBody(fmt.Sprintf("http://127.0.0.1:%d/pid", port))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil {
			t.Fatalf("pid %q: %v", text, err)
		}
		return pid
	}
	process := podRig{
		pod: func(n int, v string) string {
			return podJSON(`"exec": {"command": {"shell": "exec `+bin+` -port $ENDPOINT_HTTP"}}`,
				`"exec": {"command": {"shell": "exec `+bin+` -port $ENDPOINT_SIDECAR -upstream http://127.0.0.1:$ENDPOINT_HTTP"}}`, n, v)
		},
		killSidecar: func(t *testing.T, _ string, port uint64) {
			if err := syscall.Kill(pidOf(t, port), syscall.SIGKILL); err != nil {
				t.Fatalf("kill the sidecar: %v", err)
			}
		},
		appGone: func(t *testing.T, _ string, port uint64) func() bool { return procGone(t, pidOf(t, port)) },
	}
	t.Run("process", func(t *testing.T) {
		t.Parallel()
		env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{21500, 21599}})
		runPodScenario(t, env, process, true)
	})
	t.Run("docker", func(t *testing.T) {
		t.Parallel()
		image := dockerTestappImage(t, dir, bin)
		env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), ports: [2]uint64{21600, 21699}})
		img := `"image": {"kind": "DOCKER", "id": "` + image + `"}, `
		docker := dockerRig(func(n int, v string) string {
			return podJSON(img+`"exec": {"command": {"argv": ["-port", "$ENDPOINT_HTTP"]}}`,
				img+`"exec": {"command": {"argv": ["-port", "$ENDPOINT_SIDECAR", "-upstream", "http://127.0.0.1:$ENDPOINT_HTTP"]}}`, n, v)
		})
		runPodScenario(t, env, docker, false)
	})
	t.Run("docker-bridge", func(t *testing.T) {
		t.Parallel()
		image := dockerTestappImage(t, dir, bin)
		env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), ports: [2]uint64{21700, 21799}})
		img := `"image": {"kind": "DOCKER", "id": "` + image + `"}, `
		bridged := func(n int, v string) string {
			// The instance's own namespace: fixed container ports, host
			// ports from the offer; the http endpoint is the external one.
			p := podJSON(img+`"exec": {"command": {"argv": ["-port", "8080"]}}`,
				img+`"exec": {"command": {"argv": ["-port", "9090", "-upstream", "http://127.0.0.1:8080"]}}`, n, v)
			p = strings.Replace(p, `{"name": "http", "hostPort": 0}`, `{"name": "http", "containerPort": 8080, "hostPort": 0, "labels": {"HAPROXY_GROUP": "external", "HAPROXY_VHOST": "pods.example.com"}}`, 1)
			p = strings.Replace(p, `{"name": "sidecar", "hostPort": 0}`, `{"name": "sidecar", "containerPort": 9090, "hostPort": 0}`, 1)
			return strings.Replace(p, `"labels": {"team": "shop"},`, `"labels": {"team": "shop"}, "networks": [{"mode": "container/bridge"}],`, 1)
		}
		docker := dockerRig(bridged)
		docker.vhost = "pods.example.com"
		runPodScenario(t, env, docker, false)
	})
}

// dockerRig is the docker executor's podRig: the sidecar's process is
// killed with docker kill, the app's seen gone when its container stops.
func dockerRig(pod func(instances int, version string) string) podRig {
	return podRig{
		pod: pod,
		killSidecar: func(t *testing.T, instance string, _ uint64) {
			id := containerOfTask(t, instance+".sidecar")
			if out, err := exec.Command("docker", "kill", "--signal", "KILL", id).CombinedOutput(); err != nil {
				t.Fatalf("docker kill the sidecar %s: %v %s", id, err, out)
			}
		},
		appGone: func(t *testing.T, instance string, _ uint64) func() bool {
			id := containerOfTask(t, instance+".app")
			return func() bool {
				out, err := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", id).CombinedOutput()
				return err != nil || strings.TrimSpace(string(out)) == "false"
			}
		},
	}
}

// dockerTestappImage imports the freshly built test app as an image of
// its own (the test bed's flotilla/testapp:dev may predate -upstream).
func dockerTestappImage(t *testing.T, dir, bin string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "testapp"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	image := "flotilla/testapp:pods-e2e"
	cmd := exec.Command("sh", "-c", `tar -C "$1" -c . | docker import --change 'ENTRYPOINT ["/testapp"]' - "$2"`, "sh", root, image)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import %s: %v\n%s", image, err, out)
	}
	return image
}

// containerOfTask is the id of the running Docker container whose
// MESOS_TASK_ID is taskID.
func containerOfTask(t *testing.T, taskID string) string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--no-trunc").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	for _, id := range strings.Fields(string(out)) {
		env, err := exec.Command("docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", id).Output()
		if err == nil && strings.Contains(string(env), "MESOS_TASK_ID="+taskID+"\n") {
			return id
		}
	}
	t.Fatalf("no running container has MESOS_TASK_ID=%s", taskID)
	return ""
}

func runPodScenario(t *testing.T, env *devEnv, rig podRig, docs bool) {
	pod := rig.pod
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
		code, body, err := getBody(fmt.Sprintf("http://%s:%d/upstream", in.AgentHostname, ports["sidecar"]))
		if err != nil || code != http.StatusOK || !strings.HasPrefix(body, in.ID+".app ") {
			t.Fatalf("sidecar of %s relayed %d %q (%v), want its app's answer %q", in.ID, code, body, err, in.ID+".app …")
		}
	}

	if rig.vhost != "" {
		// The gateway: the external endpoint on the external listener, by
		// its vhost; the pod's DNS name (its first port) only inside.
		waitFor(t, 20*time.Second, rig.vhost+" routed to the app on the external listener", func() bool {
			code, body, err := get(http.DefaultClient, env.external, rig.vhost, "/")
			return err == nil && code == http.StatusOK && strings.Contains(body, ".app ")
		})
		if code, _, err := get(http.DefaultClient, env.external, "web-shop.flotilla.mesos", "/"); err != nil || code != http.StatusNotFound {
			t.Fatalf("the pod's internal name on the external listener: %d %v, want 404", code, err)
		}
		if code, body, err := get(http.DefaultClient, env.internal, "web-shop.flotilla.mesos", "/"); err != nil || code != http.StatusOK || !strings.Contains(body, ".app ") {
			t.Fatalf("the pod's internal name on the internal listener: %d %q %v, want the app", code, body, err)
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
	appGone := rig.appGone(t, victim.ID, appPort)
	rig.killSidecar(t, victim.ID, sidecarPort)
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
	waitFor(t, 30*time.Second, "the killed instance's app process gone", appGone)

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
	// sharing an ephemeral volume. They have no image: they run on the
	// process executor.
	ids := []string{"/shop/web"}
	docFiles := map[string]string{"marathon-docs-simplepod.json": "/simplepod", "marathon-docs-ephemeral-volume.json": "/with-ephemeral-vol"}
	if !docs {
		docFiles = nil
	}
	for file, id := range docFiles {
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
		ids = append(ids, id)
	}

	for _, id := range ids {
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
