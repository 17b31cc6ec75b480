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
	eachFile(t, "*.json", 4, func(r *os.File) error {
		app, err := appspec.Decode(r)
		if err != nil {
			return err
		}
		return app.Validate()
	})
}

// TestPodExamplesAreValid keeps the quickstart's pods valid.
func TestPodExamplesAreValid(t *testing.T) {
	eachFile(t, "pods/*.json", 1, func(r *os.File) error {
		p, err := appspec.DecodePod(r)
		if err != nil {
			return err
		}
		return p.Validate()
	})
}

// eachFile checks every file matching glob (at least least of them).
func eachFile(t *testing.T, glob string, least int, check func(*os.File) error) {
	files, err := filepath.Glob(glob)
	if err != nil || len(files) < least {
		t.Fatalf("want at least %d quickstart examples %s, found %v (%v)", least, glob, files, err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := check(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}
