package appspec

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// Group is Marathon's group: apps and groups under one id, with
// dependencies that every app inside inherits. Ids inside a group may be
// relative to it ("web" in /prod/shop is /prod/shop/web); DecodeGroup
// makes every id absolute.
type Group struct {
	ID           string   `json:"id"`
	Apps         []*App   `json:"apps,omitempty"`
	Groups       []*Group `json:"groups,omitempty"`
	Dependencies []string `json:"dependencies,omitempty"`
	Version      string   `json:"version,omitempty"`
	// EnforceRole is Marathon ≥ 1.9's; only false (Flotilla has one role)
	// is accepted.
	EnforceRole bool `json:"enforceRole,omitempty"`
	// AppsSet and GroupsSet say whether the definition listed apps and
	// groups at all: an update replaces what it lists (apps missing from
	// a given list are removed) and leaves alone what it does not.
	AppsSet   bool `json:"-"`
	GroupsSet bool `json:"-"`
}

var typeOfGroup = reflect.TypeOf(Group{})

// DecodeGroup reads one group definition strictly, as Decode reads an app:
// every problem is named by its JSON pointer (/groups/0/apps/1/cpus), the
// apps get Marathon's defaults, and every id is made absolute against the
// group's parent (base, "/" for the root). The group still needs
// Validate.
func DecodeGroup(r io.Reader, base string) (*Group, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes*16+1))
	if err != nil {
		return nil, fmt.Errorf("appspec: read group definition: %w", err)
	}
	if len(b) > MaxBodyBytes*16 {
		return nil, ErrTooLarge
	}
	if err := checkJSON(b, typeOfGroup, "group"); err != nil {
		return nil, err
	}
	g := &Group{}
	v := &ValidationError{}
	decodeGroupInto(g, b, base, "", v)
	if len(v.Details) > 0 {
		return nil, v
	}
	return g, nil
}

// rawGroup is a group whose apps and groups are still JSON, so that each
// app is decoded by decode (with Marathon's defaults), not by
// encoding/json into zero values.
type rawGroup struct {
	ID           string            `json:"id"`
	Apps         []json.RawMessage `json:"apps"`
	Groups       []json.RawMessage `json:"groups"`
	Dependencies []string          `json:"dependencies"`
	EnforceRole  bool              `json:"enforceRole"`
}

func decodeGroupInto(g *Group, b []byte, base, path string, v *ValidationError) {
	var rg rawGroup
	if err := json.Unmarshal(b, &rg); err != nil {
		// The walk checked every type, so this is a bug in the walk.
		v.add(pathOrRoot(path), err.Error())
		return
	}
	g.ID = ResolveID(base, rg.ID)
	if strings.TrimSpace(rg.ID) == "" && path != "" {
		v.add(path+"/id", "is required for a nested group")
	}
	g.EnforceRole = rg.EnforceRole
	g.AppsSet, g.GroupsSet = rg.Apps != nil, rg.Groups != nil
	for _, d := range rg.Dependencies {
		g.Dependencies = append(g.Dependencies, ResolveID(ParentID(g.ID), d))
	}
	for i, raw := range rg.Apps {
		p := fmt.Sprintf("%s/apps/%d", path, i)
		var probe struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(raw, &probe) // the walk checked it is an object with a string id, if any
		if strings.TrimSpace(probe.ID) == "" {
			v.add(p+"/id", "is required: give the app an id, relative to its group (\"web\") or absolute")
			continue
		}
		// The app's id, and so its relative dependencies, resolve
		// against this group before decode normalises the app.
		abs := ResolveID(g.ID, probe.ID)
		fixed, err := WithID(raw, abs)
		if err != nil {
			v.add(p, err.Error())
			continue
		}
		a, err := decode(fixed)
		if err != nil {
			if ve, ok := err.(*ValidationError); ok {
				for _, d := range ve.Details {
					v.add(p+strings.TrimSuffix(d.Path, "/"), strings.Join(d.Errors, "; "))
				}
				continue
			}
			v.add(p, err.Error())
			continue
		}
		g.Apps = append(g.Apps, a)
	}
	for i, raw := range rg.Groups {
		child := &Group{}
		decodeGroupInto(child, raw, g.ID, fmt.Sprintf("%s/groups/%d", path, i), v)
		g.Groups = append(g.Groups, child)
	}
}

// WithID replaces the "id" of a JSON object (an app or a group body).
func WithID(raw []byte, id string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("want an object: %w", err)
	}
	b, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	m["id"] = b
	return json.Marshal(m)
}

// ParentID is the group an id is in: /prod/shop for /prod/shop/web, "/"
// for /web and for "/".
func ParentID(id string) string {
	id = CanonicalID(id)
	i := strings.LastIndex(id, "/")
	if i <= 0 {
		return "/"
	}
	return id[:i]
}

// Contains reports whether id is group itself or inside it.
func Contains(group, id string) bool {
	return group == "/" || id == group || strings.HasPrefix(id, group+"/")
}

// Validate checks the group as Marathon does, with each problem's path:
// ids valid and inside their parent, no app or group twice, no app id
// that is also a group id, and every app valid.
func (g *Group) Validate(l Limits) error {
	v := &ValidationError{}
	seen := map[string]string{} // id → path of its first use
	g.validate(v, "", seen, l, true)
	if len(v.Details) == 0 {
		return nil
	}
	return v
}

func (g *Group) validate(v *ValidationError, path string, seen map[string]string, l Limits, top bool) {
	if g.ID != "/" {
		if err := CheckID(g.ID); err != nil {
			v.add(path+"/id", strings.Replace(strings.TrimPrefix(err.Error(), "appspec: "), "app id", "group id", 1))
		}
	}
	if g.EnforceRole {
		v.add(path+"/enforceRole", "not supported by Flotilla: it has one role (--role); use false")
	}
	if p, dup := seen[g.ID]; dup {
		v.addf(pathOrRoot(path), "id %s is used twice: by %s and here (an app and a group, or two of either, cannot share an id)", g.ID, pathOrRoot(p))
	} else {
		seen[g.ID] = pathOrRoot(path)
	}
	for i, d := range g.Dependencies {
		p := fmt.Sprintf("%s/dependencies/%d", path, i)
		if Contains(d, g.ID) || Contains(g.ID, d) {
			v.addf(p, "a group cannot depend on %s: one contains the other", d)
		}
	}
	for i, a := range g.Apps {
		p := fmt.Sprintf("%s/apps/%d", path, i)
		if ParentID(a.ID) != g.ID {
			v.addf(p+"/id", "app id %s is not in group %s; give it an id inside the group, e.g. %s", a.ID, g.ID, strings.TrimSuffix(g.ID, "/")+"/"+lastSegment(a.ID))
		}
		if q, dup := seen[a.ID]; dup {
			v.addf(p+"/id", "id %s is used twice: by %s and here (an app and a group, or two of either, cannot share an id)", a.ID, q)
		} else {
			seen[a.ID] = p
		}
		if err := a.ValidateWith(l); err != nil {
			if ve, ok := err.(*ValidationError); ok {
				for _, d := range ve.Details {
					for _, e := range d.Errors {
						v.add(p+strings.TrimSuffix(d.Path, "/"), e)
					}
				}
			} else {
				v.add(p, err.Error())
			}
		}
	}
	for i, c := range g.Groups {
		p := fmt.Sprintf("%s/groups/%d", path, i)
		if ParentID(c.ID) != g.ID {
			v.addf(p+"/id", "group id %s is not in group %s", c.ID, g.ID)
		}
		c.validate(v, p, seen, l, false)
	}
}

func lastSegment(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// AllApps lists every app of the group and its subgroups, sorted by id.
func (g *Group) AllApps() []*App {
	var out []*App
	var walk func(*Group)
	walk = func(g *Group) {
		out = append(out, g.Apps...)
		for _, c := range g.Groups {
			walk(c)
		}
	}
	walk(g)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// AllGroups lists the group and every subgroup, parents first.
func (g *Group) AllGroups() []*Group {
	out := []*Group{g}
	for _, c := range g.Groups {
		out = append(out, c.AllGroups()...)
	}
	return out
}
