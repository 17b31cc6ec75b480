package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/store"
)

// deployment is one change being rolled out to one app. It is immutable
// once added.
type deployment struct {
	ID      string
	AppID   string
	Action  string
	Version string // the app version it deploys (or the time of a stop)
	// Target is the config version every task must run at the end.
	Target   string
	Started  time.Time
	Deadline time.Time
	// Prev is the app before the change (nil for a create): what a
	// rollback restores. Kept whole because a stop deletes the history.
	Prev *appspec.App
	// PrevConfig is Prev's config version: the version its tasks carry.
	PrevConfig string
	Rollback   bool
	RollbackOf string
}

// deploymentState is the API's progress data inside store.Deployment.
type deploymentState struct {
	AppID      string       `json:"appId"`
	Action     string       `json:"action"`
	Target     string       `json:"target"`
	Started    time.Time    `json:"started"`
	Deadline   time.Time    `json:"deadline"`
	Prev       *appspec.App `json:"prev,omitempty"`
	PrevConfig string       `json:"prevConfig,omitempty"`
	Rollback   bool         `json:"rollback,omitempty"`
	RollbackOf string       `json:"rollbackOf,omitempty"`
}

func (d *deployment) toStore() *store.Deployment {
	st, _ := json.Marshal(deploymentState{AppID: d.AppID, Action: d.Action, Target: d.Target, Started: d.Started,
		Deadline: d.Deadline, Prev: d.Prev, PrevConfig: d.PrevConfig, Rollback: d.Rollback, RollbackOf: d.RollbackOf})
	return &store.Deployment{
		ID: d.ID, Version: d.Version, AffectedApps: []string{d.AppID},
		Steps:       []store.DeploymentStep{{Actions: []store.DeploymentAction{{Action: d.Action, App: d.AppID}}}},
		CurrentStep: 1, State: st,
	}
}

func deploymentFromStore(sd *store.Deployment) (*deployment, error) {
	var st deploymentState
	if err := json.Unmarshal(sd.State, &st); err != nil {
		return nil, fmt.Errorf("api: deployment %s: state is not the API's: %w", sd.ID, err)
	}
	if st.AppID == "" || st.Action == "" {
		return nil, fmt.Errorf("api: deployment %s: state names no app or action", sd.ID)
	}
	return &deployment{ID: sd.ID, AppID: st.AppID, Action: st.Action, Version: sd.Version, Target: st.Target,
		Started: st.Started, Deadline: st.Deadline, Prev: st.Prev, PrevConfig: st.PrevConfig, Rollback: st.Rollback, RollbackOf: st.RollbackOf}, nil
}

// deployments holds the running deployments: at most one per app.
type deployments struct {
	mu    sync.RWMutex
	byID  map[string]*deployment
	byApp map[string]*deployment
	poke  chan struct{}
}

func newDeployments() *deployments {
	return &deployments{byID: map[string]*deployment{}, byApp: map[string]*deployment{}, poke: make(chan struct{}, 1)}
}

func (ds *deployments) wake() {
	select {
	case ds.poke <- struct{}{}:
	default:
	}
}

func (ds *deployments) add(d *deployment) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.byID[d.ID] = d
	ds.byApp[d.AppID] = d
}

func (ds *deployments) remove(d *deployment) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	delete(ds.byID, d.ID)
	if ds.byApp[d.AppID] == d {
		delete(ds.byApp, d.AppID)
	}
}

func (ds *deployments) replaceAll(list []*deployment) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.byID = map[string]*deployment{}
	ds.byApp = map[string]*deployment{}
	for _, d := range list {
		ds.byID[d.ID] = d
		ds.byApp[d.AppID] = d
	}
}

func (ds *deployments) get(id string) *deployment {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.byID[id]
}

func (ds *deployments) forApp(appID string) *deployment {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.byApp[appID]
}

func (ds *deployments) idForApp(appID string) string {
	if d := ds.forApp(appID); d != nil {
		return d.ID
	}
	return ""
}

// byAppIDs maps app id → deployment id, copied for one response.
func (ds *deployments) byAppIDs() map[string]string {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	out := make(map[string]string, len(ds.byApp))
	for app, d := range ds.byApp {
		out[app] = d.ID
	}
	return out
}

func (ds *deployments) list() []*deployment {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	out := make([]*deployment, 0, len(ds.byID))
	for _, d := range ds.byID {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (ds *deployments) count() int {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return len(ds.byID)
}

func (ds *deployments) nextDeadline() time.Time {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	var next time.Time
	for _, d := range ds.byID {
		if next.IsZero() || d.Deadline.Before(next) {
			next = d.Deadline
		}
	}
	return next
}

// finishLocked ends a deployment (caller holds wmu): forgotten, removed
// from the store, announced.
func (s *Server) finishLocked(ctx context.Context, d *deployment, success bool, reason string) {
	if s.deps.get(d.ID) != d {
		return
	}
	s.deps.remove(d)
	if err := s.st.DeleteDeployment(ctx, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.WithError(err).WithField("deployment", d.ID).Error("finished deployment not removed from the store; a new leader will judge it again")
	}
	log := s.log.WithFields(logrus.Fields{"app": d.AppID, "deployment": d.ID, "action": d.Action, "version": d.Version})
	if success {
		s.met.deploymentsEnded.WithLabelValues("success").Inc()
		log.Info("deployment succeeded")
		s.publishDeployment(eventDeploymentSuccess, d, "")
		return
	}
	s.met.deploymentsEnded.WithLabelValues("failed").Inc()
	log.WithField("reason", reason).Warn("deployment failed")
	s.publishDeployment(eventDeploymentFailed, d, reason)
}

// checkDeployments finishes the deployments that reached their target
// and fails (and rolls back) those past their deadline.
func (s *Server) checkDeployments(ctx context.Context) {
	ds := s.deps.list()
	if len(ds) == 0 {
		return
	}
	snap := s.sched.Snapshot()
	now := s.now()
	for _, d := range ds {
		health := false
		if m := s.idx.get(d.AppID); m != nil {
			health = m.health
		}
		p := reached(snap, d, health)
		switch {
		case p.done:
			s.wmu.Lock()
			s.finishLocked(ctx, d, true, "")
			s.wmu.Unlock()
		case !now.Before(d.Deadline):
			s.deadlinePassed(ctx, d, p)
		}
	}
}

func (s *Server) deadlinePassed(ctx context.Context, d *deployment, p progress) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.deps.get(d.ID) != d {
		return
	}
	reason := fmt.Sprintf("progress deadline of %s passed with %s", d.Deadline.Sub(d.Started), p)
	if d.Action == actionStop {
		reason = fmt.Sprintf("progress deadline of %s passed with %d tasks of the removed app still active", d.Deadline.Sub(d.Started), p.all)
	}
	switch {
	case d.Rollback:
		s.finishLocked(ctx, d, false, reason+"; this deployment was itself a rollback, so it is not rolled back again: fix the app and deploy it")
		return
	case d.Action == actionStop:
		s.finishLocked(ctx, d, false, reason+"; a removal is not rolled back")
		return
	}
	if _, err := s.rollbackLocked(ctx, d, reason); err != nil {
		s.finishLocked(ctx, d, false, fmt.Sprintf("%s; the automatic rollback failed: %v", reason, err))
	}
}

// rollbackLocked restores the app as it was before d (removing it if d
// created it), as a new deployment that supersedes d.
func (s *Server) rollbackLocked(ctx context.Context, d *deployment, why string) (*deployment, error) {
	op := writeOp{id: d.AppID, force: true, rollbackOf: d.ID}
	if d.Prev == nil {
		op.kind = opStop
		op.cancelReason = why + "; rolling back: the app did not exist before, so it is removed"
	} else {
		prev := *d.Prev
		prev.Version = ""
		op.kind, op.app = opUpdate, &prev
		if cur := s.idx.get(d.AppID); cur == nil || !configEqual(cur.app, &prev) {
			op.configVersion = d.PrevConfig
		}
		op.cancelReason = fmt.Sprintf("%s; rolling back to version %s", why, d.Prev.Version)
	}
	if op.kind == opStop && s.idx.get(d.AppID) == nil {
		// Nothing to remove (already gone).
		s.finishLocked(ctx, d, false, why)
		return nil, nil
	}
	res, err := s.applyLocked(ctx, op)
	if err != nil {
		return nil, err
	}
	return res.dep, nil
}

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
	Action                string `json:"action"`
	App                   string `json:"app"`
	ReadinessCheckResults []any  `json:"readinessCheckResults"`
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	ds := s.deps.list()
	out := make([]deploymentJSON, 0, len(ds))
	var snapHealth func(*deployment) string
	if len(ds) > 0 {
		snap := s.sched.Snapshot()
		snapHealth = func(d *deployment) string {
			m := s.idx.get(d.AppID)
			p := reached(snap, d, m != nil && m.health)
			if d.Action == actionStop {
				return fmt.Sprintf("%d tasks still active", p.all)
			}
			return p.String()
		}
	}
	for _, d := range ds {
		out = append(out, deploymentJSON{
			ID: d.ID, Version: d.Version, AffectedApps: []string{d.AppID}, AffectedPods: []string{},
			Steps:          []stepJSON{{Actions: []actionJSON{{Action: d.Action, App: d.AppID}}}},
			CurrentActions: []currentActionJSON{{Action: d.Action, App: d.AppID, ReadinessCheckResults: []any{}}},
			CurrentStep:    1, TotalSteps: 1,
			StartedAt: timestamp(d.Started), ProgressDeadline: timestamp(d.Deadline),
			Rollback: d.Rollback, RollbackOf: d.RollbackOf, Progress: snapHealth(d),
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
	s.wmu.Lock()
	defer s.wmu.Unlock()
	d := s.deps.get(id)
	if d == nil {
		return errorf(http.StatusNotFound, "DeploymentPlan %s does not exist (it may have finished); list the running ones with GET /v2/deployments", id)
	}
	if forced(r) {
		s.finishLocked(ctx, d, false, fmt.Sprintf("canceled with DELETE /v2/deployments/%s?force=true; the app is left as it is", id))
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	nd, err := s.rollbackLocked(ctx, d, fmt.Sprintf("canceled with DELETE /v2/deployments/%s", id))
	if err != nil {
		return fmt.Errorf("api: roll back deployment %s: %w", id, err)
	}
	if nd == nil {
		writeJSON(w, http.StatusOK, map[string]string{"message": "deployment canceled; there was nothing to roll back"})
		return nil
	}
	writeJSON(w, http.StatusOK, deploymentResult{Version: nd.Version, DeploymentID: nd.ID})
	return nil
}
