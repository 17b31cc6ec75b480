package deploy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Change is one app's part of a group deployment: its new spec (App), or
// its removal (App nil).
type Change struct {
	ID  string
	App *appspec.App
}

// PlanStep is the changes of one step: all of them start together, and
// the next step starts once every app of this one has reached its target
// (running, healthy and ready).
type PlanStep []Change

// PlanInput is what Plan needs: the apps as they are, the changes asked
// for, and the group records (for group-level dependencies).
type PlanInput struct {
	Current map[string]*appspec.App
	Changes map[string]*appspec.App // id → new spec, or nil to remove
	// GroupDeps are the dependencies of each group id (inherited by every
	// app inside).
	GroupDeps map[string][]string
}

// CycleError is a dependency cycle among the apps after the change.
type CycleError struct{ Cycle []string }

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.Cycle, " → ")
}

// UnknownDependencyError is a dependency that names no app or group.
type UnknownDependencyError struct{ App, Dependency string }

func (e *UnknownDependencyError) Error() string {
	return fmt.Sprintf("app %s depends on %s, which is no app or group", e.App, e.Dependency)
}

// Plan orders a group's changes as Marathon's DeploymentPlan does: the
// removals first (one step), then the new and changed apps in dependency
// order, each step holding the apps whose dependencies among the changed
// apps are all in earlier steps. A dependency on an app that does not
// change is met already. Pure: table-tested, like Nomad's reconciler.
func Plan(in PlanInput) ([]PlanStep, error) {
	after := map[string]*appspec.App{}
	for id, a := range in.Current {
		after[id] = a
	}
	for id, a := range in.Changes {
		if a == nil {
			delete(after, id)
		} else {
			after[id] = a
		}
	}
	ids := make([]string, 0, len(after))
	for id := range after {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	// Edges: app → the apps it depends on (after the change), a group
	// dependency standing for every app inside the group.
	deps := map[string][]string{}
	for _, id := range ids {
		names := append([]string(nil), after[id].Dependencies...)
		for g := appspec.ParentID(id); ; g = appspec.ParentID(g) {
			names = append(names, in.GroupDeps[g]...)
			if g == "/" {
				break
			}
		}
		seen := map[string]bool{}
		for _, d := range names {
			matched := inTree(ids, d, func(other string) {
				if other != id && !seen[other] {
					seen[other] = true
					deps[id] = append(deps[id], other)
				}
			})
			if !matched && in.Changes[id] != nil {
				return nil, &UnknownDependencyError{App: id, Dependency: d}
			}
		}
	}
	if c := findCycle(ids, deps); c != nil {
		return nil, &CycleError{Cycle: c}
	}

	var steps []PlanStep
	var stops PlanStep
	var changed []string
	for id, a := range in.Changes {
		if a == nil {
			if in.Current[id] != nil {
				stops = append(stops, Change{ID: id})
			}
		} else {
			changed = append(changed, id)
		}
	}
	sort.Slice(stops, func(i, j int) bool { return stops[i].ID < stops[j].ID })
	if len(stops) > 0 {
		steps = append(steps, stops)
	}
	isChanged := map[string]bool{}
	for _, id := range changed {
		isChanged[id] = true
	}
	level := map[string]int{}
	var levelOf func(id string) int
	levelOf = func(id string) int {
		if l, ok := level[id]; ok {
			return l
		}
		l := 0
		for _, d := range deps[id] {
			if isChanged[d] {
				l = max(l, levelOf(d)+1)
			}
		}
		level[id] = l
		return l
	}
	byLevel := map[int]PlanStep{}
	top := -1
	for _, id := range changed {
		l := levelOf(id)
		byLevel[l] = append(byLevel[l], Change{ID: id, App: in.Changes[id]})
		top = max(top, l)
	}
	for l := 0; l <= top; l++ {
		s := byLevel[l]
		sort.Slice(s, func(i, j int) bool { return s[i].ID < s[j].ID })
		steps = append(steps, s)
	}
	return steps, nil
}

// findCycle returns one dependency cycle (its ids, the first repeated at
// the end), or nil.
func findCycle(ids []string, deps map[string][]string) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(id string) []string
	visit = func(id string) []string {
		state[id] = onPath
		path = append(path, id)
		for _, d := range deps[id] {
			switch state[d] {
			case onPath:
				for i, p := range path {
					if p == d {
						return append(append([]string(nil), path[i:]...), d)
					}
				}
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[id] = done
		return nil
	}
	for _, id := range ids {
		if state[id] == unseen {
			if c := visit(id); c != nil {
				return c
			}
		}
	}
	return nil
}

// inTree calls f for every id of the sorted ids that is d or inside the
// group d, found by binary search, and reports whether there was one.
func inTree(ids []string, d string, f func(id string)) bool {
	found := false
	if i := sort.SearchStrings(ids, d); i < len(ids) && ids[i] == d {
		f(d)
		found = true
	}
	prefix := strings.TrimSuffix(d, "/") + "/"
	for i := sort.SearchStrings(ids, prefix); i < len(ids) && strings.HasPrefix(ids[i], prefix); i++ {
		f(ids[i])
		found = true
	}
	return found
}
