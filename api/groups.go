package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// groupNode is one group of the tree GET /v2/groups answers: the groups
// its apps' ids imply, and those with a record of their own.
type groupNode struct {
	id       string
	apps     []*deploy.Record
	pods     []*deploy.Record
	children map[string]*groupNode
	deps     []string
	version  string
}

// groupTree builds the tree under root from deploy's apps and group
// records.
func (s *Server) groupTree() map[string]*groupNode {
	groups := s.dep.Groups()
	return groupTreeOf(groups, s.dep.Apps(), s.dep.GroupVersions())
}

// groupTreeOf builds the tree of the group records groups, the apps recs
// and the groups' versions. Every ancestor of an app is a group
// (Marathon's implicit groups); empty groups exist only by their record.
func groupTreeOf(groups map[string]store.StoredGroup, recs []*deploy.Record, versions map[string]string) map[string]*groupNode {
	nodes := map[string]*groupNode{}
	var node func(id string) *groupNode
	node = func(id string) *groupNode {
		if n := nodes[id]; n != nil {
			return n
		}
		n := &groupNode{id: id, children: map[string]*groupNode{}}
		nodes[id] = n
		if id != "/" {
			p := node(appspec.ParentID(id))
			p.children[id] = n
		}
		return n
	}
	node("/")
	for id, g := range groups {
		node(id).deps = g.Dependencies
	}
	for _, r := range recs {
		n := node(appspec.ParentID(r.App.ID))
		if r.App.Pod != nil {
			n.pods = append(n.pods, r)
		} else {
			n.apps = append(n.apps, r)
		}
	}
	// deploy decides what a group's version is (the newest change in it).
	for id, v := range versions {
		if n := nodes[id]; n != nil {
			n.version = v
		}
	}
	return nodes
}

// groupEmbed is what GET /v2/groups includes (Marathon's embed=group.*).
type groupEmbed struct {
	apps, groups bool
	app          embed
}

// parseGroupEmbed reads Marathon's group embeds (resolveAppGroup): with
// none, the groups and apps of the tree; group.apps.* embeds imply
// group.apps. It returns the embeds it does not know, which Marathon
// ignores with a warning.
func parseGroupEmbed(values []string) (groupEmbed, []string) {
	if len(values) == 0 {
		return groupEmbed{apps: true, groups: true}, nil
	}
	var e groupEmbed
	var unknown []string
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			switch f = strings.TrimSpace(f); {
			case f == "group.groups":
				e.groups = true
			case f == "group.apps":
				e.apps = true
			case strings.HasPrefix(f, "group.apps."):
				e.apps = true
				ae, u := parseEmbed([]string{f})
				e.app = e.app.or(ae)
				unknown = append(unknown, u...)
			case f != "":
				unknown = append(unknown, f)
			}
		}
	}
	return e, unknown
}

// groupWriter streams a group tree: each app is rendered into a scratch
// buffer and written out, so the answer for 10,000 apps and their tasks is
// never built whole in memory (as GET /v2/apps does).
type groupWriter struct {
	s     *Server
	bw    *bufio.Writer
	buf   []byte
	e     groupEmbed
	tasks *framework.TaskCursor
	deps  map[string]string
	err   error
}

var comma = []byte{','}

func (gw *groupWriter) write(b []byte) {
	if gw.err == nil {
		_, gw.err = gw.bw.Write(b)
	}
}

func (gw *groupWriter) group(n *groupNode) {
	b, err := appendGroupHead(gw.buf[:0], n)
	if err != nil {
		gw.err = err
		return
	}
	gw.write(b)
	if gw.e.apps {
		for i, r := range n.apps {
			if i > 0 {
				gw.write(comma)
			}
			// The counts (tasksRunning, tasksHealthy, …) come from the
			// tasks whether or not they are embedded, as in GET /v2/apps:
			// the UI's tree shows them. A kept fragment is written as it
			// is, not copied first.
			depID := gw.deps[r.App.ID]
			f, rendered := gw.s.listedApp(gw.buf, gw.tasks, r, gw.e.app, depID)
			if rendered {
				gw.buf = f
			}
			gw.write(f)
		}
	}
	gw.write([]byte(`],"groups":[`))
	if gw.e.groups {
		ids := make([]string, 0, len(n.children))
		for id := range n.children {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for i, id := range ids {
			if i > 0 {
				gw.write(comma)
			}
			gw.group(n.children[id])
		}
	}
	gw.write([]byte("]}"))
}

// appendGroupHead appends a group's JSON up to its apps:
// {"id":…,"pods":[…],"apps":[
func appendGroupHead(b []byte, n *groupNode) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, n.id)
	b = append(b, `,"dependencies":`...)
	dj, _ := json.Marshal(append([]string{}, n.deps...)) // strings always encode
	b = append(b, dj...)
	b = append(b, `,"version":`...)
	b = appendString(b, n.version)
	b = append(b, `,"enforceRole":false,"pods":[`...)
	for i, r := range n.pods {
		if i > 0 {
			b = append(b, ',')
		}
		pj, err := json.Marshal(r.App.PodSpec())
		if err != nil {
			return b, fmt.Errorf("api: encode pod %s: %w", r.App.ID, err)
		}
		b = append(b, pj...)
	}
	return append(b, `],"apps":[`...), nil
}

// getGroup serves GET /v2/groups and GET /v2/groups/{id}.
func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, id string) error {
	id = appspec.CanonicalID(id)
	if done, err := s.getKeptGroup(w, r, id); done {
		return err
	}
	n := s.groupTree()[id]
	if n == nil {
		return errorf(http.StatusNotFound, "Group '%s' does not exist; list the groups with GET /v2/groups", id)
	}
	ge, unknown := parseGroupEmbed(r.URL.Query()["embed"])
	s.unknownEmbeds(r, unknown)
	gw := &groupWriter{s: s, e: ge, deps: s.dep.DeploymentsByApp(), buf: make([]byte, 0, 8<<10)}
	if gw.e.apps {
		gw.tasks = s.appsSnapshot().Cursor()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	gw.bw = bufio.NewWriterSize(w, 64<<10)
	gw.group(n)
	gw.write([]byte("\n"))
	if gw.err == nil {
		gw.err = gw.bw.Flush()
	}
	// An error here is the client gone; nothing more can be said to it.
	return nil
}

// postGroup serves POST /v2/groups: a new group with its apps and groups,
// as one deployment.
func (s *Server) postGroup(w http.ResponseWriter, r *http.Request) error {
	return s.writeGroup(w, r, "", deploy.GroupCreate)
}

// putGroup serves PUT and PATCH /v2/groups/{id}: {"scaleBy": x} scales
// every app inside, any other body replaces what it lists.
func (s *Server) putGroup(w http.ResponseWriter, r *http.Request, id string) error {
	return s.writeGroup(w, r, appspec.CanonicalID(id), deploy.GroupUpdate)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request, id string) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	p, err := s.dep.ApplyGroup(ctx, deploy.GroupOp{Kind: deploy.GroupDelete, ID: appspec.CanonicalID(id), Force: forced(r), URI: r.URL.Path, ClientIP: clientIP(r)})
	if err != nil {
		return err
	}
	w.Header().Set("Marathon-Deployment-Id", p.ID)
	writeJSON(w, http.StatusOK, deploymentResult{Version: p.Version, DeploymentID: p.ID})
	return nil
}

func (s *Server) writeGroup(w http.ResponseWriter, r *http.Request, id string, kind deploy.GroupOpKind) error {
	// A group holds many apps: up to 16 app definitions' worth.
	body, err := readBodyLimit(r, appspec.MaxBodyBytes*16)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	op := deploy.GroupOp{Kind: kind, ID: id, Force: forced(r), DryRun: r.URL.Query().Get("dryRun") == "true", URI: r.URL.Path, ClientIP: clientIP(r)}
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) == nil && kind == deploy.GroupUpdate {
		if raw, ok := probe["scaleBy"]; ok {
			for k := range probe {
				if k != "scaleBy" && k != "id" {
					return invalid("/scaleBy", "scaleBy cannot be combined with other fields (but id)")
				}
			}
			if err := json.Unmarshal(raw, &op.ScaleBy); err != nil {
				return invalid("/scaleBy", "must be a number")
			}
			op.Kind = deploy.GroupScale
			return s.answerGroup(ctx, w, op, http.StatusOK)
		}
		if v, ok := rollbackVersion(body); ok {
			if bid, has := bodyID(body); has && appspec.CanonicalID(bid) != id {
				return invalid("/id", fmt.Sprintf("the body's id %q differs from the id in the path %q", bid, id))
			}
			op.ID = id
			return s.rollbackGroup(ctx, w, op, v)
		}
	}
	_, hasID := probe["id"]
	base := "/"
	switch {
	case id == "" && !hasID:
		return invalid("/id", "is required: give the group an id such as /prod/shop")
	case id != "":
		base = appspec.ParentID(id)
		if !hasID {
			// The group in the path is the group: relative ids in the
			// body resolve against it. A body that is no JSON object is
			// left for DecodeGroup to refuse with its path.
			if withID, err := appspec.WithID(body, id); err == nil {
				body = withID
			}
		}
	}
	g, err := appspec.DecodeGroup(bytes.NewReader(body), base)
	if err != nil {
		return err
	}
	if id != "" && g.ID != id {
		return invalid("/id", fmt.Sprintf("the body's id %q differs from the id in the path %q", g.ID, id))
	}
	op.ID = g.ID
	if err := s.checkGroup(ctx, g); err != nil {
		return err
	}
	op.Group = g
	status := http.StatusOK
	if kind == deploy.GroupCreate {
		status = http.StatusCreated
		w.Header().Set("Location", "/v2/groups"+g.ID)
	}
	return s.answerGroup(ctx, w, op, status)
}

func (s *Server) answerGroup(ctx context.Context, w http.ResponseWriter, op deploy.GroupOp, status int) error {
	p, err := s.dep.ApplyGroup(ctx, op)
	if err != nil {
		return err
	}
	if op.DryRun {
		writeJSON(w, http.StatusOK, map[string]any{"steps": planSteps(s.dep.StepActions(p))})
		return nil
	}
	w.Header().Set("Marathon-Deployment-Id", p.ID)
	writeJSON(w, status, deploymentResult{Version: p.Version, DeploymentID: p.ID})
	return nil
}

func planSteps(acts [][][2]string) []stepJSON {
	out := make([]stepJSON, 0, len(acts))
	for _, st := range acts {
		s := stepJSON{Actions: []actionJSON{}}
		for _, a := range st {
			s.Actions = append(s.Actions, actionJSON{Action: a[0], App: a[1]})
		}
		out = append(out, s)
	}
	return out
}

// checkGroup judges a group as every write is judged: the group's rules,
// then each app's (limits, secrets).
func (s *Server) checkGroup(ctx context.Context, g *appspec.Group) error {
	if err := g.Validate(s.dep.Limits()); err != nil {
		return err
	}
	for _, a := range g.AllApps() {
		if err := s.checkApp(ctx, a); err != nil {
			return prefixAppError(err, a.ID)
		}
	}
	return nil
}

// prefixAppError names the app a secret problem belongs to.
func prefixAppError(err error, id string) error {
	if he, ok := err.(*httpError); ok {
		for i := range he.Details {
			he.Details[i].Errors = append([]string{"app " + id + ":"}, he.Details[i].Errors...)
		}
		return he
	}
	return err
}
