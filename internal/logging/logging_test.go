package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestComponentFieldAndFormats(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, err := New(Options{Level: "debug", Format: "json", Out: &buf})
	if err != nil {
		t.Fatal(err)
	}
	Component(l, "framework").WithField("app", "/web").Debug("hello")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("json output did not parse: %v: %q", err, buf.String())
	}
	if m["component"] != "framework" || m["app"] != "/web" || m["msg"] != "hello" {
		t.Fatalf("unexpected fields: %v", m)
	}
}

func TestBadOptionsNameTheProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"level", Options{Level: "loud"}, `bad level "loud"`},
		{"format", Options{Format: "xml"}, `bad format "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLevelFilters(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, err := New(Options{Level: "warn", Out: &buf})
	if err != nil {
		t.Fatal(err)
	}
	Component(l, "x").Info("quiet")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn level: %q", buf.String())
	}
}
