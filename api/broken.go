package api

import (
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/store"
)

// eventStoreItemBroken is Flotilla's own event: Marathon fails its whole
// start on a bad stored item, where Flotilla skips it and says so.
const eventStoreItemBroken = "store_item_broken"

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

// brokenItem is one problem as /v2/info and the event show it.
type brokenItem struct {
	Kind  string `json:"kind"`
	Key   string `json:"key"`
	AppID string `json:"appId,omitempty"`
	Error string `json:"error"`
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

func (b *brokenSet) appList() []store.Broken {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]store.Broken, 0, len(b.apps))
	for _, it := range b.apps {
		out = append(out, it)
	}
	return out
}

func (b *brokenSet) items() []brokenItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]brokenItem, 0, len(b.apps)+len(b.other))
	for _, it := range b.apps {
		out = append(out, brokenItem{Kind: it.Kind, Key: it.Key, AppID: it.AppID, Error: it.Err.Error()})
	}
	for _, it := range b.other {
		out = append(out, brokenItem{Kind: it.Kind, Key: it.Key, AppID: it.AppID, Error: it.Err.Error()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind+out[i].Key < out[j].Kind+out[j].Key })
	return out
}

// brokenAppError answers a request for an app the store holds but this
// version cannot read: it is not missing, so a 404 would mislead.
func brokenAppError(id string, it store.Broken) *httpError {
	return errorf(http.StatusConflict, "App '%s' is in the store but cannot be read (%v); replace it with PUT /v2/apps%s or remove it with DELETE /v2/apps%s", id, it.Err, id, id)
}

// noteBroken logs, publishes and records what a restore could not read.
// Apps are keyed by the id their node name gives (the store keeps one node
// per app, named after its id).
func (s *Server) noteBroken(items []store.Broken) {
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
		s.publish(eventStoreItemBroken, struct {
			eventHeader
			Item brokenItem `json:"item"`
		}{s.header(eventStoreItemBroken), brokenItem{Kind: it.Kind, Key: it.Key, AppID: it.AppID, Error: it.Err.Error()}})
	}
	s.broken.replace(apps, other)
}

// checkStored applies today's limits to an app read from the store: an app
// written before a limit existed, or by hand, is broken rather than
// scheduled (10^9 instances would take the leader's memory).
func checkStored(a store.StoredApp, l appspec.Limits) error {
	if err := a.App.ValidateWith(l); err != nil {
		return fmt.Errorf("stored app breaks a rule: %w", err)
	}
	return nil
}
