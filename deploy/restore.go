package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// brokenSet is what the last restore could not read from the store: the
// apps by id (so PUT can replace one and DELETE remove it), and every
// broken item for /v2/info. While it holds an app, the scheduler keeps the
// tasks of apps it does not know (Scheduler.HoldUnknown): one of them may
// be that app's.
type brokenSet struct {
	mu    sync.Mutex
	apps  map[string]store.Broken // app id → its problem
	other []store.Broken          // deployments and anything without an app id
}

// BrokenItem is one problem as /v2/info and the event show it.
type BrokenItem struct {
	Kind  string `json:"kind"`
	Key   string `json:"key"`
	AppID string `json:"appId,omitempty"`
	Error string `json:"error"`
}

// ItemOf describes a store problem.
func ItemOf(it store.Broken) BrokenItem {
	return BrokenItem{Kind: it.Kind, Key: it.Key, AppID: it.AppID, Error: it.Err.Error()}
}

func (b *brokenSet) replace(apps map[string]store.Broken, other []store.Broken) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.apps, b.other = apps, other
}

func (b *brokenSet) app(id string) (store.Broken, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	it, ok := b.apps[id]
	return it, ok
}

// resolve forgets a broken app once a write replaced or deleted it, and
// says whether any broken app is left.
func (b *brokenSet) resolve(id string) (anyLeft bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.apps, id)
	return len(b.apps) > 0
}

func (b *brokenSet) appCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.apps)
}

func (b *brokenSet) items() []BrokenItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]BrokenItem, 0, len(b.apps)+len(b.other))
	for _, it := range b.apps {
		out = append(out, ItemOf(it))
	}
	for _, it := range b.other {
		out = append(out, ItemOf(it))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind+out[i].Key < out[j].Kind+out[j].Key })
	return out
}

// noteBroken logs, publishes and records what a restore could not read.
// Apps are keyed by the id their node name gives (the store keeps one node
// per app, named after its id).
func (s *Service) noteBroken(items []store.Broken) {
	apps := map[string]store.Broken{}
	var other []store.Broken
	for _, it := range items {
		if it.Kind == "app" {
			apps[it.AppID] = it
		} else {
			other = append(other, it)
		}
		s.log.WithError(it.Err).WithFields(logrus.Fields{"kind": it.Kind, "key": it.Key, "app": it.AppID}).
			Error("restore: skipping a stored item this version cannot read; everything else is restored")
		s.events().StoreItemBroken(it)
	}
	s.broken.replace(apps, other)
}

// checkStored applies today's limits to an app read from the store: an app
// written before a limit existed, or by hand, is broken rather than
// scheduled (10^9 instances would take the leader's memory).
func checkStored(a store.StoredApp, l appspec.Limits) error {
	if p := a.App.PodSpec(); p != nil {
		if err := p.ValidateWith(l); err != nil {
			return fmt.Errorf("stored pod breaks a rule: %w", err)
		}
		return nil
	}
	if err := a.App.ValidateWith(l); err != nil {
		return fmt.Errorf("stored app breaks a rule: %w", err)
	}
	return nil
}

// Restore reads the apps and deployments from the store into the index
// and the scheduler, when this replica starts leading. Items the store
// cannot decode are skipped and reported; while any app is unreadable the
// scheduler kills no task it does not know. Loaded is true afterwards,
// failed or not: the platform goes on with what it knows.
func (s *Service) Restore(ctx context.Context) error {
	s.Attach() // before any write is accepted and before the scheduler runs
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.loaded.Store(true)
	s.sched.HoldUnknown(true)
	apps, err := s.st.ListApps(ctx)
	brokenApps, partial := store.BrokenItems(err)
	if err != nil && !partial {
		return fmt.Errorf("deploy: restore: list apps (tasks of unknown apps are kept meanwhile): %w", err)
	}
	sds, err := s.st.ListDeployments(ctx)
	brokenDeps, partialDeps := store.BrokenItems(err)
	if err != nil && !partialDeps {
		return fmt.Errorf("deploy: restore: list deployments (tasks of unknown apps are kept meanwhile): %w", err)
	}
	broken := append(brokenApps, brokenDeps...)
	snap := s.sched.Snapshot()
	recs := make([]*Record, 0, len(apps))
	inStore := make(map[string]bool, len(apps))
	for _, a := range apps {
		inStore[a.App.ID] = true
		if err := checkStored(a, s.cfg.Limits); err != nil {
			broken = append(broken, store.Broken{Kind: "app", Key: a.App.ID, AppID: a.App.ID, Err: err})
			continue
		}
		configVersion := a.ConfigVersion
		// The scheduler may already run this app (leadership regained in
		// the same process) from a node written before config versions
		// were stored: if only instances differ, keep its version so that
		// its tasks are not replaced.
		if sa := snap.App(a.App.ID); sa != nil && configVersion == a.App.Version && ConfigEqual(sa, a.App) {
			configVersion = sa.Version
		}
		recs = append(recs, newRecord(a.App, a.Revision, configVersion, a.App.Version))
	}
	s.noteBroken(broken)
	for _, sa := range snap.Apps {
		if _, bad := s.broken.app(sa.ID); !inStore[sa.ID] && !bad {
			if err := s.sched.RemoveApp(sa.ID); err != nil && !errors.Is(err, framework.ErrUnknownApp) {
				s.log.WithError(err).WithField("app", sa.ID).Warn("restore: removing an app the store does not have failed")
			}
		}
	}
	s.idx.replaceAll(recs)
	for _, r := range recs {
		s.sched.PutApp(r.SchedulerApp())
	}
	groups, err := s.st.ListGroups(ctx)
	brokenGroups, partialGroups := store.BrokenItems(err)
	if err != nil && !partialGroups {
		return fmt.Errorf("deploy: restore: list groups (tasks of unknown apps are kept meanwhile): %w", err)
	}
	for _, it := range brokenGroups {
		s.log.WithError(it.Err).WithField("key", it.Key).Error("restore: skipping a group record this version cannot read")
		s.events().StoreItemBroken(it)
	}
	// Another leader may have kept versions meanwhile: ask the store again.
	s.kept = map[string]string{}
	s.groupsMu.Lock()
	s.groups = make(map[string]store.StoredGroup, len(groups))
	for _, g := range groups {
		s.groups[g.ID] = g
	}
	s.groupsMu.Unlock()
	var ds []*Deployment
	var restoredPlans []*GroupPlan
	for _, sd := range sds {
		d, err := deploymentFromStore(sd)
		if errors.Is(err, errIsPlan) {
			if p, perr := restorePlan(sd); perr != nil {
				s.log.WithError(perr).WithField("deployment", sd.ID).Warn("restore: dropping an unreadable group deployment")
			} else {
				restoredPlans = append(restoredPlans, p)
			}
			continue
		}
		r := (*Record)(nil)
		if err == nil {
			r = s.idx.get(d.AppID)
		}
		switch {
		case err != nil:
			s.log.WithError(err).WithField("deployment", sd.ID).Warn("restore: dropping an unreadable deployment")
		case d.Action == ActionStop && r != nil, d.Action != ActionStop && (r == nil || r.App.Version != d.Version):
			s.log.WithFields(logrus.Fields{"deployment": d.ID, "app": d.AppID}).Info("restore: dropping a deployment its app has moved past")
		default:
			if r != nil {
				d.Target = r.ConfigVersion
			}
			ds = append(ds, d)
			continue
		}
		if err := s.st.DeleteDeployment(ctx, sd.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.WithError(err).WithField("deployment", sd.ID).Warn("restore: stale deployment not removed")
		}
	}
	s.deps.replaceAll(ds)
	s.plans.replaceAll(restoredPlans)
	s.deps.wake()
	s.sched.HoldUnknown(s.broken.appCount() > 0)
	s.log.WithFields(logrus.Fields{"apps": len(recs), "deployments": len(ds), "groupDeployments": len(restoredPlans), "groups": len(groups), "broken": len(broken)}).Info("restored apps, groups and deployments from the store")
	return nil
}
