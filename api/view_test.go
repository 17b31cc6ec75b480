package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/discovery"
	"github.com/flotilla-sched/flotilla/framework"
)

func TestViewLongPoll(t *testing.T) {
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id":"/web","cmd":"x","instances":1}`, 201)
	var first framework.Snapshot
	if err := json.Unmarshal(e.mustDo("GET", ViewPath, "", 200).body, &first); err != nil {
		t.Fatal(err)
	}
	if len(first.Apps) != 1 || first.Apps[0].ID != "/web" || first.Apps[0].Instances != 1 {
		t.Fatalf("view apps %+v, want /web with 1 instance", first.Apps)
	}
	// Asked past the generation it has, the view answers 304. The loop may
	// still be publishing the POST's effects (queue, status): then the answer
	// is a newer generation, and the question is asked again past that one.
	deadline := time.Now().Add(time.Minute)
	for {
		r := e.do("GET", ViewPath+"?generation="+fmt.Sprint(first.Generation), "")
		if r.status == 304 {
			break
		}
		var newer framework.Snapshot
		if r.status != 200 || json.Unmarshal(r.body, &newer) != nil || newer.Generation <= first.Generation {
			t.Fatalf("GET past generation %d: %d %s; want 304 or a newer generation", first.Generation, r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the view still changing after a minute (generation %d)", newer.Generation)
		}
		first = newer
	}
	gen := fmt.Sprint(first.Generation)
	e.mustDo("GET", ViewPath+"?generation=x", "", 400)
	e.mustDo("GET", ViewPath+"?generation=1&wait=soon", "", 400)

	// A long poll returns when the view changes. The app's own task may
	// change the view before the scale does (staged, running), so follow
	// the generations until the scale shows, each answer newer than the one
	// asked past.
	got := make(chan resp, 1)
	go func() { got <- e.do("GET", ViewPath+"?generation="+gen+"&wait=30s", "") }()
	e.mustDo("PUT", "/v2/apps/web?force=true", `{"instances":2}`, 200)
	deadline = time.Now().Add(time.Minute)
	prev := first.Generation
	for {
		r := <-got
		var next framework.Snapshot
		if r.status != 200 || json.Unmarshal(r.body, &next) != nil {
			t.Fatalf("long poll past generation %d: %d %s", prev, r.status, r.body)
		}
		if next.Generation == prev || len(next.Apps) != 1 {
			t.Fatalf("long poll answered generation %d (asked past %d) with apps %+v", next.Generation, prev, next.Apps)
		}
		if next.Apps[0].Instances == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no view with /web at 2 instances within a minute; last generation %d with %d", next.Generation, next.Apps[0].Instances)
		}
		prev = next.Generation
		go func() { got <- e.do("GET", ViewPath+"?generation="+fmt.Sprint(prev)+"&wait=30s", "") }()
	}
}

// TestViewNotBeforeSettled: a leader that is not (or no longer) settled
// with the master answers 503, so followers keep the view they have.
func TestViewNotBeforeSettled(t *testing.T) {
	e := newEnv(t)
	e.mustDo("GET", ViewPath, "", 200)
	e.send(framework.Input{Disconnected: errors.New("master gone")})
	r := e.mustDo("GET", ViewPath, "", 503)
	if !strings.Contains(string(r.body), "not settled") {
		t.Errorf("503 body %s does not say why", r.body)
	}
}

// TestFollowerFollowsTheView: discovery's Follower, pointed at this API,
// holds the leader's apps and sees a change.
func TestFollowerFollowsTheView(t *testing.T) {
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id":"/web","cmd":"x","instances":1}`, 201)
	f := discovery.NewFollower(discovery.FollowerConfig{
		Leader: func(context.Context) (string, error) { return e.hs.URL, nil },
		Wait:   time.Minute, // real time: the follower's own clock is not the test's
	})
	instances := runFollower(t, f)
	e.eventually("the follower to hold /web", func() bool { return instances() == 1 })
	e.mustDo("PUT", "/v2/apps/web?force=true", `{"instances":3}`, 200)
	e.eventually("the follower to see the scale", func() bool { return instances() == 3 })
	if age, ok := f.Age(time.Now()); !ok || age > time.Minute {
		t.Errorf("follower age %v (ok=%v) right after an answer", age, ok)
	}
}

// TestViewAnswersOnRebuild: a long poll answers as soon as the view it
// serves (Config.View, the discovery feed's) changes and ViewChanged says
// so — not at the next scheduler event or recheck. The view is rebuilt by
// its own goroutine after the scheduler's events, so a long poll woken by
// the event itself read the old view and waited for the next recheck:
// tens of milliseconds on every change reaching a follower. The clock is
// fake and never moves here: only ViewChanged can answer the poll.
func TestViewAnswersOnRebuild(t *testing.T) {
	var cur atomic.Pointer[framework.Snapshot]
	var mu sync.Mutex
	changed := make(chan struct{})
	var asked atomic.Int32 // ViewChanged calls: the poll is waiting
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.View = func() *framework.Snapshot { return cur.Load() }
		c.ViewChanged = func() <-chan struct{} {
			mu.Lock()
			defer mu.Unlock()
			asked.Add(1)
			return changed
		}
	})
	cur.Store(&framework.Snapshot{Generation: 5, Settled: true, Connected: true})
	got := make(chan resp, 1)
	go func() { got <- e.do("GET", ViewPath+"?generation=5&wait=30s", "") }()
	// Once the poll waits on ViewChanged, the view changes.
	e.eventually("the long poll to wait on ViewChanged", func() bool { return asked.Load() > 0 })
	select {
	case r := <-got:
		t.Fatalf("answered before the view changed: %d %s", r.status, r.body)
	default:
	}
	cur.Store(&framework.Snapshot{Generation: 6, Settled: true, Connected: true})
	mu.Lock()
	close(changed)
	changed = make(chan struct{})
	mu.Unlock()
	select {
	case r := <-got:
		var v framework.Snapshot
		if r.status != 200 || json.Unmarshal(r.body, &v) != nil || v.Generation != 6 {
			t.Fatalf("long poll: %d %s, want generation 6", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not answer within 10 s of the view changing")
	}
}

type flipLeadership struct{ leader atomic.Bool }

func (f *flipLeadership) IsLeader() bool                                { return f.leader.Load() }
func (f *flipLeadership) LeaderAddress(context.Context) (string, error) { return "", nil }
func (f *flipLeadership) Abdicate(context.Context) error                { return nil }

// TestViewEndsWhenLeadershipEnds: a long poll waiting on a leader that
// stops leading (fenced after losing ZooKeeper) answers 503 at its next
// recheck, so its followers' view age starts growing then — not up to 25 s
// later when the wait runs out.
func TestViewEndsWhenLeadershipEnds(t *testing.T) {
	l := &flipLeadership{}
	l.leader.Store(true)
	var waiting atomic.Int32 // the poll asks ViewChanged each time it waits
	never := make(chan struct{})
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		c.Leadership = l
		c.ViewChanged = func() <-chan struct{} { waiting.Add(1); return never }
	})
	if err := e.dep.Restore(e.ctx); err != nil { // what a new leader's term does first
		t.Fatal(err)
	}
	var first framework.Snapshot
	if err := json.Unmarshal(e.mustDo("GET", ViewPath, "", 200).body, &first); err != nil {
		t.Fatal(err)
	}
	got := make(chan resp, 1)
	go func() { got <- e.do("GET", ViewPath+fmt.Sprintf("?generation=%d&wait=30s", first.Generation), "") }()
	e.eventually("the long poll to wait", func() bool { return waiting.Load() > 0 })
	l.leader.Store(false)
	for {
		e.clk.Step(viewRecheck)
		select {
		case r := <-got:
			if r.status != 503 || !strings.Contains(string(r.body), "no longer leads") {
				t.Fatalf("long poll after leadership ended: %d %s", r.status, r.body)
			}
			return
		case <-time.After(10 * time.Millisecond): // let the handler run; the fake clock moves the poll
		}
		if e.clk.Now().Sub(t0) > 20*time.Second {
			t.Fatal("the long poll did not end within 20 s of fake time after leadership ended")
		}
	}
}

// TestFollowerRidesOutZooKeeper: a follower whose leader lookup fails
// (ZooKeeper restarting or cut on the standby's side) keeps following the
// leader that answered last, as long as it answers: the chaos suite saw
// standbys stop following a leader that kept leading through a ZooKeeper
// restart, and route to the tasks it replaced meanwhile.
func TestFollowerRidesOutZooKeeper(t *testing.T) {
	e := newEnv(t)
	e.mustDo("POST", "/v2/apps", `{"id":"/web","cmd":"x","instances":1}`, 201)
	var lookups atomic.Int32
	f := discovery.NewFollower(discovery.FollowerConfig{
		Leader: func(context.Context) (string, error) {
			if lookups.Add(1) == 1 {
				return e.hs.URL, nil
			}
			return "", errors.New("framework: no zookeeper session")
		},
		Wait: time.Minute, // real time: the follower's own clock is not the test's
	})
	instances := runFollower(t, f)
	e.eventually("the follower to hold /web", func() bool { return instances() == 1 })
	e.eventually("the leader lookup to have failed", func() bool { return lookups.Load() > 1 })
	e.mustDo("PUT", "/v2/apps/web?force=true", `{"instances":3}`, 200)
	e.eventually("the follower to see the scale with ZooKeeper away", func() bool { return instances() == 3 })
}

// runFollower runs f until the test ends and returns how many instances
// of the one app its view holds (-1: no view, or not one app).
func runFollower(t *testing.T, f *discovery.Follower) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = f.Run(ctx) }()
	return func() int {
		s, _ := f.Snapshot()
		if s == nil || len(s.Apps) != 1 {
			return -1
		}
		return s.Apps[0].Instances
	}
}
