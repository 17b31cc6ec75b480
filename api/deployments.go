package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/flotilla-sched/flotilla/deploy"
)

// deploymentJSON is Marathon's GET /v2/deployments entry plus Flotilla's
// progress deadline.
type deploymentJSON struct {
	ID             string              `json:"id"`
	Version        string              `json:"version"`
	AffectedApps   []string            `json:"affectedApps"`
	AffectedPods   []string            `json:"affectedPods"`
	Steps          []stepJSON          `json:"steps"`
	CurrentActions []currentActionJSON `json:"currentActions"`
	CurrentStep    int                 `json:"currentStep"`
	TotalSteps     int                 `json:"totalSteps"`
	// Flotilla's fields.
	StartedAt        string `json:"startedAt"`
	ProgressDeadline string `json:"progressDeadline"`
	Rollback         bool   `json:"rollback,omitempty"`
	RollbackOf       string `json:"rollbackOf,omitempty"`
	// Progress says how far it got: "2 of 3 instances …".
	Progress string `json:"progress,omitempty"`
}

type stepJSON struct {
	Actions []actionJSON `json:"actions"`
}

type actionJSON struct {
	Action string `json:"action"`
	App    string `json:"app"`
}

type currentActionJSON struct {
	Action string `json:"action"`
	App    string `json:"app"`
	// The app's readinessCheckResults while the action runs.
	ReadinessCheckResults []readinessResult `json:"readinessCheckResults"`
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	ds := s.dep.Deployments()
	out := make([]deploymentJSON, 0, len(ds))
	var snapHealth func(*deploy.Deployment) string
	readiness := func(string) []readinessResult { return []readinessResult{} }
	if len(ds) > 0 {
		snap := s.sched.SnapshotByApp()
		readiness = func(appID string) []readinessResult { return readinessResults(s.dep.App(appID), snap.TasksOf(appID)) }
		snapHealth = func(d *deploy.Deployment) string {
			m := s.dep.App(d.AppID)
			p := deploy.Reached(snap, d, m != nil && m.Health)
			if d.Action == deploy.ActionStop {
				return fmt.Sprintf("%d tasks still active", p.All)
			}
			return p.String()
		}
	}
	for _, d := range ds {
		if d.PlanID != "" {
			continue // shown as part of its group deployment below
		}
		out = append(out, deploymentJSON{
			ID: d.ID, Version: d.Version, AffectedApps: []string{d.AppID}, AffectedPods: []string{},
			Steps:          []stepJSON{{Actions: []actionJSON{{Action: d.Action, App: d.AppID}}}},
			CurrentActions: []currentActionJSON{{Action: d.Action, App: d.AppID, ReadinessCheckResults: readiness(d.AppID)}},
			CurrentStep:    1, TotalSteps: 1,
			StartedAt: timestamp(d.Started), ProgressDeadline: timestamp(d.Deadline),
			Rollback: d.Rollback, RollbackOf: d.RollbackOf, Progress: snapHealth(d),
		})
	}
	for _, p := range s.dep.Plans() {
		// A group deployment's deadline is its running apps' earliest.
		deadline := ""
		for _, d := range ds {
			if d.PlanID == p.ID && (deadline == "" || timestamp(d.Deadline) < deadline) {
				deadline = timestamp(d.Deadline)
			}
		}
		steps := planSteps(s.dep.StepActions(p))
		cur := []currentActionJSON{}
		if p.Current >= 0 && p.Current < len(steps) {
			for _, a := range steps[p.Current].Actions {
				cur = append(cur, currentActionJSON{Action: a.Action, App: a.App, ReadinessCheckResults: readiness(a.App)})
			}
		}
		out = append(out, deploymentJSON{
			ID: p.ID, Version: p.Version, AffectedApps: p.Affected(), AffectedPods: []string{},
			Steps: steps, CurrentActions: cur, CurrentStep: p.Current + 1, TotalSteps: len(steps),
			StartedAt: timestamp(p.Started), ProgressDeadline: deadline,
			Progress: fmt.Sprintf("step %d of %d", p.Current+1, len(steps)),
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteDeployment serves DELETE /v2/deployments/{id}: roll back (a new
// deployment, 200 with its id), or with force=true only forget it (202).
func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request, id string) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	nd, err := s.dep.Cancel(ctx, id, forced(r))
	switch {
	case err != nil:
		return err
	case forced(r):
		w.WriteHeader(http.StatusAccepted)
	case nd == nil:
		writeJSON(w, http.StatusOK, map[string]string{"message": "deployment canceled; there was nothing to roll back"})
	default:
		writeDeployment(w, http.StatusOK, nd)
	}
	return nil
}
