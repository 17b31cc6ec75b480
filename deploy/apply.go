package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// OpKind is what an Op does.
type OpKind int

const (
	OpCreate    OpKind = iota // POST: refuse if the app exists
	OpUpdate                  // PUT/PATCH: create, scale or change
	OpRestart                 // new version, same config: every task replaced
	OpStop                    // DELETE
	OpKillScale               // kill tasks and shrink instances by as many
)

// Op is one change to one app.
type Op struct {
	Kind    OpKind
	ID      string
	App     *appspec.App // the new spec (OpCreate, OpUpdate); service ports are filled in
	TaskIDs []string     // OpKillScale
	Force   bool
	// URI and ClientIP are passed to Publisher.AppWritten.
	URI, ClientIP string

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
	// planID is the group deployment this change is a step of.
	planID string
}

// Result is what Apply did.
type Result struct {
	Record     *Record // nil after OpStop
	Deployment *Deployment
	Created    bool
}

// ErrorKind classifies a refused Op, for the API's status code.
type ErrorKind int

const (
	// Conflict: the app exists (create), or the store holds a newer one.
	Conflict ErrorKind = iota + 1
	// NotFound: no such app or deployment.
	NotFound
	// Locked: a deployment of the app runs and the Op was not forced.
	Locked
	// Unreadable: the store holds the app but cannot decode it.
	Unreadable
)

// Error is an Op refused for a reason the client can act on.
type Error struct {
	Kind    ErrorKind
	Message string
	// Deployment is the blocking deployment's id (Locked).
	Deployment string
}

func (e *Error) Error() string { return e.Message }

func errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// NotFoundApp is the error for an unknown app id.
func NotFoundApp(id string) *Error {
	return errorf(NotFound, "App '%s' does not exist; list the apps with GET /v2/apps", id)
}

// UnreadableApp is the error for an app the store holds but cannot read.
func UnreadableApp(id string, it store.Broken) *Error {
	return errorf(Unreadable, "App '%s' is in the store but cannot be read (%v); replace it with PUT /v2/apps%s or remove it with DELETE /v2/apps%s", id, it.Err, id, id)
}

// ErrDeploymentInProgress: Scale found the app locked by a deployment.
var ErrDeploymentInProgress = errors.New("deploy: the app has a deployment in progress")

// Apply changes one app: service ports, deployment lock, store,
// scheduler, index, deployment, events, in that order; it returns before
// touching the scheduler if the store refuses, so nothing is half-written.
// The caller has validated op.App (appspec's ValidateWith and secrets).
func (s *Service) Apply(ctx context.Context, op Op) (res Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.appChanged(op, res, err) }()
	return s.applyLocked(ctx, op)
}

func (s *Service) applyLocked(ctx context.Context, op Op) (Result, error) {
	cur := s.idx.get(op.ID)
	if op.App != nil && (op.Kind == OpCreate || op.Kind == OpUpdate) {
		// Before the action is chosen: an update that leaves its service
		// ports at 0 keeps the assigned ones, and is then still a scale.
		var prev *appspec.App
		if cur != nil {
			prev = cur.App
		}
		holder := func(p uint32) string { return s.idx.servicePortHolder(p, op.ID) }
		if err := appspec.AssignServicePorts(op.App, prev, holder, s.cfg.ServicePorts); err != nil {
			return Result{}, err
		}
		if err := appspec.ResidentUpdate(prev, op.App); err != nil {
			return Result{}, err
		}
	}
	var action string
	switch op.Kind {
	case OpCreate:
		if cur != nil {
			return Result{}, errorf(Conflict, "An app with id [%s] already exists; change it with PUT /v2/apps%s", op.ID, op.ID)
		}
		action = ActionStart
	case OpUpdate:
		switch {
		case cur == nil:
			action = ActionStart
		case ConfigEqual(cur.App, op.App):
			action = ActionScale
		default:
			action = ActionRestart
		}
	case OpRestart:
		action = ActionRestart
	case OpStop:
		action = ActionStop
	case OpKillScale:
		action = ActionScale
	}
	brokenItem, broken := s.broken.app(op.ID)
	switch {
	case broken && cur == nil && op.Kind == OpCreate:
		return Result{}, UnreadableApp(op.ID, brokenItem)
	case broken && cur == nil && op.Kind != OpUpdate && op.Kind != OpStop:
		return Result{}, UnreadableApp(op.ID, brokenItem)
	case cur == nil && !broken && op.Kind != OpCreate && op.Kind != OpUpdate:
		return Result{}, NotFoundApp(op.ID)
	}
	blocking := s.deps.forApp(op.ID)
	lockID := ""
	if blocking != nil {
		lockID = blocking.ID
		if blocking.PlanID != "" {
			lockID = blocking.PlanID
		}
	}
	if pl := s.plans.pendingFor(op.ID); pl != nil && pl.ID != op.planID && lockID == "" {
		lockID = pl.ID
	}
	if lockID != "" && lockID != op.planID && !op.Force {
		return Result{}, &Error{Kind: Locked, Deployment: lockID,
			Message: fmt.Sprintf("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/%s'.", lockID)}
	}
	if op.Force && op.planID == "" {
		// A forced change of an app a group deployment has yet to reach
		// takes the app out of that deployment.
		s.plans.dropPending(op.ID)
	}

	expect := store.CreateOnly
	if cur != nil {
		expect = cur.Rev
	} else if broken {
		expect = store.AnyRevision // replacing or deleting what could not be read
	}
	// keep is the config version the write keeps: a scale keeps the one
	// the tasks run, a rollback restores its own; anything else is a new
	// config. Stored, so that a new leader does not restart scaled tasks.
	keep := op.configVersion
	if keep == "" && action == ActionScale && cur != nil {
		keep = cur.ConfigVersion
	}
	var (
		stored store.StoredApp
		err    error
	)
	switch op.Kind {
	case OpStop:
		err = s.st.DeleteApp(ctx, op.ID, expect)
	case OpRestart:
		a := *cur.App
		stored, err = s.st.PutAppConfig(ctx, &a, expect, keep)
	case OpKillScale:
		// The one place the new count is decided: the scheduler is given
		// it, not asked to count again.
		a := *cur.App
		a.Instances = max(0, a.Instances-countKillable(s.sched.Snapshot(), op.ID, op.TaskIDs))
		stored, err = s.st.PutAppConfig(ctx, &a, expect, keep)
	default:
		stored, err = s.st.PutAppConfig(ctx, op.App, expect, keep)
	}
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.log.WithError(err).WithField("app", op.ID).Warn("store refused a write: the app changed outside this replica")
			if op.Kind == OpCreate {
				return Result{}, errorf(Conflict, "An app with id [%s] already exists in the store; change it with PUT /v2/apps%s", op.ID, op.ID)
			}
			// The index holds an older revision than the store (a write
			// whose answer was lost, another writer): without re-reading,
			// every later write of the app would conflict the same way
			// for as long as this replica leads. The scheduler keeps what
			// it runs: a change reaches it only through a write.
			if rerr := s.reread(ctx, op.ID); rerr != nil {
				s.log.WithError(rerr).WithField("app", op.ID).Error("re-reading an app after a conflicting write failed; its writes keep conflicting until it is read")
			}
		}
		return Result{}, fmt.Errorf("deploy: store app %s: %w", op.ID, err)
	}

	if broken && !s.broken.resolve(op.ID) {
		// The last app the store could not read is replaced or gone: the
		// desired state is complete again, and unknown tasks can be judged.
		s.sched.HoldUnknown(false)
	}
	now := s.now()
	var rec *Record
	version := Timestamp(now)
	if op.Kind != OpStop {
		rec = newRecord(stored.App, stored.Revision, stored.ConfigVersion, stored.App.Version)
		version = stored.App.Version
	}

	switch op.Kind {
	case OpStop:
		if err := s.sched.RemoveApp(op.ID); err != nil && !errors.Is(err, framework.ErrUnknownApp) {
			s.log.WithError(err).WithField("app", op.ID).Error("scheduler refused to remove an app the store no longer has")
		}
		s.idx.remove(op.ID)
	case OpKillScale:
		s.idx.put(rec)
		if err := s.sched.KillAndScale(op.ID, op.TaskIDs, rec.App.Instances); err != nil {
			// A task ended and was forgotten meanwhile: the count is
			// stored; apply it without the kill.
			s.log.WithError(err).WithField("app", op.ID).Warn("kill with scale: some tasks were already gone; applying the new instance count alone")
			if err := s.sched.KillAndScale(op.ID, nil, rec.App.Instances); err != nil {
				// The store has the new count; a new leader applies it.
				s.log.WithError(err).WithFields(logrus.Fields{"app": op.ID, "instances": rec.App.Instances}).Error("kill with scale: the scheduler did not take the new instance count")
			}
		}
	default:
		s.idx.put(rec)
		s.sched.PutApp(rec.SchedulerApp())
	}

	d := &Deployment{
		ID: s.newID(), AppID: op.ID, Action: action, Version: version, Started: now,
		Rollback: op.rollbackOf != "", RollbackOf: op.rollbackOf, PlanID: op.planID,
	}
	if rec != nil {
		d.Target = rec.ConfigVersion
		d.Deadline = now.Add(s.deadlineOf(rec.App))
	} else if cur != nil {
		d.Deadline = now.Add(s.deadlineOf(cur.App))
	} else {
		d.Deadline = now.Add(s.deadlineOf(nil)) // a broken app deleted
	}
	if cur != nil {
		d.Prev, d.PrevConfig = cur.App, cur.ConfigVersion
	}
	if blocking != nil {
		reason := op.cancelReason
		if reason == "" {
			reason = fmt.Sprintf("superseded by deployment %s, forced with ?force=true", d.ID)
		}
		s.finishLocked(ctx, blocking, false, reason)
	}
	s.deps.add(d)
	if sd, err := d.toStore(); err != nil {
		s.log.WithError(err).WithFields(logrus.Fields{"app": op.ID, "deployment": d.ID}).Error("deployment not persisted")
	} else if err := s.st.PutDeployment(ctx, sd); err != nil {
		// The change itself is stored; only a new leader's view of its
		// progress is lost, and it then sees no deployment for the app.
		s.log.WithError(err).WithFields(logrus.Fields{"app": op.ID, "deployment": d.ID}).Error("deployment not persisted")
	}
	s.started.Inc()
	s.log.WithFields(logrus.Fields{"app": op.ID, "deployment": d.ID, "action": action, "version": version}).Info("deployment started")
	if op.URI != "" && rec != nil {
		s.events().AppWritten(op, rec)
	}
	s.events().Deployment(EventDeploymentInfo, d, "")
	s.deps.wake()
	return Result{Record: rec, Deployment: d, Created: cur == nil && op.Kind != OpStop}, nil
}

// Scale sets an app's instances exactly as PUT /v2/apps/{id}
// {"instances": n} does (stored, a ScaleApplication deployment, events),
// for in-process callers such as the autoscaler. It does not override a
// deployment in progress: it fails with ErrDeploymentInProgress (wrapped)
// and the caller retries later. It returns the deployment id.
func (s *Service) Scale(ctx context.Context, appID string, instances int) (string, error) {
	if instances < 0 {
		return "", fmt.Errorf("deploy: scale %s to %d: instances must not be negative", appID, instances)
	}
	if max := s.cfg.Limits.MaxInstances; instances > max {
		return "", fmt.Errorf("deploy: scale %s to %d: more than %d, this server's limit of instances per app (--max-instances)", appID, instances, max)
	}
	id := appspec.CanonicalID(appID)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.idx.get(id)
	if cur == nil {
		return "", fmt.Errorf("deploy: scale %s: %w", id, framework.ErrUnknownApp)
	}
	if d := s.deps.forApp(id); d != nil {
		return "", fmt.Errorf("deploy: scale %s: %w (deployment %s)", id, ErrDeploymentInProgress, d.ID)
	}
	a := *cur.App
	a.Instances = instances
	op := Op{Kind: OpUpdate, ID: id, App: &a}
	res, err := s.applyLocked(ctx, op)
	s.appChanged(op, res, err)
	if err != nil {
		return "", err
	}
	return res.Deployment.ID, nil
}

// reread replaces the index's record of an app with what the store holds
// (after a conflicting write), so that the client's retry can succeed.
func (s *Service) reread(ctx context.Context, id string) error {
	stored, err := s.st.GetApp(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.idx.remove(id)
		return nil
	}
	if err != nil {
		return err
	}
	s.idx.put(newRecord(stored.App, stored.Revision, stored.ConfigVersion, stored.App.Version))
	return nil
}
