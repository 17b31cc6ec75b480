package executor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

const busybox = "flotilla/busybox:dev"

func newTestDocker(t *testing.T, l *logrus.Logger) *Docker {
	t.Helper()
	return newTestDockerWith(t, DockerConfig{Log: l})
}

// newTestDockerWith is newTestDocker with cfg's Log and Forwarding.
func newTestDockerWith(t *testing.T, cfg DockerConfig) *Docker {
	t.Helper()
	sock := testbed.DockerSocket(t)
	if cfg.Log == nil {
		cfg.Log = logging.Discard()
	}
	d, err := NewDocker(DockerConfig{Clock: clock.Real{}, Log: cfg.Log, Host: "unix://" + sock, Forwarding: cfg.Forwarding})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

func dockerTaskInfo(t *testing.T, id, image string, ci *mesos.CommandInfo) Task {
	tk := processTask(t, id, ci)
	tk.Info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(),
		Docker: &mesos.ContainerInfo_DockerInfo{Image: image, Network: mesos.ContainerInfo_DockerInfo_HOST.Enum()}}
	tk.Info.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(2 * time.Second)}}
	return tk
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return 0, ""
}

// taskOf gives a running task's record.
func (d *Docker) taskOf(t *testing.T, taskID string) *dockerTask {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	dt := d.tasks[taskID]
	if dt == nil {
		t.Fatalf("task %s has no container", taskID)
	}
	return dt
}

func (d *Docker) containerOf(t *testing.T, taskID string) string {
	t.Helper()
	return d.taskOf(t, taskID).container
}

// TestDockerTestapp runs the test image with its default command, checks
// what Mesos's docker containerizer would have set up, and kills it.
func TestDockerTestapp(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t, nil)
	rec := newRecorder()
	port := freePort(t)
	const secret = "docker-secret-value-42"
	tk := dockerTaskInfo(t, "web.1", testbed.Image, &mesos.CommandInfo{Shell: boolPtr(false),
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{
			valueVar("PORT0", strconv.Itoa(port)), valueVar("HOST", "testhost"), secretVar("API_KEY", secret)}}})
	tk.Info.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: "team", Value: strPtr("infra")}}}
	ctx := context.Background()
	if err := d.Launch(ctx, tk, rec.report); err != nil {
		t.Fatal(err)
	}
	if got := states(rec.statuses("web.1")); len(got) != 2 || got[1] != mesos.TASK_RUNNING {
		t.Fatalf("states after launch = %v", got)
	}
	_, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	if body != "web.1 testhost\n" {
		t.Fatalf("GET / = %q, want the task id and HOST", body)
	}
	sum := sha256.Sum256([]byte(secret))
	if _, h := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/envhash?name=API_KEY", port)); strings.TrimSpace(h) != hex.EncodeToString(sum[:]) {
		t.Fatalf("secret did not reach the container: hash %q", h)
	}

	ins, err := d.cli.ContainerInspect(ctx, d.containerOf(t, "web.1"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := d.cli.ImageInspect(ctx, testbed.Image)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name prefix", strings.HasPrefix(ins.Name, "/mesos-"), true},
		{"network", string(ins.HostConfig.NetworkMode), "host"},
		{"cpu shares", ins.HostConfig.CPUShares, int64(512)},
		{"memory", ins.HostConfig.Memory, int64(64 << 20)},
		{"label", ins.Config.Labels["team"], "infra"},
		{"default entrypoint", strings.Join(ins.Config.Entrypoint, " "), strings.Join(img.Config.Entrypoint, " ")},
		{"no command override", len(ins.Config.Cmd), len(img.Config.Cmd)},
		{"sandbox bind", strings.Join(ins.HostConfig.Binds, ","), tk.Sandbox + ":" + DockerSandbox},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	env := strings.Join(ins.Config.Env, "\n")
	for _, want := range []string{"MESOS_TASK_ID=web.1", "MESOS_SANDBOX=" + DockerSandbox, "MESOS_FRAMEWORK_ID=F-0001", "MESOS_AGENT_ID=A1-S0", "MESOS_CONTAINER_NAME=" + strings.TrimPrefix(ins.Name, "/")} {
		if !strings.Contains(env, want+"\n") && !strings.HasSuffix(env, want) {
			t.Errorf("container env lacks %s", want)
		}
	}

	// stats: load the CPU a little and see it in the Mesos shape
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/burn?millicores=500&seconds=1", port))
	st, err := d.Stats(ctx, "web.1")
	if err != nil {
		t.Fatal(err)
	}
	if st.GetCPUsUserTimeSecs()+st.GetCPUsSystemTimeSecs() <= 0 || st.GetMemTotalBytes() == 0 {
		t.Errorf("stats show no usage: %v", st)
	}
	if st.GetCPUsLimit() != 0.5 || st.GetMemLimitBytes() != 64<<20 || st.Timestamp == 0 {
		t.Errorf("stats limits/timestamp = %v %v %v", st.GetCPUsLimit(), st.GetMemLimitBytes(), st.Timestamp)
	}

	if err := d.Kill(ctx, "web.1", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := rec.waitTerminal(t, "web.1", 15*time.Second); s.State != mesos.TASK_KILLED {
		t.Fatalf("terminal %s %q", s.State, s.Message)
	}
	if _, err := d.cli.ContainerInspect(ctx, ins.ID); err == nil {
		t.Error("container still exists after the task ended")
	}
	if err := d.Kill(ctx, "web.1", 0); err == nil {
		t.Error("kill of an ended task: want error")
	}
}

func TestDockerExitAndCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		image     string
		ci        *mesos.CommandInfo
		wantState mesos.TaskState
		wantMsg   string
		wantOut   string
		wantErr   string // launch error
	}{
		{"shell exit 0", busybox, shellCmd("echo hello; echo oops >&2"), mesos.TASK_FINISHED, "status 0", "hello\n", ""},
		{"shell exit 3", busybox, shellCmd("exit 3"), mesos.TASK_FAILED, "Container exited with status 3", "", ""},
		// shell=false keeps the image's entrypoint (/bin/sh -c): value is its argument
		{"entrypoint kept", busybox, &mesos.CommandInfo{Shell: boolPtr(false), Value: strPtr("echo from-entrypoint; exit 5")}, mesos.TASK_FAILED, "status 5", "from-entrypoint\n", ""},
		{"missing image", "flotilla/does-not-exist:dev", shellCmd("true"), mesos.TASK_FAILED, "not found", "", "not found"},
		{"shell without value", busybox, &mesos.CommandInfo{}, mesos.TASK_FAILED, "no command value", "", "no command value"},
		{"no image", "", shellCmd("true"), mesos.TASK_FAILED, "no docker image", "", "no docker image"},
		// CommandInfo.user is docker run --user
		{"user by uid", busybox, withUser(shellCmd("id -u; id -g"), "65534:65534"), mesos.TASK_FINISHED, "status 0", "65534\n65534\n", ""},
		{"user the image lacks", busybox, withUser(shellCmd("true"), "no-such-user"), mesos.TASK_FAILED, "no-such-user", "", "no-such-user"},
	}
	d := newTestDocker(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			id := strings.ReplaceAll(tc.name, " ", "-")
			tk := dockerTaskInfo(t, id, tc.image, tc.ci)
			err := d.Launch(context.Background(), tk, rec.report)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			st := rec.waitTerminal(t, id, 15*time.Second)
			if st.State != tc.wantState || !strings.Contains(st.Message, tc.wantMsg) {
				t.Fatalf("got %s %q, want %s containing %q", st.State, st.Message, tc.wantState, tc.wantMsg)
			}
			if tc.wantOut != "" {
				out, _ := os.ReadFile(filepath.Join(tk.Sandbox, "stdout"))
				if string(out) != tc.wantOut {
					t.Errorf("sandbox stdout = %q, want %q", out, tc.wantOut)
				}
			}
		})
	}
}

func TestDockerHealthChecks(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t, nil)
	tests := []struct {
		name    string
		task    func(t *testing.T, port int) Task
		breakIt func(t *testing.T, tk Task, port int)
	}{
		{"http", func(t *testing.T, port int) Task {
			tk := dockerTaskInfo(t, "dh-http", testbed.Image, &mesos.CommandInfo{Shell: boolPtr(false),
				Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{valueVar("PORT0", strconv.Itoa(port))}}})
			tk.Info.HealthCheck = fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
				HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: uint32(port), Path: strPtr("/health")}}, 10)
			return tk
		}, func(t *testing.T, _ Task, port int) { setHealth(t, port, false) }},
		// docker exec inside the container; the sandbox is mounted there
		{"command", func(t *testing.T, port int) Task {
			tk := dockerTaskInfo(t, "dh-cmd", busybox, shellCmd("sleep 1000"))
			tk.Info.HealthCheck = fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND,
				Command: shellCmd("test ! -e " + DockerSandbox + "/unhealthy")}, 10)
			return tk
		}, func(t *testing.T, tk Task, _ int) {
			if err := os.WriteFile(filepath.Join(tk.Sandbox, "unhealthy"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			port := freePort(t)
			tk := tc.task(t, port)
			id := tk.Info.TaskID.Value
			if err := d.Launch(context.Background(), tk, rec.report); err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, id, 15*time.Second, "healthy", isHealth(true))
			tc.breakIt(t, tk, port)
			rec.waitFor(t, id, 15*time.Second, "unhealthy", isHealth(false))
			st := rec.waitTerminal(t, id, 15*time.Second)
			if st.State != mesos.TASK_KILLED || st.Healthy == nil || *st.Healthy {
				t.Fatalf("terminal = %s healthy=%v, want TASK_KILLED healthy=false; all %s", st.State, st.Healthy, fmtStatuses(rec.statuses(id)))
			}
		})
	}
}

// TestDockerCloseRemovesContainers launches, closes, and expects no
// container of the executor left and no status after Close.
func TestDockerCloseRemovesContainers(t *testing.T) {
	t.Parallel()
	sock := testbed.DockerSocket(t)
	d, err := NewDocker(DockerConfig{Log: logging.Discard(), Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	for i := 0; i < 2; i++ {
		if err := d.Launch(context.Background(), dockerTaskInfo(t, fmt.Sprintf("c%d", i), busybox, shellCmd("sleep 1000")), rec.report); err != nil {
			t.Fatal(err)
		}
	}
	owner := d.owner
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	check, err := NewDocker(DockerConfig{Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	defer check.cli.Close()
	left, err := check.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", ownerLabel+"="+owner))})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d containers left after Close", len(left))
	}
	for i := 0; i < 2; i++ {
		if got := states(rec.statuses(fmt.Sprintf("c%d", i))); len(got) != 2 {
			t.Errorf("task c%d: statuses after Close: %v", i, got)
		}
	}
	if err := d.Launch(context.Background(), dockerTaskInfo(t, "late", busybox, shellCmd("true")), rec.report); err == nil {
		t.Error("launch after Close: want error")
	}
}

func TestDockerSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	const secret = "docker-hunter2-Q7-unique"
	var buf bytes.Buffer
	lw := &lockedWriter{w: &buf}
	l := logrus.New()
	l.Out = lw
	l.SetLevel(logrus.TraceLevel)
	d := newTestDocker(t, l)
	rec := newRecorder()
	ctx := context.Background()
	var msgs []string
	sv := secretVar("TOKEN", secret)
	ok := dockerTaskInfo(t, "s-ok", busybox, shellCmd(`test "$TOKEN" = '`+secret+`' && exit 0; exit 9`, sv))
	fails := dockerTaskInfo(t, "s-fail", busybox, shellCmd(`echo "$TOKEN"; exit 2`, sv))
	noimg := dockerTaskInfo(t, "s-noimg", "flotilla/nope:dev", shellCmd("true", sv))
	health := dockerTaskInfo(t, "s-health", busybox, shellCmd("sleep 1000", sv))
	health.Info.HealthCheck = fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: shellCmd(`echo "$TOKEN"; exit 1`)}, 0)
	for _, tk := range []Task{ok, fails, noimg, health} {
		if err := d.Launch(ctx, tk, rec.report); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if st := rec.waitTerminal(t, "s-ok", 15*time.Second); st.State != mesos.TASK_FINISHED {
		t.Fatalf("secret did not reach the container: %s %q", st.State, st.Message)
	}
	for _, id := range []string{"s-fail", "s-noimg", "s-health"} {
		rec.waitTerminal(t, id, 15*time.Second)
		for _, s := range rec.statuses(id) {
			msgs = append(msgs, s.Message)
		}
	}
	logs := lw.String()
	if !strings.Contains(logs, "task ended") {
		t.Fatalf("log capture not working: %q", logs)
	}
	all := strings.Join(msgs, "\n") + logs
	if strings.Contains(all, secret) {
		t.Fatalf("secret leaked:\n%s", all)
	}
}

// TestDockerUnreachableEngine: Ping names the problem, Launch fails with
// TASK_FAILED, and Close of an unused executor returns at once.
func TestDockerUnreachableEngine(t *testing.T) {
	t.Parallel()
	d, err := NewDocker(DockerConfig{Host: "unix://" + filepath.Join(t.TempDir(), "no.sock")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Ping(ctx); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("ping err = %v", err)
	}
	rec := newRecorder()
	if err := d.Launch(ctx, dockerTaskInfo(t, "x", busybox, shellCmd("true")), rec.report); err == nil {
		t.Fatal("launch without engine: want error")
	}
	if st := rec.waitTerminal(t, "x", time.Second); st.State != mesos.TASK_FAILED {
		t.Fatalf("state %s", st.State)
	}
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// a hang guard below Close's own 30 s engine timeout, not a timing
	if time.Since(start) > 20*time.Second {
		t.Fatal("close of an unused executor waited on the engine")
	}
}

func withUser(ci *mesos.CommandInfo, u string) *mesos.CommandInfo {
	ci.User = &u
	return ci
}
