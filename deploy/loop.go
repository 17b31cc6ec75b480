package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/store"
)

const (
	// eventBuffer is the scheduler subscription's buffer. Deployments are
	// judged from a fresh snapshot, so for them a full buffer loses
	// nothing; the Publisher is told of the loss (EventLagged).
	eventBuffer = 16384
	// maxEventsPerCheck bounds how many queued events are taken before
	// deployments are judged once: a snapshot of 100,000 tasks is not
	// free.
	maxEventsPerCheck = 4096
)

// Run judges deployments while this replica leads: it finishes those that
// reached their target and fails (rolling back) those past their progress
// deadline, woken by scheduler events (each passed on to the Publisher
// first), writes and deadlines on the injected clock. It returns when ctx ends; the next leadership term
// calls Restore again.
func (s *Service) Run(ctx context.Context) error {
	sub := s.attached.Swap(nil)
	if sub == nil {
		sub = s.sched.Subscribe(eventBuffer)
	}
	defer sub.Close()
	defer s.loaded.Store(false) // the next term restores again
	// touched: the apps named by events since the last check; all: judge
	// every deployment (the first check, and after lost events).
	touched, all := map[string]struct{}{}, true
	note := func(ev framework.Event) {
		s.events().SchedulerEvent(ev)
		if ev.Type == framework.EventLagged {
			all = true
		} else if id := appOfEvent(ev); id != "" {
			touched[id] = struct{}{}
		}
	}
	s.safeCheck(ctx, touched, all)
	clear(touched)
	all = false
	for {
		var (
			timer clock.Timer
			tc    <-chan time.Time
		)
		if next := s.deps.nextDeadline(); !next.IsZero() {
			timer = s.clk.NewTimer(max(next.Sub(s.now()), 0))
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				stopTimer(timer)
				return errors.New("deploy: the scheduler closed the event subscription")
			}
			note(ev)
		drain:
			for i := 0; i < maxEventsPerCheck; i++ {
				select {
				case ev, ok := <-sub.C:
					if !ok {
						break drain
					}
					note(ev)
				default:
					break drain
				}
			}
		case <-s.deps.poke:
		case <-tc:
		}
		stopTimer(timer)
		s.safeCheck(ctx, touched, all)
		clear(touched)
		all = false
	}
}

// Attach subscribes to the scheduler's events now, for the Run that
// follows: what the scheduler publishes in between waits in the
// subscription. Run started on its own goroutine subscribed whenever that
// goroutine got to it, and a task that failed first (its removal event)
// never reached the event stream or the queue's last-failure reason.
// Restore attaches; so can a caller that runs no Restore.
func (s *Service) Attach() {
	if old := s.attached.Swap(s.sched.Subscribe(eventBuffer)); old != nil {
		old.Close() // a term's that never ran
	}
}

func stopTimer(t clock.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (s *Service) safeCheck(ctx context.Context, touched map[string]struct{}, all bool) {
	defer s.recoverLoop("check deployments")
	s.checkDeployments(ctx, touched, all)
}

// Progress is how far d got, judged from the scheduler's current state.
func (s *Service) Progress(d *Deployment) Progress {
	health := false
	if r := s.idx.get(d.AppID); r != nil {
		health = r.Health
	}
	return Reached(s.sched.Snapshot(), d, health)
}

// checkDeployments finishes the deployments that reached their target
// and fails (and rolls back) those past their deadline, of those that
// can have changed (toJudge), judged from a snapshot by app: the flat
// copy of every task is not needed.
func (s *Service) checkDeployments(ctx context.Context, touched map[string]struct{}, all bool) {
	now := s.now()
	ds := s.deps.toJudge(now, touched, all)
	if len(ds) == 0 && s.plans.count() == 0 {
		return
	}
	snap := s.judgeSnapshot(ds, all)
	for _, d := range ds {
		health := false
		if r := s.idx.get(d.AppID); r != nil {
			health = r.Health
		}
		p := Reached(snap, d, health)
		switch {
		case p.Done:
			s.mu.Lock()
			s.finishLocked(ctx, d, true, "")
			s.mu.Unlock()
		case !now.Before(d.Deadline):
			s.deadlinePassed(ctx, d, p)
		}
	}
	if s.plans.count() > 0 {
		s.mu.Lock()
		s.checkPlansLocked(ctx)
		s.mu.Unlock()
	}
}

// judgeSnapshot is what ds are judged from: their apps only
// (SnapshotOf), or every app when all of them are judged.
func (s *Service) judgeSnapshot(ds []*Deployment, all bool) *framework.Snapshot {
	if all || len(ds) > 1000 {
		return s.sched.SnapshotByApp()
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.AppID
	}
	return s.sched.SnapshotOf(ids)
}

// finishLocked ends a deployment (caller holds mu): forgotten, removed
// from the store, announced.
func (s *Service) finishLocked(ctx context.Context, d *Deployment, success bool, reason string) {
	if s.deps.get(d.ID) != d {
		return
	}
	s.deps.remove(d)
	s.noteFinished(d, success, reason)
	if err := s.st.DeleteDeployment(ctx, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.WithError(err).WithField("deployment", d.ID).Error("finished deployment not removed from the store; a new leader will judge it again")
	}
	log := s.log.WithFields(logrus.Fields{"app": d.AppID, "deployment": d.ID, "action": d.Action, "version": d.Version})
	if success {
		s.ended.WithLabelValues("success").Inc()
		log.Info("deployment succeeded")
		s.events().Deployment(EventDeploymentSuccess, d, "")
		return
	}
	s.ended.WithLabelValues("failed").Inc()
	log.WithField("reason", reason).Warn("deployment failed")
	s.events().Deployment(EventDeploymentFailed, d, reason)
}

func (s *Service) deadlinePassed(ctx context.Context, d *Deployment, p Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deps.get(d.ID) != d {
		return
	}
	reason := fmt.Sprintf("progress deadline of %s passed with %s", d.Deadline.Sub(d.Started), p)
	if d.Action == ActionStop {
		reason = fmt.Sprintf("progress deadline of %s passed with %d tasks of the removed app still active", d.Deadline.Sub(d.Started), p.All)
	}
	switch {
	case d.Rollback:
		s.finishLocked(ctx, d, false, reason+"; this deployment was itself a rollback, so it is not rolled back again: fix the app and deploy it")
		return
	case d.Action == ActionStop:
		s.finishLocked(ctx, d, false, reason+"; a removal is not rolled back")
		return
	}
	if _, err := s.rollbackLocked(ctx, d, reason); err != nil {
		s.finishLocked(ctx, d, false, fmt.Sprintf("%s; the automatic rollback failed: %v", reason, err))
	}
}

// rollbackLocked restores the app as it was before d (removing it if d
// created it), as a new deployment that supersedes d. It returns nil when
// there was nothing to roll back.
func (s *Service) rollbackLocked(ctx context.Context, d *Deployment, why string) (*Deployment, error) {
	op := Op{ID: d.AppID, Force: true, rollbackOf: d.ID}
	if d.Prev == nil {
		op.Kind = OpStop
		op.cancelReason = why + "; rolling back: the app did not exist before, so it is removed"
	} else {
		prev := *d.Prev
		prev.Version = ""
		op.Kind, op.App = OpUpdate, &prev
		if cur := s.idx.get(d.AppID); cur == nil || !ConfigEqual(cur.App, &prev) {
			op.configVersion = d.PrevConfig
		}
		op.cancelReason = fmt.Sprintf("%s; rolling back to version %s", why, d.Prev.Version)
	}
	if op.Kind == OpStop && s.idx.get(d.AppID) == nil {
		// Nothing to remove (already gone).
		s.finishLocked(ctx, d, false, why)
		return nil, nil
	}
	res, err := s.applyLocked(ctx, op)
	if err != nil {
		return nil, err
	}
	return res.Deployment, nil
}

// Cancel ends a running deployment: with force it is only forgotten (the
// app stays as it is, nil returned); otherwise it is rolled back as a new
// deployment, returned (nil when there was nothing to roll back).
func (s *Service) Cancel(ctx context.Context, id string, force bool) (*Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.plans.get(id); p != nil {
		return s.cancelPlanLocked(ctx, p, force)
	}
	d := s.deps.get(id)
	if d == nil {
		return nil, errorf(NotFound, "DeploymentPlan %s does not exist (it may have finished); list the running ones with GET /v2/deployments", id)
	}
	if force {
		s.finishLocked(ctx, d, false, fmt.Sprintf("canceled with DELETE /v2/deployments/%s?force=true; the app is left as it is", id))
		return nil, nil
	}
	nd, err := s.rollbackLocked(ctx, d, fmt.Sprintf("canceled with DELETE /v2/deployments/%s", id))
	if err != nil {
		return nil, fmt.Errorf("deploy: roll back deployment %s: %w", id, err)
	}
	return nd, nil
}
