package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// zkEnv is a unique root on the test bed's ZooKeeper, removed after the
// test, and a raw connection to inspect it.
type zkEnv struct {
	addr string
	root string
	raw  *zk.Conn
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

func newZKEnv(tb testing.TB) *zkEnv {
	tb.Helper()
	addr := testbed.ZooKeeper(tb)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := strings.Trim(nonName.ReplaceAllString(tb.Name(), "-"), "-")
	if len(name) > 60 {
		name = name[:60]
	}
	env := &zkEnv{addr: addr, root: "/flotilla-test/" + name + "-" + hex.EncodeToString(suffix)}
	raw, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(zkLogger{discardEntry()}))
	if err != nil {
		tb.Fatal(err)
	}
	env.raw = raw
	tb.Cleanup(func() {
		if err := deleteTree(raw, env.root); err != nil && !errors.Is(err, zk.ErrNoNode) {
			tb.Errorf("clean up %s: %v", env.root, err)
		}
		raw.Close()
	})
	return env
}

func (e *zkEnv) open(tb testing.TB, c clock.Clock, history int) *ZK {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := NewZK(ctx, ZKConfig{Servers: []string{e.addr}, Root: e.root, Clock: c, History: history})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

func deleteTree(c *zk.Conn, p string) error {
	kids, _, err := c.Children(p)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := deleteTree(c, path.Join(p, k)); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return c.Delete(p, -1)
}

// dumpTree returns every node under p with its data, as an operator's
// `zkCli.sh` dump would show it.
func dumpTree(c *zk.Conn, p string) (map[string]string, error) {
	out := map[string]string{}
	var walk func(string) error
	walk = func(p string) error {
		data, _, err := c.Get(p)
		if err != nil {
			return err
		}
		out[p] = string(data)
		kids, _, err := c.Children(p)
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := walk(path.Join(p, k)); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(p)
}

func TestZKConformance(t *testing.T) {
	testbed.ZooKeeper(t)
	runConformance(t, func(t *testing.T, c clock.Clock, history int) Store {
		return newZKEnv(t).open(t, c, history)
	})
}

func putMany(t testing.TB, s Store, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a := testApp(fmt.Sprintf("/team%d/svc-%04d", i%10, i))
			a.Instances = i % 7
			if _, err := s.PutApp(ctx, a, CreateOnly); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// 1,000 apps are 1,000 znodes under apps/, and a new store on the same root
// (a restarted or newly elected Flotilla) sees every one of them.
func TestZKOneNodePerAppAndRestart(t *testing.T) {
	t.Parallel()
	env := newZKEnv(t)
	s := env.open(t, clock.NewFake(epoch), 3)
	const n = 1000
	putMany(t, s, n)

	kids, _, err := env.raw.Children(env.root + "/apps")
	must(t, err)
	if len(kids) != n {
		t.Fatalf("apps/ has %d children, want %d", len(kids), n)
	}
	if !contains(kids, "team3_svc-0003") {
		t.Fatalf("app /team3/svc-0003 is not the node apps/team3_svc-0003: %v", kids[:5])
	}
	s.Close()

	restarted := env.open(t, clock.Real{}, 3)
	list, err := restarted.ListApps(ctxT(t))
	must(t, err)
	if len(list) != n {
		t.Fatalf("after restart %d apps, want %d", len(list), n)
	}
	for _, a := range list {
		var i int
		if _, err := fmt.Sscanf(a.App.ID[strings.LastIndex(a.App.ID, "-")+1:], "%d", &i); err != nil {
			t.Fatalf("unexpected id %s", a.App.ID)
		}
		if a.App.Instances != i%7 || a.Revision != 1 || a.App.Cmd != "sleep 1000" {
			t.Fatalf("after restart %s = instances %d rev %d", a.App.ID, a.App.Instances, a.Revision)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The history is pruned in the same multi-op as the write: the versions
// node never holds more than N children.
func TestZKHistoryPrunedToN(t *testing.T) {
	t.Parallel()
	env := newZKEnv(t)
	c := clock.NewFake(epoch)
	s := env.open(t, c, 4)
	ctx := ctxT(t)
	rev := CreateOnly
	for i := range 10 {
		a := testApp("/prod/web")
		a.Instances = i
		r, err := s.PutApp(ctx, a, rev)
		must(t, err)
		rev = r.Revision
		c.Step(time.Second)
		kids, _, err := env.raw.Children(env.root + "/versions/prod_web")
		must(t, err)
		if want := min(i+1, 4); len(kids) != want {
			t.Fatalf("after %d writes versions/prod_web has %d children, want %d", i+1, len(kids), want)
		}
	}
}

// A write is one multi-op: when its last op (pruning the oldest version)
// fails, the app update and the new history node are rolled back too. The
// prune is made to fail by giving the oldest version node a child.
func TestZKNothingHalfWritten(t *testing.T) {
	t.Parallel()
	env := newZKEnv(t)
	c := clock.NewFake(epoch)
	s := env.open(t, c, 1)
	ctx := ctxT(t)
	cur, err := s.PutApp(ctx, testApp("/web"), CreateOnly)
	must(t, err)
	_, err = env.raw.Create(env.root+"/versions/web/"+cur.App.Version+"/pin", nil, 0, zk.WorldACL(zk.PermAll))
	must(t, err)
	c.Step(time.Second)
	upd := cur.App
	upd.Instances = 42
	if _, err := s.PutApp(ctx, upd, cur.Revision); err == nil {
		t.Fatal("the write succeeded although its prune op cannot")
	}
	after, err := s.GetApp(ctx, "/web")
	must(t, err)
	if after.Revision != cur.Revision || after.App.Instances == 42 {
		t.Fatalf("the app node was written although its multi-op failed: rev %d instances %d", after.Revision, after.App.Instances)
	}
	vs, err := s.ListVersions(ctx, "/web")
	must(t, err)
	if len(vs) != 1 || vs[0] != cur.App.Version {
		t.Fatalf("versions = %v, want only %s", vs, cur.App.Version)
	}
}

// Issue 7: a dump of Flotilla's ZooKeeper tree holds secret references,
// never values.
func TestZKTreeHoldsSecretReferencesOnly(t *testing.T) {
	t.Parallel()
	env := newZKEnv(t)
	s := env.open(t, clock.NewFake(epoch), 3)
	ctx := ctxT(t)
	canary := "canary-" + hex.EncodeToString([]byte(t.Name()))[:16]
	a := testApp("/shop/checkout")
	a.Env["DB_PASSWORD"] = appspec.EnvValue{Secret: "db", Value: canary} // as if a resolver had filled it in
	a.Secrets = map[string]appspec.Secret{"db": {Source: "secret/shop/db#password"}}
	r, err := s.PutApp(ctx, a, CreateOnly)
	must(t, err)
	_, err = s.PutApp(ctx, r.App, r.Revision)
	must(t, err)

	tree, err := dumpTree(env.raw, env.root)
	must(t, err)
	refs := 0
	for p, data := range tree {
		if strings.Contains(data, canary) {
			t.Errorf("node %s holds the secret value", p)
		}
		if strings.Contains(data, `"DB_PASSWORD":{"secret":"db"}`) && strings.Contains(data, `"secret/shop/db#password"`) {
			refs++
		}
	}
	// apps/shop_checkout and its two history versions.
	if refs != 3 {
		t.Fatalf("%d nodes hold the secret reference, want 3; tree: %v", refs, keys(tree))
	}
}

func keys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func discardEntry() *logrus.Entry { return logging.Component(logging.Discard(), "test") }

func TestZKConnectHonoursDeadline(t *testing.T) {
	t.Parallel()
	testbed.ZooKeeper(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// Port 1 on loopback: nothing listens, so no session can start.
	_, err := NewZK(ctx, ZKConfig{Servers: []string{"127.0.0.1:1"}, Root: "/flotilla-test/never"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("NewZK returned after %v, long past its deadline", time.Since(start))
	}
}

func TestZKConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  ZKConfig
	}{
		{"no servers", ZKConfig{}},
		{"relative root", ZKConfig{Servers: []string{"127.0.0.1:2181"}, Root: "flotilla"}},
		{"root slash", ZKConfig{Servers: []string{"127.0.0.1:2181"}, Root: "/"}},
		{"unclean root", ZKConfig{Servers: []string{"127.0.0.1:2181"}, Root: "/a//b/"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewZK(context.Background(), tc.cfg); err == nil || !strings.HasPrefix(err.Error(), "store: ") {
				t.Fatalf("error = %v, want a store: error", err)
			}
		})
	}
}

// TestZKBrokenTaskRecords: one undecodable task record (or one without a
// task id) is reported; every other record of every app is listed.
func TestZKBrokenTaskRecords(t *testing.T) {
	testbed.ZooKeeper(t)
	s := newZKEnv(t).open(t, nil, 0)
	ctx := ctxT(t)
	for _, r := range []TaskRecord{
		{TaskID: "web.1", AppID: "/web", AgentID: "a1", State: "TASK_RUNNING", Host: "h1", Ports: []uint64{31000}},
		{TaskID: "api.1", AppID: "/api", AgentID: "a1", State: "TASK_RUNNING"},
	} {
		must(t, s.PutTask(ctx, r))
	}
	writeRaw(t, s, "task", "web/web.bad", []byte(`{"taskId":"web.bad","appId":`))
	writeRaw(t, s, "task", "api/api.noid", []byte(`{"appId":"/api"}`))
	recs, err := s.ListAllTasks(ctx)
	items, ok := BrokenItems(err)
	if !ok || len(items) != 2 || items[0].Key != "api/api.noid" || items[1].Key != "web/web.bad" {
		t.Fatalf("list all tasks: err %v; want a BrokenError naming api/api.noid and web/web.bad", err)
	}
	if len(recs) != 2 || recs[0].TaskID != "api.1" || recs[1].TaskID != "web.1" || recs[1].Ports[0] != 31000 {
		t.Fatalf("records beside the broken ones: %+v", recs)
	}
}

// TestZKOneNodePerGroup: each group record is its own znode under groups/,
// keyed like apps, the root group as groups/_root; a new store on the same
// root reads them all.
func TestZKOneNodePerGroup(t *testing.T) {
	t.Parallel()
	env := newZKEnv(t)
	s := env.open(t, clock.NewFake(epoch), 3)
	ctx := ctxT(t)
	for _, g := range []StoredGroup{{ID: "/"}, {ID: "/prod/shop", Dependencies: []string{"/prod/db"}}, {ID: "/root"}} {
		_, err := s.PutGroup(ctx, g)
		must(t, err)
	}
	kids, _, err := env.raw.Children(env.root + "/groups")
	must(t, err)
	slices.Sort(kids)
	if got := strings.Join(kids, " "); got != "_root prod_shop root" {
		t.Fatalf("groups/ holds %v, want _root prod_shop root", kids)
	}
	data, _, err := env.raw.Get(env.root + "/groups/prod_shop")
	must(t, err)
	if want := `{"id":"/prod/shop","dependencies":["/prod/db"],"version":"2026-11-28T06:00:00.000Z"}`; string(data) != want {
		t.Fatalf("groups/prod_shop = %s, want %s", data, want)
	}
	s.Close()

	list, err := env.open(t, clock.Real{}, 3).ListGroups(ctx)
	must(t, err)
	if len(list) != 3 || list[0].ID != "/" || list[1].Dependencies[0] != "/prod/db" {
		t.Fatalf("after restart: %+v", list)
	}
}

// TestZKBrokenGroupRecords: an undecodable group node (or one without a
// valid id) is reported; every other group is listed, and a put replaces
// a broken record.
func TestZKBrokenGroupRecords(t *testing.T) {
	t.Parallel()
	s := newZKEnv(t).open(t, clock.NewFake(epoch), 3)
	ctx := ctxT(t)
	for _, id := range []string{"/", "/prod"} {
		_, err := s.PutGroup(ctx, StoredGroup{ID: id})
		must(t, err)
	}
	writeRaw(t, s, "group", "bad", []byte(`{"id":"/bad","dependencies":[`))
	writeRaw(t, s, "group", "empty", []byte(`{}`))
	writeRaw(t, s, "group", "wrong", []byte(`{"id":"/Wrong_Id"}`))
	list, err := s.ListGroups(ctx)
	items, ok := BrokenItems(err)
	if !ok || len(items) != 3 || items[0].Kind != "group" || items[0].Key != "bad" || items[1].Key != "empty" || items[2].Key != "wrong" {
		t.Fatalf("list groups: err %v; want a BrokenError naming groups bad, empty and wrong", err)
	}
	if len(list) != 2 || list[0].ID != "/" || list[1].ID != "/prod" {
		t.Fatalf("groups beside the broken ones: %+v; want / and /prod", list)
	}
	_, err = s.PutGroup(ctx, StoredGroup{ID: "/bad"})
	must(t, err)
	must(t, s.DeleteGroup(ctx, "/empty"))
	list, err = s.ListGroups(ctx)
	if items, ok := BrokenItems(err); !ok || len(items) != 1 || items[0].Key != "wrong" {
		t.Fatalf("after replacing bad and deleting empty: err %v; want only wrong broken", err)
	}
	if len(list) != 3 || list[1].ID != "/bad" {
		t.Fatalf("groups after the repair: %+v", list)
	}
}
