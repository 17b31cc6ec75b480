package executor

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// testappPath is the cmd/testapp binary the process tests run: the test
// bed's ($FLOTILLA_TESTAPP or /tmp/flotilla-testbed/testapp), else one built
// here.
var testappPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	for _, p := range []string{os.Getenv("FLOTILLA_TESTAPP"), "/tmp/flotilla-testbed/testapp"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			testappPath = p
			break
		}
	}
	if testappPath == "" {
		dir, err := os.MkdirTemp("", "executor-testapp")
		if err != nil {
			fmt.Fprintln(os.Stderr, "executor tests: temp dir:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		testappPath = filepath.Join(dir, "testapp")
		out, err := exec.Command("go", "build", "-o", testappPath, "github.com/flotilla-sched/flotilla/cmd/testapp").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "executor tests: building cmd/testapp: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// nextPort hands out ports in 31000-32000 so parallel tests (and other
// packages' tests, which start elsewhere in the range) do not collide; a
// port someone is already using is skipped.
var portSeq atomic.Int32

func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		p := 31600 + int((portSeq.Add(1)+int32(os.Getpid()%20)*10)%400)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port in 31600-31999")
	return 0
}
