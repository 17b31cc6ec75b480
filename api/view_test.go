package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Run(ctx) }()
	instances := func() int {
		s, _ := f.Snapshot()
		if s == nil || len(s.Apps) != 1 {
			return -1
		}
		return s.Apps[0].Instances
	}
	e.eventually("the follower to hold /web", func() bool { return instances() == 1 })
	e.mustDo("PUT", "/v2/apps/web?force=true", `{"instances":3}`, 200)
	e.eventually("the follower to see the scale", func() bool { return instances() == 3 })
	if age, ok := f.Age(time.Now()); !ok || age > time.Minute {
		t.Errorf("follower age %v (ok=%v) right after an answer", age, ok)
	}
}
