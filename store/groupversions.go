package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/flotilla-sched/flotilla/appspec"
)

// GroupVersion is a group as it was at Version: its dependencies and, by
// reference, what it held — the version of each app directly in it (kept
// in that app's history) and the version of each group directly in it
// (kept as that group's GroupVersion). Each version of each group is one
// small node, so no record grows with the whole tree (Marathon's root
// group node did, past ZooKeeper's 1 MB: its issue #2101); a group with
// 10,000 apps directly in it still fits one node.
type GroupVersion struct {
	ID           string            `json:"id"`
	Version      string            `json:"version"`
	Dependencies []string          `json:"dependencies,omitempty"`
	Apps         map[string]string `json:"apps"`   // app id → app version
	Groups       map[string]string `json:"groups"` // child group id → its group version
}

// GroupVersions is the part of a Store that keeps groups' versions.
type GroupVersions interface {
	// PutGroupVersion keeps gv as a version of its group (replacing one
	// of the same version), and only the newest History versions of it.
	PutGroupVersion(ctx context.Context, gv GroupVersion) error
	// ListGroupVersions returns the kept versions of a group, newest
	// first, or ErrNotFound when none is kept.
	ListGroupVersions(ctx context.Context, id string) ([]string, error)
	// GetGroupVersion returns one kept version, or ErrNotFound.
	GetGroupVersion(ctx context.Context, id, version string) (GroupVersion, error)
	// DeleteGroupVersions forgets every version of a group (it was
	// removed); no error when none was kept.
	DeleteGroupVersions(ctx context.Context, id string) error
}

// prepareGroupVersion checks gv and returns its canonical id and JSON.
func prepareGroupVersion(gv GroupVersion) (string, []byte, error) {
	id, err := checkGroupID(gv.ID)
	if err != nil {
		return "", nil, fmt.Errorf("store: put group version %q: %w", gv.ID, err)
	}
	if err := checkName("version", gv.Version); err != nil {
		return "", nil, fmt.Errorf("store: put group %s version: %w", id, err)
	}
	gv.ID = id
	for _, m := range []map[string]string{gv.Apps, gv.Groups} {
		for child, v := range m {
			if err := appspec.CheckID(child); err != nil || appspec.ParentID(child) != id {
				return "", nil, fmt.Errorf("store: put group %s version %s: %q is not directly inside the group", id, gv.Version, child)
			}
			if err := checkName("version", v); err != nil {
				return "", nil, fmt.Errorf("store: put group %s version %s: %s: %w", id, gv.Version, child, err)
			}
		}
	}
	b, err := encodeNode("group version", id+"@"+gv.Version, gv)
	return id, b, err
}

func decodeGroupVersion(b []byte) (GroupVersion, error) {
	var gv GroupVersion
	if err := json.Unmarshal(b, &gv); err != nil {
		return GroupVersion{}, fmt.Errorf("store: decode group version: %w", err)
	}
	return gv, nil
}

// newestFirst sorts versions newest first (they sort as text in time order).
func newestFirst(vs []string) []string {
	sort.Sort(sort.Reverse(sort.StringSlice(vs)))
	return vs
}
