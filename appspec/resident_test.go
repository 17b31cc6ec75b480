package appspec

import (
	"errors"
	"strings"
	"testing"
)

// residentJSON is the stateful app of Marathon's docs
// (persistent-volumes.md), on the root disk.
const residentJSON = `{"id":"/stateful","cmd":"cat data/f; sleep 1000","cpus":0.1,"mem":32,"instances":1,
 "container":{"type":"MESOS","volumes":[{"containerPath":"data","mode":"RW","persistent":{"type":"root","size":10}}]}}`

func TestResidentDefaults(t *testing.T) {
	a, err := Decode(strings.NewReader(residentJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !a.IsResident() || a.Residency == nil || a.Residency.TaskLostBehavior != WaitForever {
		t.Fatalf("resident %v, residency %+v; want resident, WAIT_FOREVER", a.IsResident(), a.Residency)
	}
	if a.UpgradeStrategy != (UpgradeStrategy{0.5, 0}) || !a.UnreachableStrategy.Disabled {
		t.Fatalf("upgradeStrategy %+v, unreachable %+v; want Marathon's resident defaults {0.5 0}, disabled", a.UpgradeStrategy, a.UnreachableStrategy)
	}
	if err := a.ValidateWith(Limits{Role: "stateful"}); err != nil {
		t.Fatalf("valid under role stateful: %v", err)
	}
	// Given values are kept (and judged).
	b, err := Decode(strings.NewReader(strings.TrimSuffix(residentJSON, "}") + `,"upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0},"unreachableStrategy":{"inactiveAfterSeconds":1,"expungeAfterSeconds":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if b.UpgradeStrategy != (UpgradeStrategy{0, 0}) || b.UnreachableStrategy.Disabled {
		t.Fatalf("given strategies replaced: %+v %+v", b.UpgradeStrategy, b.UnreachableStrategy)
	}
	// Plain apps keep the general defaults.
	c, err := Decode(strings.NewReader(`{"id":"/plain","cmd":"sleep 1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.IsResident() || c.Residency != nil || c.UpgradeStrategy != (UpgradeStrategy{1, 1}) {
		t.Fatalf("plain app: resident %v residency %v upgrade %+v", c.IsResident(), c.Residency, c.UpgradeStrategy)
	}
	// An empty residency (as exports carry it) asks for nothing.
	for _, body := range []string{`{"id":"/plain","cmd":"sleep 1","residency":{}}`, `{"id":"/plain","cmd":"sleep 1","residency":null}`} {
		d, err := Decode(strings.NewReader(body))
		if err == nil {
			err = d.Validate()
		}
		if err != nil || d.Residency != nil {
			t.Fatalf("%s: %v, residency %v", body, err, d.Residency)
		}
	}
}

func TestResidentRefusals(t *testing.T) {
	vol := func(v string) string {
		return `{"id":"/s","cmd":"x","container":{"type":"MESOS","volumes":[` + v + `]}`
	}
	cases := []struct {
		body, role, path string
	}{
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"type":"mount","size":10}}`) + `}`, "r", "/container/volumes/0/persistent/type"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"type":"path","size":10}}`) + `}`, "r", "/container/volumes/0/persistent/type"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10,"maxSize":20}}`) + `}`, "r", "/container/volumes/0/persistent/maxSize"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10,"constraints":[["path","LIKE","x"]]}}`) + `}`, "r", "/container/volumes/0/persistent/constraints"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10,"profileName":"fast"}}`) + `}`, "r", "/container/volumes/0/persistent/profileName"},
		{vol(`{"containerPath":"a/b","mode":"RW","persistent":{"size":10}}`) + `}`, "r", "/container/volumes/0/containerPath"},
		{vol(`{"containerPath":"data","mode":"RO","persistent":{"size":10}}`) + `}`, "r", "/container/volumes/0/mode"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":0}}`) + `}`, "r", "/container/volumes/0/persistent/size"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10}}`) + `}`, "*", "/container/volumes"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10}}`) + `,"upgradeStrategy":{"minimumHealthCapacity":1,"maximumOverCapacity":0.2}}`, "r", "/upgradeStrategy/maximumOverCapacity"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10}}`) + `,"residency":{"taskLostBehavior":"RELAUNCH_AFTER_TIMEOUT"}}`, "r", "/residency/taskLostBehavior"},
		{vol(`{"containerPath":"data","mode":"RW","persistent":{"size":10}}`) + `,"acceptedResourceRoles":["r"]}`, "r", "/acceptedResourceRoles"},
		{`{"id":"/s","cmd":"x","residency":{"taskLostBehavior":"WAIT_FOREVER"}}`, "r", "/residency"},
		{vol(`{"containerPath":"data","mode":"RW","external":{"name":"v","provider":"dvdi"}}`) + `}`, "r", "/container/volumes/0/external"},
	}
	for _, tc := range cases {
		a, err := Decode(strings.NewReader(tc.body))
		if err == nil {
			err = a.ValidateWith(Limits{Role: tc.role})
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: got %v, want a validation error at %s", tc.body, err, tc.path)
			continue
		}
		found := false
		for _, d := range ve.Details {
			found = found || d.Path == tc.path
		}
		if !found {
			t.Errorf("%s: errors %+v, want one at %s", tc.body, ve.Details, tc.path)
		}
	}
}

func TestResidentUpdate(t *testing.T) {
	prev, err := Decode(strings.NewReader(residentJSON))
	if err != nil {
		t.Fatal(err)
	}
	change := func(f func(a *App)) *App {
		b, _ := Decode(strings.NewReader(residentJSON))
		f(b)
		return b
	}
	for name, tc := range map[string]struct {
		next *App
		path string
	}{
		"cmd":          {change(func(a *App) { a.Cmd = "other" }), ""},
		"instances":    {change(func(a *App) { a.Instances = 3 }), ""},
		"cpus":         {change(func(a *App) { a.CPUs = 2 }), "/"},
		"ports":        {change(func(a *App) { a.PortDefinitions = append(a.PortDefinitions, PortDefinition{}) }), "/"},
		"volume size":  {change(func(a *App) { a.Container.Volumes[0].Persistent.Size = 20 }), "/container/volumes"},
		"volume gone":  {change(func(a *App) { a.Container.Volumes = nil }), "/container/volumes"},
		"volume added": {change(func(a *App) { a.Container.Volumes = append(a.Container.Volumes, a.Container.Volumes[0]) }), "/container/volumes"},
	} {
		err := ResidentUpdate(prev, tc.next)
		var ve *ValidationError
		switch {
		case tc.path == "" && err != nil:
			t.Errorf("%s: %v, want allowed", name, err)
		case tc.path != "" && (!errors.As(err, &ve) || ve.Details[0].Path != tc.path):
			t.Errorf("%s: %v, want refused at %s", name, err, tc.path)
		}
	}
	// Nor can an app become resident or stop being so.
	plain, _ := Decode(strings.NewReader(`{"id":"/stateful","cmd":"x"}`))
	for _, pair := range [][2]*App{{plain, prev}, {prev, plain}} {
		var ve *ValidationError
		if err := ResidentUpdate(pair[0], pair[1]); !errors.As(err, &ve) || ve.Details[0].Path != "/container/volumes" {
			t.Errorf("resident %v to %v: %v, want refused at /container/volumes", pair[0].IsResident(), pair[1].IsResident(), err)
		}
	}
	if err := ResidentUpdate(nil, prev); err != nil {
		t.Errorf("a new resident app: %v", err)
	}
}
