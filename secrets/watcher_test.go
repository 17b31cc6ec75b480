package secrets

import (
	"context"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

func TestWatcherPoll(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	db := b.putV2(t, "db", map[string]any{"password": "1"})
	other := b.putV2(t, "other", map[string]any{"password": "1"})
	kv1 := b.kv1Mount(t)
	if _, err := b.root.Logical().Write(kv1+"/db", map[string]any{"password": "1"}); err != nil {
		t.Fatal(err)
	}
	var got []Change
	w := NewWatcher(newVault(t, b.tokenConfig(), clock.Real{}, nil), fakeClock(), time.Minute, discard, func(c Change) { got = append(got, c) })
	w.Set([]string{db, other, kv1 + "/db", db + "-absent"})
	steps := []struct {
		name   string
		before func()
		want   []Change
	}{
		{name: "first poll records versions only"},
		{name: "nothing changed"},
		{name: "a new kv2 version is reported", before: func() { b.putV2(t, "db", map[string]any{"password": "2"}) },
			want: []Change{{Path: db, From: 1, To: 2}}},
		{name: "two versions between polls are one change", before: func() {
			b.putV2(t, "db", map[string]any{"password": "3"})
			b.putV2(t, "db", map[string]any{"password": "4"})
		}, want: []Change{{Path: db, From: 2, To: 4}}},
		{name: "kv1 keeps no versions: a rewrite is not seen", before: func() {
			if _, err := b.root.Logical().Write(kv1+"/db", map[string]any{"password": "2"}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a path dropped from the set is not reported", before: func() {
			w.Set([]string{db, kv1 + "/db"})
			b.putV2(t, "other", map[string]any{"password": "2"})
		}},
		{name: "a path added back starts from a new baseline", before: func() {
			w.Set([]string{db, other})
			b.putV2(t, "other", map[string]any{"password": "3"})
		}},
		{name: "and is reported afterwards", before: func() { b.putV2(t, "other", map[string]any{"password": "4"}) },
			want: []Change{{Path: other, From: 3, To: 4}}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		got = nil
		w.Poll(ctx)
		if len(got) != len(s.want) || (len(got) > 0 && got[0] != s.want[0]) {
			t.Fatalf("%s: changes %v, want %v", s.name, got, s.want)
		}
	}
	if s := (Change{Path: db, From: 2, To: 4}).String(); s != db+" moved from version 2 to 4" {
		t.Fatalf("Change.String() = %q", s)
	}
}

// TestWatcherRun drives the polling loop with a fake clock.
func TestWatcherRun(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	ctx := testCtx(t)
	db := b.putV2(t, "db", map[string]any{"password": "1"})
	clk := fakeClock()
	changes := make(chan Change, 4)
	w := NewWatcher(newVault(t, b.tokenConfig(), clock.Real{}, nil), clk, 30*time.Second, discard, func(c Change) { changes <- c })
	w.Set([]string{db})
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = w.Run(rctx) }()
	eventually(t, 5*time.Second, "the first poll", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.seen[db] == 1
	})
	b.putV2(t, "db", map[string]any{"password": "2"})
	select {
	case c := <-changes:
		t.Fatalf("reported %v before the interval passed", c)
	default:
	}
	clk.Step(30 * time.Second)
	select {
	case c := <-changes:
		if c != (Change{Path: db, From: 1, To: 2}) {
			t.Fatalf("change = %v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported after the interval")
	}
}
