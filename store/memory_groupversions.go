package store

import (
	"context"
	"fmt"
	"sort"
)

var _ GroupVersions = (*Memory)(nil)

func (m *memStore) PutGroupVersion(ctx context.Context, gv GroupVersion) error {
	id, b, err := prepareGroupVersion(gv)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.groupVersions == nil {
		m.groupVersions = map[string]map[string][]byte{}
	}
	vs := m.groupVersions[id]
	if vs == nil {
		vs = map[string][]byte{}
		m.groupVersions[id] = vs
	}
	vs[gv.Version] = b
	if len(vs) > m.history {
		names := make([]string, 0, len(vs))
		for v := range vs {
			names = append(names, v)
		}
		sort.Strings(names)
		for _, v := range names[:len(names)-m.history] {
			delete(vs, v)
		}
	}
	return nil
}

func (m *memStore) ListGroupVersions(ctx context.Context, id string) ([]string, error) {
	c := id // canonical: checked
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.groupVersions[c]
	if len(vs) == 0 {
		return nil, fmt.Errorf("store: versions of group %s: %w", c, ErrNotFound)
	}
	out := make([]string, 0, len(vs))
	for v := range vs {
		out = append(out, v)
	}
	return newestFirst(out), nil
}

func (m *memStore) GetGroupVersion(ctx context.Context, id, version string) (GroupVersion, error) {
	c := id // canonical: checked
	m.mu.Lock()
	b, ok := m.groupVersions[c][version]
	m.mu.Unlock()
	if !ok {
		return GroupVersion{}, fmt.Errorf("store: group %s version %s: %w", c, version, ErrNotFound)
	}
	return decodeGroupVersion(b)
}

func (m *memStore) DeleteGroupVersions(ctx context.Context, id string) error {
	c := id // canonical: checked
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.groupVersions, c)
	return nil
}
