package deploy

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/store"
)

// refusingScheduler is a real scheduler whose KillAndScale refuses: a
// scheduler that lost the app meanwhile, as seen by a kill-and-scale.
type refusingScheduler struct {
	*framework.Scheduler
	calls [][]string
}

func (r *refusingScheduler) KillAndScale(appID string, taskIDs []string, instances int) error {
	r.calls = append(r.calls, taskIDs)
	return framework.ErrUnknownApp
}

// TestKillAndScaleFallbackFailureLogged: a kill-and-scale whose kill the
// scheduler refuses is applied as the new count alone; when the scheduler
// refuses that too, the count it did not take is logged (the fallback's
// error was dropped: the store had the new count, the scheduler the old,
// and nothing said so).
func TestKillAndScaleFallbackFailureLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	st := store.NewMemory(clk, 0)
	sched := &refusingScheduler{Scheduler: framework.New(framework.Config{Clock: clk, ReconcileSettle: -1})}
	l, hook := logtest.NewNullLogger()
	s, err := New(Config{Store: st, Scheduler: sched, Clock: clk, Rand: rand.New(rand.NewSource(1)), Log: l.WithField("component", "deploy")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, Op{Kind: OpUpdate, ID: "/web", App: &appspec.App{ID: "/web", Cmd: "sleep 1000", CPUs: 0.1, Mem: 32, Instances: 3}, Force: true}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := s.Apply(ctx, Op{Kind: OpKillScale, ID: "/web", TaskIDs: []string{"web.gone"}, Force: true}); err != nil {
		t.Fatalf("kill and scale: %v", err)
	}
	if len(sched.calls) != 2 || sched.calls[0] == nil || sched.calls[1] != nil {
		t.Fatalf("KillAndScale calls (task ids) = %q, want the kill then the count alone", sched.calls)
	}
	var lost *logrus.Entry
	var logged []string
	for _, e := range hook.AllEntries() {
		logged = append(logged, e.Level.String()+": "+e.Message)
		if strings.Contains(e.Message, "did not take the new instance count") {
			lost = e
		}
	}
	if lost == nil {
		t.Fatalf("the refused instance count is not logged; logged %q", logged)
	}
	if lost.Level != logrus.ErrorLevel || lost.Data["app"] != "/web" || lost.Data["instances"] != 3 || !errors.Is(lost.Data[logrus.ErrorKey].(error), framework.ErrUnknownApp) {
		t.Errorf("logged %v %q with %v; want an error naming /web, 3 instances and the scheduler's error", lost.Level, lost.Message, lost.Data)
	}
}
