package testbed

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
)

var userSeq atomic.Int32

// User creates a real user on this machine for the test (useradd, no home,
// no login shell, its own group) and deletes it when the test ends. It
// needs root, which the test bed has; without it the test is skipped (CI:
// fails), like a missing service.
func User(t testing.TB) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root (to create a user)", "running as uid "+strconv.Itoa(os.Geteuid()))
	}
	name := "flt" + strconv.Itoa(os.Getpid()%100000) + "x" + strconv.Itoa(int(userSeq.Add(1)))
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

// OpenTempDir is a t.TempDir that other users can enter (0755 up to the
// system's temporary directory), as a Mesos agent's work_dir is: a task
// run as a User must reach its sandbox inside it. t.TempDir's own
// directories are 0700.
func OpenTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir() // <TMPDIR>/<test name><n>/<nnn>
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
