package mesosconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// ErrFenced is returned by the leader's Actions once leadership is lost.
var ErrFenced = errors.New("mesosconn: leadership lost; call refused")

// ErrKillHeld is returned by the leader's Kill while its ZooKeeper session
// is disconnected; the core sends the KILL again after its KillRetry if
// this replica still leads then.
var ErrKillHeld = errors.New("mesosconn: kill held while disconnected from zookeeper (this term may be over; the next leader decides)")

// Core is what a replica runs while it leads: the scheduler core
// (*Scheduler). Run is called once per leadership term, never concurrently,
// and must return soon after ctx ends.
type Core interface {
	Run(ctx context.Context, in <-chan framework.Input, act framework.Actions) error
}

// ReplicaConfig configures a Replica.
type ReplicaConfig struct {
	// Election: with no Servers the replica leads at once and alone (no
	// ZooKeeper, e.g. flotilla dev).
	Election ElectionConfig
	// Conn configures the connection of each leadership term. Conn.Detector
	// is required; Close it after Run returns.
	Conn ConnConfig
	Core Core // required
	// InputBuffer is the capacity of the Input channel; default 64.
	InputBuffer int

	// Clock, Rand and Logger are the defaults for the parts above that do
	// not set their own. Each part gets its own *rand.Rand seeded from Rand.
	Clock  clock.Clock
	Rand   *rand.Rand
	Logger *logrus.Entry
}

// Replica is one Flotilla instance: a candidate that, while it leads,
// subscribes to Mesos and runs the scheduler core.
type Replica struct {
	cfg      ReplicaConfig
	log      *logrus.Entry
	election *Election // nil without ZooKeeper

	mu   sync.Mutex
	conn *Conn // the leading term's connection
}

// NewReplica checks cfg and returns a Replica; Run starts it.
func NewReplica(cfg ReplicaConfig) (*Replica, error) {
	if cfg.Core == nil {
		return nil, errors.New("mesosconn: replica config has no Core")
	}
	if cfg.Conn.Detector == nil {
		return nil, errors.New("mesosconn: replica config has no Conn.Detector")
	}
	if cfg.Conn.FrameworkIDs == nil {
		return nil, errors.New("mesosconn: replica config has no Conn.FrameworkIDs")
	}
	if cfg.InputBuffer <= 0 {
		cfg.InputBuffer = 64
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewSource(1))
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Component(logging.Discard(), "replica")
	}
	if cfg.Conn.Clock == nil {
		cfg.Conn.Clock = cfg.Clock
	}
	if cfg.Conn.Logger == nil {
		cfg.Conn.Logger = cfg.Logger.WithField("component", "conn")
	}
	// Fail on a bad conn config now rather than at the first election.
	probe := cfg.Conn
	if err := probe.defaults(); err != nil {
		return nil, err
	}
	r := &Replica{cfg: cfg, log: cfg.Logger}
	if len(cfg.Election.Servers) > 0 {
		ec := cfg.Election
		if ec.Clock == nil {
			ec.Clock = cfg.Clock
		}
		if ec.Rand == nil {
			ec.Rand = rand.New(rand.NewSource(cfg.Rand.Int63()))
		}
		if ec.Logger == nil {
			ec.Logger = cfg.Logger.WithField("component", "election")
		}
		e, err := NewElection(ec)
		if err != nil {
			return nil, err
		}
		r.election = e
	}
	return r, nil
}

// Run contends (or, without ZooKeeper, leads) until ctx ends; it returns
// nil once everything it started has stopped.
func (r *Replica) Run(ctx context.Context) error {
	if r.election != nil {
		return r.election.Run(ctx, r.lead)
	}
	failures := 0
	for ctx.Err() == nil {
		r.lead(ctx)
		if ctx.Err() != nil {
			break
		}
		failures++
		delay := haBackoff(failures, time.Second, 30*time.Second, r.cfg.Rand)
		r.log.WithField("retry_in", delay).Warn("scheduling stopped by itself; restarting")
		t := r.cfg.Clock.NewTimer(delay)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
		}
	}
	return nil
}

// IsLeader reports whether this replica leads (always, without ZooKeeper).
func (r *Replica) IsLeader() bool {
	if r.election == nil {
		return true
	}
	return r.election.IsLeader()
}

// LeaderAddress returns the leader's advertised address (this replica's
// own when it leads).
func (r *Replica) LeaderAddress(ctx context.Context) (string, error) {
	if r.election == nil {
		return r.cfg.Election.Address, nil
	}
	return r.election.LeaderAddress(ctx)
}

// Candidates lists the replicas' advertised addresses, the leader first
// (this replica alone without ZooKeeper).
func (r *Replica) Candidates(ctx context.Context) ([]string, error) {
	if r.election == nil {
		return []string{r.cfg.Election.Address}, nil
	}
	return r.election.Candidates(ctx)
}

// Abdicate makes the leading replica step down (DELETE /v2/leader); it
// fails with ErrNotLeader on a standby or without ZooKeeper.
func (r *Replica) Abdicate(ctx context.Context) error {
	if r.election == nil {
		return ErrNotLeader
	}
	return r.election.Abdicate(ctx)
}

// Subscribed reports whether this replica leads and is subscribed to Mesos.
func (r *Replica) Subscribed() bool {
	r.mu.Lock()
	c := r.conn
	r.mu.Unlock()
	return c != nil && c.Subscribed()
}

// FrameworkID is the framework id of the current subscription, "" unless
// this replica leads and is subscribed.
func (r *Replica) FrameworkID() string {
	r.mu.Lock()
	c := r.conn
	r.mu.Unlock()
	if c == nil {
		return ""
	}
	return c.FrameworkID()
}

// lead is one leadership term: the connection and the core run on ctx and
// stop together; lead returns when both have.
func (r *Replica) lead(ctx context.Context) {
	cc := r.cfg.Conn
	cc.Rand = rand.New(rand.NewSource(r.cfg.Rand.Int63()))
	conn, err := NewConn(cc)
	if err != nil { // checked in NewReplica; cannot happen
		r.log.WithError(err).Error("cannot build the mesos connection")
		return
	}
	r.mu.Lock()
	r.conn = conn
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.conn = nil
		r.mu.Unlock()
	}()

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	in := make(chan framework.Input, r.cfg.InputBuffer)
	act := &fencedActions{fence: ctx, next: conn.Driver(), holdKills: r.sessionDisconnected}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer stop()
		defer r.recoverLoop("connection")
		// A fresh Conn per term: Run fails only if it is already running.
		if err := conn.Run(ctx, in); err != nil {
			r.log.WithError(err).Error("the connection did not run; this term ends")
		}
	}()
	go func() {
		defer wg.Done()
		defer stop()
		defer r.recoverLoop("scheduler core")
		if err := r.cfg.Core.Run(ctx, in, act); err != nil && ctx.Err() == nil {
			r.log.WithError(err).Error("scheduler core stopped")
		}
	}()
	r.log.Info("leading: connection and scheduler started")
	wg.Wait()
	r.log.Info("connection and scheduler stopped")
}

func (r *Replica) recoverLoop(what string) {
	if p := recover(); p != nil {
		r.log.WithFields(logrus.Fields{"panic": p, "stack": haStack(), "loop": what}).Error("loop crashed")
	}
}

// sessionDisconnected: this replica's ZooKeeper session is disconnected.
func (r *Replica) sessionDisconnected() bool {
	return r.election != nil && r.election.SessionDisconnected()
}

// fencedActions refuses calls once its fence (the leadership term) ends,
// and aborts calls in flight at that moment. It also holds KILLs while
// holdKills says so (the session is disconnected): a leader cut from
// ZooKeeper leads on until FenceAfter, and a kill it sends then (the last
// old tasks of a roll) reaches no follower — their long polls of its view
// end, and while ZooKeeper is away they cannot find another — so they
// route to killed tasks until a new leader publishes (the chaos suite's
// zk fault: every follower answered 503 for a few seconds). Launches go
// on: a task too many is harmless, and the next leader adopts it.
type fencedActions struct {
	fence     context.Context
	next      framework.Actions
	holdKills func() bool
}

var _ framework.Actions = (*fencedActions)(nil)

func (f *fencedActions) guard(ctx context.Context, call func(context.Context) error) error {
	if f.fence.Err() != nil {
		return ErrFenced
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(f.fence, cancel)()
	err := call(ctx)
	if err != nil && f.fence.Err() != nil {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}

func (f *fencedActions) Accept(ctx context.Context, offerIDs []mesos.OfferID, ops []mesos.Offer_Operation, filters *mesos.Filters) error {
	return f.guard(ctx, func(ctx context.Context) error { return f.next.Accept(ctx, offerIDs, ops, filters) })
}

func (f *fencedActions) Decline(ctx context.Context, offerIDs []mesos.OfferID, filters *mesos.Filters) error {
	return f.guard(ctx, func(ctx context.Context) error { return f.next.Decline(ctx, offerIDs, filters) })
}

func (f *fencedActions) Kill(ctx context.Context, taskID mesos.TaskID, agentID *mesos.AgentID, policy *mesos.KillPolicy) error {
	if f.holdKills != nil && f.holdKills() && f.fence.Err() == nil {
		return ErrKillHeld
	}
	return f.guard(ctx, func(ctx context.Context) error { return f.next.Kill(ctx, taskID, agentID, policy) })
}

func (f *fencedActions) Acknowledge(ctx context.Context, agentID mesos.AgentID, taskID mesos.TaskID, uuid []byte) error {
	return f.guard(ctx, func(ctx context.Context) error { return f.next.Acknowledge(ctx, agentID, taskID, uuid) })
}

func (f *fencedActions) Reconcile(ctx context.Context, tasks []scheduler.Call_Reconcile_Task) error {
	return f.guard(ctx, func(ctx context.Context) error { return f.next.Reconcile(ctx, tasks) })
}

func (f *fencedActions) Revive(ctx context.Context, roles []string) error {
	return f.guard(ctx, func(ctx context.Context) error { return f.next.Revive(ctx, roles) })
}

func (f *fencedActions) Suppress(ctx context.Context, roles []string) error {
	return f.guard(ctx, func(ctx context.Context) error { return f.next.Suppress(ctx, roles) })
}
