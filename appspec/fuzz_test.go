package appspec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: no input makes Decode or Validate panic, and an accepted app
// re-encodes to JSON that Decode accepts again. `go test` runs the seeds
// (Marathon's documents); `go test -fuzz FuzzDecode ./appspec/` explores.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "marathon", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"/a","cmd":"x","env":{"A":{"secret":"s"}},"unreachableStrategy":"disabled"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := Decode(bytes.NewReader(body))
		if err != nil {
			return
		}
		_ = a.Validate()
		_ = a.EffectiveExposure()
		enc, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("accepted app does not encode: %v", err)
		}
		if _, err := Decode(bytes.NewReader(enc)); err != nil {
			t.Fatalf("own encoding refused: %v\n%s", err, enc)
		}
	})
}
