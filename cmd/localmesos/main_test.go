package main

import (
	"reflect"
	"testing"

	"github.com/flotilla-sched/flotilla/localmesos"
)

func TestParseResources(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want localmesos.Resources
		bad  bool
	}{
		{in: "cpus:2;mem:1024;disk:100;ports:[31000-31010]", want: localmesos.Resources{CPUs: 2, Mem: 1024, Disk: 100, Ports: []localmesos.PortRange{{Begin: 31000, End: 31010}}}},
		{in: "ports:[1-2,5-6]; gpus:1", want: localmesos.Resources{GPUs: 1, Ports: []localmesos.PortRange{{Begin: 1, End: 2}, {Begin: 5, End: 6}}}},
		{in: "cpus:x", bad: true},
		{in: "cpus:-1", bad: true},
		{in: "ports:[10-1]", bad: true},
		{in: "ports:[1-70000]", bad: true},
		{in: "widgets:3", bad: true},
		{in: "cpus", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseResources(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseResources(%q) accepted it: %+v", tc.in, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseResources(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseAttributes(t *testing.T) {
	t.Parallel()
	got, err := parseAttributes("rack:r1;zone:a")
	if err != nil || !reflect.DeepEqual(got, map[string]string{"rack": "r1", "zone": "a"}) {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"rack", ":x", "rack:r1;"} {
		if _, err := parseAttributes(bad); err == nil {
			t.Fatalf("parseAttributes(%q) accepted it", bad)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--executor", "bogus", "--listen", "127.0.0.1:0"},
		{"--port-forwarding", "bogus", "--executor", "simulated", "--listen", "127.0.0.1:0"},
		{"--agents", "0"},
		{"--zk", "http://x", "--executor", "simulated", "--listen", "127.0.0.1:0"},
		{"--log-level", "loud"},
	} {
		if err := run(args); err == nil {
			t.Fatalf("run(%v) succeeded", args)
		}
	}
}

func TestParseNetworks(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"dcos":            {"dcos"},
		"dcos, backend,,": {"dcos", "backend"},
		"":                {},
	} {
		if got := parseNetworks(in); got == nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseNetworks(%q) = %#v, want %#v (never nil: nil would mean the default)", in, got, want)
		}
	}
}
