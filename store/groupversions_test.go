package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// groupVersionCases are the conformance cases of GroupVersions; every
// store runs them with a history of 3.
func groupVersionCases() []struct {
	name string
	run  func(t *testing.T, s Store, c *clock.Fake)
} {
	return []struct {
		name string
		run  func(t *testing.T, s Store, c *clock.Fake)
	}{
		{"group versions round-trip, newest first, bounded by the history", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			_, err := s.ListGroupVersions(ctx, "/prod")
			wantIs(t, err, ErrNotFound)
			var all []GroupVersion
			for i := 0; i < 5; i++ {
				gv := GroupVersion{ID: "/prod/", Version: fmt.Sprintf("2026-11-28T06:00:0%d.000Z", i), Dependencies: []string{"/db"},
					Apps: map[string]string{"/prod/web": fmt.Sprintf("2026-11-28T05:00:0%d.000Z", i)}, Groups: map[string]string{"/prod/shop": "2026-11-28T04:00:00.000Z"}}
				must(t, s.PutGroupVersion(ctx, gv))
				gv.ID = "/prod"
				all = append(all, gv)
			}
			// The root group has versions of its own.
			must(t, s.PutGroupVersion(ctx, GroupVersion{ID: "/", Version: "2026-11-28T06:00:00.000Z", Groups: map[string]string{"/prod": all[4].Version}}))
			vs, err := s.ListGroupVersions(ctx, "/prod")
			must(t, err)
			if strings.Join(vs, " ") != all[4].Version+" "+all[3].Version+" "+all[2].Version {
				t.Fatalf("versions %v, want the newest 3 newest first", vs)
			}
			got, err := s.GetGroupVersion(ctx, "prod", all[3].Version)
			must(t, err)
			if !reflect.DeepEqual(got, all[3]) {
				t.Fatalf("got %+v, want %+v", got, all[3])
			}
			_, err = s.GetGroupVersion(ctx, "/prod", all[0].Version)
			wantIs(t, err, ErrNotFound)
			root, err := s.GetGroupVersion(ctx, "/", "2026-11-28T06:00:00.000Z")
			must(t, err)
			if root.Groups["/prod"] != all[4].Version {
				t.Fatalf("root version %+v", root)
			}
			// Replacing a version keeps one of it.
			all[4].Apps["/prod/web"] = "2026-11-28T05:59:59.000Z"
			must(t, s.PutGroupVersion(ctx, all[4]))
			vs, _ = s.ListGroupVersions(ctx, "/prod")
			got, _ = s.GetGroupVersion(ctx, "/prod", all[4].Version)
			if len(vs) != 3 || got.Apps["/prod/web"] != "2026-11-28T05:59:59.000Z" {
				t.Fatalf("after replacing: %v %+v", vs, got)
			}
			must(t, s.DeleteGroupVersions(ctx, "/prod"))
			_, err = s.ListGroupVersions(ctx, "/prod")
			wantIs(t, err, ErrNotFound)
			must(t, s.DeleteGroupVersions(ctx, "/prod")) // none kept: no error
			if _, err := s.ListGroupVersions(ctx, "/"); err != nil {
				t.Fatalf("deleting /prod's versions touched the root's: %v", err)
			}
		}},
		{"bad group versions are refused and nothing is written", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			for _, gv := range []GroupVersion{
				{ID: "", Version: "2026-11-28T06:00:00.000Z"},
				{ID: "/prod", Version: ""},
				{ID: "/prod", Version: "a/b"},
				{ID: "/prod", Version: "v1", Apps: map[string]string{"/other/web": "v1"}},
				{ID: "/prod", Version: "v1", Groups: map[string]string{"/prod/a/b": "v1"}},
				{ID: "/prod", Version: "v1", Apps: map[string]string{"/prod/web": ""}},
				{ID: "/prod", Version: "v1", Apps: map[string]string{"/prod/web": strings.Repeat("x", MaxNodeBytes)}},
			} {
				if err := s.PutGroupVersion(ctx, gv); err == nil {
					t.Errorf("%+v was accepted", gv)
				}
			}
			_, err := s.ListGroupVersions(ctx, "/prod")
			wantIs(t, err, ErrNotFound)
		}},
		{"a group version of 10,000 apps is one node", func(t *testing.T, s Store, c *clock.Fake) {
			ctx := ctxT(t)
			gv := GroupVersion{ID: "/", Version: "2026-11-28T06:00:00.000Z", Apps: map[string]string{}}
			for i := 0; i < 10000; i++ {
				gv.Apps[fmt.Sprintf("/app-%05d", i)] = "2026-11-28T05:00:00.000Z"
			}
			must(t, s.PutGroupVersion(ctx, gv))
			got, err := s.GetGroupVersion(ctx, "/", gv.Version)
			must(t, err)
			if len(got.Apps) != 10000 {
				t.Fatalf("%d apps read back", len(got.Apps))
			}
		}},
		{"group version calls honour the context", func(t *testing.T, s Store, c *clock.Fake) {
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			wantIs(t, s.PutGroupVersion(cancelled, GroupVersion{ID: "/prod", Version: "v1"}), context.Canceled)
			_, err := s.ListGroupVersions(cancelled, "/prod")
			wantIs(t, err, context.Canceled)
			_, err = s.GetGroupVersion(cancelled, "/prod", "v1")
			wantIs(t, err, context.Canceled)
			wantIs(t, s.DeleteGroupVersions(cancelled, "/prod"), context.Canceled)
			_, err = s.ListGroupVersions(ctxT(t), "/prod")
			wantIs(t, err, ErrNotFound)
		}},
	}
}
