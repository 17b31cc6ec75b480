package mesosconn

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// haConn builds a Conn to a static master with fast real-time backoff.
func haConn(t *testing.T, master string, store framework.FrameworkIDStore, mod func(*ConnConfig)) *Conn {
	t.Helper()
	det, err := NewDetector(DetectorConfig{Master: master})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ConnConfig{
		Detector: det, FrameworkIDs: store, User: "tester",
		Codec:      "json", // what the fake master (conn_helpers_test.go) decodes
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
		Logger:         haLog(t, "conn"),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// haRun runs c until the test ends; stop ends it early and waits.
func haRun(t *testing.T, c *Conn, in chan framework.Input) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, in) }()
	stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("conn.Run returned %v, want nil", err)
			}
			done <- nil
		case <-time.After(10 * time.Second):
			t.Errorf("conn.Run did not return within 10s of cancel")
		}
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return stop
}

func haExpectEvent(t *testing.T, in <-chan framework.Input, want scheduler.Event_Type) *scheduler.Event {
	t.Helper()
	i := haNext(t, in, 10*time.Second)
	if i.Event == nil || i.Event.GetType() != want {
		t.Fatalf("got input %s, want %s", haDescribe(i), want)
	}
	return i.Event
}

func haExpectDisconnected(t *testing.T, in <-chan framework.Input, want error) {
	t.Helper()
	i := haNext(t, in, 10*time.Second)
	if i.Event != nil || !errors.Is(i.Disconnected, want) {
		t.Fatalf("got input %s, want Disconnected(%v)", haDescribe(i), want)
	}
}

func TestConnResubscribesWithSameFrameworkID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// interrupt ends the first subscription and returns the Conn and
		// Input channel that must re-subscribe.
		interrupt func(t *testing.T, m *haMaster, c *Conn, in chan framework.Input, stop func(), store *haIDStore) (*Conn, chan framework.Input)
	}{
		{"master closes the stream", func(t *testing.T, m *haMaster, c *Conn, in chan framework.Input, _ func(), _ *haIDStore) (*Conn, chan framework.Input) {
			m.drop()
			haExpectDisconnected(t, in, ErrStreamEnded)
			return c, in
		}},
		{"flotilla restarts", func(t *testing.T, m *haMaster, c *Conn, _ chan framework.Input, stop func(), store *haIDStore) (*Conn, chan framework.Input) {
			stop()
			c2 := haConn(t, m.URL(), store, nil)
			in2 := make(chan framework.Input, 16)
			haRun(t, c2, in2)
			return c2, in2
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newHAMaster(t, "M1")
			store := &haIDStore{}
			c := haConn(t, m.URL(), store, nil)
			in := make(chan framework.Input, 16)
			stop := haRun(t, c, in)

			ev := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
			id := ev.GetSubscribed().GetFrameworkID().GetValue()
			if id != "M1-0001" || store.get() != id {
				t.Fatalf("first subscription: id %q, stored %q; want M1-0001 stored", id, store.get())
			}
			if got := m.subscribeCalls()[0].GetFrameworkID(); got != nil {
				t.Fatalf("first SUBSCRIBE carried framework id %v, want none", got)
			}

			c, in = tc.interrupt(t, m, c, in, stop, store)

			ev = haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
			if got := ev.GetSubscribed().GetFrameworkID().GetValue(); got != id {
				t.Fatalf("re-subscribed as %q, want %q", got, id)
			}
			subs := m.subscribeCalls()
			last := subs[len(subs)-1]
			if last.GetFrameworkID().GetValue() != id || last.GetSubscribe().GetFrameworkInfo().GetID().GetValue() != id {
				t.Fatalf("re-SUBSCRIBE call framework ids %v / %v, want %q in both",
					last.GetFrameworkID(), last.GetSubscribe().GetFrameworkInfo().GetID(), id)
			}
			if c.FrameworkID() != id {
				t.Fatalf("Conn.FrameworkID() = %q, want %q", c.FrameworkID(), id)
			}
		})
	}
}

func TestConnFrameworkInfo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		mod   func(*ConnConfig)
		check func(t *testing.T, fi *mesos.FrameworkInfo)
	}{
		{"defaults", nil, func(t *testing.T, fi *mesos.FrameworkInfo) {
			if fi.GetName() != "flotilla" || fi.GetUser() != "tester" {
				t.Errorf("name/user %q/%q, want flotilla/tester", fi.GetName(), fi.GetUser())
			}
			if fi.GetFailoverTimeout() != DefaultFailoverTimeout.Seconds() {
				t.Errorf("failover_timeout %v, want %v", fi.GetFailoverTimeout(), DefaultFailoverTimeout.Seconds())
			}
			if !fi.GetCheckpoint() {
				t.Error("checkpoint off, want on")
			}
			if !slices.Equal(fi.GetRoles(), []string{"*"}) {
				t.Errorf("roles %v, want [*]", fi.GetRoles())
			}
			var caps []mesos.FrameworkInfo_Capability_Type
			for _, c := range fi.GetCapabilities() {
				caps = append(caps, c.Type)
			}
			for _, want := range []mesos.FrameworkInfo_Capability_Type{
				mesos.FrameworkInfo_Capability_PARTITION_AWARE, mesos.FrameworkInfo_Capability_TASK_KILLING_STATE,
				mesos.FrameworkInfo_Capability_MULTI_ROLE,
			} {
				if !slices.Contains(caps, want) {
					t.Errorf("capabilities %v lack %v", caps, want)
				}
			}
			if slices.Contains(caps, mesos.FrameworkInfo_Capability_GPU_RESOURCES) {
				t.Error("GPU_RESOURCES set without asking")
			}
		}},
		{"configured", func(c *ConnConfig) {
			c.Name, c.Roles, c.FailoverTimeout = "fl2", []string{"web"}, time.Hour
			c.Hostname, c.WebUIURL, c.GPUResources = "fl.example", "http://fl.example:8080", true
		}, func(t *testing.T, fi *mesos.FrameworkInfo) {
			if fi.GetName() != "fl2" || fi.GetFailoverTimeout() != 3600 || !slices.Equal(fi.GetRoles(), []string{"web"}) {
				t.Errorf("name %q failover %v roles %v", fi.GetName(), fi.GetFailoverTimeout(), fi.GetRoles())
			}
			if fi.GetHostname() != "fl.example" || fi.GetWebUiURL() != "http://fl.example:8080" {
				t.Errorf("hostname %q webui %q", fi.GetHostname(), fi.GetWebUiURL())
			}
			if !slices.ContainsFunc(fi.GetCapabilities(), func(c mesos.FrameworkInfo_Capability) bool {
				return c.Type == mesos.FrameworkInfo_Capability_GPU_RESOURCES
			}) {
				t.Error("GPU_RESOURCES missing")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newHAMaster(t, "M1")
			c := haConn(t, m.URL(), &haIDStore{}, tc.mod)
			in := make(chan framework.Input, 16)
			haRun(t, c, in)
			haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
			tc.check(t, m.subscribeCalls()[0].GetSubscribe().GetFrameworkInfo())
		})
	}
}

func TestConnConfigRejects(t *testing.T) {
	t.Parallel()
	det := staticDetector("http://127.0.0.1:1/api/v1/scheduler")
	cases := []struct {
		name string
		cfg  ConnConfig
	}{
		{"no detector", ConnConfig{FrameworkIDs: &haIDStore{}}},
		{"no store", ConnConfig{Detector: det}},
		{"negative failover", ConnConfig{Detector: det, FrameworkIDs: &haIDStore{}, FailoverTimeout: -time.Second}},
		{"unknown codec", ConnConfig{Detector: det, FrameworkIDs: &haIDStore{}, Codec: "xml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewConn(tc.cfg); err == nil {
				t.Fatal("NewConn accepted it")
			}
		})
	}
}

// The watchdog counts silence on the injected clock from the last frame,
// HEARTBEATs included, and drops the stream after HeartbeatMisses
// intervals; HEARTBEATs themselves are not forwarded.
func TestConnHeartbeatWatchdog(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	m := newHAMaster(t, "M1")
	m.set(func(m *haMaster) { m.heartbeat = 1 })
	store := &haIDStore{}
	c := haConn(t, m.URL(), store, func(cc *ConnConfig) {
		cc.Clock = clk
		cc.HeartbeatMisses = 3
		cc.BackoffMin, cc.BackoffMax = time.Second, 2*time.Second
	})
	in := make(chan framework.Input, 16)
	haRun(t, c, in)
	id := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed().GetFrameworkID().GetValue()
	start := clk.Now()

	// Two seconds in, a HEARTBEAT then an UPDATE: only the UPDATE is
	// forwarded, and silence now counts from here.
	clk.Step(2 * time.Second)
	m.send(&scheduler.Event{Type: scheduler.Event_HEARTBEAT})
	m.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: mesos.TaskStatus{
		TaskID: mesos.TaskID{Value: "t1"}, State: mesos.TASK_RUNNING.Enum()}}})
	haExpectEvent(t, in, scheduler.Event_UPDATE)

	// 3 misses × 1 s after the last frame at +2 s: not before +5 s. Up to
	// +4.9 s in small steps, each once the conn has re-armed its watchdog.
	armed := clk.Waiters()
	for clk.Now().Sub(start) < 4900*time.Millisecond {
		haStepArmed(t, clk, 100*time.Millisecond, armed)
		select {
		case i := <-in:
			t.Fatalf("at +%v: %s before the watchdog's time", clk.Now().Sub(start), haDescribe(i))
		case <-time.After(10 * time.Millisecond):
		}
	}
	haNoInput(t, in, 300*time.Millisecond)
	var fired time.Duration
	for fired == 0 && clk.Now().Sub(start) < 5300*time.Millisecond {
		clk.Step(100 * time.Millisecond)
		select {
		case i := <-in:
			if !errors.Is(i.Disconnected, ErrHeartbeatTimeout) {
				t.Fatalf("got %s, want Disconnected(heartbeat timeout)", haDescribe(i))
			}
			fired = clk.Now().Sub(start)
		case <-time.After(time.Second):
		}
	}
	// The conn notes the hand-over as it takes the UPDATE, before
	// forwarding it, and re-arms before each step: exactly +5 s.
	if fired != 5*time.Second {
		t.Fatalf("watchdog fired at +%v (0: not by +5.3 s), want +5 s (last frame at +2 s, then 3 × 1 s)", fired)
	}

	// Re-subscribes after the backoff, on the fake clock, with the same id.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		clk.Step(100 * time.Millisecond)
		select {
		case i := <-in:
			if i.Event.GetType() != scheduler.Event_SUBSCRIBED || i.Event.GetSubscribed().GetFrameworkID().GetValue() != id {
				t.Fatalf("got %s, want SUBSCRIBED as %s", haDescribe(i), id)
			}
			if back := clk.Now().Sub(start) - fired; back < 500*time.Millisecond {
				t.Fatalf("re-subscribed %v after the drop, want at least the jittered 1 s backoff (≥ 500 ms)", back)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("no re-subscription after the heartbeat timeout")
}

func TestConnFrameworkRemovedSubscribesFresh(t *testing.T) {
	t.Parallel()
	m := newHAMaster(t, "M1")
	m.set(func(m *haMaster) { m.refuse = "Framework has been removed" })
	store := &haIDStore{id: "M1-0042"}
	c := haConn(t, m.URL(), store, nil)
	in := make(chan framework.Input, 16)
	haRun(t, c, in)

	if msg := haExpectEvent(t, in, scheduler.Event_ERROR).GetError().GetMessage(); msg != "Framework has been removed" {
		t.Fatalf("ERROR message %q", msg)
	}
	haExpectDisconnected(t, in, ErrStreamEnded)
	ev := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
	subs := m.subscribeCalls()
	if len(subs) != 2 {
		t.Fatalf("%d SUBSCRIBE calls, want 2", len(subs))
	}
	if subs[0].GetFrameworkID().GetValue() != "M1-0042" {
		t.Errorf("first SUBSCRIBE as %v, want the stored M1-0042", subs[0].GetFrameworkID())
	}
	if subs[1].GetFrameworkID() != nil {
		t.Errorf("SUBSCRIBE after removal carried id %v, want none", subs[1].GetFrameworkID())
	}
	newID := ev.GetSubscribed().GetFrameworkID().GetValue()
	store.mu.Lock()
	sets := append([]string(nil), store.sets...)
	store.mu.Unlock()
	if !slices.Equal(sets, []string{"", newID}) {
		t.Errorf("store writes %q, want cleared then %q", sets, newID)
	}
}

// "Framework failed over" is not a removal: the id is kept.
func TestConnFailedOverKeepsFrameworkID(t *testing.T) {
	t.Parallel()
	m := newHAMaster(t, "M1")
	store := &haIDStore{id: "M1-0007"}
	c := haConn(t, m.URL(), store, nil)
	in := make(chan framework.Input, 16)
	haRun(t, c, in)
	haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
	m.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework failed over"}})
	haExpectEvent(t, in, scheduler.Event_ERROR)
	haExpectDisconnected(t, in, ErrStreamEnded)
	if got := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed().GetFrameworkID().GetValue(); got != "M1-0007" {
		t.Fatalf("re-subscribed as %q, want M1-0007", got)
	}
	if store.get() != "M1-0007" {
		t.Fatalf("store holds %q, want M1-0007", store.get())
	}
}

// A store that cannot be read must not make Flotilla register a new
// framework (orphaning every task): the attempt fails and is retried.
func TestConnStoreUnreadableDoesNotSubscribeFresh(t *testing.T) {
	t.Parallel()
	m := newHAMaster(t, "M1")
	store := &haIDStore{id: "M1-0003", fail: errHAStore}
	c := haConn(t, m.URL(), store, nil)
	in := make(chan framework.Input, 16)
	haRun(t, c, in)
	haNoInput(t, in, 300*time.Millisecond)
	if n := len(m.subscribeCalls()); n != 0 {
		t.Fatalf("%d SUBSCRIBE calls while the store was down, want 0", n)
	}
	store.mu.Lock()
	store.fail = nil
	store.mu.Unlock()
	if got := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed().GetFrameworkID().GetValue(); got != "M1-0003" {
		t.Fatalf("subscribed as %q, want M1-0003", got)
	}
}

// A 307 from a non-leading master re-points the whole client: SUBSCRIBE
// and the later calls go to the leader (httpsched alone sends the later
// calls to the old master).
func TestConnFollowsRedirect(t *testing.T) {
	t.Parallel()
	leader := newHAMaster(t, "M2")
	old := newHAMaster(t, "M1")
	old.set(func(m *haMaster) { m.redirect = "//" + leader.HostPort() + schedulerAPIPath })
	c := haConn(t, old.URL(), &haIDStore{}, nil)
	in := make(chan framework.Input, 16)
	haRun(t, c, in)
	if id := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed().GetFrameworkID().GetValue(); id != "M2-0001" {
		t.Fatalf("subscribed as %q, want M2-0001 from the leader", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Driver().Revive(ctx, nil); err != nil {
		t.Fatalf("REVIVE after redirect: %v", err)
	}
	if n := len(old.otherCalls()); n != 0 {
		t.Errorf("old master got %d calls after the redirect, want 0", n)
	}
	if calls := leader.otherCalls(); len(calls) != 1 || calls[0].call.GetType() != scheduler.Call_REVIVE {
		t.Errorf("leader got calls %v, want one REVIVE", calls)
	}
}

// A core that does not take events is not a silent master: while the
// reader is stuck handing an event over, the watchdog does not fire.
func TestConnWatchdogIgnoresSlowCore(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	m := newHAMaster(t, "M1")
	m.set(func(m *haMaster) { m.heartbeat = 1 })
	c := haConn(t, m.URL(), &haIDStore{}, func(cc *ConnConfig) {
		cc.Clock = clk
		cc.HeartbeatMisses = 2
	})
	in := make(chan framework.Input) // unbuffered: the test is the core
	haRun(t, c, in)
	haExpectEvent(t, in, scheduler.Event_SUBSCRIBED)
	update := func(task string) *scheduler.Event {
		return &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: mesos.TaskStatus{
			TaskID: mesos.TaskID{Value: task}, State: mesos.TASK_RUNNING.Enum()}}}
	}
	m.send(update("t1"))
	m.send(update("t2"))
	// Both decoded: t1 taken by the conn, which waits for us; t2 held by
	// the reader, which waits for the conn.
	// SUBSCRIBED was the first event handed over.
	haWaitReader(t, c, "t1 taken and t2 being handed over", func(r *eventReader) bool {
		return r.handed.Load() == 2 && r.handing.Load()
	})
	clk.Step(10 * time.Second) // 5 limits, the master "silent" all along
	for _, want := range []string{"t1", "t2"} {
		ev := haExpectEvent(t, in, scheduler.Event_UPDATE)
		if got := ev.GetUpdate().GetStatus().TaskID.Value; got != want {
			t.Fatalf("got update of %s, want %s", got, want)
		}
	}
	haNoInput(t, in, 200*time.Millisecond)
	if !c.Subscribed() {
		t.Fatal("subscription dropped while the core was slow")
	}
}
