package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rootClient is the test's own Vault client with the root token, used to
// set up mounts, policies and secrets.
func rootClient(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

type bed struct {
	addr, token string
	root        *api.Client
	prefix      string // unique per test, under secret/
}

func newBed(t testing.TB) *bed {
	t.Helper()
	addr, token := testbed.Vault(t)
	b := &bed{addr: addr, token: token, root: rootClient(t, addr, token), prefix: "flotilla-test-" + randHex(t, 6)}
	t.Cleanup(func() {
		_, _ = b.root.Logical().Delete("secret/metadata/" + b.prefix)
	})
	return b
}

// putV2 writes a new version of secret/<prefix>/<name> and returns its path.
func (b *bed) putV2(t testing.TB, name string, data map[string]any) string {
	t.Helper()
	p := "secret/" + b.prefix + "/" + name
	if _, err := b.root.KVv2("secret").Put(testCtx(t), b.prefix+"/"+name, data); err != nil {
		t.Fatalf("put %s: %v", p, err)
	}
	t.Cleanup(func() { _ = b.root.KVv2("secret").DeleteMetadata(context.Background(), b.prefix+"/"+name) })
	return p
}

// kv1Mount enables a KV v1 engine at a unique path and returns it.
func (b *bed) kv1Mount(t testing.TB) string {
	t.Helper()
	m := "kv1-" + randHex(t, 4)
	if err := b.root.Sys().Mount(m, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatalf("mount kv1: %v", err)
	}
	t.Cleanup(func() { _ = b.root.Sys().Unmount(m) })
	return m
}

func (b *bed) tokenConfig() Config {
	return Config{Address: b.addr, Token: b.token}
}

func newVault(t testing.TB, cfg Config, clk clock.Clock, log *logrus.Entry) *Vault {
	t.Helper()
	if log == nil {
		log = logging.Component(logging.Discard(), "secrets")
	}
	v, err := New(cfg, clk, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func writeFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// approle enables AppRole at a unique mount with a role whose policy reads
// only readable (KV v2 paths under secret/) and returns a Config for it.
func (b *bed) approle(t testing.TB, tokenTTL, maxTTL string, readable ...string) Config {
	t.Helper()
	mount := "approle-" + randHex(t, 4)
	if err := b.root.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	t.Cleanup(func() { _ = b.root.Sys().DisableAuth(mount) })
	var pol bytes.Buffer
	for _, p := range readable {
		rest := p[len("secret/"):]
		fmt.Fprintf(&pol, "path %q { capabilities = [\"read\"] }\npath %q { capabilities = [\"read\"] }\n",
			"secret/data/"+rest, "secret/metadata/"+rest)
	}
	policy := "flotilla-test-" + randHex(t, 4)
	if err := b.root.Sys().PutPolicy(policy, pol.String()); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	t.Cleanup(func() { _ = b.root.Sys().DeletePolicy(policy) })
	role := "auth/" + mount + "/role/flotilla"
	if _, err := b.root.Logical().Write(role, map[string]any{
		"token_policies": []string{policy}, "token_ttl": tokenTTL, "token_max_ttl": maxTTL,
	}); err != nil {
		t.Fatalf("write role: %v", err)
	}
	rid, err := b.root.Logical().Read(role + "/role-id")
	if err != nil {
		t.Fatalf("role-id: %v", err)
	}
	sid, err := b.root.Logical().Write(role+"/secret-id", nil)
	if err != nil {
		t.Fatalf("secret-id: %v", err)
	}
	return Config{
		Address:      b.addr,
		AppRoleMount: mount,
		RoleIDFile:   writeFile(t, rid.Data["role_id"].(string)+"\n"),
		SecretIDFile: writeFile(t, sid.Data["secret_id"].(string)+"\n"),
	}
}

// devVault adapts testbed.DevVault to this package's tests.
type devVault struct{ *testbed.DevVault }

func (d devVault) addr() string { return d.Addr() }
func (d devVault) start()       { d.Start() }
func (d devVault) stop()        { d.Stop() }

func startDevVault(t testing.TB) devVault { return devVault{testbed.StartVault(t)} }

// countingBackend counts reads that reach the real backend.
type countingBackend struct {
	Backend
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingBackend) Read(ctx context.Context, path string) (Entry, error) {
	c.mu.Lock()
	if c.reads == nil {
		c.reads = map[string]int{}
	}
	c.reads[path]++
	c.mu.Unlock()
	return c.Backend.Read(ctx, path)
}

func (c *countingBackend) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[path]
}

func fakeClock() *clock.Fake { return clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

type apiTokenRequest = api.TokenCreateRequest
