package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

func TestProcessRunsAsCommandUser(t *testing.T) {
	t.Parallel()
	u := testbed.User(t)
	p := newTestProcess(t)
	rec := newRecorder()
	ci := shellCmd(`id -un; id -u; id -g; echo data > "$MESOS_SANDBOX/written"`)
	ci.User = &u.Username
	tk := processTask(t, "user.1", ci)
	tk.Sandbox = testbed.OpenTempDir(t)
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
		!strings.Contains(st.Message, "failed to get user information for 'no-such-user-flotilla'") {
		t.Fatalf("got %s %v %q, want TASK_FAILED REASON_CONTAINER_LAUNCH_FAILED naming the user", st.State, st.Reason, st.Message)
	}
}
