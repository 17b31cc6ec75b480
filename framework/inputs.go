package framework

import (
	"maps"
	"slices"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
)

// ---- inputs (loop side) ----

func (c *core) handleInput(now time.Time, in Input, p *plan) {
	if in.Disconnected != nil {
		if c.connected {
			c.log.WithError(in.Disconnected).Warn("disconnected from master")
		}
		c.connected = false
		c.gen++
	}
	ev := in.Event
	if ev == nil {
		return
	}
	switch ev.GetType() {
	case scheduler.Event_SUBSCRIBED:
		c.subscribed(now, p)
	case scheduler.Event_OFFERS:
		c.step(now, p)
		c.handleOffers(now, ev.GetOffers().GetOffers(), p)
	case scheduler.Event_UPDATE:
		c.handleUpdate(now, ev.GetUpdate().GetStatus(), p)
	case scheduler.Event_FAILURE:
		f := ev.GetFailure()
		c.log.WithFields(logrus.Fields{"agent": f.GetAgentID().GetValue(), "executor": f.GetExecutorID().GetValue()}).Warn("agent or executor failure")
	case scheduler.Event_ERROR:
		c.log.WithField("message", ev.GetError().GetMessage()).Error("master sent an error")
	case scheduler.Event_RESCIND:
		// Offers are answered in the step that received them; nothing is held.
	}
}

func (c *core) subscribed(now time.Time, p *plan) {
	c.connected = true
	// A new subscription starts unsuppressed (the connection does not
	// pass suppressed_roles), so let the next step decide again.
	c.suppressed = false
	c.prevLaunchable = 0
	c.gen++
	if c.cfg.ReconcileSettle > 0 {
		c.settleUntil = now.Add(c.cfg.ReconcileSettle)
	}
	// Explicit reconciliation of every task we believe is not terminal
	// (Mesos reconciliation guide), then an implicit one to learn of
	// tasks we do not know, e.g. launched by a previous leader.
	c.recon.pending = map[string]string{}
	for _, ts := range c.tasks {
		if ts.t.Active() {
			for _, id := range c.mesosTaskIDs(ts) {
				c.recon.pending[id] = ts.t.AgentID
			}
		}
	}
	if len(c.recon.pending) > 0 {
		c.recon.delay = c.cfg.ReconcileRetry
		c.recon.next = now.Add(c.recon.delay)
		c.explicitReconcile(p)
	} else {
		c.recon.next = time.Time{}
	}
	p.reconciles = append(p.reconciles, nil)
	c.recon.nextImplicit = now.Add(c.cfg.ReconcileInterval)
	// Kills sent on the old subscription may have been lost.
	for _, ts := range c.killing {
		ts.killSentAt = time.Time{}
	}
	c.nextKill = now
	c.step(now, p)
}

// reconcileBatch bounds one RECONCILE call so its JSON stays far below
// the master's and mesos-go's frame limits.
const reconcileBatch = 1000

func (c *core) explicitReconcile(p *plan) {
	addReconciles(p, c.recon.pending, func(agent string) string { return agent })
}

// addReconciles appends explicit RECONCILE calls for the tasks of m (by
// id, sorted) in batches of reconcileBatch; agent gives a task's agent id,
// "" for none.
func addReconciles[V any](p *plan, m map[string]V, agent func(V) string) {
	for ids := range slices.Chunk(slices.Sorted(maps.Keys(m)), reconcileBatch) {
		batch := make([]scheduler.Call_Reconcile_Task, len(ids))
		for i, id := range ids {
			batch[i].TaskID = mesos.TaskID{Value: id}
			if a := agent(m[id]); a != "" {
				batch[i].AgentID = &mesos.AgentID{Value: a}
			}
		}
		p.reconciles = append(p.reconciles, batch)
	}
}
