package framework

import (
	"context"
	"errors"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Actions are the scheduler's side effects on the Mesos master. The
// scheduler core decides; an Actions performs. The mesos-go implementation
// (Driver) sends calls on the current subscription; Recorder keeps them
// for tests.
type Actions interface {
	Accept(ctx context.Context, offerIDs []mesos.OfferID, ops []mesos.Offer_Operation, filters *mesos.Filters) error
	Decline(ctx context.Context, offerIDs []mesos.OfferID, filters *mesos.Filters) error
	Kill(ctx context.Context, taskID mesos.TaskID, agentID *mesos.AgentID, policy *mesos.KillPolicy) error
	Acknowledge(ctx context.Context, agentID mesos.AgentID, taskID mesos.TaskID, uuid []byte) error
	// Reconcile with no tasks is implicit reconciliation.
	Reconcile(ctx context.Context, tasks []scheduler.Call_Reconcile_Task) error
	Revive(ctx context.Context, roles []string) error
	Suppress(ctx context.Context, roles []string) error
}

// ErrNotLeader: the call needs this replica to lead and it does not. The
// leader election (package mesosconn) returns it; the API answers it by
// forwarding to the leader.
var ErrNotLeader = errors.New("framework: this replica is not the leader")

// Ack is one status update acknowledgement.
type Ack struct {
	AgentID, TaskID string
	UUID            []byte
}

// BatchAcker is Actions that can send many acknowledgements at once; the
// connection's Driver (package mesosconn) pipelines them on one HTTP
// connection. The scheduler hands it at most maxAckBatch at a time.
type BatchAcker interface {
	// AcknowledgeAll returns one error per ack, nil for those sent.
	AcknowledgeAll(ctx context.Context, acks []Ack) []error
}

// Input is what the connection side feeds the scheduler core's single
// goroutine: every Mesos event in order, and changes of the connection.
type Input struct {
	// Event is a Mesos event from the subscription stream (SUBSCRIBED,
	// OFFERS, UPDATE, RESCIND, FAILURE, ERROR, …). HEARTBEATs are consumed by
	// the connection's watchdog and need not be forwarded.
	Event *scheduler.Event
	// Disconnected is set when the subscription ended (stream closed,
	// heartbeat missed, leadership lost). Offers held are void.
	Disconnected error
}

// FrameworkIDStore persists the framework id so that a restarted or newly
// elected Flotilla re-subscribes as the same framework. store.Store
// implements it (ZooKeeper in production, memory in dev).
type FrameworkIDStore interface {
	// FrameworkID returns "" and no error when none was stored yet.
	FrameworkID(ctx context.Context) (string, error)
	SetFrameworkID(ctx context.Context, id string) error
}
