package framework

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/offers"
)

// ---- time-driven step ----

// step brings decisions up to date with now: expunges, reconciliation
// retries, kills, backoff resets, launch needs and offer interest.
func (c *core) step(now time.Time, p *plan) {
	if c.appsGone {
		live := c.appList[:0]
		for _, as := range c.appList {
			if !as.gone {
				live = append(live, as)
			}
		}
		clear(c.appList[len(live):])
		c.appList, c.appsGone = live, false
	}
	if !c.settleUntil.IsZero() && !now.Before(c.settleUntil) {
		// The hold is over: launches may go out and the queue's reason
		// changes. Cleared, so that it no longer wakes the loop.
		c.settleUntil = time.Time{}
		c.gen++
	}
	if c.killsHeld && !c.holdingKills(now) {
		c.killsHeld = false
		for _, as := range c.appList {
			c.markDirty(as)
		}
	}
	if !c.nextUnreach.IsZero() && !now.Before(c.nextUnreach) {
		c.scanUnreachable(now)
	}
	if c.connected {
		if !c.recon.next.IsZero() && !now.Before(c.recon.next) && len(c.recon.pending) > 0 {
			c.log.WithField("tasks", len(c.recon.pending)).Info("explicit reconciliation unanswered; retrying")
			c.explicitReconcile(p)
			c.recon.delay = min(2*c.recon.delay, c.cfg.ReconcileRetryMax)
			c.recon.next = now.Add(c.recon.delay)
		}
		if len(c.unreachable) > 0 && !now.Before(c.nextUnreachRecon) {
			agentOf := make(map[string]string, len(c.unreachable))
			for _, ts := range c.unreachable {
				for _, id := range c.mesosTaskIDs(ts) { // a pod instance's: its containers
					agentOf[id] = ts.t.AgentID
				}
			}
			addReconciles(p, agentOf, func(agent string) string { return agent })
			c.nextUnreachRecon = now.Add(c.cfg.UnreachableReconcile)
		}
		if !c.recon.nextImplicit.IsZero() && !now.Before(c.recon.nextImplicit) {
			p.reconciles = append(p.reconciles, nil)
			c.recon.nextImplicit = now.Add(c.cfg.ReconcileInterval)
		}
	}
	due := c.dueApps(now) // the apps this loop's conditions can hold for
	for _, as := range due {
		if as.gone {
			continue
		}
		if as.failures > 0 && !as.resetAt.IsZero() && !now.Before(as.resetAt) {
			c.maybeResetBackoff(now, as)
		}
		if !as.next.IsZero() && !now.Before(as.next) {
			c.markDirty(as)
		}
		if as.need > 0 && !as.backoffUntil.IsZero() && !now.Before(as.backoffUntil) {
			as.backoffUntil = time.Time{}
			c.gen++
		}
		if as.dirty {
			c.decide(now, as)
		}
		c.setWake(as)
	}
	clear(due)
	c.dueSpare = due[:0]
	if c.connected && !c.nextKill.IsZero() && !now.Before(c.nextKill) {
		c.sendKills(now, p)
	}
	c.offerInterest(now, p)
	c.publishQueues(now)
	c.publishStatuses(now)
}

// publishStatuses publishes the AppStatus of every app whose counts or
// instances changed since the last step, if the status itself changed.
func (c *core) publishStatuses(now time.Time) {
	if len(c.statusList) == 0 {
		return
	}
	list := c.statusList
	slices.SortFunc(list, func(a, b *appState) int { return cmp.Compare(a.seq, b.seq) })
	for _, as := range list {
		// A removed app's mark is dropped: putApp marks it again.
		as.statusChanged = false
		if as.gone || as.app == nil {
			continue
		}
		st := statusOf(as)
		if st != as.status {
			as.status = st
			c.gen++
			pst := st // as in publishQueues: only a published status escapes
			c.pub(Event{Type: EventDeployment, At: now, Status: &pst})
		}
	}
	clear(list)
	c.statusList = list[:0]
}

func (c *core) scanUnreachable(now time.Time) {
	c.nextUnreach = time.Time{}
	for _, ts := range c.unreachable {
		as := c.apps[ts.t.AppID]
		ds := unreachDeadlines(as.app, ts.t.UnreachableSince)
		if len(ds) == 2 && !now.Before(ds[1]) {
			// Expunged: forgotten. Should it come back, reconciliation
			// finds it unknown and the surplus logic decides its fate.
			c.log.WithFields(logrus.Fields{"task": ts.t.ID, "app": ts.t.AppID}).Info("expunging unreachable task")
			c.removeTask(now, ts)
			continue
		}
		if len(ds) == 2 && !now.Before(ds[0]) {
			c.markDirty(as) // inactive: the decision stops counting it
		}
		for _, at := range ds {
			if at.After(now) && (c.nextUnreach.IsZero() || at.Before(c.nextUnreach)) {
				c.nextUnreach = at
			}
		}
	}
}

func (c *core) maybeResetBackoff(now time.Time, as *appState) {
	as.resetAt = time.Time{}
	for _, ts := range as.tasks {
		if ts.healthySince.IsZero() {
			continue
		}
		at := ts.healthySince.Add(c.cfg.BackoffResetAfter)
		if !now.Before(at) {
			c.log.WithField("app", as.id).Info("task ran healthy; resetting launch backoff")
			as.failures, as.delay, as.backoffUntil, as.resetAt = 0, 0, time.Time{}, time.Time{}
			c.markDirty(as)
			c.gen++
			return
		}
		if as.resetAt.IsZero() || at.Before(as.resetAt) {
			as.resetAt = at
		}
	}
}

// decide applies decideApp to one app: it marks kills and records the
// launch need.
func (c *core) decide(now time.Time, as *appState) {
	as.dirty = false
	d := decideApp(as.app, as.tasks, c.killWanted, c.cfg.StagingTimeout, now)
	if len(d.kill) > 0 && c.holdingKills(now) {
		if !c.killsHeld {
			c.log.WithField("app", as.id).Info("kills held until reconciliation has settled")
		}
		c.killsHeld = true
		d.kill = nil
	}
	for _, id := range d.kill {
		ts := as.tasks[id]
		t := ts.t
		t.Killing = true
		c.setTask(as, ts, t)
		c.killing[id] = ts
		ts.killSentAt = time.Time{}
		c.nextKill = now
		c.gen++
		c.log.WithFields(logrus.Fields{"task": id, "app": as.id, "why": d.why[id]}).Info("killing task")
		c.pub(Event{Type: EventTask, At: now, Task: taskPtr(t)})
	}
	if as.need != d.need {
		c.gen++
	}
	as.need = d.need
	as.next = d.next
	c.putQueued(as)
	c.setWake(as)
	c.dropAppIfDone(as)
}

func (c *core) sendKills(now time.Time, p *plan) {
	c.nextKill = time.Time{}
	for id, ts := range c.killing {
		due := ts.killSentAt.IsZero() || !now.Before(ts.killSentAt.Add(c.cfg.KillRetry))
		if due {
			p.kills = append(p.kills, c.killOps(id, ts)...)
			ts.killSentAt = now
		}
		at := ts.killSentAt.Add(c.cfg.KillRetry)
		if c.nextKill.IsZero() || at.Before(c.nextKill) {
			c.nextKill = at
		}
	}
	sort.Slice(p.kills, func(i, j int) bool { return p.kills[i].taskID < p.kills[j].taskID })
}

// holdingKills: kills wait until this term's scheduler is subscribed and
// reconciliation has settled (Config.ReconcileSettle), as launches do.
// Before that, restored tasks' health is unknown (a kill decided then
// rests on guesses), and the replicas and edge nodes still serve the
// previous leader's view — the only one they have until they find this
// leader — whose backends would be killed under them: a new leader's
// first kill of a roll removed an app's last published tasks from every
// follower for as long as it took them to find the new leader.
func (c *core) holdingKills(now time.Time) bool {
	return !c.connected || now.Before(c.settleUntil)
}

// launchable counts instances that would launch if offers came now.
func (c *core) launchable(now time.Time) int {
	if now.Before(c.settleUntil) {
		return 0
	}
	// Reservations to tear down need an offer of their agent as much as
	// waiting instances do.
	n := c.teardownsDue()
	for _, as := range c.queuedApps() {
		if as.app != nil && as.need > 0 && as.constraintsErr == nil && !now.Before(as.backoffUntil) {
			n += as.need
		}
	}
	return n
}

// holdingWithDemand: launches are held after SUBSCRIBED but instances
// wait; suppressing now would only force a REVIVE when the hold ends.
func (c *core) holdingWithDemand(now time.Time) bool {
	if !now.Before(c.settleUntil) {
		return false
	}
	for _, as := range c.queuedApps() {
		if as.app != nil && as.need > 0 {
			return true
		}
	}
	return false
}

// reviveEvery throttles REVIVE: each one makes the master re-offer
// everything, so a burst of failures must not become a burst of revives.
const reviveEvery = time.Second

func (c *core) offerInterest(now time.Time, p *plan) {
	// A throttled revive is re-armed below if it is still wanted; one left
	// armed after its time, with nothing to revive, would wake the loop
	// at once, forever.
	c.reviveAt = time.Time{}
	if !c.connected {
		return
	}
	n := c.launchable(now)
	switch {
	case n > 0 && (c.suppressed || n > c.prevLaunchable):
		if !c.lastRevive.IsZero() && now.Before(c.lastRevive.Add(reviveEvery)) {
			c.reviveAt = c.lastRevive.Add(reviveEvery)
			return // prevLaunchable kept, so the revive happens then
		}
		p.revive = true
		c.suppressed = false
		c.lastRevive = now
		c.reviveAt = time.Time{}
		c.gen++
	case n == 0 && !c.suppressed && !c.holdingWithDemand(now):
		p.suppress = true
		c.suppressed = true
		c.reviveAt = time.Time{}
		c.gen++
	}
	c.prevLaunchable = n
}

func (c *core) queueEntry(now time.Time, as *appState) QueueEntry {
	q := QueueEntry{AppID: as.id, Count: as.need, Delay: as.delay, LastRejection: as.rejection, Reason: as.reason}
	if as.app != nil {
		q.AppVersion = as.app.Version
	}
	if now.Before(as.backoffUntil) {
		q.BackoffUntil = as.backoffUntil
	}
	if as.constraintsErr != nil {
		q.Reason = as.constraintsErr.Error()
	} else if q.Reason == "" && q.Count > 0 && now.Before(c.settleUntil) {
		q.Reason = "launches held until reconciliation after subscribing settles"
	} else if q.Reason == "" && q.Count > 0 && as.app != nil && as.app.IsResident() && c.freeReservations(as.id) >= q.Count {
		q.Reason = "resident instances wait for an offer of their agent holding their reservation and volumes (wipe a task to give its volume up)"
	} else if q.Reason == "" && q.Count > 0 && as.app != nil && as.rejection.ProcessedOffers > 0 {
		r := requestFor(as.app, nil, &c.cfg)
		if lack := c.largest.Lacks(&r); lack != "" {
			q.Reason = "no agent has offered enough: " + lack
		}
	}
	if q.Count == 0 {
		q.Delay, q.BackoffUntil, q.LastRejection, q.Reason = 0, time.Time{}, offers.Summary{}, ""
	}
	return q
}

func (c *core) publishQueues(now time.Time) {
	// Only queued apps: one with nothing queued before or now has nothing
	// to say, its entry would be a zero count either way (10,000 apps
	// made a loop over every app 40% of the scheduler's CPU).
	for _, as := range c.queuedApps() {
		q := c.queueEntry(now, as)
		if !queueEqual(q, as.queue) {
			as.queue = q
			c.gen++
			pq := q // only a published entry escapes: q itself stays on the stack
			c.pub(Event{Type: EventQueue, At: now, Queue: &pq})
		}
	}
}

func queueEqual(a, b QueueEntry) bool {
	return a.AppID == b.AppID && a.AppVersion == b.AppVersion && a.Count == b.Count &&
		a.Delay == b.Delay && a.BackoffUntil.Equal(b.BackoffUntil) && a.Reason == b.Reason &&
		summaryEqual(a.LastRejection, b.LastRejection)
}

func summaryEqual(a, b offers.Summary) bool {
	if a.ProcessedOffers != b.ProcessedOffers || a.UnusedOffers != b.UnusedOffers || len(a.Reasons) != len(b.Reasons) {
		return false
	}
	for i := range a.Reasons {
		if a.Reasons[i] != b.Reasons[i] {
			return false
		}
	}
	return true
}

// nextWake is when the loop must step even if no input arrives.
func (c *core) nextWake() time.Time {
	at, _ := c.nextWakeWhy()
	return at
}

// nextWakeWhy is nextWake with the name of the wake-up that sets it. Every
// wake-up here must be advanced or cleared by the step it causes: one left
// in the past makes armTimer fire at once, forever, and the loop spins a
// core (TestIdleLoopSleeps names the one that did).
func (c *core) nextWakeWhy() (time.Time, string) {
	var next time.Time
	var why string
	var whyApp *appState // the name is built for the winner only: this runs every step
	add := func(t time.Time, name string, as *appState) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next, why, whyApp = t, name, as
		}
	}
	c.addCoreWakes(add)
	if len(c.wakes) > 0 {
		// The earliest app wake-up (setWake keeps the heap); appWake
		// names it.
		as := c.wakes[0]
		at, name := appWake(as)
		add(at, name, as)
	}
	if whyApp != nil {
		why = "app " + whyApp.id + ": " + why
	}
	return next, why
}

// addCoreWakes offers add the wake-ups that are not an app's, first, so
// that of equal times theirs wins as before.
func (c *core) addCoreWakes(add func(t time.Time, name string, as *appState)) {
	add(c.nextUnreach, "unreachable deadline", nil)
	add(c.reviveAt, "throttled revive", nil)
	if c.connected {
		add(c.nextKill, "kill retry", nil)
		if len(c.recon.pending) > 0 {
			add(c.recon.next, "explicit reconciliation retry", nil)
		}
		add(c.recon.nextImplicit, "implicit reconciliation", nil)
		if len(c.unreachable) > 0 {
			add(c.nextUnreachRecon, "unreachable reconciliation", nil)
		}
	}
	add(c.settleUntil, "reconciliation settle", nil)
}
