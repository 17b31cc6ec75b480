package testbed_test

// Smoke tests of the test bed itself: each real service does the one thing
// later tests rely on. They run in `make test` so its output shows the test
// bed is real.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/go-zookeeper/zk"
	vault "github.com/hashicorp/vault/api"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestZooKeeperZnodeRoundTrip(t *testing.T) {
	t.Parallel()
	addr := testbed.ZooKeeper(t)
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	path := "/flotilla-smoke-" + randomHex(t)
	want := []byte("hello from the test bed")
	if _, err := conn.Create(path, want, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	defer conn.Delete(path, -1)
	got, stat, err := conn.Get(path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	if string(got) != string(want) || stat.Version != 0 {
		t.Fatalf("read back %q (version %d), want %q (version 0)", got, stat.Version, want)
	}
	t.Logf("ZooKeeper %s: wrote and read %s", addr, path)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDockerRunsTestImageWithHostNetwork(t *testing.T) {
	t.Parallel()
	sock := testbed.DockerSocket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	port := freePort(t)
	taskID := "smoke." + randomHex(t)
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image: testbed.Image,
		Env:   []string{fmt.Sprintf("PORT0=%d", port), "MESOS_TASK_ID=" + taskID, "HOST=127.0.0.1"},
	}, &container.HostConfig{NetworkMode: "host", AutoRemove: false}, nil, nil, "flotilla-smoke-"+randomHex(t))
	if err != nil {
		t.Fatalf("create container from %s: %v", testbed.Image, err)
	}
	defer cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var body string
	for ctx.Err() == nil {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if want := taskID + " 127.0.0.1\n"; body != want {
		t.Fatalf("container answered %q on %s, want %q", body, url, want)
	}
	t.Logf("Docker: %s answered on host port %d", testbed.Image, port)
}

func TestVaultKV2RoundTrip(t *testing.T) {
	t.Parallel()
	addr, token := testbed.Vault(t)
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := "smoke/" + randomHex(t)
	value := randomHex(t)
	kv := c.KVv2("secret")
	if _, err := kv.Put(ctx, path, map[string]any{"password": value}); err != nil {
		t.Fatalf("put secret/%s: %v", path, err)
	}
	defer kv.DeleteMetadata(context.Background(), path)
	s, err := kv.Get(ctx, path)
	if err != nil {
		t.Fatalf("get secret/%s: %v", path, err)
	}
	if got, _ := s.Data["password"].(string); got != value {
		// Never print the value, even in a test bed smoke test.
		t.Fatalf("secret/%s read back a different value (len %d, want len %d)", path, len(got), len(value))
	}
	if s.VersionMetadata == nil || s.VersionMetadata.Version != 1 {
		t.Fatalf("secret/%s: want KV v2 version 1, got %+v", path, s.VersionMetadata)
	}
	t.Logf("Vault %s: KV v2 secret/%s written and read (version 1)", addr, path)
}
