package deploy

import (
	"context"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/store"
)

// schedulerEvents is a Publisher that keeps the types of the scheduler
// events Run passed on and closes launched at the first task event of
// /web; the rest it ignores.
type schedulerEvents struct {
	mu       sync.Mutex
	seen     []framework.EventType
	launched chan struct{}
}

func (p *schedulerEvents) Deployment(string, *Deployment, string) {}
func (p *schedulerEvents) AppWritten(Op, *Record)                 {}
func (p *schedulerEvents) StoreItemBroken(store.Broken)           {}
func (p *schedulerEvents) Plan(string, *GroupPlan, string)        {}
func (p *schedulerEvents) GroupChange(string, string, string)     {}
func (p *schedulerEvents) SchedulerEvent(ev framework.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, ev.Type)
	if ev.Type == framework.EventTask && ev.Task != nil && ev.Task.AppID == "/web" && p.launched != nil {
		close(p.launched)
		p.launched = nil
	}
}

// TestRunGetsTheEventsBeforeItStarted: the events the scheduler publishes
// after Restore and before Run's goroutine gets going reach Run (the
// event stream, the queue's last failure). Run used to subscribe only
// when it started, and a task launched in between was never announced.
func TestRunGetsTheEventsBeforeItStarted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	st := store.NewMemory(clk, 0)
	sched := framework.New(framework.Config{Clock: clk, ReconcileSettle: -1, Log: logging.Component(logging.Discard(), "framework")})
	s, err := New(Config{Store: st, Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(1)), Log: logging.Component(logging.Discard(), "deploy")})
	if err != nil {
		t.Fatal(err)
	}
	launched := make(chan struct{})
	pub := &schedulerEvents{launched: launched}
	s.SetEvents(pub)
	if err := s.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	in := make(chan framework.Input)
	go func() { _ = sched.Run(ctx, in, &framework.Recorder{}) }()
	in <- framework.SubscribedInput("fw-1")
	if _, err := s.Apply(ctx, Op{Kind: OpUpdate, ID: "/web", App: &appspec.App{ID: "/web", Cmd: "sleep 1000", CPUs: 0.1, Mem: 32, Instances: 1}, Force: true}); err != nil {
		t.Fatalf("create: %v", err)
	}
	in <- framework.OffersInput(framework.TestOffer("o-1", "a-1", "host-1", 4, 4096, 31000, 32000, nil))
	if err := sched.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Only now does the deploy loop start.
	go func() { _ = s.Run(ctx) }()
	select {
	case <-launched:
	case <-ctx.Done():
		pub.mu.Lock()
		defer pub.mu.Unlock()
		t.Fatalf("Run passed on %v, never the launch of /web's task that happened before it started", pub.seen)
	}
}
