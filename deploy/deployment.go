package deploy

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// Marathon's deployment actions.
const (
	ActionStart   = "StartApplication"
	ActionScale   = "ScaleApplication"
	ActionRestart = "RestartApplication"
	ActionStop    = "StopApplication"
)

// Deployment is one change being rolled out to one app. It is immutable
// once added.
type Deployment struct {
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
	// PlanID is the group deployment this is one app's part of, or "".
	PlanID string
}

// deploymentState is the progress data inside store.Deployment.
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
	PlanID     string       `json:"planId,omitempty"`
	// Plan is set on a group deployment's own record instead of AppID.
	Plan *planState `json:"plan,omitempty"`
}

func (d *Deployment) toStore() (*store.Deployment, error) {
	st, err := json.Marshal(deploymentState{AppID: d.AppID, Action: d.Action, Target: d.Target, Started: d.Started,
		Deadline: d.Deadline, Prev: d.Prev, PrevConfig: d.PrevConfig, Rollback: d.Rollback, RollbackOf: d.RollbackOf, PlanID: d.PlanID})
	if err != nil {
		return nil, fmt.Errorf("deploy: encode deployment %s: %w", d.ID, err)
	}
	return &store.Deployment{
		ID: d.ID, Version: d.Version, AffectedApps: []string{d.AppID},
		Steps:       []store.DeploymentStep{{Actions: []store.DeploymentAction{{Action: d.Action, App: d.AppID}}}},
		CurrentStep: 1, State: st,
	}, nil
}

func deploymentFromStore(sd *store.Deployment) (*Deployment, error) {
	var st deploymentState
	if err := json.Unmarshal(sd.State, &st); err != nil {
		return nil, fmt.Errorf("deploy: deployment %s: state is not Flotilla's: %w", sd.ID, err)
	}
	if st.Plan != nil {
		return nil, errIsPlan
	}
	if st.AppID == "" || st.Action == "" {
		return nil, fmt.Errorf("deploy: deployment %s: state names no app or action", sd.ID)
	}
	return &Deployment{ID: sd.ID, AppID: st.AppID, Action: st.Action, Version: sd.Version, Target: st.Target,
		Started: st.Started, Deadline: st.Deadline, Prev: st.Prev, PrevConfig: st.PrevConfig, Rollback: st.Rollback, RollbackOf: st.RollbackOf,
		PlanID: st.PlanID}, nil
}

// deployments holds the running deployments: at most one per app.
type deployments struct {
	mu    sync.RWMutex
	byID  map[string]*Deployment
	byApp map[string]*Deployment
	poke  chan struct{}
	// For toJudge (due.go): apps whose deployment started since the last
	// check, every deployment by deadline, and "judge all" after a
	// restore.
	fresh      map[string]struct{}
	byDeadline deadlineHeap
	all        bool
}

func newDeployments() *deployments {
	return &deployments{byID: map[string]*Deployment{}, byApp: map[string]*Deployment{}, poke: make(chan struct{}, 1),
		fresh: map[string]struct{}{}}
}

func (ds *deployments) wake() {
	select {
	case ds.poke <- struct{}{}:
	default:
	}
}

func (ds *deployments) add(d *Deployment) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.byID[d.ID] = d
	ds.byApp[d.AppID] = d
	ds.fresh[d.AppID] = struct{}{}
	heap.Push(&ds.byDeadline, d)
}

func (ds *deployments) remove(d *Deployment) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	delete(ds.byID, d.ID)
	if ds.byApp[d.AppID] == d {
		delete(ds.byApp, d.AppID)
	}
}

func (ds *deployments) replaceAll(list []*Deployment) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.byID = map[string]*Deployment{}
	ds.byApp = map[string]*Deployment{}
	ds.byDeadline = make(deadlineHeap, 0, len(list))
	for _, d := range list {
		ds.byID[d.ID] = d
		ds.byApp[d.AppID] = d
		ds.byDeadline = append(ds.byDeadline, d)
	}
	heap.Init(&ds.byDeadline)
	ds.all = true
}

func (ds *deployments) get(id string) *Deployment {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.byID[id]
}

func (ds *deployments) forApp(appID string) *Deployment {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.byApp[appID]
}

func (ds *deployments) byAppIDs() map[string]string {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	out := make(map[string]string, len(ds.byApp))
	for app, d := range ds.byApp {
		out[app] = d.ID
	}
	return out
}

func (ds *deployments) list() []*Deployment {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	out := make([]*Deployment, 0, len(ds.byID))
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
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for len(ds.byDeadline) > 0 {
		if d := ds.byDeadline[0]; ds.byID[d.ID] == d {
			return d.Deadline
		}
		heap.Pop(&ds.byDeadline) // ended
	}
	return time.Time{}
}

// Progress is how far a deployment got: tasks of the target version that
// run (and pass their health checks) against the instances wanted; for a
// stop, All counts the tasks still active.
type Progress struct {
	Done       bool
	Ready, All int
}

func (p Progress) String() string {
	return fmt.Sprintf("%d of %d instances of the new version running, healthy and ready", p.Ready, p.All)
}

// Reached judges a deployment from a snapshot. A StopApplication is done
// when the app and all its tasks are gone; any other when every active
// task of the app is of the target version, running, healthy where
// checked, ready (readiness package) and not being killed, and there are
// exactly instances of them. Pure.
func Reached(snap *framework.Snapshot, d *Deployment, health bool) Progress {
	ts := snap.TasksOf(d.AppID)
	if d.Action == ActionStop {
		active := 0
		for _, t := range ts {
			if t.Active() {
				active++
			}
		}
		return Progress{Done: snap.App(d.AppID) == nil && active == 0, All: active}
	}
	a := snap.App(d.AppID)
	if a == nil {
		return Progress{}
	}
	p := Progress{All: a.Instances}
	stale := false
	for _, t := range ts {
		if !t.Active() {
			continue
		}
		if t.AppVersion != d.Target || t.Killing {
			stale = true
			continue
		}
		if t.State == mesos.TASK_RUNNING && t.IsReady() && (!health || (t.Healthy != nil && *t.Healthy)) {
			p.Ready++
		} else {
			stale = true
		}
	}
	p.Done = a.Version == d.Target && !stale && p.Ready == a.Instances
	return p
}

// countKillable is how many of ids the scheduler will count as killed for
// a scale: active tasks not already being killed.
func countKillable(snap *framework.Snapshot, appID string, ids []string) int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, t := range snap.TasksOf(appID) {
		if want[t.ID] && t.Active() && !t.Killing {
			n++
		}
	}
	return n
}
