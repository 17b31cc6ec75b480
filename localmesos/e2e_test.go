package localmesos

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/testbed"
	"github.com/flotilla-sched/flotilla/localmesos/executor"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

func TestSimulatedLaunchKill(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"json", "protobuf"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			m, _ := startMaster(t, Config{Agents: 2})
			f := startFramework(t, m, fwOpts{codec: codec})
			sub := f.next(5*time.Second, scheduler.Event_SUBSCRIBED)
			if got, want := sub.Subscribed.FrameworkID.Value, m.ID()+"-0000"; got != want {
				t.Fatalf("framework id = %q, want %q", got, want)
			}
			offs := f.offers(5 * time.Second)
			if len(offs) != 2 {
				t.Fatalf("got %d offers, want one per agent (2)", len(offs))
			}
			o := offs[0]
			if err := f.call(launch(o, cmdTask("t1", o, "sleep 1000"))); err != nil {
				t.Fatalf("accept: %v", err)
			}
			f.update(5*time.Second, "t1", mesos.TASK_STARTING)
			run := f.update(5*time.Second, "t1", mesos.TASK_RUNNING)
			if len(run.UUID) != 16 || run.GetSource() != mesos.SOURCE_EXECUTOR {
				t.Fatalf("RUNNING update uuid %x source %s, want 16 bytes from SOURCE_EXECUTOR", run.UUID, run.GetSource())
			}
			if err := f.call(calls.Kill("t1", o.AgentID.Value)); err != nil {
				t.Fatalf("kill: %v", err)
			}
			f.update(5*time.Second, "t1", mesos.TASK_KILLED)
		})
	}
}

// realTask is a task running the test application (cmd/testapp) with an
// HTTP health check on its port, as Marathon would build it: kind "process",
// "docker" (host network) or "bridge" (BRIDGE, container port 8080 mapped
// to the offer's port, the check on the container port).
func realTask(id string, o mesos.Offer, port uint64, kind, testapp string) mesos.TaskInfo {
	env := &mesos.Environment{Variables: []mesos.Environment_Variable{
		{Name: "PORT0", Value: strPtr(strconv.FormatUint(port, 10))},
		{Name: "PORT", Value: strPtr(strconv.FormatUint(port, 10))},
		{Name: "DB_PASSWORD", Type: mesos.Environment_Variable_SECRET.Enum(), Secret: &mesos.Secret{
			Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: []byte("s3cr3t-value")}}},
	}}
	ti := mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID,
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 64), portsRes(port, port)},
		HealthCheck: &mesos.HealthCheck{
			Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: uint32(port), Path: strPtr("/health")},
			DelaySeconds: f64(0), IntervalSeconds: f64(0.5), TimeoutSeconds: f64(2), GracePeriodSeconds: f64(10), ConsecutiveFailures: uint32Ptr(3),
		},
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(2 * time.Second)}},
	}
	switch kind {
	case "docker":
		shell := false
		ti.Command = &mesos.CommandInfo{Shell: &shell, Environment: env}
		ti.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(), Docker: &mesos.ContainerInfo_DockerInfo{
			Image: testbed.Image, Network: mesos.ContainerInfo_DockerInfo_HOST.Enum()}}
	case "bridge":
		shell, tcp := false, "tcp"
		ti.Command = &mesos.CommandInfo{Shell: &shell, Environment: env, Arguments: []string{"-port", "8080"}}
		ti.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(), Docker: &mesos.ContainerInfo_DockerInfo{
			Image: testbed.Image, Network: mesos.ContainerInfo_DockerInfo_BRIDGE.Enum(),
			PortMappings: []mesos.ContainerInfo_DockerInfo_PortMapping{{HostPort: uint32(port), ContainerPort: 8080, Protocol: &tcp}}}}
		ti.HealthCheck.HTTP.Port = 8080
	default:
		shell := false
		ti.Command = &mesos.CommandInfo{Shell: &shell, Value: &testapp, Arguments: []string{testapp}, Environment: env}
	}
	return ti
}

func uint32Ptr(v uint32) *uint32 { return &v }
func f64(v float64) *float64     { return &v }

// TestRealTaskEndToEnd is the proof: a framework written only with
// mesos-go subscribes, gets offers, launches the test application through
// the docker and the process executors, sees RUNNING then healthy, kills it
// and sees KILLED. The secret env var reaches the task but never
// /master/state.
func TestRealTaskEndToEnd(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		docker bool
	}{
		{"docker", true},
		{"bridge", true}, // reached through the agent's forwarder, checked inside the container
		{"process", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var factory ExecutorFactory
			testapp := ""
			if tc.docker {
				sock := testbed.DockerSocket(t)
				factory = func(string) (executor.Executor, error) {
					return executor.NewDocker(executor.DockerConfig{Host: "unix://" + sock})
				}
			} else {
				testapp = os.Getenv("FLOTILLA_TESTAPP")
				if testapp == "" {
					testapp = "/tmp/flotilla-testbed/testapp"
				}
				if _, err := os.Stat(testapp); err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatalf("CI=true and the test app binary is missing: %v", err)
					}
					t.Skipf("test app binary missing (%v); run scripts/testbed.sh up", err)
				}
				factory = func(string) (executor.Executor, error) { return executor.NewProcess(executor.ProcessConfig{}), nil }
			}
			// A port the kernel just had free, so that other tests on this
			// shared host (which use [31000-32000]) cannot collide with it.
			res := DefaultResources()
			p := freePort(t)
			res.Ports = []PortRange{{p, p}}
			m, _ := startMaster(t, Config{Agents: 1, Executor: factory, Resources: res})
			f := startFramework(t, m, fwOpts{info: &mesos.FrameworkInfo{User: "root", Name: "e2e-" + tc.name,
				Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE}}}})
			f.next(5*time.Second, scheduler.Event_SUBSCRIBED)
			o := f.offers(5 * time.Second)[0]
			port := firstPort(o)
			id := "web." + tc.name
			kind := tc.name
			if err := f.call(launch(o, realTask(id, o, port, kind, testapp))); err != nil {
				t.Fatalf("accept: %v", err)
			}
			f.update(30*time.Second, id, mesos.TASK_RUNNING)
			for {
				st := f.update(30*time.Second, id, mesos.TASK_RUNNING)
				if st.Healthy != nil && *st.Healthy {
					if st.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
						t.Fatalf("healthy update has reason %s, want REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", st.GetReason())
					}
					break
				}
			}
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				t.Fatalf("task does not answer on its port: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(body), id) {
				t.Fatalf("task answered %q, want its MESOS_TASK_ID %q first", body, id)
			}
			state := getBody(t, m.URL()+"/master/state")
			if strings.Contains(state, "s3cr3t-value") || strings.Contains(state, base64.StdEncoding.EncodeToString([]byte("s3cr3t-value"))) {
				t.Fatalf("/master/state leaks the SECRET env value")
			}
			if !strings.Contains(state, `"state":"TASK_RUNNING"`) {
				t.Fatalf("/master/state does not show the running task: %s", state)
			}
			stats := getBody(t, m.Agents()[0].URL+"/monitor/statistics")
			if !strings.Contains(stats, `"executor_id":"`+id+`"`) || !strings.Contains(stats, "cpus_limit") {
				t.Fatalf("/monitor/statistics lacks the task: %s", stats)
			}
			if err := f.call(calls.Kill(id, o.AgentID.Value)); err != nil {
				t.Fatalf("kill: %v", err)
			}
			f.update(30*time.Second, id, mesos.TASK_KILLED)
		})
	}
}

func getBody(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

func freePort(t testing.TB) uint64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint64(ln.Addr().(*net.TCPAddr).Port)
}
