// Package examples holds the app specs the README's quickstart deploys;
// this test keeps them valid as the app spec evolves.
package examples

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
)

func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) < 4 {
		t.Fatalf("want the 4 quickstart examples, found %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			app, err := appspec.Decode(r)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := app.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}

// TestPodExamplesAreValid keeps the quickstart's pods valid.
func TestPodExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("pods/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("want the quickstart's pods, found %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := appspec.DecodePod(r)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}
