package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

type opKind int

const (
	opCreate    opKind = iota // POST: refuse if the app exists
	opUpdate                  // PUT/PATCH: create, scale or change
	opRestart                 // new version, same config: every task replaced
	opStop                    // DELETE
	opKillScale               // kill tasks and shrink instances by as many
)

// writeOp is one change to one app.
type writeOp struct {
	kind    opKind
	id      string
	app     *appspec.App // the new spec (opCreate, opUpdate)
	taskIDs []string     // opKillScale
	force   bool
	// uri and clientIP feed api_post_event.
	uri, clientIP string
	// rollbackOf is the deployment this change rolls back; the deployment
	// it creates is never rolled back itself.
	rollbackOf string
	// cancelReason, when the change supersedes a deployment, says why
	// that deployment ended.
	cancelReason string
	// configVersion, when set, is the config version to give the
	// scheduler: a rollback restores the previous one, so the tasks still
	// running it are current again rather than replaced.
	configVersion string
}

type writeResult struct {
	meta    *appMeta // nil after opStop
	dep     *deployment
	created bool
}

func (s *Server) apply(ctx context.Context, op writeOp) (writeResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.applyLocked(ctx, op)
}

// configEqual reports whether two specs differ at most in instances (and
// version): such a change is a scale and replaces no task.
func configEqual(a, b *appspec.App) bool {
	ca, cb := *a, *b
	ca.Instances, cb.Instances = 0, 0
	ca.Version, cb.Version = "", ""
	ja, err1 := json.Marshal(&ca)
	jb, err2 := json.Marshal(&cb)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func (s *Server) deadlineOf(app *appspec.App) time.Duration {
	if app != nil && app.ProgressDeadlineSeconds > 0 {
		return time.Duration(app.ProgressDeadlineSeconds * float64(time.Second))
	}
	return s.cfg.ProgressDeadline
}

// applyLocked changes one app: deployment lock, store, scheduler, index,
// deployment, events, in that order; it returns before touching the
// scheduler if the store refuses, so nothing is half-written.
func (s *Server) applyLocked(ctx context.Context, op writeOp) (writeResult, error) {
	cur := s.idx.get(op.id)
	if op.app != nil && (op.kind == opCreate || op.kind == opUpdate) {
		// Before the action is chosen: an update that leaves its service
		// ports at 0 keeps the assigned ones, and is then still a scale.
		var prev *appspec.App
		if cur != nil {
			prev = cur.app
		}
		holder := func(p uint32) string { return s.idx.servicePortHolder(p, op.id) }
		if err := appspec.AssignServicePorts(op.app, prev, holder, s.cfg.ServicePorts); err != nil {
			return writeResult{}, err
		}
	}
	var action string
	switch op.kind {
	case opCreate:
		if cur != nil {
			return writeResult{}, errorf(http.StatusConflict, "An app with id [%s] already exists; change it with PUT /v2/apps%s", op.id, op.id)
		}
		action = actionStart
	case opUpdate:
		switch {
		case cur == nil:
			action = actionStart
		case configEqual(cur.app, op.app):
			action = actionScale
		default:
			action = actionRestart
		}
	case opRestart:
		action = actionRestart
	case opStop:
		action = actionStop
	case opKillScale:
		action = actionScale
	}
	brokenItem, broken := s.broken.app(op.id)
	switch {
	case broken && cur == nil && op.kind == opCreate:
		return writeResult{}, brokenAppError(op.id, brokenItem)
	case broken && cur == nil && op.kind != opUpdate && op.kind != opStop:
		return writeResult{}, brokenAppError(op.id, brokenItem)
	case cur == nil && !broken && op.kind != opCreate && op.kind != opUpdate:
		return writeResult{}, notFoundApp(op.id)
	}
	blocking := s.deps.forApp(op.id)
	if blocking != nil && !op.force {
		return writeResult{}, &httpError{Status: http.StatusConflict,
			Message:     fmt.Sprintf("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/%s'.", blocking.ID),
			Deployments: []deploymentRef{{ID: blocking.ID}}}
	}

	expect := store.CreateOnly
	if cur != nil {
		expect = cur.rev
	} else if broken {
		expect = store.AnyRevision // replacing or deleting what could not be read
	}
	// keep is the config version the write keeps: a scale keeps the one
	// the tasks run, a rollback restores its own; anything else is a new
	// config. Stored, so that a new leader does not restart scaled tasks.
	keep := op.configVersion
	if keep == "" && action == actionScale && cur != nil {
		keep = cur.configVersion
	}
	var (
		stored store.StoredApp
		err    error
	)
	switch op.kind {
	case opStop:
		err = s.st.DeleteApp(ctx, op.id, expect)
	case opRestart:
		a := *cur.app
		stored, err = s.st.PutAppConfig(ctx, &a, expect, keep)
	case opKillScale:
		a := *cur.app
		a.Instances = max(0, a.Instances-countKillable(s.sched.Snapshot(), op.id, op.taskIDs))
		stored, err = s.st.PutAppConfig(ctx, &a, expect, keep)
	default:
		stored, err = s.st.PutAppConfig(ctx, op.app, expect, keep)
	}
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.log.WithError(err).WithField("app", op.id).Warn("store refused a write: the app changed outside this replica")
			if op.kind == opCreate {
				return writeResult{}, errorf(http.StatusConflict, "An app with id [%s] already exists in the store; change it with PUT /v2/apps%s", op.id, op.id)
			}
		}
		return writeResult{}, fmt.Errorf("api: store app %s: %w", op.id, err)
	}

	if broken && !s.broken.resolve(op.id) {
		// The last app the store could not read is replaced or gone: the
		// desired state is complete again, and unknown tasks can be judged.
		s.sched.HoldUnknown(false)
	}
	now := s.now()
	var meta *appMeta
	version := timestamp(now)
	if op.kind != opStop {
		meta = newMeta(stored.App, stored.Revision, stored.ConfigVersion, stored.App.Version)
		version = stored.App.Version
	}

	switch op.kind {
	case opStop:
		if err := s.sched.RemoveApp(op.id); err != nil && !errors.Is(err, framework.ErrUnknownApp) {
			s.log.WithError(err).WithField("app", op.id).Error("scheduler refused to remove an app the store no longer has")
		}
		s.idx.remove(op.id)
		s.lastTF.forget(op.id)
	case opKillScale:
		s.idx.put(meta)
		if err := s.sched.KillTasks(op.id, op.taskIDs, true); err != nil {
			// A task ended meanwhile; the instance count is what matters.
			s.log.WithError(err).WithField("app", op.id).Warn("kill with scale: some tasks were already gone")
			if err := s.sched.Scale(op.id, meta.app.Instances); err != nil {
				// The store has the new count; a new leader applies it.
				s.log.WithError(err).WithFields(logrus.Fields{"app": op.id, "instances": meta.app.Instances}).Error("kill with scale: the scheduler did not take the new instance count")
			}
		}
	default:
		s.idx.put(meta)
		s.sched.PutApp(meta.schedulerApp())
	}

	d := &deployment{
		ID: s.newID(), AppID: op.id, Action: action, Version: version, Started: now,
		Rollback: op.rollbackOf != "", RollbackOf: op.rollbackOf,
	}
	if meta != nil {
		d.Target = meta.configVersion
		d.Deadline = now.Add(s.deadlineOf(meta.app))
	} else if cur != nil {
		d.Deadline = now.Add(s.deadlineOf(cur.app))
	} else {
		d.Deadline = now.Add(s.deadlineOf(nil)) // a broken app deleted
	}
	if cur != nil {
		d.Prev, d.PrevConfig = cur.app, cur.configVersion
	}
	if blocking != nil {
		reason := op.cancelReason
		if reason == "" {
			reason = fmt.Sprintf("superseded by deployment %s, forced with ?force=true", d.ID)
		}
		s.finishLocked(ctx, blocking, false, reason)
	}
	s.deps.add(d)
	if err := s.st.PutDeployment(ctx, d.toStore()); err != nil {
		// The change itself is stored; only a new leader's view of its
		// progress is lost, and it then sees no deployment for the app.
		s.log.WithError(err).WithFields(logrus.Fields{"app": op.id, "deployment": d.ID}).Error("deployment not persisted")
	}
	s.met.deploymentsStarted.Inc()
	s.log.WithFields(logrus.Fields{"app": op.id, "deployment": d.ID, "action": action, "version": version}).Info("deployment started")
	if op.uri != "" && meta != nil {
		s.publishAPIPost(op, meta)
	}
	s.publishDeployment(eventDeploymentInfo, d, "")
	s.deps.wake()
	return writeResult{meta: meta, dep: d, created: cur == nil && op.kind != opStop}, nil
}

// countKillable is how many of ids the scheduler will count as killed for
// a scale: active tasks not already being killed.
func countKillable(snap *framework.Snapshot, appID string, ids []string) int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, t := range tasksOf(snap, appID) {
		if want[t.ID] && t.Active() && !t.Killing {
			n++
		}
	}
	return n
}

// progress is how far a deployment got: tasks of the target version that
// run (and pass their health checks) against the instances wanted.
type progress struct {
	done       bool
	ready, all int
}

func (p progress) String() string {
	return fmt.Sprintf("%d of %d instances of the new version running, healthy and ready", p.ready, p.all)
}

// reached judges a deployment from a snapshot. A StopApplication is done
// when the app and all its tasks are gone; any other when every active
// task of the app is of the target version, running, healthy where
// checked, ready (readiness package) and not being killed, and there are
// exactly instances of them.
func reached(snap *framework.Snapshot, d *deployment, health bool) progress {
	ts := tasksOf(snap, d.AppID)
	if d.Action == actionStop {
		active := 0
		for _, t := range ts {
			if t.Active() {
				active++
			}
		}
		return progress{done: snapApp(snap, d.AppID) == nil && active == 0, all: active}
	}
	a := snapApp(snap, d.AppID)
	if a == nil {
		return progress{}
	}
	p := progress{all: a.Instances}
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
			p.ready++
		} else {
			stale = true
		}
	}
	p.done = a.Version == d.Target && !stale && p.ready == a.Instances
	return p
}

// snapApp finds an app in a snapshot by binary search (Apps is sorted).
func snapApp(snap *framework.Snapshot, id string) *appspec.App {
	lo, hi := 0, len(snap.Apps)
	for lo < hi {
		m := (lo + hi) / 2
		if snap.Apps[m].ID < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(snap.Apps) && snap.Apps[lo].ID == id {
		return snap.Apps[lo]
	}
	return nil
}

// ErrDeploymentInProgress: Scale found the app locked by a deployment.
var ErrDeploymentInProgress = errors.New("api: the app has a deployment in progress")

// Scale sets an app's instances exactly as PUT /v2/apps/{id}
// {"instances": n} does (stored, a ScaleApplication deployment, events),
// for in-process callers such as the autoscaler. It does not override a
// deployment in progress: it fails with ErrDeploymentInProgress (wrapped)
// and the caller retries later. It returns the deployment id.
func (s *Server) Scale(ctx context.Context, appID string, instances int) (string, error) {
	if instances < 0 {
		return "", fmt.Errorf("api: scale %s to %d: instances must not be negative", appID, instances)
	}
	if max := s.cfg.Limits.MaxInstances; instances > max {
		return "", fmt.Errorf("api: scale %s to %d: more than %d, this server's limit of instances per app (--max-instances)", appID, instances, max)
	}
	id := appspec.CanonicalID(appID)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cur := s.idx.get(id)
	if cur == nil {
		return "", fmt.Errorf("api: scale %s: %w", id, framework.ErrUnknownApp)
	}
	if d := s.deps.forApp(id); d != nil {
		return "", fmt.Errorf("api: scale %s: %w (deployment %s)", id, ErrDeploymentInProgress, d.ID)
	}
	a := *cur.app
	a.Instances = instances
	res, err := s.applyLocked(ctx, writeOp{kind: opUpdate, id: id, app: &a})
	if err != nil {
		return "", err
	}
	return res.dep.ID, nil
}
