package api

import (
	"net/http"
	"sync"
	"time"

	"github.com/flotilla-sched/flotilla/framework"
)

// Recently ended tasks: a task leaves the scheduler's snapshot when it
// ends, but its sandbox stays on its agent (localmesos keeps finished
// sandboxes for an hour, Mesos for --gc_delay), so its logs can still be
// read if the API remembers where it ran. This is a short, bounded record
// of tasks that ended — failed, finished or killed — and their agents;
// GET /v2/apps/{id}/tasks/ended lists an app's, and the logs endpoint
// reads them like running ones.

const (
	// recentTasksMax bounds the record across all apps: a crash loop of
	// many apps must not grow it, and the oldest go first.
	recentTasksMax = 1000
	// recentTaskMaxAge is how long an ended task is remembered: the agent
	// keeps a finished sandbox about this long (localmesos's GC delay).
	recentTaskMaxAge = time.Hour
)

// endedTask is one task that ended, in the shape of GET
// /v2/apps/{id}/tasks/ended.
type endedTask struct {
	ID      string    `json:"id"`
	AppID   string    `json:"appId"`
	SlaveID string    `json:"slaveId"`
	Host    string    `json:"host"`
	State   string    `json:"state"`
	Message string    `json:"message"`
	Version string    `json:"version"`
	EndedAt time.Time `json:"-"`
	Ended   string    `json:"endedAt"`
}

// recentTasks holds the last recentTasksMax ended tasks, oldest first.
type recentTasks struct {
	mu    sync.Mutex
	tasks []endedTask
}

func (r *recentTasks) add(t *framework.Task, at time.Time) {
	e := endedTask{ID: t.ID, AppID: t.AppID, SlaveID: t.AgentID, Host: t.Host, State: t.State.String(),
		Message: t.Message, Version: t.AppVersion, EndedAt: at, Ended: timestamp(at)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tasks) >= recentTasksMax {
		// Shift rather than ring: adds are one per ended task, and the
		// copy of 1,000 small structs is cheaper than the bookkeeping.
		n := copy(r.tasks, r.tasks[len(r.tasks)-recentTasksMax+1:])
		r.tasks = r.tasks[:n]
	}
	r.tasks = append(r.tasks, e)
}

// of lists the app's ended tasks not older than recentTaskMaxAge, newest
// first.
func (r *recentTasks) of(appID string, now time.Time) []endedTask {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []endedTask{}
	for i := len(r.tasks) - 1; i >= 0; i-- {
		e := r.tasks[i]
		if now.Sub(e.EndedAt) > recentTaskMaxAge {
			break // older ones are older still
		}
		if e.AppID == appID {
			out = append(out, e)
		}
	}
	return out
}

// find is the ended task's record, if it is remembered.
func (r *recentTasks) find(appID, taskID string, now time.Time) (endedTask, bool) {
	for _, e := range r.of(appID, now) {
		if e.ID == taskID {
			return e, true
		}
	}
	return endedTask{}, false
}

// endedTasks serves GET /v2/apps/{id}/tasks/ended.
func (s *Server) endedTasks(w http.ResponseWriter, _ *http.Request, appID string) error {
	if s.dep.App(appID) == nil {
		return notFoundApp(appID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": s.recent.of(appID, s.now())})
	return nil
}
