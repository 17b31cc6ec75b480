package secrets

import (
	"fmt"
	"log/slog"
)

// Redacted is what every formatting of a Value prints.
const Redacted = "<redacted>"

// Value is a resolved secret. Every way Go, encoding/json, logrus or slog
// has of printing it yields Redacted; the raw string is reachable only
// through Reveal, which the framework calls when it builds the Mesos
// environment variable of type SECRET.
//
// The string sits behind a pointer so that fmt's reflection, which cannot
// call methods on an unexported struct field holding a Value, prints an
// address instead of the text.
type Value struct {
	p *string
}

func newValue(s string) Value { return Value{p: &s} }

// Reveal returns the raw secret. Call it only to hand the value to Mesos.
func (v Value) Reveal() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// IsZero reports whether v holds nothing (not even an empty string).
func (v Value) IsZero() bool { return v.p == nil }

func (v Value) String() string   { return Redacted }
func (v Value) GoString() string { return "secrets.Value(" + Redacted + ")" }

// Format covers every verb, so %x, %q or %d cannot bypass String.
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(v.GoString()))
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue keeps log/slog from printing the value.
func (v Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// GobEncode refuses: a Value must never be persisted.
func (v Value) GobEncode() ([]byte, error) {
	return nil, fmt.Errorf("secrets: refusing to encode a secret value")
}
