package framework

import (
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
)

// appDecision is what one app needs now: tasks to kill (with why), how
// many instances to launch, and when to look again if nothing happens.
type appDecision struct {
	kill []string
	why  map[string]string
	need int
	next time.Time
}

// decideApp is the heart of the scheduler, a pure function of the desired
// app (nil when removed), its known tasks, the kill requests and now.
//
// A task counts towards the app's instances while it is active, not being
// killed, of the app's current version, and not unreachable for longer
// than unreachableStrategy.inactiveAfterSeconds. Tasks of another version
// are killed (replace-all; rolling upgrades are the deployment issue's).
// Surplus counting tasks are killed in this order: unreachable ones,
// ones not yet running, unhealthy ones, then by killSelection
// (YOUNGEST_FIRST by default, or OLDEST_FIRST).
//
// A task still STAGING stagingTimeout after its launch (the launch was
// lost somewhere) is killed and so replaced; zero disables that.
func decideApp(app *appspec.App, tasks map[string]*taskState, killWanted map[string]bool, stagingTimeout time.Duration, now time.Time) appDecision {
	d := appDecision{why: map[string]string{}}
	kill := func(id, why string) {
		d.kill = append(d.kill, id)
		d.why[id] = why
	}
	var counting []*taskState
	for id, ts := range tasks {
		t := ts.t
		if t.Killing || !t.Active() {
			continue
		}
		switch {
		case app == nil:
			kill(id, "app removed")
			continue
		case killWanted[id]:
			kill(id, "kill requested")
			continue
		case t.AppVersion != app.Version:
			kill(id, "replaced by version "+app.Version)
			continue
		case t.State == mesos.TASK_STAGING && stagingTimeout > 0:
			at := t.StagedAt.Add(stagingTimeout)
			if !now.Before(at) {
				kill(id, "staging timeout")
				continue
			}
			if d.next.IsZero() || at.Before(d.next) {
				d.next = at
			}
		}
		if !t.UnreachableSince.IsZero() && !app.UnreachableStrategy.Disabled {
			inactiveAt := t.UnreachableSince.Add(secs(app.UnreachableStrategy.InactiveAfterSeconds))
			if !now.Before(inactiveAt) {
				continue // inactive: a replacement takes its place
			}
			if d.next.IsZero() || inactiveAt.Before(d.next) {
				d.next = inactiveAt
			}
		}
		counting = append(counting, ts)
	}
	if app == nil {
		sort.Strings(d.kill)
		return d
	}
	want := max(app.Instances, 0)
	if surplus := len(counting) - want; surplus > 0 {
		sortForKill(counting, app.KillSelection)
		for _, ts := range counting[:surplus] {
			kill(ts.t.ID, "scale down")
		}
		counting = counting[surplus:]
	}
	d.need = want - len(counting)
	sort.Strings(d.kill)
	return d
}

// sortForKill orders tasks so that the first ones are the best to kill.
func sortForKill(ts []*taskState, selection string) {
	oldestFirst := strings.EqualFold(selection, "OLDEST_FIRST")
	rank := func(t Task) int {
		switch {
		case !t.UnreachableSince.IsZero():
			return 0
		case t.State != mesos.TASK_RUNNING:
			return 1
		case !t.IsHealthy():
			return 2
		}
		return 3
	}
	sort.SliceStable(ts, func(i, j int) bool {
		a, b := ts[i].t, ts[j].t
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if !a.StagedAt.Equal(b.StagedAt) {
			if oldestFirst {
				return a.StagedAt.Before(b.StagedAt)
			}
			return a.StagedAt.After(b.StagedAt)
		}
		return a.ID < b.ID
	})
}
