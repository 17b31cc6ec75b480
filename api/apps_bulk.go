package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
)

// bulkUpdate serves PUT and PATCH /v2/apps: an array of app updates
// applied as one deployment (Marathon's replaceMultiple and
// patchMultiple). Each update names its app by "id" and is read as PUT
// /v2/apps/{id} reads it: with PUT, partialUpdate (default true) merges it
// into the current app and an unknown id creates the app; PATCH always
// merges and answers 404 for an app that does not exist. {"id", "version"}
// alone rolls that app back to the version. Marathon skips an update
// without an id; Flotilla refuses it (a change must not be silently
// dropped). Every error's path starts with the update's index: /1/cmd.
// Nothing is written unless every update is valid.
func (s *Server) bulkUpdate(w http.ResponseWriter, r *http.Request, patch bool) error {
	body, err := readBodyLimit(r, appspec.MaxBodyBytes*16)
	if err != nil {
		return err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return &httpError{Status: http.StatusBadRequest, Message: "Invalid JSON",
			Details: []appspec.Detail{{Path: "/", Errors: []string{"must be a JSON array of app updates, each with an id: " + err.Error()}}}}
	}
	partial := patch || r.URL.Query().Get("partialUpdate") != "false"
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	apps := make([]*appspec.App, 0, len(raws))
	seen := map[string]int{}
	groups := s.dep.GroupVersions() // every group that exists
	for i, raw := range raws {
		path := "/" + strconv.Itoa(i)
		bid, ok := bodyID(raw)
		if !ok {
			if err := json.Unmarshal(raw, &map[string]json.RawMessage{}); err != nil {
				return invalid(path, "must be a JSON object (an app update)")
			}
			return invalid(path+"/id", "is required: each update names the app it changes")
		}
		id := appspec.CanonicalID(bid)
		if err := appspec.CheckID(id); err != nil {
			return invalid(path+"/id", err.Error())
		}
		if _, isGroup := groups[id]; isGroup {
			return invalid(path+"/id", fmt.Sprintf("%s is a group; an app and a group cannot share an id", id))
		}
		if j, dup := seen[id]; dup {
			return invalid(path+"/id", fmt.Sprintf("app %s is updated twice in one request (also at /%d); merge the updates", id, j))
		}
		seen[id] = i
		if err := isPod(s.dep.App(id)); err != nil {
			return atIndex(err, path) // pods.go: pods are written through /v2/pods
		}
		var app *appspec.App
		if v, ok := rollbackVersion(raw); ok {
			app, err = s.versionApp(ctx, id, v)
		} else {
			app, err = s.updatedApp(id, raw, partial, !patch)
		}
		if err == nil {
			err = s.checkApp(ctx, app)
		}
		if err != nil {
			return atIndex(err, path)
		}
		apps = append(apps, app)
	}
	if len(apps) == 0 {
		return invalid("/", "no app updates: send an array of at least one update")
	}
	p, err := s.dep.ApplyGroup(ctx, deploy.GroupOp{Kind: deploy.GroupApps, ID: "/", Apps: apps, Force: forced(r),
		URI: r.URL.Path, ClientIP: clientIP(r)})
	if err != nil {
		return err
	}
	w.Header().Set("Marathon-Deployment-Id", p.ID)
	writeJSON(w, http.StatusOK, deploymentResult{Version: p.Version, DeploymentID: p.ID})
	return nil
}

// atIndex puts an update's index in front of the paths of its errors.
func atIndex(err error, prefix string) error {
	var ve *appspec.ValidationError
	if errors.As(err, &ve) {
		out := &appspec.ValidationError{Message: ve.Message}
		for _, d := range ve.Details {
			out.Details = append(out.Details, appspec.Detail{Path: prefix + d.Path, Errors: d.Errors})
		}
		if errors.Is(err, appspec.ErrMalformed) {
			return &httpError{Status: http.StatusBadRequest, Message: out.Message, Details: out.Details}
		}
		return out
	}
	var he *httpError
	if errors.As(err, &he) {
		c := *he
		c.Details = nil
		for _, d := range he.Details {
			c.Details = append(c.Details, appspec.Detail{Path: prefix + d.Path, Errors: d.Errors})
		}
		return &c
	}
	return err
}
