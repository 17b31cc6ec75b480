package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/flotilla-sched/flotilla/internal/portfwd"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// Host ports of these tests come from 28000-28399, a range no other
// package's tests give their agents (cmd/flotilla's tests use 27500-27799
// and 28400-31399 for theirs); each is checked free for TCP and UDP.
var bridgePortSeq atomic.Int32

func bridgePort(t *testing.T) int {
	t.Helper()
	for range 400 {
		p := 28000 + int((bridgePortSeq.Add(1)+int32(os.Getpid()%40)*10)%400)
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return p
	}
	t.Fatal("no port free in 28000-28399")
	return 0
}

func pm(host, ctr int, proto string) mesos.ContainerInfo_DockerInfo_PortMapping {
	return mesos.ContainerInfo_DockerInfo_PortMapping{HostPort: uint32(host), ContainerPort: uint32(ctr), Protocol: &proto}
}

// bridgeTask is a testapp task on network nw with the given arguments,
// mappings, and a ports resource holding exactly their host ports.
func bridgeTask(t *testing.T, id string, nw mesos.ContainerInfo_DockerInfo_Network, args []string, maps ...mesos.ContainerInfo_DockerInfo_PortMapping) Task {
	tk := dockerTaskInfo(t, id, testbed.Image, &mesos.CommandInfo{Shell: boolPtr(false), Arguments: args})
	tk.Hostname = "127.0.0.1"
	tk.Info.Container.Docker.Network = nw.Enum()
	tk.Info.Container.Docker.PortMappings = maps
	var ranges []mesos.Value_Range
	for _, m := range maps {
		ranges = append(ranges, mesos.Value_Range{Begin: uint64(m.HostPort), End: uint64(m.HostPort)})
	}
	if len(ranges) > 0 {
		tk.Info.Resources = append(tk.Info.Resources, mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: ranges}})
	}
	return tk
}

// launchRunning launches and fails with every status seen if the task does
// not stay up (an image without the echo flags exits at once: rebuild it
// with scripts/testbed.sh images from this tree).
func launchRunning(t *testing.T, d *Docker, rec *recorder, tk Task) {
	t.Helper()
	if err := d.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatalf("launch: %v; statuses %s", err, fmtStatuses(rec.statuses(tk.Info.TaskID.Value)))
	}
}

var probeClient = http.Client{Timeout: 5 * time.Second}

// getVia GETs url until it answers (the app inside may still be starting;
// the forwarder closes connections it cannot carry yet), reporting the last
// error and the task's statuses if it never does.
func getVia(t *testing.T, rec *recorder, taskID, url string) string {
	t.Helper()
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := probeClient.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return string(b)
	}
	t.Fatalf("GET %s: no answer within 30 s: %v; task statuses %s", url, lastErr, fmtStatuses(rec.statuses(taskID)))
	return ""
}

func tcpEcho(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c) // EOF only once the echo server half-closed through the forwarder
	if err != nil {
		t.Fatalf("tcp echo via %s: %v after %q", addr, err, b)
	}
	return string(b)
}

func udpEcho(t *testing.T, addr, msg string) string {
	t.Helper()
	u, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 1024)
	var lastErr error
	// Re-sent each second: the first datagram may arrive before the app
	// listens, and UDP does not retry.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if _, err := u.Write([]byte(msg)); err != nil {
			lastErr = err
		}
		if err := u.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := u.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
		lastErr = err
	}
	t.Fatalf("udp echo via %s: no answer within 30 s: %v", addr, lastErr)
	return ""
}

// waitBindable waits until addr can be bound for TCP and UDP again.
func waitBindable(t *testing.T, addr string) {
	t.Helper()
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			lastErr = err
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp4", addr)
		if err != nil {
			lastErr = err
			continue
		}
		u.Close()
		return
	}
	t.Fatalf("%s still bound 30 s after the task ended: %v", addr, lastErr)
}

// TestDockerBridge: the test image listens on container ports 8080 (HTTP),
// 9000 (TCP echo) and 9001 (UDP echo) in a namespace of its own; each is
// reached through its host port, the MESOS_HTTP check on the container
// port goes healthy, and after a kill the host ports are free. Once with
// the default forwarding (the kernel's here: its nft table and veth exist
// while the task runs and are gone after) and once with the user-space
// forwarder.
func TestDockerBridge(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ForwardAuto, ForwardUserland} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testDockerBridge(t, mode)
		})
	}
}

// kernelExpected tells whether auto forwarding must come out as kernel
// forwarding: always under CI=true (the test bed has ip and nft and runs
// as root), else where this machine supports it.
func kernelExpected(t *testing.T) bool {
	t.Helper()
	err := portfwd.KernelSupported(context.Background())
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and kernel port forwarding is unavailable: %v", err)
	}
	return err == nil
}

func nftTableExists(name string) bool {
	return exec.Command("nft", "list", "table", "ip", name).Run() == nil
}

// checkKernelForwarding fails unless the task is forwarded as mode says
// (auto: by the kernel where it is supported), and returns its table and
// veth ("" in user space).
func checkKernelForwarding(t *testing.T, d *Docker, taskID, mode string) (table, veth string) {
	t.Helper()
	k := d.taskOf(t, taskID).kern // written before the task was recorded
	want := mode != ForwardUserland && kernelExpected(t)
	switch {
	case want && k == nil:
		t.Fatalf("task %s: forwarded in user space, want the kernel (mode %s)", taskID, mode)
	case !want && k != nil:
		t.Fatalf("task %s: forwarded by the kernel (%s), want user space (mode %s)", taskID, k.Table(), mode)
	case k == nil:
		return "", ""
	}
	if !nftTableExists(k.Table()) {
		t.Errorf("nft table %s missing while the task runs", k.Table())
	}
	if _, err := net.InterfaceByName(k.Interface()); err != nil {
		t.Errorf("veth %s missing while the task runs: %v", k.Interface(), err)
	}
	if !strings.HasPrefix(k.ContainerAddr().String(), "169.254.") {
		t.Errorf("container address %s is not link-local", k.ContainerAddr())
	}
	return k.Table(), k.Interface()
}

// checkKernelGone fails if the task's table or veth outlived it.
func checkKernelGone(t *testing.T, table, veth string) {
	t.Helper()
	if table == "" {
		return
	}
	if nftTableExists(table) {
		t.Errorf("nft table %s left after the task ended", table)
	}
	if _, err := net.InterfaceByName(veth); err == nil {
		t.Errorf("veth %s left after the task ended", veth)
	}
}

func testDockerBridge(t *testing.T, mode string) {
	d := newTestDockerWith(t, DockerConfig{Forwarding: mode})
	rec := newRecorder()
	hHTTP, hEcho := bridgePort(t), bridgePort(t)
	tk := bridgeTask(t, "br-1", mesos.ContainerInfo_DockerInfo_BRIDGE,
		[]string{"-port", "8080", "-tcp-echo", "9000", "-udp-echo", "9001"},
		pm(hHTTP, 8080, "tcp"), pm(hEcho, 9000, "tcp"), pm(hEcho, 9001, "udp"))
	// PORT0 is the host port, as Marathon sets it; the app must not use it.
	tk.Info.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{valueVar("PORT0", strconv.Itoa(hHTTP)), valueVar("HOST", "bridgehost")}}
	tk.Info.HealthCheck = fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
		HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 8080, Path: strPtr("/health")}}, 10)
	launchRunning(t, d, rec, tk)
	ins, err := d.cli.ContainerInspect(context.Background(), d.containerOf(t, "br-1"))
	if err != nil {
		t.Fatal(err)
	}
	if ins.HostConfig.NetworkMode != "none" {
		t.Errorf("network mode %q, want none (a namespace of its own)", ins.HostConfig.NetworkMode)
	}
	table, veth := checkKernelForwarding(t, d, "br-1", mode)

	if body := getVia(t, rec, "br-1", fmt.Sprintf("http://127.0.0.1:%d/", hHTTP)); body != "br-1 bridgehost\n" {
		t.Fatalf("GET / via host port %d = %q", hHTTP, body)
	}
	echoAddr := fmt.Sprintf("127.0.0.1:%d", hEcho)
	if got := tcpEcho(t, echoAddr, "over tcp"); got != "over tcp" {
		t.Errorf("tcp echo = %q", got)
	}
	if got := udpEcho(t, echoAddr, "over udp"); got != "over udp" {
		t.Errorf("udp echo = %q", got)
	}
	rec.waitFor(t, "br-1", 30*time.Second, "healthy (check inside the namespace)", isHealth(true))
	// Kernel mode too keeps the host ports bound: no one else can take them.
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", hHTTP), echoAddr} {
		if l, err := net.Listen("tcp4", addr); err == nil {
			l.Close()
			t.Errorf("%s could be bound while the task runs", addr)
		}
	}
	if u, err := net.ListenPacket("udp4", echoAddr); err == nil {
		u.Close()
		t.Errorf("udp %s could be bound while the task runs", echoAddr)
	}

	if err := d.Kill(context.Background(), "br-1", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := rec.waitTerminal(t, "br-1", 30*time.Second); st.State != mesos.TASK_KILLED {
		t.Fatalf("terminal %s %q", st.State, st.Message)
	}
	// The terminal status comes after the network is taken down.
	checkKernelGone(t, table, veth)
	waitBindable(t, fmt.Sprintf("127.0.0.1:%d", hHTTP))
	waitBindable(t, echoAddr)
}

// TestDockerBridgeKernelFallback: when the kernel forwarding cannot be set
// up, the task still runs, forwarded in user space, and the reason is
// logged as a warning once.
func TestDockerBridgeKernelFallback(t *testing.T) {
	t.Parallel()
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	d := newTestDockerWith(t, DockerConfig{Log: l, Forwarding: ForwardAuto})
	d.forwardKernel = func(context.Context, string, []portfwd.Mapping, *portfwd.NetNS, portfwd.KernelConfig) (*portfwd.Kernel, error) {
		return nil, errors.New("nft: no such table (test)")
	}
	rec := newRecorder()
	for _, id := range []string{"fb-1", "fb-2"} {
		hp := bridgePort(t)
		tk := bridgeTask(t, id, mesos.ContainerInfo_DockerInfo_BRIDGE, []string{"-port", "8080", "-udp-echo", "9001"}, pm(hp, 8080, "tcp"), pm(hp, 9001, "udp"))
		launchRunning(t, d, rec, tk)
		if table, _ := checkKernelForwarding(t, d, id, ForwardUserland); table != "" {
			t.Fatalf("task %s has kernel forwarding %s", id, table)
		}
		if body := getVia(t, rec, id, fmt.Sprintf("http://127.0.0.1:%d/", hp)); !strings.HasPrefix(body, id+" ") {
			t.Fatalf("GET / = %q", body)
		}
		if got := udpEcho(t, fmt.Sprintf("127.0.0.1:%d", hp), "fallback"); got != "fallback" {
			t.Fatalf("udp echo = %q", got)
		}
		if err := d.Kill(context.Background(), id, 0); err != nil {
			t.Fatal(err)
		}
		rec.waitTerminal(t, id, 30*time.Second)
		waitBindable(t, fmt.Sprintf("127.0.0.1:%d", hp))
	}
	var warned, debugged int
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "kernel port forwarding cannot be set up") && strings.Contains(fmt.Sprint(e.Data[logrus.ErrorKey]), "(test)") {
			switch e.Level {
			case logrus.WarnLevel:
				warned++
			case logrus.DebugLevel:
				debugged++
			}
		}
	}
	if warned != 1 || debugged != 1 {
		t.Fatalf("fallback logged %d times as a warning and %d at debug, want 1 and 1", warned, debugged)
	}
}

func TestDockerUserNetworks(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t, nil)
	withNet := func(tk Task, name string) Task {
		tk.Info.Container.NetworkInfos = []mesos.NetworkInfo{{Name: &name}}
		tk.Networks = []string{"dcos", "backend"}
		return tk
	}
	t.Run("configured network", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder()
		hp := bridgePort(t)
		tk := withNet(bridgeTask(t, "user-ok", mesos.ContainerInfo_DockerInfo_USER, []string{"-port", "8080"}, pm(hp, 8080, "tcp")), "backend")
		launchRunning(t, d, rec, tk)
		table, veth := checkKernelForwarding(t, d, "user-ok", ForwardAuto)
		if body := getVia(t, rec, "user-ok", fmt.Sprintf("http://127.0.0.1:%d/", hp)); !strings.HasPrefix(body, "user-ok ") {
			t.Fatalf("GET / = %q", body)
		}
		if err := d.Kill(context.Background(), "user-ok", 0); err != nil {
			t.Fatal(err)
		}
		rec.waitTerminal(t, "user-ok", 30*time.Second)
		checkKernelGone(t, table, veth)
		waitBindable(t, fmt.Sprintf("127.0.0.1:%d", hp))
	})
	t.Run("unknown network", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder()
		tk := withNet(bridgeTask(t, "user-bad", mesos.ContainerInfo_DockerInfo_USER, []string{"-port", "8080"}, pm(bridgePort(t), 8080, "tcp")), "nosuchnet")
		if err := d.Launch(context.Background(), tk, rec.report); err == nil {
			t.Fatal("launch on an unknown network succeeded")
		}
		st := rec.waitTerminal(t, "user-bad", 10*time.Second)
		if st.State != mesos.TASK_FAILED || st.Reason == nil || *st.Reason != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
			!strings.Contains(st.Message, "Unknown CNI network 'nosuchnet'") {
			t.Fatalf("got %s %v %q, want TASK_FAILED REASON_CONTAINER_LAUNCH_FAILED naming the network", st.State, st.Reason, st.Message)
		}
	})
}

// TestDockerBridgeTakenPort: a host port someone holds fails the launch
// with REASON_CONTAINER_LAUNCH_FAILED naming the port, and no container of
// the executor is left.
func TestDockerBridgeTakenPort(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t, nil)
	rec := newRecorder()
	hp := bridgePort(t)
	hold, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", hp))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	tk := bridgeTask(t, "taken", mesos.ContainerInfo_DockerInfo_BRIDGE, []string{"-port", "8080"}, pm(hp, 8080, "tcp"))
	if err := d.Launch(context.Background(), tk, rec.report); err == nil {
		t.Fatal("launch with a taken host port succeeded")
	}
	st := rec.waitTerminal(t, "taken", 10*time.Second)
	if st.State != mesos.TASK_FAILED || st.Reason == nil || *st.Reason != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
		!strings.Contains(st.Message, fmt.Sprintf("host port %d/tcp", hp)) || !strings.Contains(st.Message, "address already in use") {
		t.Fatalf("got %s %v %q, want TASK_FAILED REASON_CONTAINER_LAUNCH_FAILED naming %d/tcp and the error", st.State, st.Reason, st.Message, hp)
	}
	left, err := d.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", ownerLabel+"="+d.owner))})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d containers left after the failed launch", len(left))
	}
}

func TestDockerNoneNetwork(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t, nil)
	rec := newRecorder()
	tk := dockerTaskInfo(t, "none-1", busybox, shellCmd("sleep 1000"))
	tk.Info.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_NONE.Enum()
	launchRunning(t, d, rec, tk)
	ins, err := d.cli.ContainerInspect(context.Background(), d.containerOf(t, "none-1"))
	if err != nil {
		t.Fatal(err)
	}
	if ins.HostConfig.NetworkMode != "none" {
		t.Errorf("network mode %q, want none", ins.HostConfig.NetworkMode)
	}
	if err := d.Kill(context.Background(), "none-1", 0); err != nil {
		t.Fatal(err)
	}
	rec.waitTerminal(t, "none-1", 30*time.Second)
}
