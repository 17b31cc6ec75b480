package mesosconn

import (
	"context"
	"errors"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/framework"
)

var haDriverCases = []struct {
	name string
	want scheduler.Call_Type
	call func(ctx context.Context, a framework.Actions) error
	// check looks at the call as the master decoded it.
	check func(t *testing.T, c *scheduler.Call)
}{
	{"accept", scheduler.Call_ACCEPT, func(ctx context.Context, a framework.Actions) error {
		refuse := 5.0
		return a.Accept(ctx, []mesos.OfferID{{Value: "O1"}}, []mesos.Offer_Operation{{Type: mesos.Offer_Operation_LAUNCH}},
			&mesos.Filters{RefuseSeconds: &refuse})
	}, func(t *testing.T, c *scheduler.Call) {
		a := c.GetAccept()
		if len(a.GetOfferIDs()) != 1 || a.GetOfferIDs()[0].Value != "O1" || len(a.GetOperations()) != 1 || a.GetFilters().GetRefuseSeconds() != 5 {
			t.Errorf("accept body %v", a)
		}
	}},
	{"decline", scheduler.Call_DECLINE, func(ctx context.Context, a framework.Actions) error {
		return a.Decline(ctx, []mesos.OfferID{{Value: "O2"}, {Value: "O3"}}, nil)
	}, func(t *testing.T, c *scheduler.Call) {
		if n := len(c.GetDecline().GetOfferIDs()); n != 2 {
			t.Errorf("decline of %d offers, want 2", n)
		}
	}},
	{"kill", scheduler.Call_KILL, func(ctx context.Context, a framework.Actions) error {
		return a.Kill(ctx, mesos.TaskID{Value: "web.1"}, &mesos.AgentID{Value: "S1"}, nil)
	}, func(t *testing.T, c *scheduler.Call) {
		if c.GetKill().GetTaskID().Value != "web.1" || c.GetKill().GetAgentID().GetValue() != "S1" {
			t.Errorf("kill body %v", c.GetKill())
		}
	}},
	{"acknowledge", scheduler.Call_ACKNOWLEDGE, func(ctx context.Context, a framework.Actions) error {
		return a.Acknowledge(ctx, mesos.AgentID{Value: "S1"}, mesos.TaskID{Value: "web.1"}, []byte("0123456789abcdef"))
	}, func(t *testing.T, c *scheduler.Call) {
		if string(c.GetAcknowledge().GetUUID()) != "0123456789abcdef" {
			t.Errorf("ack uuid %q", c.GetAcknowledge().GetUUID())
		}
	}},
	{"reconcile", scheduler.Call_RECONCILE, func(ctx context.Context, a framework.Actions) error {
		return a.Reconcile(ctx, []scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: "web.1"}}})
	}, func(t *testing.T, c *scheduler.Call) {
		if n := len(c.GetReconcile().GetTasks()); n != 1 {
			t.Errorf("reconcile of %d tasks, want 1", n)
		}
	}},
	{"revive", scheduler.Call_REVIVE, func(ctx context.Context, a framework.Actions) error {
		return a.Revive(ctx, []string{"web"})
	}, func(t *testing.T, c *scheduler.Call) {
		if r := c.GetRevive().GetRoles(); len(r) != 1 || r[0] != "web" {
			t.Errorf("revive roles %v", r)
		}
	}},
	{"suppress", scheduler.Call_SUPPRESS, func(ctx context.Context, a framework.Actions) error {
		return a.Suppress(ctx, []string{"web"})
	}, func(t *testing.T, c *scheduler.Call) {
		if r := c.GetSuppress().GetRoles(); len(r) != 1 || r[0] != "web" {
			t.Errorf("suppress roles %v", r)
		}
	}},
}

// While there is no subscription every call fails at once, and nothing
// reaches the master.
func TestDriverDisconnectedFailsFast(t *testing.T) {
	t.Parallel()
	m := newHAMaster(t, "M1")
	c := haConn(t, m.URL(), &haIDStore{}, nil) // never run
	for _, tc := range haDriverCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := tc.call(ctx, c.Driver())
			if !errors.Is(err, ErrNotSubscribed) {
				t.Fatalf("got %v, want ErrNotSubscribed", err)
			}
			if ctx.Err() != nil {
				t.Fatal("the call waited for its deadline")
			}
		})
	}
	if n := len(m.otherCalls()); n != 0 {
		t.Fatalf("master got %d calls, want 0", n)
	}
}

// Calls carry the subscription's framework id and Mesos-Stream-Id.
func TestDriverCallsOnSubscription(t *testing.T) {
	t.Parallel()
	m := newHAMaster(t, "M1")
	c := haConn(t, m.URL(), &haIDStore{}, nil)
	in := make(chan framework.Input, 16)
	haRun(t, c, in)
	haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
	for i, tc := range haDriverCases {
		// Sequential: each case finds its call at index i.
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tc.call(ctx, c.Driver()); err != nil {
				t.Fatal(err)
			}
			calls := m.otherCalls()
			if len(calls) != i+1 {
				t.Fatalf("master has %d calls, want %d", len(calls), i+1)
			}
			got := calls[i]
			if got.call.GetType() != tc.want {
				t.Fatalf("master got %v, want %v", got.call.GetType(), tc.want)
			}
			if got.call.GetFrameworkID().GetValue() != "M1-0001" {
				t.Errorf("framework id %v, want M1-0001", got.call.GetFrameworkID())
			}
			if got.streamID != "stream-1" {
				t.Errorf("Mesos-Stream-Id %q, want stream-1", got.streamID)
			}
			tc.check(t, got.call)
		})
	}
}

// After the stream ends the Driver refuses at once again, and after the
// re-subscription it uses the new stream id.
func TestDriverFollowsResubscription(t *testing.T) {
	t.Parallel()
	m := newHAMaster(t, "M1")
	c := haConn(t, m.URL(), &haIDStore{}, func(cc *ConnConfig) {
		cc.BackoffMin, cc.BackoffMax = time.Second, time.Second
	})
	in := make(chan framework.Input, 16)
	haRun(t, c, in)
	haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
	m.drop()
	haExpectDisconnected(t, in, ErrStreamEnded)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Disconnected is sent after the session is cleared, and the backoff
	// (≥ 500 ms) keeps it cleared now.
	if err := c.Driver().Revive(ctx, nil); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("REVIVE between streams: %v, want ErrNotSubscribed", err)
	}
	haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
	if err := c.Driver().Revive(ctx, nil); err != nil {
		t.Fatalf("REVIVE after re-subscription: %v", err)
	}
	calls := m.otherCalls()
	if len(calls) != 1 || calls[0].streamID != "stream-2" {
		t.Fatalf("calls %v, want one on stream-2", calls)
	}
}
