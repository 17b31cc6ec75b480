package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
)

// groupVersions serves GET /v2/groups/{id}/versions: the group's current
// version and those kept (deploy/groupversions.go), newest first.
func (s *Server) groupVersions(w http.ResponseWriter, r *http.Request, id string) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	vs, err := s.dep.ListGroupVersions(ctx, appspec.CanonicalID(id))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, vs)
	return nil
}

// groupVersion serves GET /v2/groups/{id}/versions/{version}: the group
// as it was, its apps in full.
func (s *Server) groupVersion(w http.ResponseWriter, r *http.Request, id, version string) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	g, err := s.dep.GroupAt(ctx, appspec.CanonicalID(id), version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, versionJSON(g, version))
	return nil
}

// groupVersionJSON is a group version in Marathon's group shape.
type groupVersionJSON struct {
	ID           string             `json:"id"`
	Dependencies []string           `json:"dependencies"`
	Version      string             `json:"version"`
	Apps         []*appspec.App     `json:"apps"`
	Groups       []groupVersionJSON `json:"groups"`
	Pods         []any              `json:"pods"`
}

func versionJSON(g *appspec.Group, version string) groupVersionJSON {
	out := groupVersionJSON{ID: g.ID, Dependencies: append([]string{}, g.Dependencies...), Version: version,
		Apps: append([]*appspec.App{}, g.Apps...), Groups: []groupVersionJSON{}, Pods: []any{}}
	for _, c := range g.Groups {
		out.Groups = append(out.Groups, versionJSON(c, c.Version))
	}
	return out
}

// rollbackGroup serves PUT /v2/groups/{id} {"version": V}: the group as
// it was at V replaces the group and everything in it, as one group
// deployment (Marathon's revert to an older version). The old apps are
// judged by today's rules; nothing is written unless all pass.
func (s *Server) rollbackGroup(ctx context.Context, w http.ResponseWriter, op deploy.GroupOp, version string) error {
	g, err := s.dep.GroupAt(ctx, op.ID, version)
	var de *deploy.Error
	if errors.As(err, &de) && de.Kind == deploy.NotFound {
		if _, exists := s.dep.GroupVersions()[op.ID]; exists {
			// The group exists; the version does not.
			return &httpError{Status: http.StatusNotFound, Message: de.Message,
				Details: []appspec.Detail{{Path: "/version", Errors: []string{"no such version of this group"}}}}
		}
	}
	if err != nil {
		return err
	}
	for _, a := range g.AllApps() {
		a.Version = ""
	}
	for _, c := range g.AllGroups() {
		c.Version = ""
	}
	if err := s.checkGroup(ctx, g); err != nil {
		return err
	}
	op.Group = g
	return s.answerGroup(ctx, w, op, http.StatusOK)
}
