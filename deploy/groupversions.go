package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/store"
)

// A group's version is the newest change inside it: its own record's
// version or the newest version of an app anywhere under it (Marathon
// moves a group's version with every change inside it). Its versions are
// kept in the store as store.GroupVersion: what the group held, by
// reference to the versions of its apps and groups.
//
// When they are kept: just before a group change (a group write or a
// bulk app update) is applied, every group whose version moved since it
// was last kept is kept — so the state a change replaces can be rolled
// back to, whether it was reached through /v2/groups or /v2/apps. The
// current state is always a version too (listed first, not stored until
// it is replaced).

// liveGroup is a group as it is now.
type liveGroup struct {
	version string
	deps    []string
	apps    map[string]string // direct app → its version
	groups  map[string]bool   // direct child groups
}

// liveGroups is every group that exists and its version.
func (s *Service) liveGroups() map[string]*liveGroup {
	out := map[string]*liveGroup{}
	var node func(id string) *liveGroup
	node = func(id string) *liveGroup {
		if g := out[id]; g != nil {
			return g
		}
		g := &liveGroup{apps: map[string]string{}, groups: map[string]bool{}}
		out[id] = g
		if id != "/" {
			node(appspec.ParentID(id)).groups[id] = true
		}
		return g
	}
	node("/")
	for id, r := range s.Groups() {
		g := node(id)
		g.deps, g.version = r.Dependencies, r.Version
	}
	for _, r := range s.idx.list() {
		node(appspec.ParentID(r.App.ID)).apps[r.App.ID] = r.App.Version
	}
	// Versions move up: a group is as new as the newest thing under it.
	ids := make([]string, 0, len(out))
	for id := range out {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return len(ids[i]) > len(ids[j]) }) // children before parents
	for _, id := range ids {
		g := out[id]
		for _, v := range g.apps {
			g.version = max(g.version, v)
		}
		if id != "/" {
			p := out[appspec.ParentID(id)]
			p.version = max(p.version, g.version)
		}
	}
	return out
}

// GroupVersions maps every group that exists to its current version.
func (s *Service) GroupVersions() map[string]string {
	live := s.liveGroups()
	out := make(map[string]string, len(live))
	for id, g := range live {
		out[id] = g.version
	}
	return out
}

// keepGroupVersions stores the current version of every group whose
// version moved since it was last kept (caller holds mu). A store that
// refuses fails the change before anything of it is written.
func (s *Service) keepGroupVersionsLocked(ctx context.Context) error {
	live := s.liveGroups()
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		g := live[id]
		if g.version == "" || s.kept[id] == g.version {
			continue
		}
		if _, known := s.kept[id]; !known {
			// First look this leadership term: the store may have it.
			vs, err := s.st.ListGroupVersions(ctx, id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("deploy: read the versions of group %s: %w", id, err)
			}
			if len(vs) > 0 && vs[0] == g.version {
				s.kept[id] = g.version
				continue
			}
		}
		gv := store.GroupVersion{ID: id, Version: g.version, Dependencies: g.deps, Apps: g.apps, Groups: map[string]string{}}
		for c := range g.groups {
			if v := live[c].version; v != "" {
				gv.Groups[c] = v
			}
		}
		err := s.st.PutGroupVersion(ctx, gv)
		if errors.Is(err, store.ErrTooLarge) {
			// More apps directly in one group than one node holds
			// references to (about 16,000): the change goes on without
			// this version, rather than no group change passing again.
			s.log.WithError(err).WithFields(logrus.Fields{"group": id, "version": g.version, "apps": len(g.apps)}).
				Warn("group version not kept: too many apps directly in the group for one node; it cannot be rolled back to")
		} else if err != nil {
			return fmt.Errorf("deploy: keep version %s of group %s: %w", g.version, id, err)
		}
		s.kept[id] = g.version
	}
	return nil
}

// forgetGroupVersions drops the versions of groups a change removed, as
// an app's history goes with the app (caller holds mu).
func (s *Service) forgetGroupVersionsLocked(ctx context.Context, ids []string) {
	for _, id := range ids {
		delete(s.kept, id)
		if err := s.st.DeleteGroupVersions(ctx, id); err != nil {
			s.log.WithError(err).WithField("group", id).Error("versions of a removed group not deleted; they stay in the store")
		}
	}
}

// GroupAt is group id as it was at version (apps and groups carry their
// versions then), as a group definition that replaces everything inside
// the group (every apps and groups list set): with the versions cleared,
// it is validated and applied as a group update, Marathon's rollback of
// a group. The current version is the group as it is. A
// version that is not kept is NotFound; an app or group it held whose
// version is no longer kept (apps keep their last versions only, and a
// removed app's or group's history goes with it) is a validation error
// naming it.
func (s *Service) GroupAt(ctx context.Context, id, version string) (*appspec.Group, error) {
	live := s.liveGroups()
	if live[id] == nil {
		return nil, errorf(NotFound, "Group '%s' does not exist; list the groups with GET /v2/groups", id)
	}
	return s.groupAt(ctx, live, id, version, "")
}

func (s *Service) groupAt(ctx context.Context, live map[string]*liveGroup, id, version, path string) (*appspec.Group, error) {
	var gv store.GroupVersion
	if lg := live[id]; lg != nil && lg.version == version {
		gv = store.GroupVersion{ID: id, Version: version, Dependencies: lg.deps, Apps: lg.apps, Groups: map[string]string{}}
		for c := range lg.groups {
			gv.Groups[c] = live[c].version
		}
	} else {
		var err error
		gv, err = s.st.GetGroupVersion(ctx, id, version)
		switch {
		case errors.Is(err, store.ErrNotFound) && path == "":
			return nil, errorf(NotFound, "Group '%s' has no version '%s'; list them with GET /v2/groups%s/versions", id, version, groupPath(id))
		case errors.Is(err, store.ErrNotFound):
			return nil, &appspec.ValidationError{Message: "Object is not valid", Details: []appspec.Detail{{Path: path,
				Errors: []string{fmt.Sprintf("group %s version %s is no longer kept (a removed group's versions go with it); it cannot be restored", id, version)}}}}
		case err != nil:
			return nil, fmt.Errorf("deploy: read version %s of group %s: %w", version, id, err)
		}
	}
	g := &appspec.Group{ID: id, Dependencies: gv.Dependencies, Version: version, AppsSet: true, GroupsSet: true}
	appIDs := make([]string, 0, len(gv.Apps))
	for a := range gv.Apps {
		appIDs = append(appIDs, a)
	}
	sort.Strings(appIDs)
	for i, appID := range appIDs {
		v := gv.Apps[appID]
		var a appspec.App
		if cur := s.idx.get(appID); cur != nil && cur.App.Version == v {
			a = *cur.App
		} else {
			old, err := s.st.GetVersion(ctx, appID, v)
			if errors.Is(err, store.ErrNotFound) {
				return nil, &appspec.ValidationError{Message: "Object is not valid", Details: []appspec.Detail{{Path: fmt.Sprintf("%s/apps/%d", path, i),
					Errors: []string{fmt.Sprintf("app %s version %s is no longer kept (apps keep their last versions, and a removed app's history goes with it); it cannot be restored", appID, v)}}}}
			}
			if err != nil {
				return nil, fmt.Errorf("deploy: read version %s of app %s: %w", v, appID, err)
			}
			a = *old
		}
		a.Version = v
		g.Apps = append(g.Apps, &a)
	}
	childIDs := make([]string, 0, len(gv.Groups))
	for c := range gv.Groups {
		childIDs = append(childIDs, c)
	}
	sort.Strings(childIDs)
	for i, c := range childIDs {
		cg, err := s.groupAt(ctx, live, c, gv.Groups[c], fmt.Sprintf("%s/groups/%d", path, i))
		if err != nil {
			return nil, err
		}
		g.Groups = append(g.Groups, cg)
	}
	return g, nil
}

// ListGroupVersions lists a group's versions, newest first: its current
// one and those kept.
func (s *Service) ListGroupVersions(ctx context.Context, id string) ([]string, error) {
	live := s.liveGroups()[id]
	if live == nil {
		return nil, errorf(NotFound, "Group '%s' does not exist; list the groups with GET /v2/groups", id)
	}
	vs, err := s.st.ListGroupVersions(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("deploy: list the versions of group %s: %w", id, err)
	}
	out := []string{live.version}
	for _, v := range vs {
		if v != live.version {
			out = append(out, v)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, nil
}

func groupPath(id string) string {
	if id == "/" {
		return ""
	}
	return id
}

// groupsInside lists the groups that exist inside any of ids (each
// included).
func (s *Service) groupsInside(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	var out []string
	for g := range s.groupIDs() {
		for _, id := range ids {
			if appspec.Contains(id, g) {
				out = append(out, g)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}
