package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// appendLocalVolumes appends a resident task's localVolumes, as Marathon
// shows them (containerPath, persistenceId).
func appendLocalVolumes(b []byte, app *appspec.App, taskID string) []byte {
	b = append(b, `,"localVolumes":[`...)
	for i, v := range framework.LocalVolumes(app, taskID) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"containerPath":`...)
		b = appendString(b, v.ContainerPath)
		b = append(b, `,"persistenceId":`...)
		b = appendString(b, v.PersistenceID)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendSuspended appends a suspended resident instance as Marathon lists
// it among an app's tasks: where its volumes are, no state, no times.
func appendSuspended(b []byte, sp framework.Suspended, app *appspec.App) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, sp.TaskID)
	b = append(b, `,"appId":`...)
	b = appendString(b, sp.AppID)
	b = append(b, `,"slaveId":`...)
	b = appendString(b, sp.AgentID)
	b = append(b, `,"host":`...)
	b = appendString(b, sp.Host)
	b = appendLocalVolumes(b, app, sp.TaskID)
	return append(b, '}')
}

// wipeSuspended serves DELETE /v2/apps/{id}/tasks/{taskId}?wipe=true for
// a suspended instance: its volumes are destroyed and its reservation
// freed at the next offer of its agent; nothing is killed.
func (s *Server) wipeSuspended(w http.ResponseWriter, appID, taskID string) error {
	var sp *framework.Suspended
	for _, x := range s.sched.SuspendedOf(appID) {
		if x.TaskID == taskID {
			sp = &x
		}
	}
	if sp == nil {
		return errorf(http.StatusNotFound, "Task '%s' does not exist in app %s; list its tasks with GET /v2/apps%s/tasks", taskID, appID, appID)
	}
	if err := s.sched.WipeTasks(appID, []string{taskID}); err != nil {
		if errors.Is(err, framework.ErrUnknownTask) {
			return errorf(http.StatusNotFound, "%v; list the tasks again", err)
		}
		return fmt.Errorf("api: wipe %s of %s: %w", taskID, appID, err)
	}
	s.log.WithField("app", appID).WithField("task", taskID).Info("suspended resident instance wiped on request")
	m := s.dep.App(appID)
	if m == nil {
		return notFoundApp(appID)
	}
	b := append([]byte(`{"task":`), appendSuspended(nil, *sp, m.App)...)
	writeRaw(w, http.StatusOK, append(b, '}'))
	return nil
}

// wipeThenKillOnly wipes every listed task's instance and leaves in byApp
// only the ids of running tasks, the ones still to be killed: a
// suspended instance has no task.
func (s *Server) wipeThenKillOnly(apps []string, byApp map[string][]string, suspended map[string]bool) error {
	for _, a := range apps {
		if err := s.sched.WipeTasks(a, byApp[a]); err != nil {
			if errors.Is(err, framework.ErrUnknownTask) {
				return errorf(http.StatusNotFound, "%v; the task ended meanwhile, list the tasks again", err)
			}
			return fmt.Errorf("api: wipe tasks of %s: %w", a, err)
		}
		live := byApp[a][:0]
		for _, id := range byApp[a] {
			if !suspended[id] {
				live = append(live, id)
			}
		}
		byApp[a] = live
	}
	return nil
}
