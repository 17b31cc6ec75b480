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
// than unreachableStrategy.inactiveAfterSeconds. Surplus counting tasks
// are killed in this order: unreachable ones, ones not yet running,
// unhealthy ones, then by killSelection (YOUNGEST_FIRST by default, or
// OLDEST_FIRST).
//
// Tasks of another version make a rolling upgrade (rollDecision).
//
// A task still STAGING stagingTimeout after its launch (the launch was
// lost somewhere) is killed and so replaced; zero disables that.
func decideApp(app *appspec.App, tasks map[string]*taskState, killWanted map[string]bool, stagingTimeout time.Duration, now time.Time) appDecision {
	d := appDecision{why: map[string]string{}}
	kill := func(id, why string) {
		d.kill = append(d.kill, id)
		d.why[id] = why
	}
	arm := func(at time.Time) {
		if d.next.IsZero() || at.Before(d.next) {
			d.next = at
		}
	}
	var counting, old []*taskState
	// occupying counts tasks that hold resources, being killed or not: a
	// roll's maximumOverCapacity bounds them. Inactive unreachable tasks
	// are left out, since their replacements are due.
	occupying := 0
	// rolling: some task of another version is active, killed or not;
	// until the last is gone its capacity is the roll's to account for.
	rolling := false
	for id, ts := range tasks {
		t := ts.t
		if !t.Active() {
			continue
		}
		inactive := false
		if app != nil && !t.UnreachableSince.IsZero() && !app.UnreachableStrategy.Disabled {
			inactiveAt := t.UnreachableSince.Add(secs(app.UnreachableStrategy.InactiveAfterSeconds))
			inactive = !now.Before(inactiveAt)
			if !inactive && !t.Killing && t.AppVersion == app.Version {
				arm(inactiveAt)
			}
		}
		if !inactive {
			occupying++
		}
		if app != nil && t.AppVersion != app.Version {
			rolling = true
		}
		if t.Killing {
			continue
		}
		switch {
		case app == nil:
			kill(id, "app removed")
			continue
		case killWanted[id]:
			kill(id, "kill requested")
			continue
		case t.State == mesos.TASK_STAGING && stagingTimeout > 0:
			at := t.StagedAt.Add(stagingTimeout)
			if !now.Before(at) {
				kill(id, "staging timeout")
				continue
			}
			arm(at)
		}
		switch {
		case t.AppVersion != app.Version:
			old = append(old, ts)
		case !inactive:
			counting = append(counting, ts)
		}
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
	if rolling {
		rollDecision(app, counting, old, occupying, kill, &d)
	}
	sort.Strings(d.kill)
	return d
}

// rollDecision is one step of a rolling upgrade, Marathon's way: old
// tasks are killed, the least useful first (sortForKill, so killSelection
// among healthy ones), while at least minHealthy tasks of any version stay
// healthy (countsHealthy); new ones are launched while at most maxTotal
// tasks hold resources. Each new task that becomes healthy changes the
// counts and so lets the next decision kill one more old task. If the new
// version never becomes healthy the roll stalls there, old tasks kept at
// the minimum, until the API rolls back or replaces the version.
func rollDecision(app *appspec.App, counting, old []*taskState, occupying int, kill func(id, why string), d *appDecision) {
	minHealthy, maxTotal := upgradeBounds(app)
	healthy := 0
	for _, ts := range counting {
		if countsHealthy(app, ts.t) {
			healthy++
		}
	}
	for _, ts := range old {
		if countsHealthy(app, ts.t) {
			healthy++
		}
	}
	sortForKill(old, app.KillSelection)
	for _, ts := range old {
		if countsHealthy(app, ts.t) {
			// Unhealthy ones sort first: from here on every kill costs capacity.
			if healthy <= minHealthy {
				break
			}
			healthy--
		}
		kill(ts.t.ID, "replaced by version "+app.Version)
	}
	d.need = max(min(d.need, maxTotal-occupying), 0)
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
