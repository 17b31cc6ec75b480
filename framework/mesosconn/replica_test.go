package mesosconn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/framework"
)

// haCore stands in for the scheduler core: it accepts every offer and
// records what happened. With misbehave set it keeps calling Actions that
// long after its ctx ended, as a buggy core would, to show the fence.
type haCore struct {
	misbehave time.Duration

	mu         sync.Mutex
	runs       int
	fencedAt   time.Time // when the last Run saw ctx end
	accepted   []time.Time
	refused    int // calls after the fence that came back ErrFenced
	leaked     int // calls after the fence that did not fail
	subscribed chan string
	accepts    chan time.Time
	misbehaved chan struct{} // one per term whose calls after the fence are done
}

func newHACore() *haCore {
	return &haCore{subscribed: make(chan string, 16), accepts: make(chan time.Time, 256), misbehaved: make(chan struct{}, 16)}
}

func (c *haCore) Run(ctx context.Context, in <-chan framework.Input, act framework.Actions) error {
	c.mu.Lock()
	c.runs++
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.fencedAt = time.Now()
			c.mu.Unlock()
			c.afterFence(act)
			c.misbehaved <- struct{}{}
			return ctx.Err()
		case i := <-in:
			if i.Event == nil {
				continue
			}
			switch i.Event.GetType() {
			case scheduler.Event_SUBSCRIBED:
				c.subscribed <- i.Event.GetSubscribed().GetFrameworkID().GetValue()
			case scheduler.Event_OFFERS:
				for _, o := range i.Event.GetOffers().GetOffers() {
					actx, cancel := context.WithTimeout(ctx, 5*time.Second)
					// No refusal filter: the next leader's offers must not
					// wait for ours to expire.
					refuse := 0.0
					err := act.Accept(actx, []mesos.OfferID{o.ID}, nil, &mesos.Filters{RefuseSeconds: &refuse})
					cancel()
					if err == nil {
						now := time.Now()
						c.mu.Lock()
						c.accepted = append(c.accepted, now)
						c.mu.Unlock()
						select {
						case c.accepts <- now:
						default: // nobody counts this many
						}
					}
				}
			}
		}
	}
}

func (c *haCore) afterFence(act framework.Actions) {
	end := time.Now().Add(c.misbehave)
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := act.Revive(ctx, nil)
		cancel()
		c.mu.Lock()
		if errors.Is(err, ErrFenced) {
			c.refused++
		} else {
			c.leaked++
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

type haReplica struct {
	r    *Replica
	stop func()
}

func haStartReplica(t testing.TB, name string, zkServers []string, path, master string, store framework.FrameworkIDStore, core Core) *haReplica {
	t.Helper()
	det, err := NewDetector(DetectorConfig{Master: master, SessionTimeout: 4 * time.Second, Logger: haLog(t, "detector-"+name)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReplica(ReplicaConfig{
		Election: ElectionConfig{Servers: zkServers, Path: path, Address: "http://" + name + ":8080", ID: name,
			SessionTimeout: 4 * time.Second},
		Conn: ConnConfig{Detector: det, FrameworkIDs: store, User: "tester", Codec: "json", // the fake master speaks JSON
			BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		Core:   core,
		Logger: haLog(t, "replica-"+name),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("%s: Run returned %v", name, err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("%s: Run did not return within 15s", name)
			}
			det.Close()
		})
	}
	t.Cleanup(stop)
	return &haReplica{r: r, stop: stop}
}

func haRecv[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
		var zero T
		return zero
	}
}

// Two replicas; the leader's ZooKeeper link is cut. The old leader fences
// itself (no call of its reaches the master afterwards, even from a core
// that keeps trying), the standby takes over, re-subscribes with the same
// framework id and accepts offers.
func TestReplicaFailover(t *testing.T) {
	t.Parallel()
	servers, root, _ := haZK(t)
	path := root + "/leader"
	m := newHAMaster(t, "M1")
	m.set(func(m *haMaster) { m.offerOnSub = true })
	store := &haIDStore{}
	proxy := newHAProxy(t, servers[0])

	coreA := newHACore()
	coreA.misbehave = 500 * time.Millisecond
	a := haStartReplica(t, "a", []string{proxy.Addr()}, path, m.URL(), store, coreA)
	id := haRecv(t, coreA.subscribed, 10*time.Second, "a subscribed")
	haRecv(t, coreA.accepts, 10*time.Second, "a accepted an offer")
	if !a.r.IsLeader() || !a.r.Subscribed() {
		t.Fatalf("a: leader=%v subscribed=%v", a.r.IsLeader(), a.r.Subscribed())
	}

	coreB := newHACore()
	b := haStartReplica(t, "b", servers, path, m.URL(), store, coreB)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := b.r.LeaderAddress(ctx)
		cancel()
		if err == nil && addr == "http://a:8080" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b: leader address %q, %v; want http://a:8080", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.r.IsLeader() || b.r.Subscribed() {
		t.Fatal("standby b leads or is subscribed")
	}

	proxy.Cut()
	if got := haRecv(t, coreB.subscribed, 20*time.Second, "b subscribed after a lost its session"); got != id {
		t.Fatalf("b subscribed as %q, want the same framework %q", got, id)
	}
	haRecv(t, coreB.accepts, 10*time.Second, "b accepted an offer")
	haRecv(t, coreA.misbehaved, 10*time.Second, "a's core done calling after the fence")

	coreA.mu.Lock()
	fencedAt, refused, leaked := coreA.fencedAt, coreA.refused, coreA.leaked
	coreA.mu.Unlock()
	if fencedAt.IsZero() {
		t.Fatal("a's core never saw its context end")
	}
	if refused == 0 || leaked != 0 {
		t.Fatalf("a's calls after the fence: %d refused, %d not refused; want all refused", refused, leaked)
	}
	for _, c := range m.otherCalls() {
		if c.streamID == "stream-1" && !c.at.Before(fencedAt) {
			t.Fatalf("a %v reached the master %v after a was fenced", c.call.GetType(), c.at.Sub(fencedAt))
		}
	}
	if a.r.IsLeader() || !b.r.IsLeader() {
		t.Fatalf("a leads=%v b leads=%v, want only b", a.r.IsLeader(), b.r.IsLeader())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if addr, err := b.r.LeaderAddress(ctx); err != nil || addr != "http://b:8080" {
		t.Fatalf("b: LeaderAddress %q, %v", addr, err)
	}
}

// Without ZooKeeper a replica leads at once and alone.
func TestReplicaWithoutZooKeeper(t *testing.T) {
	t.Parallel()
	m := newHAMaster(t, "M1")
	m.set(func(m *haMaster) { m.offerOnSub = true })
	core := newHACore()
	r := haStartReplica(t, "solo", nil, "", m.URL(), &haIDStore{}, core)
	haRecv(t, core.subscribed, 10*time.Second, "subscribed")
	haRecv(t, core.accepts, 10*time.Second, "accepted")
	if !r.r.IsLeader() {
		t.Fatal("not leader")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.r.Abdicate(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Abdicate without ZooKeeper: %v, want ErrNotLeader", err)
	}
	r.stop()
	core.mu.Lock()
	defer core.mu.Unlock()
	if core.runs != 1 || core.fencedAt.IsZero() {
		t.Fatalf("core runs %d, stopped %v; want one run, stopped", core.runs, !core.fencedAt.IsZero())
	}
}

func TestNewReplicaRejects(t *testing.T) {
	t.Parallel()
	det := staticDetector("http://127.0.0.1:1/api/v1/scheduler")
	cases := []struct {
		name string
		cfg  ReplicaConfig
	}{
		{"no core", ReplicaConfig{Conn: ConnConfig{Detector: det, FrameworkIDs: &haIDStore{}}}},
		{"no detector", ReplicaConfig{Core: newHACore(), Conn: ConnConfig{FrameworkIDs: &haIDStore{}}}},
		{"no store", ReplicaConfig{Core: newHACore(), Conn: ConnConfig{Detector: det}}},
		{"bad conn", ReplicaConfig{Core: newHACore(), Conn: ConnConfig{Detector: det, FrameworkIDs: &haIDStore{}, Codec: "xml"}}},
		{"bad election path", ReplicaConfig{Core: newHACore(), Conn: ConnConfig{Detector: det, FrameworkIDs: &haIDStore{}},
			Election: ElectionConfig{Servers: []string{"127.0.0.1:2181"}, Path: "leader"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewReplica(tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
