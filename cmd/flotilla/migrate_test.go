package main

import (
	"encoding/json"
	"testing"
)

// A GET /v2/apps answer becomes the root group with each app in the group
// its id names, as Marathon's tree holds them; a group stays as it is.
func TestExportTree(t *testing.T) {
	tree, err := exportTree([]byte(`{"apps": [{"id": "/prod/shop/web"}, {"id": "/top"}, {"id": "/prod/shop/db"}, {"id": "/prod/api"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(tree)
	want := `{"apps":[{"id":"/top"}],"groups":[{"groups":[{"apps":[{"id":"/prod/shop/web"},{"id":"/prod/shop/db"}],"id":"/prod/shop"}],"apps":[{"id":"/prod/api"}],"id":"/prod"}],"id":"/"}`
	var got, exp any
	_ = json.Unmarshal(b, &got)
	_ = json.Unmarshal([]byte(want), &exp)
	gb, _ := json.Marshal(got)
	eb, _ := json.Marshal(exp)
	if string(gb) != string(eb) {
		t.Errorf("tree\n got %s\nwant %s", gb, eb)
	}
	var ids []string
	for _, a := range collectApps(tree, "", "/") {
		ids = append(ids, a.pointer+" "+a.id)
	}
	if len(ids) != 4 || ids[0] != "/apps/0 /top" || ids[3] != "/groups/0/groups/0/apps/1 /prod/shop/db" {
		t.Errorf("apps %q", ids)
	}

	g, err := exportTree([]byte(`{"id": "/shop", "apps": [{"id": "web"}], "groups": [{"id": "back", "apps": [{"id": "db"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	apps := collectApps(g, "", "/")
	if len(apps) != 2 || apps[0].id != "/shop/web" || apps[1].id != "/shop/back/db" || apps[1].pointer != "/groups/0/apps/0" {
		t.Errorf("relative ids: %+v %+v", apps[0], apps[1])
	}
	removeApp(g, "/groups/0/apps/0")
	if left := collectApps(g, "", "/"); len(left) != 1 || left[0].id != "/shop/web" {
		t.Errorf("after removing /shop/back/db: %+v", left)
	}
	for _, bad := range []string{`[1]`, `{"foo": 1}`, `not json`} {
		if _, err := exportTree([]byte(bad)); err == nil {
			t.Errorf("%s read as an export", bad)
		}
	}
}
