// Package testbed gives tests the real services of the test bed
// (scripts/testbed.sh): ZooKeeper, the Docker engine and Vault.
//
// A test asks for what it needs; when the service does not answer, the test
// is skipped with the reason, except under CI=true where it fails, so CI never
// passes by silently skipping.
//
//	func TestX(t *testing.T) {
//		zkAddr := testbed.ZooKeeper(t) // "127.0.0.1:2181"
//		...
//	}
package testbed

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Image is the test application's Docker image built by scripts/testbed.sh.
const Image = "flotilla/testapp:dev"

func missing(t testing.TB, what, how string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available (%s); run `scripts/testbed.sh up`", what, how)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", msg)
	}
	t.Skip(msg)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ZooKeeper returns the host:port of a running ZooKeeper (FLOTILLA_TEST_ZK,
// default 127.0.0.1:2181).
func ZooKeeper(t testing.TB) string {
	t.Helper()
	addr := env("FLOTILLA_TEST_ZK", "127.0.0.1:2181")
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		missing(t, "ZooKeeper", err.Error())
	}
	c.Close()
	return addr
}

// DockerSocket returns the path of a Docker engine's unix socket that answers
// /_ping (DOCKER_HOST, default unix:///var/run/docker.sock).
func DockerSocket(t testing.TB) string {
	t.Helper()
	sock := strings.TrimPrefix(env("DOCKER_HOST", "unix:///var/run/docker.sock"), "unix://")
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := hc.Get("http://docker/_ping")
	if err != nil {
		missing(t, "the Docker engine", err.Error())
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		missing(t, "the Docker engine", "ping answered "+resp.Status)
	}
	return sock
}

// Vault returns the address and root token of the Vault dev server
// (VAULT_ADDR and VAULT_TOKEN, defaults http://127.0.0.1:8200 and the test
// bed's token).
func Vault(t testing.TB) (addr, token string) {
	t.Helper()
	addr = env("VAULT_ADDR", "http://127.0.0.1:8200")
	token = env("VAULT_TOKEN", "flotilla-dev-root")
	hc := &http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get(addr + "/v1/sys/health")
	if err != nil {
		missing(t, "Vault", err.Error())
		return "", ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		missing(t, "Vault", "health answered "+resp.Status)
	}
	return addr, token
}
