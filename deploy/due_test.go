package deploy

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/store"
)

// TestCheckJudgesWhatFullCheckWould drives a scheduler and this service
// through seeded random steps (apps created, scaled, changed and removed,
// offers, tasks running, failing and killed, time passing past progress
// deadlines) and, after each check of only the deployments that can have
// changed (toJudge), checks that a check of every deployment would end
// none: each one left is neither done nor past its deadline.
func TestCheckJudgesWhatFullCheckWould(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			checkJudgesSeed(t, seed)
		})
	}
}

func checkJudgesSeed(t *testing.T, seed int64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	rec := &framework.Recorder{}
	sched := framework.New(framework.Config{Clock: clk, Rand: rand.New(rand.NewSource(seed)), ReconcileSettle: -1})
	in := make(chan framework.Input)
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx, in, rec) }()
	defer func() { cancel(); <-done }()
	s, err := New(Config{Store: store.NewMemory(clk, 0), Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(seed)),
		ProgressDeadline: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	sub := sched.Subscribe(1 << 16)
	defer sub.Close()
	in <- framework.SubscribedInput("fw")
	r := rand.New(rand.NewSource(seed))
	ids := []string{"/a", "/b", "/c/d", "/e"}
	var ended, byDeadline int
	for i := 0; i < 400; i++ {
		switch op := r.Intn(8); {
		case op < 3:
			app := &appspec.App{ID: ids[r.Intn(len(ids))], Cmd: fmt.Sprint("sleep ", r.Intn(3)), CPUs: 0.1, Mem: 32, Instances: r.Intn(4)}
			_, _ = s.Apply(ctx, Op{Kind: OpUpdate, ID: app.ID, App: app, Force: true}) // may be refused: nothing changes
		case op == 3:
			_, _ = s.Apply(ctx, Op{Kind: OpStop, ID: ids[r.Intn(len(ids))], Force: true})
		case op == 4:
			in <- framework.OffersInput(framework.TestOffer(fmt.Sprint("o", i), "a1", "h1", 4, 4096, 31000, 32000, nil))
		case op < 7:
			snap := sched.Snapshot()
			if len(snap.Tasks) > 0 {
				tk := snap.Tasks[r.Intn(len(snap.Tasks))]
				states := []mesos.TaskState{mesos.TASK_RUNNING, mesos.TASK_RUNNING, mesos.TASK_FAILED, mesos.TASK_KILLED}
				in <- framework.UpdateInput(framework.TestStatus(tk.ID, tk.AgentID, states[r.Intn(len(states))], true))
			}
		default:
			clk.Step(time.Duration(r.Intn(8000)) * time.Millisecond)
		}
		if err := sched.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		touched := map[string]struct{}{}
	drain:
		for {
			select {
			case ev := <-sub.C:
				if ev.Type == framework.EventLagged {
					t.Fatal("the test's subscription lagged")
				}
				if id := appOfEvent(ev); id != "" {
					touched[id] = struct{}{}
				}
			default:
				break drain
			}
		}
		before := s.deps.count()
		s.checkDeployments(ctx, touched, false)
		ended += before - s.deps.count()
		for _, d := range s.deps.list() {
			if d.Rollback && d.RollbackOf != "" {
				byDeadline++
			}
		}
		snap, now := sched.SnapshotByApp(), clk.Now()
		for _, d := range s.deps.list() {
			if _, next := s.deps.fresh[d.AppID]; next {
				continue // started by this check (a rollback): the next one judges it, as before
			}
			health := false
			if rc := s.idx.get(d.AppID); rc != nil {
				health = rc.Health
			}
			if p := Reached(snap, d, health); p.Done || !now.Before(d.Deadline) {
				t.Fatalf("step %d: deployment %s of %s left running: %s, deadline %v at %v; a check of all would end it",
					i, d.ID, d.AppID, p, d.Deadline, now)
			}
		}
	}
	if ended < 10 || byDeadline == 0 {
		t.Fatalf("the random steps ended %d deployments and saw a rollback after a deadline %d times: the check compared little", ended, byDeadline)
	}
}
