package secrets

import (
	"context"
	"sort"
	"sync"
)

// Entry is the data of one secret path as read at one moment.
type Entry struct {
	Fields map[string]Value
	// Version is the KV v2 version that was read; 0 on KV v1, which keeps
	// no versions.
	Version int
}

// Backend is what resolution, checks and rotation need from Vault. Vault is
// the real one; Memory is a small in-process one for tests of other
// packages. Errors wrap one of the sentinels.
type Backend interface {
	// Read returns every field of the secret at path ("secret/db").
	Read(ctx context.Context, path string) (Entry, error)
	// Version returns the current KV v2 version of path without reading its
	// data, or 0 for a KV v1 path.
	Version(ctx context.Context, path string) (int, error)
}

// Memory is an in-memory Backend with KV v2 semantics: every Put makes a
// new version. It is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	data    map[string]Entry
	failing map[string]error
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{data: map[string]Entry{}, failing: map[string]error{}}
}

// Put stores fields at path as its next version and returns that version.
func (m *Memory) Put(path string, fields map[string]string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := Entry{Fields: make(map[string]Value, len(fields)), Version: m.data[path].Version + 1}
	for k, v := range fields {
		e.Fields[k] = newValue(v)
	}
	m.data[path] = e
	return e.Version
}

// Fail makes every call for path return err (nil clears it); use it with a
// sentinel, e.g. ErrUnavailable, to simulate an outage.
func (m *Memory) Fail(path string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.failing, path)
		return
	}
	m.failing[path] = err
}

// Paths lists the stored paths, sorted.
func (m *Memory) Paths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.data))
	for p := range m.data {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (m *Memory) Read(ctx context.Context, path string) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, &backendError{kind: ErrUnavailable, path: path, cause: err}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing[path]; err != nil {
		k, cause := kindOf(err), err
		if k == err {
			cause = nil
		}
		return Entry{}, &backendError{kind: k, path: path, cause: cause}
	}
	e, ok := m.data[path]
	if !ok {
		return Entry{}, &backendError{kind: ErrNotFound, path: path}
	}
	return e, nil
}

func (m *Memory) Version(ctx context.Context, path string) (int, error) {
	e, err := m.Read(ctx, path)
	return e.Version, err
}
