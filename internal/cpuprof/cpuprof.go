// Package cpuprof starts a CPU profile of a whole run for the benchmark
// programs under bench/ (their -cpuprofile flags). It exists so the three
// of them close the file and report a failed write the same way: a
// profile cut short is a wrong reading of where the time went.
package cpuprof

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
)

// Start profiles the process into path until the returned stop is
// called. An empty path profiles nothing (stop does nothing).
func Start(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile %s: %w", path, err)
		}
		return nil
	}, nil
}
