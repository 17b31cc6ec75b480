package testbed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// DevVault is a Vault dev server of one test's own, for tests that stop and
// restart Vault (outages) without touching the shared one. A dev server
// keeps its data in memory: after Restart it is empty, but Token works.
type DevVault struct {
	t     testing.TB
	bin   string
	port  int
	Token string
	mu    sync.Mutex
	cmd   *exec.Cmd
	out   bytes.Buffer
}

// Addr is the server's URL.
func (d *DevVault) Addr() string { return fmt.Sprintf("http://127.0.0.1:%d", d.port) }

// StartVault starts a private Vault dev server on free loopback ports from
// the test bed's Vault binary (FLOTILLA_VAULT_BIN, default
// ~/.cache/flotilla/vault-build/vault); it is stopped when the test ends.
func StartVault(t testing.TB) *DevVault {
	t.Helper()
	Vault(t) // same skip/fail rule as the shared server
	bin := os.Getenv("FLOTILLA_VAULT_BIN")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache/flotilla/vault-build/vault")
	}
	if _, err := os.Stat(bin); err != nil {
		missing(t, "the Vault binary", err.Error())
	}
	tok := make([]byte, 8)
	rand.Read(tok)
	d := &DevVault{t: t, bin: bin, port: freePortPair(t), Token: "dev-" + hex.EncodeToString(tok)}
	d.Start()
	t.Cleanup(d.Stop)
	return d
}

// freePortPair finds p with p and p+1 free: a dev server also listens for
// cluster traffic on the next port.
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free pair of loopback ports")
	return 0
}

// Start (re)starts the server and waits until it is healthy.
func (d *DevVault) Start() {
	d.t.Helper()
	d.mu.Lock()
	cmd := exec.Command(d.bin, "server", "-dev",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", d.port), "-dev-root-token-id="+d.Token)
	cmd.Env = []string{"GODEBUG=x509negativeserial=1", "HOME=" + d.t.TempDir()}
	cmd.Stdout, cmd.Stderr = &d.out, &d.out
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		d.t.Fatalf("start vault: %v", err)
	}
	d.cmd = cmd
	d.mu.Unlock()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(d.Addr() + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.Stop()
	d.t.Fatalf("vault dev server on %d did not become healthy", d.port)
}

// Stop kills the server (an outage); Start brings it back.
func (d *DevVault) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	d.cmd = nil
}
