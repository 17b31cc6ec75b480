package secrets

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestValueRedactsEverywhere(t *testing.T) {
	t.Parallel()
	const raw = "hunter2-canary"
	v := newValue(raw)
	type holder struct {
		hidden Value // unexported: fmt cannot call its methods
		Shown  Value
	}
	h := holder{hidden: v, Shown: v}
	m := map[string]Value{"DB_PASSWORD": v}
	cases := []struct {
		name string
		out  func() string
	}{
		{"%v", func() string { return fmt.Sprintf("%v", v) }},
		{"%s", func() string { return fmt.Sprintf("%s", v) }},
		{"%q", func() string { return fmt.Sprintf("%q", v) }},
		{"%x", func() string { return fmt.Sprintf("%x", v) }},
		{"%X", func() string { return fmt.Sprintf("%X", v) }},
		{"%d", func() string { return fmt.Sprintf("%d", v) }},
		{"%+v", func() string { return fmt.Sprintf("%+v", v) }},
		{"%#v", func() string { return fmt.Sprintf("%#v", v) }},
		{"pointer %v", func() string { return fmt.Sprintf("%v", &v) }},
		{"struct %+v", func() string { return fmt.Sprintf("%+v", h) }},
		{"struct %#v", func() string { return fmt.Sprintf("%#v", h) }},
		{"map %v", func() string { return fmt.Sprint(m) }},
		{"map %#v", func() string { return fmt.Sprintf("%#v", m) }},
		{"slice %v", func() string { return fmt.Sprint([]Value{v}) }},
		{"String", v.String},
		{"GoString", v.GoString},
		{"json", func() string { b, _ := json.Marshal(m); return string(b) }},
		{"json struct", func() string { b, _ := json.Marshal(h); return string(b) }},
		{"text", func() string { b, _ := v.MarshalText(); return string(b) }},
		{"slog text", func() string {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "v", v)
			return buf.String()
		}},
		{"slog json", func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", v)
			return buf.String()
		}},
		{"logrus text", func() string {
			var buf bytes.Buffer
			l := logrus.New()
			l.Out = &buf
			l.WithField("v", v).WithField("m", m).Info("x")
			return buf.String()
		}},
		{"logrus json", func() string {
			var buf bytes.Buffer
			l := logrus.New()
			l.Out = &buf
			l.SetFormatter(&logrus.JSONFormatter{})
			l.WithField("v", v).WithField("m", m).Info("x")
			return buf.String()
		}},
		{"gob", func() string {
			var buf bytes.Buffer
			err := gob.NewEncoder(&buf).Encode(struct{ V Value }{v})
			if err == nil {
				return "gob encoded a value: " + buf.String()
			}
			return buf.String() + err.Error()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := c.out()
			if strings.Contains(out, raw) || strings.Contains(out, fmt.Sprintf("%x", raw)) {
				t.Fatalf("leaked: %s", out)
			}
			if !strings.Contains(out, "redacted") && !strings.Contains(out, "0x") && !strings.Contains(out, "refusing") {
				t.Fatalf("neither redacted nor an address: %q", out)
			}
		})
	}
	if v.Reveal() != raw {
		t.Fatalf("Reveal = %q, want the raw value", v.Reveal())
	}
	if (Value{}).Reveal() != "" || !(Value{}).IsZero() || v.IsZero() {
		t.Fatal("zero Value misbehaves")
	}
}
