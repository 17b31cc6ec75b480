package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/mesosdns"
)

// TestSlowHostLookupHoldsNoLock: a rebuild resolves agent hostnames
// without holding the feed's lock (it used to look up under it, so a slow
// resolver stalled everything else that takes the lock for as long as
// the lookup took), and a lookup that fails is logged naming the host
// whose tasks lose their A records. TestHostLookups covers the retry
// after hostRetry and the pruning.
func TestSlowHostLookupHoldsNoLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sched := framework.New(framework.Config{ReconcileSettle: -1})
	rec := &framework.Recorder{}
	in := make(chan framework.Input, 16)
	go sched.Run(ctx, in, rec)
	srv, err := mesosdns.New(mesosdns.Config{Addr: "127.0.0.1:0", Domain: "mesos", Framework: "flotilla"})
	if err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	inLookup, release := make(chan string, 1), make(chan struct{})
	f := New(Config{Scheduler: sched, DNS: srv, Log: l.WithField("component", "discovery"),
		Clock: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		Resolve: func(_ context.Context, host string) ([]net.IP, error) {
			inLookup <- host
			<-release
			return nil, errors.New("no such host")
		}})

	sched.PutApp(appspec.App{ID: "/web", Instances: 1, CPUs: 0.1, Mem: 32, Cmd: "sleep 1000"})
	in <- framework.SubscribedInput("fw-1")
	in <- framework.OffersInput(framework.TestOffer("o1", "s1", "agent.example", 4, 4096, 31000, 31100, nil))
	for len(rec.Launched()) < 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("no task launched on agent.example")
		case <-time.After(10 * time.Millisecond): // poll interval
		}
	}
	for !hasHost(sched.Snapshot(), "agent.example") {
		select {
		case <-ctx.Done():
			t.Fatalf("the snapshot never showed a task on agent.example: %+v", sched.Snapshot().Tasks)
		case <-time.After(10 * time.Millisecond): // poll interval
		}
	}

	rebuilt := make(chan struct{})
	go func() { f.rebuild(ctx); close(rebuilt) }()
	select {
	case host := <-inLookup:
		if host != "agent.example" {
			t.Fatalf("looked up %q, want agent.example", host)
		}
	case <-ctx.Done():
		t.Fatal("the rebuild never looked up agent.example")
	}
	// The lookup is under way (and stays so until released): the lock
	// must be free for everyone else meanwhile.
	locked := make(chan int)
	go func() { f.mu.Lock(); n := len(f.observed); f.mu.Unlock(); locked <- n }()
	select {
	case <-locked:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("the feed's lock was held for the whole host lookup (still held after 20 s)")
	}
	close(release)
	select {
	case <-rebuilt:
	case <-ctx.Done():
		t.Fatal("the rebuild did not finish after the lookup returned")
	}
	var logged []string
	found := false
	for _, e := range hook.AllEntries() {
		logged = append(logged, e.Message)
		if strings.Contains(e.Message, "agent hostname does not resolve") && fmt.Sprint(e.Data["host"]) == "agent.example" && e.Data["error"] != nil {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning naming agent.example and the lookup's error; logged %q", logged)
	}
}

func hasHost(s *framework.Snapshot, host string) bool {
	for _, t := range s.Tasks {
		if t.Host == host {
			return true
		}
	}
	return false
}
