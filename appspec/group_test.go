package appspec

import (
	"errors"
	"strings"
	"testing"
)

// TestDecodeGroup: a nested group with relative ids and dependencies comes
// out absolute, its apps with Marathon's defaults.
func TestDecodeGroup(t *testing.T) {
	t.Parallel()
	g, err := DecodeGroup(strings.NewReader(`{"id": "shop", "dependencies": ["/infra"],
		"apps": [{"id": "web", "cmd": "x", "dependencies": ["api", "../db/pg"]}],
		"groups": [{"id": "api", "apps": [{"id": "/prod/shop/api/v1", "cmd": "y"}]}], "pods": []}`), "/prod")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(Limits{}); err != nil {
		t.Fatal(err)
	}
	web := g.Apps[0]
	if g.ID != "/prod/shop" || web.ID != "/prod/shop/web" || strings.Join(web.Dependencies, ",") != "/prod/shop/api,/prod/db/pg" {
		t.Errorf("group %s, app %s deps %v", g.ID, web.ID, web.Dependencies)
	}
	if web.CPUs != DefaultCPUs || web.Instances != DefaultInstances {
		t.Errorf("app without Marathon's defaults: %+v", web)
	}
	if g.Groups[0].ID != "/prod/shop/api" || g.Groups[0].Apps[0].ID != "/prod/shop/api/v1" || g.Dependencies[0] != "/infra" {
		t.Errorf("nested %+v deps %v", g.Groups[0], g.Dependencies)
	}
	if n := len(g.AllApps()); n != 2 {
		t.Errorf("AllApps %d", n)
	}
}

func TestGroupBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, path, substr string }{
		{"app outside its group", `{"id": "/a", "apps": [{"id": "/b/web", "cmd": "x"}]}`, "/apps/0/id", "is not in group /a"},
		{"app and group with one id", `{"id": "/a", "apps": [{"id": "x", "cmd": "x"}], "groups": [{"id": "x"}]}`, "/groups/0", "used twice"},
		{"two apps with one id", `{"id": "/a", "apps": [{"id": "x", "cmd": "x"}, {"id": "x", "cmd": "y"}]}`, "/apps/1/id", "used twice"},
		{"an app's own problem, with its path", `{"id": "/a", "groups": [{"id": "b", "apps": [{"id": "x", "cmd": "x", "cpus": -1}]}]}`, "/groups/0/apps/0/cpus", "greater than 0"},
		{"unknown field in an app", `{"id": "/a", "apps": [{"id": "x", "cmd": "x", "cpu": 1}]}`, "/apps/0/cpu", "unknown field"},
		{"app without id", `{"id": "/a", "apps": [{"cmd": "x"}]}`, "/apps/0/id", "is required"},
		{"pods", `{"id": "/a", "pods": [{"id": "p"}]}`, "/pods", "pods are written through /v2/pods"},
		{"self dependency", `{"id": "/a", "apps": [{"id": "x", "cmd": "x", "dependencies": ["x"]}]}`, "/apps/0/dependencies/0", "itself"},
		{"group depends on its parent", `{"id": "/a", "groups": [{"id": "b", "dependencies": ["/a"]}]}`, "/groups/0/dependencies/0", "contains"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := DecodeGroup(strings.NewReader(tc.body), "/")
			if err == nil {
				err = g.Validate(Limits{})
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v, want a ValidationError", err)
			}
			for _, d := range verr.Details {
				if d.Path == tc.path && strings.Contains(strings.Join(d.Errors, " "), tc.substr) {
					return
				}
			}
			t.Fatalf("details %+v, want %s containing %q", verr.Details, tc.path, tc.substr)
		})
	}
}
