package mesosconn

import (
	"context"
	"errors"
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/framework"
)

// ErrNotSubscribed is returned by a Driver call made while no subscription
// is up (before SUBSCRIBED, between streams, after the leader fenced
// itself). The call was not sent; the core retries after the next
// SUBSCRIBED.
var ErrNotSubscribed = errors.New("mesosconn: not subscribed to a mesos master")

// Driver is the mesos-go implementation of Actions: it sends each call on
// the Conn's current subscription, with its framework id and
// Mesos-Stream-Id. It never waits for a subscription: while disconnected a
// call fails at once with ErrNotSubscribed.
type Driver struct{ c *Conn }

var _ framework.Actions = (*Driver)(nil)

// Driver returns the Actions that act on this Conn's subscription.
func (c *Conn) Driver() *Driver { return &Driver{c: c} }

func (d *Driver) do(ctx context.Context, call *scheduler.Call) error {
	s := d.c.sess.Load()
	if s == nil {
		return fmt.Errorf("mesosconn: %s: %w", call.GetType(), ErrNotSubscribed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mesosconn: %s: %w", call.GetType(), err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.c.cfg.CallTimeout)
		defer cancel()
	}
	call.FrameworkID = &mesos.FrameworkID{Value: s.frameworkID}
	resp, err := s.caller.Call(ctx, call)
	if resp != nil {
		resp.Close()
	}
	if err != nil {
		return fmt.Errorf("mesosconn: %s to %s: %w", call.GetType(), s.master, err)
	}
	return nil
}

func (d *Driver) Accept(ctx context.Context, offerIDs []mesos.OfferID, ops []mesos.Offer_Operation, filters *mesos.Filters) error {
	return d.do(ctx, &scheduler.Call{
		Type:   scheduler.Call_ACCEPT,
		Accept: &scheduler.Call_Accept{OfferIDs: offerIDs, Operations: ops, Filters: filters},
	})
}

func (d *Driver) Decline(ctx context.Context, offerIDs []mesos.OfferID, filters *mesos.Filters) error {
	return d.do(ctx, &scheduler.Call{
		Type:    scheduler.Call_DECLINE,
		Decline: &scheduler.Call_Decline{OfferIDs: offerIDs, Filters: filters},
	})
}

func (d *Driver) Kill(ctx context.Context, taskID mesos.TaskID, agentID *mesos.AgentID, policy *mesos.KillPolicy) error {
	return d.do(ctx, &scheduler.Call{
		Type: scheduler.Call_KILL,
		Kill: &scheduler.Call_Kill{TaskID: taskID, AgentID: agentID, KillPolicy: policy},
	})
}

// AcknowledgeAll sends acks pipelined on one connection when it can (see
// ackPipe), else one call at a time; errs[i] is acks[i]'s.
func (d *Driver) AcknowledgeAll(ctx context.Context, acks []framework.Ack) []error {
	s := d.c.sess.Load()
	if s != nil && s.acks != nil {
		return s.acks.send(ctx, s.frameworkID, acks)
	}
	errs := make([]error, len(acks))
	for i, a := range acks {
		errs[i] = d.Acknowledge(ctx, mesos.AgentID{Value: a.AgentID}, mesos.TaskID{Value: a.TaskID}, a.UUID)
	}
	return errs
}

func (d *Driver) Acknowledge(ctx context.Context, agentID mesos.AgentID, taskID mesos.TaskID, uuid []byte) error {
	return d.do(ctx, &scheduler.Call{
		Type:        scheduler.Call_ACKNOWLEDGE,
		Acknowledge: &scheduler.Call_Acknowledge{AgentID: agentID, TaskID: taskID, UUID: uuid},
	})
}

func (d *Driver) Reconcile(ctx context.Context, tasks []scheduler.Call_Reconcile_Task) error {
	return d.do(ctx, &scheduler.Call{
		Type:      scheduler.Call_RECONCILE,
		Reconcile: &scheduler.Call_Reconcile{Tasks: tasks},
	})
}

func (d *Driver) Revive(ctx context.Context, roles []string) error {
	return d.do(ctx, &scheduler.Call{
		Type:   scheduler.Call_REVIVE,
		Revive: &scheduler.Call_Revive{Roles: roles},
	})
}

func (d *Driver) Suppress(ctx context.Context, roles []string) error {
	return d.do(ctx, &scheduler.Call{
		Type:     scheduler.Call_SUPPRESS,
		Suppress: &scheduler.Call_Suppress{Roles: roles},
	})
}
