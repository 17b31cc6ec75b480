package executor

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

func shellCmd(v string, env ...mesos.Environment_Variable) *mesos.CommandInfo {
	ci := &mesos.CommandInfo{Value: strPtr(v)}
	if len(env) > 0 {
		ci.Environment = &mesos.Environment{Variables: env}
	}
	return ci
}

func valueVar(name, v string) mesos.Environment_Variable {
	return mesos.Environment_Variable{Name: name, Type: mesos.Environment_Variable_VALUE.Enum(), Value: strPtr(v)}
}

func secretVar(name, v string) mesos.Environment_Variable {
	return mesos.Environment_Variable{Name: name, Type: mesos.Environment_Variable_SECRET.Enum(),
		Secret: &mesos.Secret{Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: []byte(v)}}}
}

func processTask(t *testing.T, id string, ci *mesos.CommandInfo) Task {
	info := taskInfo(id, 0.5, 64)
	info.Command = ci
	return Task{Info: info, FrameworkID: "F-0001", AgentID: "A1-S0", Hostname: "localhost", Sandbox: t.TempDir()}
}

func newTestProcess(t *testing.T) *Process {
	p := NewProcess(ProcessConfig{Clock: clock.Real{}, Log: logging.Discard()})
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProcessExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ci        *mesos.CommandInfo
		wantState mesos.TaskState
		wantMsg   string
	}{
		{"exit 0", shellCmd("exit 0"), mesos.TASK_FINISHED, "status 0"},
		{"exit 3", shellCmd("exit 3"), mesos.TASK_FAILED, "Command exited with status 3"},
		{"killed by signal", shellCmd("kill -9 $$"), mesos.TASK_FAILED, "signal killed"},
		{"shell false argv", &mesos.CommandInfo{Shell: boolPtr(false), Value: strPtr("/bin/sh"), Arguments: []string{"sh", "-c", "exit 4"}},
			mesos.TASK_FAILED, "status 4"},
		{"shell false no args", &mesos.CommandInfo{Shell: boolPtr(false), Value: strPtr("true")}, mesos.TASK_FINISHED, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newTestProcess(t)
			rec := newRecorder()
			if err := p.Launch(context.Background(), processTask(t, "t", tc.ci), rec.report); err != nil {
				t.Fatal(err)
			}
			st := rec.waitTerminal(t, "t", 10*time.Second)
			if st.State != tc.wantState || !strings.Contains(st.Message, tc.wantMsg) {
				t.Fatalf("got %s %q, want %s containing %q", st.State, st.Message, tc.wantState, tc.wantMsg)
			}
			got := states(rec.statuses("t"))
			if len(got) != 3 || got[0] != mesos.TASK_STARTING || got[1] != mesos.TASK_RUNNING {
				t.Fatalf("states = %v, want STARTING, RUNNING, terminal", got)
			}
			if err := p.Kill(context.Background(), "t", 0); err == nil {
				t.Error("kill after exit: want unknown task error")
			}
		})
	}
}

func TestProcessLaunchFailures(t *testing.T) {
	t.Parallel()
	ref := mesos.Environment_Variable{Name: "REF", Type: mesos.Environment_Variable_SECRET.Enum(),
		Secret: &mesos.Secret{Type: mesos.Secret_REFERENCE, Reference: &mesos.Secret_Reference{Name: "/x"}}}
	tests := []struct {
		name    string
		mutate  func(*Task)
		wantErr string
	}{
		{"no command", func(tk *Task) { tk.Info.Command = nil }, "no command"},
		{"missing binary", func(tk *Task) {
			tk.Info.Command = &mesos.CommandInfo{Shell: boolPtr(false), Value: strPtr("/nonexistent/bin")}
		}, "failed to launch command"},
		{"empty shell value", func(tk *Task) { tk.Info.Command = &mesos.CommandInfo{} }, "no value"},
		{"no sandbox", func(tk *Task) { tk.Sandbox = "" }, "no sandbox"},
		{"secret reference", func(tk *Task) {
			tk.Info.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{ref}}
		}, "REF: only secrets of type VALUE"},
		{"docker task", func(tk *Task) {
			tk.Info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum()}
		}, "docker executor"},
		{"bad health check", func(tk *Task) { tk.Info.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_TCP} }, "tcp field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newTestProcess(t)
			rec := newRecorder()
			tk := processTask(t, "bad", shellCmd("sleep 100"))
			tc.mutate(&tk)
			err := p.Launch(context.Background(), tk, rec.report)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			ss := rec.statuses("bad")
			last := ss[len(ss)-1]
			if last.State != mesos.TASK_FAILED || last.Message != err.Error() {
				t.Fatalf("last status = %s %q, want TASK_FAILED with the error", last.State, last.Message)
			}
			// the id is free again
			tk = processTask(t, "bad", shellCmd("exit 0"))
			if err := p.Launch(context.Background(), tk, rec.report); err != nil {
				t.Fatalf("relaunch after failure: %v", err)
			}
		})
	}
}

func TestProcessEnvironmentAndSandbox(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t)
	rec := newRecorder()
	tk := processTask(t, "env.1", shellCmd(`printf '%s|%s|%s|%s|%s|%s|%s' "$MESOS_TASK_ID" "$MESOS_SANDBOX" "$MESOS_FRAMEWORK_ID" "$MESOS_AGENT_ID" "$PLAIN" "$SECRET_ONE" "$(pwd)"; echo oops >&2`,
		valueVar("PLAIN", "plain value"), secretVar("SECRET_ONE", "s3cr3t-value")))
	if err := p.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatal(err)
	}
	if st := rec.waitTerminal(t, "env.1", 10*time.Second); st.State != mesos.TASK_FINISHED {
		t.Fatalf("state %s %q", st.State, st.Message)
	}
	out, _ := os.ReadFile(filepath.Join(tk.Sandbox, "stdout"))
	want := strings.Join([]string{"env.1", tk.Sandbox, "F-0001", "A1-S0", "plain value", "s3cr3t-value", tk.Sandbox}, "|")
	if string(out) != want {
		t.Fatalf("stdout = %q, want %q", out, want)
	}
	errOut, _ := os.ReadFile(filepath.Join(tk.Sandbox, "stderr"))
	if string(errOut) != "oops\n" {
		t.Fatalf("stderr = %q", errOut)
	}
}

// processGroupGone reports whether no process is left in the group.
func processGroupGone(pgid int) bool {
	_, err := groupUsage(pgid)
	return err != nil
}

func TestProcessKill(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cmd   string
		grace time.Duration
	}{
		// the background sleep is in the same group and must die too
		{"group with sigterm", "sleep 1000 & sleep 1000", 5 * time.Second},
		{"ignores sigterm", "trap '' TERM; sleep 1000 & wait; wait", 300 * time.Millisecond},
		{"no grace", "sleep 1000", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newTestProcess(t)
			rec := newRecorder()
			if err := p.Launch(context.Background(), processTask(t, "k", shellCmd(tc.cmd)), rec.report); err != nil {
				t.Fatal(err)
			}
			p.mu.Lock()
			pgid := p.tasks["k"].pgid
			p.mu.Unlock()
			waitGroupRuns(t, pgid, "sleep") // the shell started its children
			if err := p.Kill(context.Background(), "k", tc.grace); err != nil {
				t.Fatal(err)
			}
			if tc.name == "ignores sigterm" { // still alive: a second kill is not an error
				if err := p.Kill(context.Background(), "k", tc.grace); err != nil {
					t.Fatalf("second kill while dying: %v", err)
				}
			}
			st := rec.waitTerminal(t, "k", 10*time.Second)
			if st.State != mesos.TASK_KILLED || st.Healthy != nil {
				t.Fatalf("got %s healthy=%v, want TASK_KILLED without health", st.State, st.Healthy)
			}
			if !processGroupGone(pgid) {
				t.Fatalf("processes of group %d survive the kill", pgid)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		if err := newTestProcess(t).Kill(context.Background(), "nope", 0); err == nil {
			t.Fatal("want error")
		}
	})
}

func TestProcessKillGraceUsesClock(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(time.Unix(0, 0))
	p := NewProcess(ProcessConfig{Clock: c, Log: logging.Discard()})
	defer p.Close()
	rec := newRecorder()
	tk := processTask(t, "g", shellCmd("trap '' TERM; echo ready; while :; do sleep 0.05; done"))
	if err := p.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(tk.Sandbox, "stdout")); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("task never started")
		}
	}
	if err := p.Kill(context.Background(), "g", time.Minute); err != nil {
		t.Fatal(err)
	}
	// SIGTERM sent (and ignored); the SIGKILL waits on the fake clock.
	for deadline := time.Now().Add(10 * time.Second); c.Waiters() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no grace timer on the clock after 10 s (%d timers)", c.Waiters())
		}
	}
	if got := states(rec.statuses("g")); len(got) != 2 {
		t.Fatalf("task ended inside the grace period: %v", got)
	}
	c.Step(time.Minute)
	if st := rec.waitTerminal(t, "g", 10*time.Second); st.State != mesos.TASK_KILLED {
		t.Fatalf("got %s", st.State)
	}
}

func TestProcessStats(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t)
	rec := newRecorder()
	// two busy processes in the group: both must be counted
	tk := processTask(t, "busy", shellCmd("(while :; do :; done) & while :; do :; done"))
	if err := p.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := p.Stats(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	// CPU time grows (in clock ticks of 10 ms): poll until it has.
	var second *mesos.ResourceStatistics
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if second, err = p.Stats(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		used := second.GetCPUsUserTimeSecs() + second.GetCPUsSystemTimeSecs() - first.GetCPUsUserTimeSecs() - first.GetCPUsSystemTimeSecs()
		if used > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpu time did not grow in 10 s: %v then %v", first, second)
		}
	}
	if second.GetProcesses() < 2 || second.GetThreads() < 2 {
		t.Errorf("processes=%d threads=%d, want at least 2 each", second.GetProcesses(), second.GetThreads())
	}
	if second.GetMemRSSBytes() == 0 {
		t.Error("rss is zero")
	}
	if second.GetCPUsLimit() != 0.5 || second.GetMemLimitBytes() != 64<<20 {
		t.Errorf("limits = %v cpus, %d bytes; want 0.5, %d", second.GetCPUsLimit(), second.GetMemLimitBytes(), 64<<20)
	}
	if second.Timestamp <= first.Timestamp {
		t.Errorf("timestamps %v then %v", first.Timestamp, second.Timestamp)
	}
	if _, err := p.Stats(ctx, "nope"); err == nil {
		t.Error("stats of unknown task: want error")
	}
}

// fastCheck shortens a check's timing for real-time tests; grace covers the
// app's start-up.
func fastCheck(hc mesos.HealthCheck, grace float64) *mesos.HealthCheck {
	hc.DelaySeconds = ptrF(0)
	hc.IntervalSeconds = ptrF(0.1)
	hc.TimeoutSeconds = ptrF(2)
	hc.GracePeriodSeconds = ptrF(grace)
	hc.ConsecutiveFailures = ptrU(3)
	return &hc
}

func testappTask(t *testing.T, id string, port int) Task {
	tk := processTask(t, id, &mesos.CommandInfo{Shell: boolPtr(false), Value: strPtr(testappPath),
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{valueVar("PORT0", strconv.Itoa(port))}}})
	grace := int64(time.Second)
	tk.Info.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: grace}}
	return tk
}

func setHealth(t *testing.T, port int, healthy bool) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/health?healthy=%v", port, healthy), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func isHealth(want bool) func(Status) bool {
	return func(s Status) bool {
		return s.State == mesos.TASK_RUNNING && s.Healthy != nil && *s.Healthy == want &&
			s.Reason != nil && *s.Reason == mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
	}
}

// TestProcessHealthChecks runs the testapp with each kind of check, sees it
// become healthy, makes it unhealthy and expects the executor to kill it.
func TestProcessHealthChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		check func(port int) *mesos.HealthCheck
		// breakIt makes the check fail from now on.
		breakIt func(t *testing.T, tk Task, port int, p *Process)
	}{
		{"http", func(port int) *mesos.HealthCheck {
			return fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: uint32(port), Path: strPtr("/health")}}, 10)
		}, func(t *testing.T, _ Task, port int, _ *Process) { setHealth(t, port, false) }},
		{"command", func(port int) *mesos.HealthCheck {
			return fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: shellCmd(`test ! -e unhealthy && test "$PORT0" = ` + strconv.Itoa(port))}, 10)
		}, func(t *testing.T, tk Task, _ int, _ *Process) {
			if err := os.WriteFile(filepath.Join(tk.Sandbox, "unhealthy"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"tcp", func(port int) *mesos.HealthCheck {
			return fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: uint32(port)}}, 10)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newTestProcess(t)
			rec := newRecorder()
			port := freePort(t)
			tk := testappTask(t, "h-"+tc.name, port)
			tk.Info.HealthCheck = tc.check(port)
			if err := p.Launch(context.Background(), tk, rec.report); err != nil {
				t.Fatal(err)
			}
			id := tk.Info.TaskID.Value
			rec.waitFor(t, id, 15*time.Second, "healthy", isHealth(true))
			if tc.breakIt == nil {
				return
			}
			tc.breakIt(t, tk, port, p)
			rec.waitFor(t, id, 15*time.Second, "unhealthy", isHealth(false))
			st := rec.waitTerminal(t, id, 15*time.Second)
			if st.State != mesos.TASK_KILLED || st.Healthy == nil || *st.Healthy {
				t.Fatalf("terminal = %s healthy=%v, want TASK_KILLED healthy=false; all %s", st.State, st.Healthy, fmtStatuses(rec.statuses(id)))
			}
			// exactly one healthy and one unhealthy update: only changes are reported
			var health []bool
			for _, s := range rec.statuses(id) {
				if s.State == mesos.TASK_RUNNING && s.Healthy != nil {
					health = append(health, *s.Healthy)
				}
			}
			if len(health) != 2 || !health[0] || health[1] {
				t.Fatalf("health updates = %v, want [true false]", health)
			}
		})
	}
}

// TestSecretNeverLeaks launches tasks carrying a secret through every path
// that logs or reports (success, failure, bad variable, failing health
// check, kill) with debug logging, and searches everything for the value.
func TestSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-Z9q-unique-secret"
	var logBuf bytes.Buffer
	var logMu = &lockedWriter{w: &logBuf}
	l := logrus.New()
	l.Out = logMu
	l.SetLevel(logrus.TraceLevel)
	l.SetFormatter(&logrus.JSONFormatter{})
	p := NewProcess(ProcessConfig{Clock: clock.Real{}, Log: l})
	defer p.Close()
	rec := newRecorder()
	var errs []error
	ctx := context.Background()

	launch := func(tk Task) {
		if err := p.Launch(ctx, tk, rec.report); err != nil {
			errs = append(errs, err)
		}
	}
	sv := secretVar("DB_PASSWORD", secret)
	launch(processTask(t, "ok", shellCmd(`test "$DB_PASSWORD" = '`+secret+`'`, sv)))
	launch(processTask(t, "fails", shellCmd(`exit 7`, sv)))
	noName := sv
	noName.Name = ""
	launch(processTask(t, "noname", shellCmd("true", noName)))
	wrongType := secretVar("X", secret)
	wrongType.Secret.Type = mesos.Secret_REFERENCE
	launch(processTask(t, "wrongtype", shellCmd("true", wrongType)))
	missingVal := sv
	missingVal.Type = mesos.Environment_Variable_VALUE.Enum()
	launch(processTask(t, "valuetype", shellCmd("true", missingVal)))
	hc := processTask(t, "health", shellCmd("sleep 100", sv))
	hc.Info.HealthCheck = fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: shellCmd(`echo "$DB_PASSWORD"; echo "$DB_PASSWORD" >&2; exit 1`)}, 0)
	hc.Info.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: 0}}
	launch(hc)
	killed := processTask(t, "killed", shellCmd("sleep 100", sv))
	launch(killed)

	if st := rec.waitTerminal(t, "ok", 10*time.Second); st.State != mesos.TASK_FINISHED {
		t.Fatalf("secret did not reach the task: %s %q", st.State, st.Message)
	}
	rec.waitTerminal(t, "fails", 10*time.Second)
	rec.waitTerminal(t, "health", 15*time.Second)
	if err := p.Kill(ctx, "killed", 0); err != nil {
		t.Fatal(err)
	}
	rec.waitTerminal(t, "killed", 10*time.Second)
	if len(errs) != 3 {
		t.Fatalf("want 3 launch errors (no name, reference, value without value), got %v", errs)
	}
	var all strings.Builder
	for _, e := range errs {
		all.WriteString(e.Error() + "\n")
	}
	for _, id := range []string{"ok", "fails", "noname", "wrongtype", "valuetype", "health", "killed"} {
		for _, s := range rec.statuses(id) {
			all.WriteString(s.Message + "\n")
		}
	}
	logs := logMu.String()
	if !strings.Contains(logs, "health check failed") || !strings.Contains(logs, "task ended") {
		t.Fatalf("log capture is not working; got %q", logs)
	}
	all.WriteString(logs)
	if strings.Contains(all.String(), secret) {
		t.Fatalf("secret value leaked:\n%s", all.String())
	}
}

func TestProcessTCPCheckFailsAndKills(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t)
	rec := newRecorder()
	tk := processTask(t, "tcp-dead", shellCmd("sleep 100"))
	tk.Info.HealthCheck = fastCheck(mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: uint32(freePort(t))}}, 0)
	tk.Info.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: 0}}
	if err := p.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "tcp-dead", 10*time.Second, "unhealthy", isHealth(false))
	st := rec.waitTerminal(t, "tcp-dead", 10*time.Second)
	if st.State != mesos.TASK_KILLED || st.Healthy == nil || *st.Healthy {
		t.Fatalf("terminal = %s healthy=%v, want TASK_KILLED healthy=false", st.State, st.Healthy)
	}
}

// waitGroupRuns waits until a process of group pgid runs the command name
// (/proc/<pid>/comm), failing with the group's members after 10 s.
func waitGroupRuns(t *testing.T, pgid int, name string) {
	t.Helper()
	var seen []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		seen = seen[:0]
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
			c := strings.TrimSpace(string(comm))
			if c == name {
				return
			}
			seen = append(seen, c)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in process group %d after 10 s; it holds %v", name, pgid, seen)
		}
	}
}
