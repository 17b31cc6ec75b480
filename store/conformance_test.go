package store

import (
	"context"
	"errors"
	"path"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/go-zookeeper/zk"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// factory builds an empty store for one test. Each ZK store gets its own
// root, so tests run in parallel.
type factory func(t *testing.T, c clock.Clock, history int) Store

var epoch = time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)

func testApp(id string) *appspec.App {
	a := appspec.Defaults()
	a.ID = id
	a.Cmd = "sleep 1000"
	a.CPUs = 0.1
	a.Env = map[string]appspec.EnvValue{"MODE": {Value: "prod"}}
	a.Normalize()
	return a
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runConformance is the behaviour every Store must have.
func runConformance(t *testing.T, newStore factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, s Store, c *clock.Fake)
	}{
		{"create then get returns what was stored", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			in := testApp("prod/shop/web")
			in.Instances = 3
			put, err := s.PutApp(ctx, in, CreateOnly)
			must(t, err)
			if put.Revision != 1 || put.App.ID != "/prod/shop/web" || put.App.Version != "2026-11-28T06:00:00.000Z" {
				t.Fatalf("put returned revision %d id %q version %q; want 1 /prod/shop/web 2026-11-28T06:00:00.000Z", put.Revision, put.App.ID, put.App.Version)
			}
			if in.Version != "" || in.ID != "/prod/shop/web" {
				t.Fatalf("PutApp modified its argument: version %q", in.Version)
			}
			got, err := s.GetApp(ctx, "/prod/shop/web/")
			must(t, err)
			if got.Revision != 1 || got.App.Instances != 3 || got.App.Env["MODE"].Value != "prod" || got.App.Version != put.App.Version {
				t.Fatalf("get = rev %d %+v", got.Revision, got.App)
			}
			got.App.Instances = 99
			again, err := s.GetApp(ctx, "/prod/shop/web")
			must(t, err)
			if again.App.Instances != 3 {
				t.Fatal("a returned app aliases the stored one")
			}
		}},
		{"create-only refuses an existing app", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			_, err := s.PutApp(ctx, testApp("/a"), CreateOnly)
			must(t, err)
			_, err = s.PutApp(ctx, testApp("/a"), CreateOnly)
			wantIs(t, err, ErrConflict)
		}},
		{"compare-and-set: a stale revision loses and changes nothing", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			first, err := s.PutApp(ctx, testApp("/a"), CreateOnly)
			must(t, err)
			upd := first.App
			upd.Instances = 2
			second, err := s.PutApp(ctx, upd, first.Revision)
			must(t, err)
			if second.Revision != first.Revision+1 {
				t.Fatalf("revision after update = %d, want %d", second.Revision, first.Revision+1)
			}
			upd.Instances = 7
			_, err = s.PutApp(ctx, upd, first.Revision)
			wantIs(t, err, ErrConflict)
			got, err := s.GetApp(ctx, "/a")
			must(t, err)
			if got.App.Instances != 2 || got.Revision != second.Revision {
				t.Fatalf("after lost CAS: instances %d rev %d; want 2 rev %d", got.App.Instances, got.Revision, second.Revision)
			}
		}},
		{"concurrent compare-and-set: exactly one writer wins", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			base, err := s.PutApp(ctx, testApp("/race"), CreateOnly)
			must(t, err)
			const writers = 8
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := testApp("/race")
					a.Instances = 10 + i
					_, errs[i] = s.PutApp(ctx, a, base.Revision)
				}()
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, ErrConflict):
					t.Fatalf("unexpected error: %v", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d writers won the same revision, want 1", wins)
			}
		}},
		{"expected revision of a missing app is not found", func(t *testing.T, s Store, c *clock.Fake) {
			_, err := s.PutApp(ctxT(t), testApp("/nope"), 3)
			wantIs(t, err, ErrNotFound)
		}},
		{"any revision creates and overwrites", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			_, err := s.PutApp(ctx, testApp("/a"), AnyRevision)
			must(t, err)
			c.Step(time.Second)
			r, err := s.PutApp(ctx, testApp("/a"), AnyRevision)
			must(t, err)
			if r.Revision != 2 {
				t.Fatalf("revision = %d, want 2", r.Revision)
			}
		}},
		{"missing things are ErrNotFound", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			_, err := s.GetApp(ctx, "/missing")
			wantIs(t, err, ErrNotFound)
			wantIs(t, s.DeleteApp(ctx, "/missing", AnyRevision), ErrNotFound)
			_, err = s.ListVersions(ctx, "/missing")
			wantIs(t, err, ErrNotFound)
			_, err = s.GetVersion(ctx, "/missing", "2026-11-28T06:00:00.000Z")
			wantIs(t, err, ErrNotFound)
			_, err = s.GetDeployment(ctx, "d1")
			wantIs(t, err, ErrNotFound)
			wantIs(t, s.DeleteDeployment(ctx, "d1"), ErrNotFound)
			wantIs(t, s.DeleteTask(ctx, "/missing", "t1"), ErrNotFound)
			wantIs(t, s.DeleteGroup(ctx, "/missing"), ErrNotFound)
			wantIs(t, s.DeleteGroup(ctx, "/"), ErrNotFound)
		}},
		{"delete honours the revision and removes the history", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			first, err := s.PutApp(ctx, testApp("/a"), CreateOnly)
			must(t, err)
			c.Step(time.Second)
			_, err = s.PutApp(ctx, first.App, first.Revision)
			must(t, err)
			wantIs(t, s.DeleteApp(ctx, "/a", first.Revision), ErrConflict)
			must(t, s.DeleteApp(ctx, "/a", first.Revision+1))
			_, err = s.GetApp(ctx, "/a")
			wantIs(t, err, ErrNotFound)
			_, err = s.ListVersions(ctx, "/a")
			wantIs(t, err, ErrNotFound)
			// A new app under the same id starts afresh.
			again, err := s.PutApp(ctx, testApp("/a"), CreateOnly)
			must(t, err)
			vs, err := s.ListVersions(ctx, "/a")
			must(t, err)
			if again.Revision != 1 || len(vs) != 1 {
				t.Fatalf("recreated app: revision %d, %d versions; want 1, 1", again.Revision, len(vs))
			}
		}},
		{"list is sorted by id and holds nested ids", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			ids := []string{"/a0", "/a/b", "/prod/shop/web", "/a-b", "/a.b", "/z"}
			for _, id := range ids {
				_, err := s.PutApp(ctx, testApp(id), CreateOnly)
				must(t, err)
			}
			list, err := s.ListApps(ctx)
			must(t, err)
			var got []string
			for _, a := range list {
				got = append(got, a.App.ID)
				if a.Revision != 1 {
					t.Errorf("%s revision %d, want 1", a.App.ID, a.Revision)
				}
			}
			want := "/a-b /a.b /a/b /a0 /prod/shop/web /z"
			if strings.Join(got, " ") != want {
				t.Fatalf("list = %v, want %s", got, want)
			}
		}},
		{"history keeps the newest N versions for rollback", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			rev := CreateOnly
			var versions []string
			for i := 1; i <= 5; i++ {
				a := testApp("/web")
				a.Instances = i
				r, err := s.PutApp(ctx, a, rev)
				must(t, err)
				rev = r.Revision
				versions = append(versions, r.App.Version)
				c.Step(time.Minute)
			}
			got, err := s.ListVersions(ctx, "/web")
			must(t, err)
			want := []string{versions[4], versions[3], versions[2]} // history is 3
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("versions = %v, want %v", got, want)
			}
			old, err := s.GetVersion(ctx, "/web", versions[2])
			must(t, err)
			if old.Instances != 3 || old.Version != versions[2] {
				t.Fatalf("version %s has instances %d version %q, want 3", versions[2], old.Instances, old.Version)
			}
			_, err = s.GetVersion(ctx, "/web", versions[1])
			wantIs(t, err, ErrNotFound)
		}},
		{"versions strictly increase even when the clock does not move", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			a, err := s.PutApp(ctx, testApp("/web"), AnyRevision)
			must(t, err)
			b, err := s.PutApp(ctx, testApp("/web"), AnyRevision)
			must(t, err)
			c.Step(-time.Hour)
			d, err := s.PutApp(ctx, testApp("/web"), AnyRevision)
			must(t, err)
			if !(a.App.Version < b.App.Version && b.App.Version < d.App.Version) {
				t.Fatalf("versions %s %s %s do not increase", a.App.Version, b.App.Version, d.App.Version)
			}
		}},
		{"an app over the size limit is refused and nothing is written", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			big := testApp("/big")
			big.Env["BLOB"] = appspec.EnvValue{Value: strings.Repeat("x", MaxAppBytes)}
			_, err := s.PutApp(ctx, big, CreateOnly)
			wantIs(t, err, ErrTooLarge)
			_, err = s.GetApp(ctx, "/big")
			wantIs(t, err, ErrNotFound)
			// Just under the limit fits, twice in one write (app + history).
			big.Env["BLOB"] = appspec.EnvValue{Value: strings.Repeat("x", MaxAppBytes-2048)}
			_, err = s.PutApp(ctx, big, CreateOnly)
			must(t, err)
		}},
		{"invalid ids are refused", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			for _, id := range []string{"/", "/Web", "/a_b", "/-a"} {
				if _, err := s.PutApp(ctx, testApp(id), AnyRevision); err == nil {
					t.Errorf("id %q was accepted", id)
				}
			}
			list, err := s.ListApps(ctx)
			must(t, err)
			if len(list) != 0 {
				t.Fatalf("%d apps stored after refusals", len(list))
			}
		}},
		{"a secret env entry is stored as its reference only", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			a := testApp("/db-client")
			a.Env["DB_PASSWORD"] = appspec.EnvValue{Secret: "db", Value: "resolved-value-must-not-persist"}
			a.Secrets = map[string]appspec.Secret{"db": {Source: "secret/db#password"}}
			_, err := s.PutApp(ctx, a, CreateOnly)
			must(t, err)
			got, err := s.GetApp(ctx, "/db-client")
			must(t, err)
			if e := got.App.Env["DB_PASSWORD"]; e != (appspec.EnvValue{Secret: "db"}) {
				t.Fatalf("stored env = %+v, want the reference only", e)
			}
			if got.App.Secrets["db"].Source != "secret/db#password" {
				t.Fatalf("secret source lost: %+v", got.App.Secrets)
			}
		}},
		{"deployments round-trip", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			d := &Deployment{ID: "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43", Version: "2026-11-28T06:00:00.000Z",
				AffectedApps: []string{"/web"}, CurrentStep: 1,
				Steps: []DeploymentStep{{Actions: []DeploymentAction{{Action: "StartApplication", App: "/web"}}}, {Actions: []DeploymentAction{{Action: "ScaleApplication", App: "/web"}}}},
				State: []byte(`{"healthy":2}`)}
			must(t, s.PutDeployment(ctx, d))
			must(t, s.PutDeployment(ctx, &Deployment{ID: "0-first", AffectedApps: []string{"/db"}}))
			d.CurrentStep = 2
			must(t, s.PutDeployment(ctx, d))
			got, err := s.GetDeployment(ctx, d.ID)
			must(t, err)
			if got.CurrentStep != 2 || len(got.Steps) != 2 || got.Steps[1].Actions[0].Action != "ScaleApplication" || string(got.State) != `{"healthy":2}` {
				t.Fatalf("deployment = %+v", got)
			}
			list, err := s.ListDeployments(ctx)
			must(t, err)
			if len(list) != 2 || list[0].ID != "0-first" {
				t.Fatalf("list = %+v", list)
			}
			must(t, s.DeleteDeployment(ctx, "0-first"))
			list, err = s.ListDeployments(ctx)
			must(t, err)
			if len(list) != 1 {
				t.Fatalf("%d deployments after delete, want 1", len(list))
			}
			if err := s.PutDeployment(ctx, &Deployment{ID: "a/b"}); err == nil {
				t.Fatal("a deployment id with / was accepted")
			}
		}},
		{"groups round-trip: put, list by id, delete", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			in := StoredGroup{ID: "prod/shop/", Dependencies: []string{"prod/db", "/prod/cache/"}, Version: "ignored"}
			shop, err := s.PutGroup(ctx, in)
			must(t, err)
			want := StoredGroup{ID: "/prod/shop", Dependencies: []string{"/prod/db", "/prod/cache"}, Version: "2026-11-28T06:00:00.000Z"}
			if !reflect.DeepEqual(shop, want) {
				t.Fatalf("put returned %+v, want %+v", shop, want)
			}
			if in.ID != "prod/shop/" || in.Dependencies[0] != "prod/db" || in.Version != "ignored" {
				t.Fatalf("PutGroup modified its argument: %+v", in)
			}
			// "/root" and the root group "/" are two records.
			for _, id := range []string{"/prod", "/", "/root"} {
				_, err := s.PutGroup(ctx, StoredGroup{ID: id})
				must(t, err)
			}
			list, err := s.ListGroups(ctx)
			must(t, err)
			if len(list) != 4 || !reflect.DeepEqual(list[2], shop) {
				t.Fatalf("list = %+v; want 4 groups with %+v third", list, shop)
			}
			var ids []string
			for _, g := range list {
				ids = append(ids, g.ID)
			}
			if got := strings.Join(ids, " "); got != "/ /prod /prod/shop /root" {
				t.Fatalf("list ids = %s, want / /prod /prod/shop /root", got)
			}
			list[2].Dependencies[0] = "/changed"
			again, err := s.ListGroups(ctx)
			must(t, err)
			if again[2].Dependencies[0] != "/prod/db" {
				t.Fatal("a listed group aliases the stored one")
			}
			must(t, s.DeleteGroup(ctx, "/prod/shop/"))
			must(t, s.DeleteGroup(ctx, "/"))
			wantIs(t, s.DeleteGroup(ctx, "/prod/shop"), ErrNotFound)
			list, err = s.ListGroups(ctx)
			must(t, err)
			if len(list) != 2 || list[0].ID != "/prod" || list[1].ID != "/root" {
				t.Fatalf("list after deletes = %+v; want /prod and /root", list)
			}
		}},
		{"group versions strictly increase, also under concurrent puts", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			a, err := s.PutGroup(ctx, StoredGroup{ID: "/"})
			must(t, err)
			b, err := s.PutGroup(ctx, StoredGroup{ID: "/"})
			must(t, err)
			c.Step(-time.Hour)
			d, err := s.PutGroup(ctx, StoredGroup{ID: "/", Dependencies: []string{"/db"}})
			must(t, err)
			if a.Version != "2026-11-28T06:00:00.000Z" || !(a.Version < b.Version && b.Version < d.Version) {
				t.Fatalf("versions %s %s %s do not increase from 2026-11-28T06:00:00.000Z", a.Version, b.Version, d.Version)
			}
			// The clock stands still: only moving past the stored version
			// keeps concurrent writers apart.
			const writers = 6
			var wg sync.WaitGroup
			got := make([]StoredGroup, writers)
			errs := make([]error, writers)
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i], errs[i] = s.PutGroup(ctx, StoredGroup{ID: "/prod"})
				}()
			}
			wg.Wait()
			seen := map[string]bool{}
			for i := range writers {
				must(t, errs[i])
				if seen[got[i].Version] {
					t.Fatalf("two concurrent puts were stamped %s", got[i].Version)
				}
				seen[got[i].Version] = true
			}
		}},
		{"invalid group ids and dependencies are refused", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			for _, g := range []StoredGroup{
				{ID: ""}, {ID: " "}, {ID: "/a_b"}, {ID: "/Prod"}, {ID: "/-a"},
				{ID: "/prod", Dependencies: []string{"/a_b"}},
				{ID: "/prod", Dependencies: []string{"/"}},
				{ID: "/prod", Dependencies: []string{""}},
			} {
				if _, err := s.PutGroup(ctx, g); err == nil {
					t.Errorf("group %+v was accepted", g)
				}
			}
			list, err := s.ListGroups(ctx)
			must(t, err)
			if len(list) != 0 {
				t.Fatalf("%d groups stored after refusals", len(list))
			}
			// /a_b would be the node of /a/b.
			_, err = s.PutGroup(ctx, StoredGroup{ID: "/a/b"})
			must(t, err)
			if err := s.DeleteGroup(ctx, "/a_b"); err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("delete of /a_b: %v; want the id refused", err)
			}
			list, err = s.ListGroups(ctx)
			must(t, err)
			if len(list) != 1 || list[0].ID != "/a/b" {
				t.Fatalf("list = %+v; want /a/b still there", list)
			}
		}},
		{"a group over the node size limit is refused and nothing is written", func(t *testing.T, s Store, c *clock.Fake) {
			// Three calls carrying ~1 MB each (validated id by id): 6.6 s
			// under -race at load 7, 34 s with make test-loaded's burners
			// beside load 35, past ctxT's 20 s. A hang guard, not a timing.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dep := "/" + strings.Repeat("d", appspec.MaxIDSegment) + "/" + strings.Repeat("e", appspec.MaxIDSegment)
			g := StoredGroup{ID: "/big"}
			for len(g.Dependencies)*(len(dep)+3) <= MaxNodeBytes {
				g.Dependencies = append(g.Dependencies, dep)
			}
			_, err := s.PutGroup(ctx, g)
			wantIs(t, err, ErrTooLarge)
			list, err := s.ListGroups(ctx)
			must(t, err)
			if len(list) != 0 {
				t.Fatalf("%d groups stored after a refused put", len(list))
			}
			// Just under the limit fits in one node.
			g.Dependencies = g.Dependencies[:len(g.Dependencies)-20]
			_, err = s.PutGroup(ctx, g)
			must(t, err)
		}},
		{"group calls honour the context", func(t *testing.T, s Store, c *clock.Fake) {
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel2()
			for _, tc := range []struct {
				ctx  context.Context
				want error
			}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
				_, err := s.PutGroup(tc.ctx, StoredGroup{ID: "/prod"})
				wantIs(t, err, tc.want)
				_, err = s.ListGroups(tc.ctx)
				wantIs(t, err, tc.want)
				wantIs(t, s.DeleteGroup(tc.ctx, "/prod"), tc.want)
			}
			list, err := s.ListGroups(ctxT(t))
			must(t, err)
			if len(list) != 0 {
				t.Fatalf("a put with a dead context stored %+v", list)
			}
		}},
		{"framework id is empty until set", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			id, err := s.FrameworkID(ctx)
			must(t, err)
			if id != "" {
				t.Fatalf("framework id = %q before set", id)
			}
			must(t, s.SetFrameworkID(ctx, "M1-0000"))
			must(t, s.SetFrameworkID(ctx, "M1-0001"))
			id, err = s.FrameworkID(ctx)
			must(t, err)
			if id != "M1-0001" {
				t.Fatalf("framework id = %q, want M1-0001", id)
			}
		}},
		{"task records by app", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			recs := []TaskRecord{
				{TaskID: "prod_web.instance-2", AppID: "/prod/web", AgentID: "M1-S1", AppVersion: "v1", State: "TASK_RUNNING"},
				{TaskID: "prod_web.instance-1", AppID: "prod/web", AgentID: "M1-S2", AppVersion: "v1", State: "TASK_STAGING"},
				{TaskID: "db.instance-1", AppID: "/db", AgentID: "M1-S1", AppVersion: "v9", State: "TASK_RUNNING"},
			}
			for _, r := range recs {
				must(t, s.PutTask(ctx, r))
			}
			recs[1].State = "TASK_RUNNING"
			must(t, s.PutTask(ctx, recs[1]))
			web, err := s.ListTasks(ctx, "/prod/web")
			must(t, err)
			if len(web) != 2 || web[0].TaskID != "prod_web.instance-1" || web[0].State != "TASK_RUNNING" || web[0].AppID != "/prod/web" {
				t.Fatalf("tasks of /prod/web = %+v", web)
			}
			all, err := s.ListAllTasks(ctx)
			must(t, err)
			if len(all) != 3 || all[0].AppID != "/db" {
				t.Fatalf("all tasks = %+v", all)
			}
			must(t, s.DeleteTask(ctx, "/prod/web", "prod_web.instance-1"))
			must(t, s.DeleteTask(ctx, "/prod/web", "prod_web.instance-2"))
			web, err = s.ListTasks(ctx, "/prod/web")
			must(t, err)
			if len(web) != 0 {
				t.Fatalf("tasks after delete = %+v", web)
			}
			if err := s.PutTask(ctx, TaskRecord{TaskID: "x/y", AppID: "/db"}); err == nil {
				t.Fatal("a task id with / was accepted")
			}
		}},
		{"a scale keeps the config version, a change moves it, a rollback restores it", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			v1, err := s.PutApp(ctx, testApp("/web"), CreateOnly)
			must(t, err)
			if v1.ConfigVersion != v1.App.Version {
				t.Fatalf("created: config version %q, version %q; want equal", v1.ConfigVersion, v1.App.Version)
			}
			c.Step(time.Second)
			scaled := *v1.App
			scaled.Instances = 5
			v2, err := s.PutAppConfig(ctx, &scaled, v1.Revision, v1.ConfigVersion)
			must(t, err)
			got, err := s.GetApp(ctx, "/web")
			must(t, err)
			if got.App.Version == v1.App.Version || got.ConfigVersion != v1.App.Version || v2.ConfigVersion != v1.App.Version {
				t.Fatalf("after a scale: version %q config version %q (put said %q); want a new version and config version %q",
					got.App.Version, got.ConfigVersion, v2.ConfigVersion, v1.App.Version)
			}
			list, err := s.ListApps(ctx)
			must(t, err)
			if len(list) != 1 || list[0].ConfigVersion != v1.App.Version {
				t.Fatalf("list after a scale: %+v; want config version %q", list, v1.App.Version)
			}
			c.Step(time.Second)
			changed := *got.App
			changed.Cmd = "sleep 2000"
			v3, err := s.PutApp(ctx, &changed, got.Revision)
			must(t, err)
			if v3.ConfigVersion != v3.App.Version {
				t.Fatalf("after a change: config version %q, version %q; want equal", v3.ConfigVersion, v3.App.Version)
			}
			c.Step(time.Second)
			back, err := s.GetVersion(ctx, "/web", v2.App.Version)
			must(t, err)
			v4, err := s.PutAppConfig(ctx, back, v3.Revision, v2.ConfigVersion)
			must(t, err)
			if v4.ConfigVersion != v1.App.Version || v4.App.Cmd != "sleep 1000" {
				t.Fatalf("rollback: config version %q cmd %q; want %q and the old cmd", v4.ConfigVersion, v4.App.Cmd, v1.App.Version)
			}
		}},
		{"undecodable items are reported, every other item is listed", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			_, err := s.PutApp(ctx, testApp("/good"), CreateOnly)
			must(t, err)
			must(t, s.PutDeployment(ctx, &Deployment{ID: "d-good", Version: "v"}))
			writeRaw(t, s, "app", "bi-poison", []byte(`{"id":"/bi-poison","cmd":"sle`))
			writeRaw(t, s, "app", "empty", []byte(`{}`))
			writeRaw(t, s, "deployment", "d-bad", []byte(`[1,2`))
			apps, err := s.ListApps(ctx)
			items, ok := BrokenItems(err)
			if !ok || len(items) != 2 || items[0].Kind != "app" || items[0].Key != "bi-poison" || items[1].Key != "empty" {
				t.Fatalf("list apps: err %v; want a BrokenError naming apps bi-poison and empty", err)
			}
			if len(apps) != 1 || apps[0].App.ID != "/good" {
				t.Fatalf("list apps beside the broken ones: %+v; want /good", apps)
			}
			if _, err := s.GetApp(ctx, "/bi-poison"); err == nil || !strings.Contains(err.Error(), "bi-poison") {
				t.Fatalf("get of a broken app: %v; want an error naming it", err)
			}
			ds, err := s.ListDeployments(ctx)
			if items, ok := BrokenItems(err); !ok || len(items) != 1 || items[0].Key != "d-bad" {
				t.Fatalf("list deployments: err %v; want a BrokenError naming d-bad", err)
			}
			if len(ds) != 1 || ds[0].ID != "d-good" {
				t.Fatalf("deployments beside the broken one: %+v", ds)
			}
		}},
		{"a cancelled context fails every call", func(t *testing.T, s Store, c *clock.Fake) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := s.PutApp(ctx, testApp("/a"), CreateOnly)
			wantIs(t, err, context.Canceled)
			_, err = s.ListApps(ctx)
			wantIs(t, err, context.Canceled)
			_, err = s.FrameworkID(ctx)
			wantIs(t, err, context.Canceled)
			// Every other call too, before it looks at its arguments (the
			// ZooKeeper store checked ctx only inside its calls).
			calls := map[string]func() error{
				"GetApp":              func() error { _, err := s.GetApp(ctx, "/a"); return err },
				"PutAppConfig":        func() error { _, err := s.PutAppConfig(ctx, nil, AnyRevision, ""); return err },
				"DeleteApp":           func() error { return s.DeleteApp(ctx, "/a", AnyRevision) },
				"ListVersions":        func() error { _, err := s.ListVersions(ctx, "/a"); return err },
				"GetVersion":          func() error { _, err := s.GetVersion(ctx, "/a", ""); return err },
				"PutDeployment":       func() error { return s.PutDeployment(ctx, nil) },
				"GetDeployment":       func() error { _, err := s.GetDeployment(ctx, "d"); return err },
				"ListDeployments":     func() error { _, err := s.ListDeployments(ctx); return err },
				"DeleteDeployment":    func() error { return s.DeleteDeployment(ctx, "d") },
				"SetFrameworkID":      func() error { return s.SetFrameworkID(ctx, "f") },
				"PutTask":             func() error { return s.PutTask(ctx, TaskRecord{}) },
				"DeleteTask":          func() error { return s.DeleteTask(ctx, "/a", "") },
				"ListTasks":           func() error { _, err := s.ListTasks(ctx, "/a"); return err },
				"ListAllTasks":        func() error { _, err := s.ListAllTasks(ctx); return err },
				"PutGroupVersion":     func() error { return s.PutGroupVersion(ctx, GroupVersion{ID: "/g", Version: "v"}) },
				"ListGroupVersions":   func() error { _, err := s.ListGroupVersions(ctx, "/g"); return err },
				"GetGroupVersion":     func() error { _, err := s.GetGroupVersion(ctx, "/g", "v"); return err },
				"DeleteGroupVersions": func() error { return s.DeleteGroupVersions(ctx, "/g") },
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, context.Canceled) {
					t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
				}
			}
			_, err = s.GetApp(context.Background(), "/a")
			wantIs(t, err, ErrNotFound)
		}},
		{"malformed names are refused, not looked up", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			must(t, s.PutDeployment(ctx, &Deployment{ID: "d1"}))
			for name, err := range map[string]error{
				"GetVersion ..":       func() error { _, err := s.GetVersion(ctx, "/a", ".."); return err }(),
				"GetDeployment a/b":   func() error { _, err := s.GetDeployment(ctx, "a/b"); return err }(),
				"DeleteDeployment ''": s.DeleteDeployment(ctx, ""),
				"DeleteTask x/y":      s.DeleteTask(ctx, "/a", "x/y"),
				"PutDeployment nil":   s.PutDeployment(ctx, nil),
			} {
				if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "store: ") {
					t.Errorf("%s: %v, want a store error naming what is malformed", name, err)
				}
			}
		}},
	}
	tests = append(tests, groupVersionCases()...) // groupversions_test.go
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := clock.NewFake(epoch)
			tc.run(t, newStore(t, c, 3), c)
		})
	}
}

func TestMemoryConformance(t *testing.T) {
	runConformance(t, func(t *testing.T, c clock.Clock, history int) Store { return NewMemory(c, history) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %v", err, target)
	}
}

// writeRaw puts bytes where a store keeps an item, as another version or a
// hand edit could have: the stores never write such bytes themselves.
func writeRaw(t *testing.T, s Store, kind, key string, data []byte) {
	t.Helper()
	switch st := s.(type) {
	case *Memory:
		mem := st.mem
		mem.mu.Lock()
		defer mem.mu.Unlock()
		switch kind {
		case "app":
			mem.apps[keyApp(key)] = memApp{data: data, rev: 1}
		case "deployment":
			mem.deployments[key] = data
		default:
			t.Fatalf("writeRaw: the memory store keeps no raw %s", kind)
		}
	case *ZK:
		z := st.z
		dir := map[string]string{"app": "apps", "deployment": "deployments", "group": "groups", "task": "tasks"}[kind]
		p := z.p(dir, key)
		if kind == "task" {
			if _, err := z.conn.Create(path.Dir(p), nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatal(err)
			}
		}
		if _, err := z.conn.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("writeRaw %s: %v", p, err)
		}
	default:
		t.Fatalf("writeRaw: unknown store %T", s)
	}
}
