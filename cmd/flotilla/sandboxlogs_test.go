package main

import (
	"cmp"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// logTaskStderr shows, when the test failed, the end of the stderr of the
// tasks that wrote to it (most recent last, at most 8): a task that exits
// at once leaves only "Container exited with status 1" in the platform's
// log, and the sandbox with the reason goes with t.TempDir.
func logTaskStderr(t *testing.T, work string) {
	if !t.Failed() {
		return
	}
	type file struct {
		path string
		mod  int64
	}
	var files []file
	err := filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "stderr" {
			return nil // a sandbox removed meanwhile: nothing to show
		}
		if info, err := d.Info(); err == nil && info.Size() > 0 {
			files = append(files, file{p, info.ModTime().UnixNano()})
		}
		return nil
	})
	if err != nil {
		t.Logf("tasks' stderr: walking %s: %v", work, err)
	}
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.mod, b.mod) })
	if len(files) > 8 {
		files = files[len(files)-8:]
	}
	for _, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		rel, _ := filepath.Rel(work, f.path)
		t.Logf("task stderr %s (last lines):\n%s", rel, strings.Join(lines, "\n"))
	}
}
