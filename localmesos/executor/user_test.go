package executor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// userSandbox is a sandbox a task switched to another user can reach:
// t.TempDir's directories are 0700, a Mesos work_dir is 0755.
func userSandbox(t *testing.T) string {
	t.Helper()
	top := t.TempDir() // <TMPDIR>/<test name><n>/001
	for _, d := range []string{filepath.Dir(top), top} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sb := filepath.Join(top, "sandbox")
	if err := os.Mkdir(sb, 0o755); err != nil {
		t.Fatal(err)
	}
	return sb
}

// testUser creates a real user for the test (useradd) and removes it after.
func testUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("switching users needs root; the test bed runs as root")
	}
	name := fmt.Sprintf("flt%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestProcessRunsAsCommandUser(t *testing.T) {
	t.Parallel()
	u := testUser(t)
	p := newTestProcess(t)
	rec := newRecorder()
	ci := shellCmd(`id -un; id -u; id -g; echo data > "$MESOS_SANDBOX/written"`)
	ci.User = &u.Username
	tk := processTask(t, "user.1", ci)
	tk.Sandbox = userSandbox(t)
	if err := p.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatal(err)
	}
	if st := rec.waitTerminal(t, "user.1", 10*time.Second); st.State != mesos.TASK_FINISHED {
		errOut, _ := os.ReadFile(filepath.Join(tk.Sandbox, "stderr"))
		t.Fatalf("state %s %q; stderr %q", st.State, st.Message, errOut)
	}
	out, err := os.ReadFile(filepath.Join(tk.Sandbox, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	if want := u.Username + "\n" + u.Uid + "\n" + u.Gid + "\n"; string(out) != want {
		t.Fatalf("the task ran as %q, want %q", out, want)
	}
	fi, err := os.Stat(filepath.Join(tk.Sandbox, "written"))
	if err != nil {
		t.Fatalf("the task could not write its sandbox: %v", err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; fmt.Sprint(uid) != u.Uid {
		t.Fatalf("file written by the task belongs to uid %d, want %s", uid, u.Uid)
	}
}

func TestProcessMissingUserFailsTask(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t)
	rec := newRecorder()
	ci := shellCmd("exit 0")
	ci.User = strPtr("no-such-user-flotilla")
	tk := processTask(t, "user.2", ci)
	err := p.Launch(context.Background(), tk, rec.report)
	if err == nil {
		t.Fatal("launch as a missing user succeeded")
	}
	st := rec.waitTerminal(t, "user.2", 10*time.Second)
	if st.State != mesos.TASK_FAILED || st.Reason == nil || *st.Reason != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
		!strings.Contains(st.Message, "Failed to get user information for 'no-such-user-flotilla'") {
		t.Fatalf("got %s %v %q, want TASK_FAILED REASON_CONTAINER_LAUNCH_FAILED naming the user", st.State, st.Reason, st.Message)
	}
}
