package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/go-zookeeper/zk"
)

// Group versions live under <root>/groupversions/<group key>/<version>,
// one node each.

var _ GroupVersions = (*ZK)(nil)

func (s *zkStore) PutGroupVersion(ctx context.Context, gv GroupVersion) error {
	id, b, err := prepareGroupVersion(gv)
	if err != nil {
		return err
	}
	dir := s.p("groupversions", groupKey(id))
	for _, p := range []string{s.p("groupversions"), dir} {
		err := s.call(ctx, func() error {
			_, err := s.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
			return err
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("store: put group %s version %s: create %s: %w", id, gv.Version, p, err)
		}
	}
	if err := s.put(ctx, dir+"/"+gv.Version, b); err != nil {
		return fmt.Errorf("store: put group %s version %s: %w", id, gv.Version, err)
	}
	var names []string
	err = s.call(ctx, func() (err error) {
		names, _, err = s.conn.Children(dir)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put group %s version %s: list the kept versions: %w", id, gv.Version, err)
	}
	sort.Strings(names)
	for i := 0; i < len(names)-s.history; i++ {
		err := s.call(ctx, func() error { return s.conn.Delete(dir+"/"+names[i], -1) })
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("store: put group %s version %s: drop old version %s: %w", id, gv.Version, names[i], err)
		}
	}
	return nil
}

func (s *zkStore) ListGroupVersions(ctx context.Context, id string) ([]string, error) {
	c := id // canonical: checked
	var vs []string
	err := s.call(ctx, func() (err error) {
		vs, _, err = s.conn.Children(s.p("groupversions", groupKey(c)))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) || err == nil && len(vs) == 0 {
		return nil, fmt.Errorf("store: versions of group %s: %w", c, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: versions of group %s: %w", c, err)
	}
	return newestFirst(vs), nil
}

func (s *zkStore) GetGroupVersion(ctx context.Context, id, version string) (GroupVersion, error) {
	c := id // canonical: checked
	var data []byte
	err := s.call(ctx, func() (err error) {
		data, _, err = s.conn.Get(s.p("groupversions", groupKey(c), version))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return GroupVersion{}, fmt.Errorf("store: group %s version %s: %w", c, version, ErrNotFound)
	}
	if err != nil {
		return GroupVersion{}, fmt.Errorf("store: group %s version %s: %w", c, version, err)
	}
	return decodeGroupVersion(data)
}

func (s *zkStore) DeleteGroupVersions(ctx context.Context, id string) error {
	c := id // canonical: checked
	dir := s.p("groupversions", groupKey(c))
	var names []string
	err := s.call(ctx, func() (err error) {
		names, _, err = s.conn.Children(dir)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: delete versions of group %s: %w", c, err)
	}
	for _, n := range append(names, "") {
		p := dir
		if n != "" {
			p += "/" + n
		}
		err := s.call(ctx, func() error { return s.conn.Delete(p, -1) })
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("store: delete versions of group %s: %w", c, err)
		}
	}
	return nil
}
