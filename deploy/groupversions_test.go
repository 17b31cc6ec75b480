package deploy

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/store"
)

// TestKeepGroupVersions: before each group change, exactly the groups
// whose version moved since they were last kept get a new stored
// version, referencing what they held; a removed group's versions go.
func TestKeepGroupVersions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st := store.NewMemory(clk, 0)
	sched := framework.New(framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(1)), Log: logging.Component(logging.Discard(), "framework")})
	s, err := New(Config{Store: st, Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(2))})
	if err != nil {
		t.Fatal(err)
	}
	group := func(body string) *appspec.Group {
		t.Helper()
		g, err := appspec.DecodeGroup(strings.NewReader(body), "/")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Validate(s.Limits()); err != nil {
			t.Fatal(err)
		}
		return g
	}
	apply := func(op GroupOp) {
		t.Helper()
		clk.Step(time.Second)
		op.Force = true
		if _, err := s.ApplyGroup(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(id string) string {
		vs, err := st.ListGroupVersions(ctx, id)
		if err != nil {
			return "none"
		}
		return fmt.Sprint(len(vs))
	}
	app := `{"id": "%s", "cmd": "%s", "cpus": 0.1, "mem": 16}`
	apply(GroupOp{Kind: GroupCreate, ID: "/a", Group: group(`{"id": "/a", "apps": [` + fmt.Sprintf(app, "x", "sleep 1") + `]}`)})
	apply(GroupOp{Kind: GroupCreate, ID: "/b", Group: group(`{"id": "/b", "apps": [` + fmt.Sprintf(app, "y", "sleep 1") + `]}`)})
	// Creating /b kept the state before it: / and /a as they were.
	if got := kept("/") + kept("/a") + kept("/b"); got != "11none" {
		t.Fatalf("versions kept of /, /a, /b: %s, want 1 1 none", got)
	}
	aBefore := s.GroupVersions()["/a"]

	// A change of /b alone: / and /b moved, /a did not.
	apply(GroupOp{Kind: GroupUpdate, ID: "/b", Group: group(`{"id": "/b", "apps": [` + fmt.Sprintf(app, "y", "sleep 2") + `]}`)})
	if got := kept("/") + kept("/a") + kept("/b"); got != "211" {
		t.Fatalf("versions kept of /, /a, /b: %s, want 2 1 1", got)
	}
	root, err := st.GetGroupVersion(ctx, "/", s.GroupVersions()["/"])
	if err == nil {
		t.Fatalf("the current version of / is kept before it is replaced: %+v", root)
	}
	vs, _ := st.ListGroupVersions(ctx, "/")
	root, err = st.GetGroupVersion(ctx, "/", vs[0])
	if err != nil || root.Groups["/a"] != aBefore || root.Groups["/b"] == "" || len(root.Apps) != 0 {
		t.Fatalf("root version %+v (%v), want /a at %s and /b", root, err, aBefore)
	}
	// The kept /b is the one with y's first version: GroupAt gives it back.
	g, err := s.GroupAt(ctx, "/b", root.Groups["/b"])
	if err != nil || len(g.Apps) != 1 || g.Apps[0].Cmd != "sleep 1" || !g.AppsSet || !g.GroupsSet {
		t.Fatalf("GroupAt(/b, %s) = %+v, %v", root.Groups["/b"], g, err)
	}
	cur, err := s.GroupAt(ctx, "/b", s.GroupVersions()["/b"])
	if err != nil || cur.Apps[0].Cmd != "sleep 2" {
		t.Fatalf("GroupAt(/b, current) = %+v, %v", cur, err)
	}
	var nf *Error
	if _, err := s.GroupAt(ctx, "/b", "2001-01-01T00:00:00.000Z"); !errors.As(err, &nf) || nf.Kind != NotFound {
		t.Fatalf("GroupAt of a version not kept: %v", err)
	}

	// Removing /b forgets its versions.
	apply(GroupOp{Kind: GroupDelete, ID: "/b"})
	if got := kept("/b"); got != "none" {
		t.Fatalf("versions of the removed /b: %s", got)
	}
	if got := kept("/") + kept("/a"); got != "31" {
		t.Fatalf("versions kept of / and /a after the delete: %s, want 3 1", got)
	}
}

// tooLarge is a store whose group versions never fit a node.
type tooLarge struct{ store.Store }

func (tooLarge) PutGroupVersion(context.Context, store.GroupVersion) error {
	return fmt.Errorf("store: group version: %w", store.ErrTooLarge)
}

// TestGroupVersionTooLarge: a version too large for one node is not
// kept, and the change still goes on (a group with more apps directly in
// it than a node holds references to must not refuse every change).
func TestGroupVersionTooLarge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	st := tooLarge{store.NewMemory(clk, 0)}
	sched := framework.New(framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(1)), Log: logging.Component(logging.Discard(), "framework")})
	s, err := New(Config{Store: st, Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(2))})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"/a", "/b"} {
		g, err := appspec.DecodeGroup(strings.NewReader(`{"id": "`+id+`", "apps": [{"id": "x", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}]}`), "/")
		if err != nil {
			t.Fatal(err)
		}
		clk.Step(time.Second)
		if _, err := s.ApplyGroup(ctx, GroupOp{Kind: GroupCreate, ID: id, Group: g}); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
	if s.App("/b/x") == nil {
		t.Fatal("the second group change did not apply")
	}
	if _, err := st.ListGroupVersions(ctx, "/"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a version was kept: %v", err)
	}
}
