package executor

import (
	"fmt"
	"sync"
)

// reserve claims task id in tasks (with a nil entry until the task exists)
// so that a concurrent duplicate launch fails, and refuses once the executor
// is closed. unreserve undoes the claim when the launch fails before the
// task is stored.
func reserve[T any](mu *sync.Mutex, closed *bool, tasks map[string]*T, kind, id string) (unreserve func(), err error) {
	mu.Lock()
	defer mu.Unlock()
	if *closed {
		return nil, fmt.Errorf("executor: %s launch %s: %w", kind, id, ErrClosed)
	}
	if _, dup := tasks[id]; dup {
		return nil, fmt.Errorf("executor: %s launch %s: task already running", kind, id)
	}
	tasks[id] = nil
	return func() {
		mu.Lock()
		delete(tasks, id)
		mu.Unlock()
	}, nil
}

// spawn runs f on a goroutine that Close waits for (wg), unless Close has
// begun (closed, under mu): then f does not run and spawn says false. The
// WaitGroup's Add is made under mu, before Close can set closed and Wait,
// so it never races Close's Wait (an Add from zero concurrent with a Wait
// is a data race, and a goroutine started then would outlive Close).
func spawn(mu *sync.Mutex, closed *bool, wg *sync.WaitGroup, f func()) bool {
	mu.Lock()
	defer mu.Unlock()
	if *closed {
		return false
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
	return true
}
