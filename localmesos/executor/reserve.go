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
