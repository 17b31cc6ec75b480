package discovery

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// viewServer serves ViewPath: each request gets view() at once, a long
// poll (generation given) waits until released; after kill every request
// is aborted, as a SIGKILLed leader's connections are.
func viewServer(t *testing.T, gen uint64) (srv *httptest.Server, kill func(), polls *atomic.Int32) {
	t.Helper()
	killed := make(chan struct{})
	polls = &atomic.Int32{}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-killed:
			panic(http.ErrAbortHandler)
		default:
		}
		if r.URL.Query().Get("generation") != "" {
			polls.Add(1)
			select {
			case <-killed:
				panic(http.ErrAbortHandler)
			case <-r.Context().Done():
				return
			}
		}
		b, err := json.Marshal(framework.Snapshot{Generation: gen, Settled: true, Connected: true})
		if err != nil {
			t.Error(err)
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, func() { close(killed) }, polls
}

// TestFollowerFindsTheNewLeaderQuickly: after its leader dies, a follower
// takes the next leader's view within FollowRetry of that leader being
// named in ZooKeeper. A new leader starts killing for a roll once it has
// settled (2 s after subscribing); with the old 1 s pause a follower on a
// loaded machine was still serving the dead leader's view then, and its
// gateway routed only to the killed tasks (bench/chaos: 503s on every
// follower right after an election).
func TestFollowerFindsTheNewLeaderQuickly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	oldSrv, kill, oldPolls := viewServer(t, 10)
	newSrv, _, _ := viewServer(t, 3)
	var elected atomic.Bool
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	f := NewFollower(FollowerConfig{Clock: clk, Leader: func(context.Context) (string, error) {
		if elected.Load() {
			return newSrv.URL, nil
		}
		return oldSrv.URL, nil // the dead leader's znode lives until its session expires
	}})
	go func() { _ = f.Run(ctx) }()
	gen := func() uint64 {
		s, _ := f.Snapshot()
		if s == nil {
			return 0
		}
		return s.Generation
	}
	for gen() != 10 || oldPolls.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the follower never long-polled the first leader (view generation %d)", gen())
		}
		time.Sleep(5 * time.Millisecond)
	}
	kill()
	// The follower fails against the dead leader and pauses; meanwhile
	// its session expires and the next replica is elected.
	for clk.Waiters() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the follower did not pause after its leader died")
		}
		time.Sleep(5 * time.Millisecond)
	}
	elected.Store(true)
	const step = 20 * time.Millisecond
	var waited time.Duration
	for gen() != 3 {
		if waited > 300*time.Millisecond {
			t.Fatalf("the follower still serves generation %d %v after the new leader was named (default pause %v)", gen(), waited, FollowRetry)
		}
		if ctx.Err() != nil {
			t.Fatalf("gave up with the follower at generation %d", gen())
		}
		if clk.Waiters() > 0 {
			clk.Step(step)
			waited += step
		}
		time.Sleep(5 * time.Millisecond)
	}
}
