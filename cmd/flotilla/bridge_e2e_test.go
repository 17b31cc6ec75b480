package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// bridgeSpec is a stock-style app: the test image listening on fixed
// container ports (8080 HTTP, 9053 UDP echo), not on $PORT0, behind
// Marathon's bridge networking with host ports from the offer.
func bridgeSpec(id, form string, instances int, v string) string {
	mappings := `[{"containerPort": 8080, "hostPort": 0, "name": "http"},
		{"containerPort": 9053, "hostPort": 0, "protocol": "udp", "name": "echo"}]`
	network, docker := `"networks": [{"mode": "container/bridge"}],`, fmt.Sprintf(`{"image": %q}, "portMappings": %s`, testbed.Image, mappings)
	if form == "legacy" {
		network, docker = "", fmt.Sprintf(`{"image": %q, "network": "BRIDGE", "portMappings": %s}`, testbed.Image, mappings)
	}
	return fmt.Sprintf(`{"id": %q, "instances": %d, "cpus": 0.05, "mem": 32, %s
		"args": ["-port", "8080", "-udp-echo", "9053"],
		"env": {"V": %q},
		"container": {"type": "DOCKER", "docker": %s},
		"labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "%s.example.com"},
		"healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
		"upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5}}`,
		id, instances, network, v, docker, strings.Trim(id, "/"))
}

// TestDevBridgeNetworking: Marathon's bridge networking end to end on
// flotilla dev with the real Docker engine, in both forms: each task's
// host port answers (HTTP and a UDP mapping), SRV records list the host
// ports, the gateway routes by vhost, and a kill, a scale and a rolling
// restart lose no request through the gateway. A marathon-lb style reader
// of /v2/apps?embed=apps.tasks sees unique service ports and the backends
// Flotilla reports.
func TestDevBridgeNetworking(t *testing.T) {
	t.Parallel()
	testbed.DockerSocket(t)
	env := startDev(t, devOpts{executor: "docker", upstream: fakeUpstream(t), ports: [2]uint64{27700, 27799}, servicePorts: [2]uint32{27900, 27999}})
	env.deploy(t, bridgeSpec("/bridge", "1.5", 3, "1"))
	env.deploy(t, bridgeSpec("/legacy", "legacy", 1, "1"))
	// A plain TCP service (the test image's echo on container port 7000):
	// no vhost and no HTTP check, so its service port is in TCP mode.
	env.deploy(t, fmt.Sprintf(`{"id": "/echo", "instances": 2, "cpus": 0.05, "mem": 32,
		"networks": [{"mode": "container/bridge"}], "args": ["-port", "8080", "-tcp-echo", "7000"],
		"container": {"type": "DOCKER", "docker": {"image": %q}, "portMappings": [{"containerPort": 7000, "hostPort": 0}]}}`, testbed.Image))
	waitFor(t, 120*time.Second, "3 healthy /bridge tasks, 1 healthy /legacy task, 2 running /echo tasks", func() bool {
		return env.app(t, "/bridge").TasksHealthy == 3 && env.app(t, "/legacy").TasksHealthy == 1 && env.app(t, "/echo").TasksRunning == 2
	})
	client := &http.Client{Timeout: 5 * time.Second}
	for _, id := range []string{"/bridge", "/legacy"} {
		for _, tk := range env.app(t, id).Tasks {
			if len(tk.Ports) != 2 || tk.Ports[0] < 27700 || tk.Ports[0] > 27799 {
				t.Fatalf("%s task %s ports %v: want two host ports from the agents' range", id, tk.ID, tk.Ports)
			}
			// The container listens on 8080; the host port reaches it.
			code, body, err := get(client, net.JoinHostPort(tk.Host, fmt.Sprint(tk.Ports[0])), "x", "/")
			if err != nil || code != http.StatusOK || !strings.HasPrefix(body, tk.ID) {
				t.Fatalf("%s task %s on host port %d: %d %q %v", id, tk.ID, tk.Ports[0], code, body, err)
			}
			if got := udpEcho(t, net.JoinHostPort(tk.Host, fmt.Sprint(tk.Ports[1])), "ping "+tk.ID); got != "ping "+tk.ID {
				t.Fatalf("%s task %s UDP echo on host port %d: %q", id, tk.ID, tk.Ports[1], got)
			}
		}
	}

	// SRV: the host ports, for the app and for the named mapping.
	want := map[string]bool{}
	for _, tk := range env.app(t, "/bridge").Tasks {
		want[fmt.Sprint(tk.Ports[0])] = true
	}
	for _, name := range []string{"_bridge._tcp.flotilla.mesos.", "_http._bridge._tcp.flotilla.mesos."} {
		got := map[string]bool{}
		for _, rr := range query(t, "udp", env.dns, name, dns.TypeSRV).Answer {
			got[fmt.Sprint(rr.(*dns.SRV).Port)] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("SRV %s: ports %v, want the host ports %v", name, keys(got), keys(want))
		}
	}
	udp := query(t, "udp", env.dns, "_echo._bridge._udp.flotilla.mesos.", dns.TypeSRV).Answer
	if len(udp) != 3 {
		t.Fatalf("SRV for the named UDP mapping: %v", udp)
	}

	// marathon-lb's reading of the same state.
	lb := marathonLBView(t, env)
	seen := map[int]string{}
	for id, a := range lb {
		if id != "/bridge" && id != "/legacy" && id != "/echo" {
			continue
		}
		if want := map[string]int{"/bridge": 2, "/legacy": 2, "/echo": 1}[id]; len(a.servicePorts) != want {
			t.Fatalf("marathon-lb sees service ports %v for %s", a.servicePorts, id)
		}
		for _, p := range a.servicePorts {
			if p == 0 || seen[p] != "" {
				t.Fatalf("service port %d of %s: zero or also used by %s", p, id, seen[p])
			}
			seen[p] = id
		}
		var flot []string
		for _, tk := range env.app(t, id).Tasks {
			for _, p := range tk.Ports {
				flot = append(flot, fmt.Sprintf("%s:%d", tk.Host, p))
			}
		}
		sort.Strings(flot)
		if fmt.Sprint(a.backends) != fmt.Sprint(flot) {
			t.Fatalf("marathon-lb backends of %s %v, Flotilla's tasks %v", id, a.backends, flot)
		}
	}

	// The TCP service through its service port on the internal listener's
	// host: bytes in, the same bytes out.
	echoSvc := net.JoinHostPort("127.0.0.1", fmt.Sprint(lb["/echo"].servicePorts[0]))
	waitFor(t, 30*time.Second, "the TCP service port to echo", func() bool {
		c, err := net.DialTimeout("tcp", echoSvc, 2*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("hello flotilla\n")); err != nil {
			return false
		}
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(c, buf, len("hello flotilla\n"))
		return err == nil && string(buf[:n]) == "hello flotilla\n"
	})

	// The gateway by vhost and by service port (HTTP mode: the port has a
	// vhost), under load through a kill, a scale and a rolling restart.
	svc := net.JoinHostPort("127.0.0.1", fmt.Sprint(lb["/bridge"].servicePorts[0]))
	waitFor(t, 20*time.Second, "the vhost route and the service port", func() bool {
		code, _, err := get(client, env.external, "bridge.example.com", "/")
		code2, _, err2 := get(client, svc, "anything", "/")
		return err == nil && code == http.StatusOK && err2 == nil && code2 == http.StatusOK
	})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		w := w
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				addr, host := env.external, "bridge.example.com"
				if w%2 == 1 {
					addr, host = svc, "anything"
				}
				code, _, err := get(client, addr, host, "/")
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %v", code, err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	victim := env.app(t, "/bridge").Tasks[0].ID
	if code, b := env.do(t, "DELETE", "/v2/apps/bridge/tasks/"+victim, ""); code != http.StatusOK {
		t.Fatalf("kill %s: %d %s", victim, code, b)
	}
	waitFor(t, 90*time.Second, "the killed task to be replaced by a healthy one", func() bool {
		a := env.app(t, "/bridge")
		for _, tk := range a.Tasks {
			if tk.ID == victim {
				return false
			}
		}
		return a.TasksHealthy == 3
	})
	if code, b := env.do(t, "PUT", "/v2/apps/bridge", `{"instances": 4}`); code != http.StatusOK {
		t.Fatalf("scale: %d %s", code, b)
	}
	waitFor(t, 90*time.Second, "4 healthy after the scale", func() bool {
		a := env.app(t, "/bridge")
		return a.TasksHealthy == 4 && len(a.Deployments) == 0
	})
	if code, b := env.do(t, "PUT", "/v2/apps/bridge", bridgeSpec("/bridge", "1.5", 4, "2")); code != http.StatusOK {
		t.Fatalf("rolling restart: %d %s", code, b)
	}
	waitFor(t, 180*time.Second, "the rolling restart to finish", func() bool {
		a := env.app(t, "/bridge")
		if a.TasksHealthy != 4 || len(a.Deployments) != 0 {
			return false
		}
		for _, tk := range a.Tasks {
			if tk.Version != a.Version {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("through the gateway during kill, scale and rolling restart: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	t.Logf("bridge app under kill, scale and rolling restart: %d requests through the gateway, 0 failed", ok.Load())
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func udpEcho(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	// UDP may drop a datagram: a few tries, each bounded.
	for i := 0; i < 5; i++ {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
	}
	return ""
}

type lbApp struct {
	servicePorts []int
	backends     []string // host:port, sorted
}

// marathonLBView reads /v2/apps?embed=apps.tasks as marathon-lb's utils.py
// does (get_app_networking_mode, get_service_ports, get_task_ip_and_ports
// for host and bridge modes): service ports from container.portMappings
// for bridge apps, from portDefinitions otherwise; backends from each
// task's host and ports.
func marathonLBView(t *testing.T, env *devEnv) map[string]lbApp {
	t.Helper()
	code, b := env.do(t, "GET", "/v2/apps?embed=apps.tasks", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v2/apps: %d %s", code, b)
	}
	var doc struct {
		Apps []map[string]any `json:"apps"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]lbApp{}
	for _, app := range doc.Apps {
		mode := "host"
		if c, ok := app["container"].(map[string]any); ok {
			if d, ok := c["docker"].(map[string]any); ok {
				switch d["network"] {
				case "USER":
					mode = "container"
				case "BRIDGE":
					mode = "container/bridge"
				}
			}
		}
		if nets, ok := app["networks"].([]any); ok {
			for _, n := range nets {
				if m, ok := n.(map[string]any)["mode"].(string); ok {
					mode = m
				}
			}
		}
		var a lbApp
		if mode == "container" || mode == "container/bridge" {
			c, _ := app["container"].(map[string]any)
			pms, _ := c["portMappings"].([]any)
			for _, pm := range pms {
				if sp, ok := pm.(map[string]any)["servicePort"].(float64); ok {
					a.servicePorts = append(a.servicePorts, int(sp))
				}
			}
		}
		if len(a.servicePorts) == 0 {
			pds, _ := app["portDefinitions"].([]any)
			for _, pd := range pds {
				if p, ok := pd.(map[string]any)["port"].(float64); ok {
					a.servicePorts = append(a.servicePorts, int(p))
				}
			}
		}
		tasks, _ := app["tasks"].([]any)
		for _, tk := range tasks {
			m := tk.(map[string]any)
			ports, _ := m["ports"].([]any)
			for _, p := range ports {
				a.backends = append(a.backends, fmt.Sprintf("%s:%d", m["host"], int(p.(float64))))
			}
		}
		sort.Strings(a.backends)
		out[app["id"].(string)] = a
	}
	return out
}
