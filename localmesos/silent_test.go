package localmesos

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// TestSandboxesLeftOnDiskAreLogged: a master that cannot remove its work
// directory on Close says which directory stays on disk, with the error
// (os.RemoveAll's error was dropped). An immutable file (chattr +i, which
// even root cannot remove) stands in for whatever holds a sandbox.
func TestSandboxesLeftOnDiskAreLogged(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Fatalf("chattr (e2fsprogs) is needed: %v", err)
	}
	l, hook := logtest.NewNullLogger()
	m, err := Start(context.Background(), Config{Agents: 1, WorkDir: t.TempDir(), Log: l,
		Executor: func(string) (executor.Executor, error) { return executor.NewSimulated(nil), nil }})
	if err != nil {
		t.Fatal(err)
	}
	if m.workDir == "" {
		t.Fatal("the master made no work directory")
	}
	stuck := filepath.Join(m.workDir, "stuck")
	if err := os.WriteFile(stuck, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", stuck).CombinedOutput(); err != nil {
		m.Close()
		t.Fatalf("chattr +i %s (the file system must support it): %v: %s", stuck, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("chattr", "-i", stuck).CombinedOutput(); err != nil {
			t.Errorf("chattr -i %s: %v: %s", stuck, err, out)
		}
		if err := os.RemoveAll(m.workDir); err != nil {
			t.Errorf("remove %s: %v", m.workDir, err)
		}
	})
	m.Close()
	var logged []string
	for _, e := range hook.AllEntries() {
		logged = append(logged, e.Message)
		if strings.Contains(e.Message, "sandboxes left on disk") {
			if e.Data["dir"] != m.workDir {
				t.Errorf("dir field %v, want %s", e.Data["dir"], m.workDir)
			}
			if err, _ := e.Data[logrus.ErrorKey].(error); !errors.Is(err, os.ErrPermission) {
				t.Errorf("error field %v, want the removal's permission error", e.Data[logrus.ErrorKey])
			}
			return
		}
	}
	t.Fatalf("a work directory left on disk is not logged; logged %q", logged)
}
