package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
)

// resetDelay serves DELETE /v2/queue/{id}/delay: the app's launch backoff
// is cleared, as Marathon does, and the answer is 204.
func (s *Server) resetDelay(w http.ResponseWriter, r *http.Request, id string) error {
	id = appspec.CanonicalID(id)
	if s.dep.App(id) == nil {
		return s.appMissing(id)
	}
	if err := s.sched.ResetDelay(id); err != nil {
		if errors.Is(err, framework.ErrUnknownApp) {
			return notFoundApp(id)
		}
		return fmt.Errorf("api: reset the launch delay of %s: %w", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteTasks serves POST /v2/tasks/delete {"ids": [...]}: the tasks are
// killed, grouped by app; with scale=true each app's instances shrink by
// as many, as one scale deployment per app (force=true overrides a
// deployment in progress). With wipe=true the tasks' resident instances
// give up their reservations and volumes (framework.WipeTasks); the ids
// may then also name suspended instances, which are wiped, not killed.
func (s *Server) deleteTasks(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	wipe := q.Get("wipe") == "true"
	var body struct {
		IDs []string `json:"ids"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, appspec.MaxBodyBytes+1))
	if err != nil {
		return err
	}
	if len(b) > appspec.MaxBodyBytes {
		return errorf(http.StatusRequestEntityTooLarge, "the list of task ids is larger than 1 MiB; send it in parts")
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return &httpError{Status: http.StatusBadRequest, Message: "Invalid JSON", Details: []appspec.Detail{{Path: "/ids", Errors: []string{`want {"ids": ["<task id>", …]}: ` + err.Error()}}}}
	}
	byApp := map[string][]string{}
	for i, id := range body.IDs {
		app, ok := framework.AppIDFromTaskID(id)
		if !ok {
			return invalid(fmt.Sprintf("/ids/%d", i), fmt.Sprintf("%q is not a task id of this Flotilla (<app>.instance-<uuid>._app.1)", id))
		}
		if s.dep.App(app) == nil {
			return &httpError{Status: http.StatusNotFound, Message: fmt.Sprintf("App '%s' of task %s does not exist", app, id),
				Details: []appspec.Detail{{Path: fmt.Sprintf("/ids/%d", i), Errors: []string{"no such app"}}}}
		}
		byApp[app] = append(byApp[app], id)
	}
	apps := make([]string, 0, len(byApp))
	for a := range byApp {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	snap := s.sched.SnapshotByApp()
	// Every id is checked before anything is killed: nothing half-done.
	suspended := map[string]bool{} // wiped, not killed
	for _, a := range apps {
		known := map[string]bool{}
		for _, t := range snap.TasksOf(a) {
			known[t.ID] = true
		}
		if wipe {
			for _, sp := range s.sched.SuspendedOf(a) {
				suspended[sp.TaskID] = true
			}
		}
		for _, id := range byApp[a] {
			if !known[id] && !suspended[id] {
				return errorf(http.StatusNotFound, "Task '%s' does not exist in app %s; list its tasks with GET /v2/apps%s/tasks", id, a, a)
			}
		}
	}
	if wipe {
		if err := s.wipeThenKillOnly(apps, byApp, suspended); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if q.Get("scale") == "true" {
		var last *deploy.Deployment
		for _, a := range apps {
			if len(byApp[a]) == 0 {
				continue // only suspended instances: wiped, nothing to kill
			}
			res, err := s.dep.Apply(ctx, deploy.Op{Kind: deploy.OpKillScale, ID: a, TaskIDs: byApp[a], Force: forced(r), URI: r.URL.Path, ClientIP: clientIP(r)})
			if err != nil {
				return err
			}
			last = res.Deployment
		}
		if last == nil {
			writeJSON(w, http.StatusOK, map[string]any{"tasks": []any{}})
			return nil
		}
		writeDeployment(w, http.StatusOK, last)
		return nil
	}
	for _, a := range apps {
		if len(byApp[a]) == 0 {
			continue
		}
		if err := s.sched.KillTasks(a, byApp[a]); err != nil {
			if errors.Is(err, framework.ErrUnknownTask) {
				return errorf(http.StatusNotFound, "%v; the task ended meanwhile, list the tasks again", err)
			}
			return fmt.Errorf("api: kill tasks of %s: %w", a, err)
		}
	}
	out := []byte(`{"tasks":[`)
	first := true
	for _, a := range apps {
		m := s.dep.App(a)
		want := map[string]bool{}
		for _, id := range byApp[a] {
			want[id] = true
		}
		ts := snap.TasksOf(a)
		for i := range ts {
			if !want[ts[i].ID] {
				continue
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = appendTask(out, &ts[i], m)
		}
	}
	writeRaw(w, http.StatusOK, append(out, "]}"...))
	return nil
}
