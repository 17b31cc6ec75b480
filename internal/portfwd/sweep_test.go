package portfwd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSweepKeepsBlocksItCannotClean: a stale table whose delete fails
// (or whose claiming link cannot be removed after) keeps its block
// claimed, so that no task is set up behind the DNAT still in place;
// sweepStale used to drop both errors and hand the block out again. nft
// and ip are stand-ins on PATH here: making the real ones fail on demand
// is not possible, and the stand-ins record what was asked of them.
func TestSweepKeepsBlocksItCannotClean(t *testing.T) {
	const b = kernelBlocks - 1
	ifc, table := blockNames(b)
	for _, tc := range []struct {
		name              string
		failNft, failLink bool
		wantClaimed       bool
	}{
		{"table not deleted", true, false, true},
		{"link not deleted", false, true, true},
		{"both cleaned", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat("/sys/class/net/" + ifc); err == nil {
				t.Fatalf("%s exists on this machine; the test needs its block free", ifc)
			}
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			stub := func(name, failOn string, fail bool, extra string) {
				code := "0"
				if fail {
					code = "1"
				}
				script := "#!/bin/sh\necho \"" + name + " $*\" >> " + calls + "\n" + extra +
					"case \"$*\" in *'" + failOn + "'*) echo refused >&2; exit " + code + ";; esac\nexit 0\n"
				if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			stub("nft", "delete table", tc.failNft, "[ \"$1\" = list ] && echo 'table ip "+table+"'\n")
			stub("ip", "link del", tc.failLink, "")
			t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			t.Cleanup(func() { releaseBlock(b) })

			sweepStale(context.Background(), KernelConfig{})

			pool.Lock()
			claimed := pool.used[b]
			pool.Unlock()
			got, _ := os.ReadFile(calls)
			if claimed != tc.wantClaimed {
				t.Errorf("block %d claimed after the sweep: %v, want %v (commands run: %q)", b, claimed, tc.wantClaimed, strings.TrimSpace(string(got)))
			}
			if !strings.Contains(string(got), "nft delete table ip "+table) {
				t.Errorf("the sweep did not try to delete %s; commands run: %q", table, got)
			}
		})
	}
}
