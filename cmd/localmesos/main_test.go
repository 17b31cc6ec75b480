package main

import (
	"reflect"
	"testing"
)

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
