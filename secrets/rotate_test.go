package secrets

import (
	"reflect"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
)

func TestAppsUsingHonoursOptOut(t *testing.T) {
	t.Parallel()
	app := func(id, src string, labels map[string]string) *appspec.App {
		return &appspec.App{ID: id, Labels: labels,
			Env:     map[string]appspec.EnvValue{"P": {Secret: "s"}},
			Secrets: map[string]appspec.Secret{"s": {Source: src}}}
	}
	apps := []*appspec.App{
		app("/b", "secret/db#password", nil),
		app("/a", "secret/db#user", nil),
		app("/c", "secret/other#password", nil),
		app("/d", "secret/db#password", map[string]string{RotationLabel: "off"}),
		{ID: "/plain"},
	}
	if got, want := AppsUsing(apps, "secret/db"), []string{"/a", "/b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("AppsUsing(secret/db) = %v, want %v (sorted, /d opted out)", got, want)
	}
	if got := AppsUsing(apps, "secret/none"); len(got) != 0 {
		t.Fatalf("AppsUsing of an unused path = %v", got)
	}
}
