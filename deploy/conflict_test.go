package deploy

import (
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/store"
)

// A write the store refuses because the app moved on (a write whose answer
// was lost, another writer) answers 409 and makes the replica read the app
// again (its index, not the scheduler, which changes only through a
// write), so that the retry succeeds. Before, the stale revision stayed in
// the index and every write of the app conflicted for as long as the
// replica led: the chaos suite saw a new leader refuse every write of an
// app for over a minute.
func TestConflictRereads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	st := store.NewMemory(clk, 0)
	sched := framework.New(framework.Config{Clock: clk, ReconcileSettle: -1})
	s, err := New(Config{Store: st, Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(1))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	app := func(instances int) *appspec.App {
		return &appspec.App{ID: "/web", Cmd: "sleep 1000", CPUs: 0.1, Mem: 32, Instances: instances}
	}
	if _, err := s.Apply(ctx, Op{Kind: OpUpdate, ID: "/web", App: app(1), Force: true}); err != nil {
		t.Fatalf("create: %v", err)
	}
	// The store moves on behind the replica's back.
	if _, err := st.PutAppConfig(ctx, app(2), store.AnyRevision, ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.Apply(ctx, Op{Kind: OpUpdate, ID: "/web", App: app(3), Force: true})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write over a stale revision: %v, want store.ErrConflict", err)
	}
	if a := sched.Snapshot().App("/web"); a == nil || a.Instances != 1 {
		t.Fatalf("scheduler's app after the refused write: %+v, want the one it ran (1 instance)", a)
	}
	if _, err := s.Apply(ctx, Op{Kind: OpUpdate, ID: "/web", App: app(3), Force: true}); err != nil {
		t.Fatalf("the retry after the conflict: %v", err)
	}
	got, err := st.GetApp(ctx, "/web")
	if err != nil || got.App.Instances != 3 {
		t.Fatalf("stored app after the retry: %+v, %v; want 3 instances", got.App, err)
	}
}
