package framework

import (
	"context"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

var coreT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness runs a Scheduler against a Recorder and a fake clock. Every
// send and step waits (Sync) until the loop has handled it, so tests are
// deterministic without sleeping.
type harness struct {
	t    *testing.T
	clk  *clock.Fake
	s    *Scheduler
	rec  *Recorder
	in   chan Input
	ctx  context.Context
	done chan error

	offerSeq int
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	clk := clock.NewFake(coreT0)
	cfg := Config{
		Clock:           clk,
		Rand:            rand.New(rand.NewSource(1)),
		Log:             logging.Component(logging.Discard(), "framework"),
		ReconcileSettle: -1,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h := &harness{t: t, clk: clk, s: New(cfg), rec: &Recorder{}, in: make(chan Input), ctx: ctx, done: make(chan error, 1)}
	go func() { h.done <- h.s.Run(ctx, h.in, h.rec) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	h.sync()
	return h
}

func (h *harness) sync() {
	h.t.Helper()
	if err := h.s.Sync(h.ctx); err != nil {
		// Run may not have started yet: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for err == ErrNotRunning && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			err = h.s.Sync(h.ctx)
		}
		if err != nil {
			h.t.Fatalf("sync: %v", err)
		}
	}
}

func (h *harness) send(in Input) {
	h.t.Helper()
	select {
	case h.in <- in:
	case <-h.ctx.Done():
		h.t.Fatal("send: timed out")
	}
	h.sync()
}

func (h *harness) step(d time.Duration) {
	h.t.Helper()
	h.clk.Step(d)
	h.sync()
}

func (h *harness) subscribe() {
	h.t.Helper()
	h.send(SubscribedInput("fw-1"))
}

// offer sends one offer per host (agent id a-<host>) and returns the calls
// the scheduler made in answer.
func (h *harness) offer(hosts ...string) []Call {
	h.t.Helper()
	var os []mesos.Offer
	for _, host := range hosts {
		h.offerSeq++
		os = append(os, TestOffer("o-"+host+"-"+strconv.Itoa(h.offerSeq), "a-"+host, host, 8, 8192, 31000, 31099, map[string]string{"rack": "r-" + host}))
	}
	h.rec.Take()
	h.send(OffersInput(os...))
	return h.rec.Take()
}

// update sends a status update for a task (agent taken from the snapshot).
func (h *harness) update(taskID string, state mesos.TaskState, mod ...func(*mesos.TaskStatus)) {
	h.t.Helper()
	agent := "a-x"
	for _, t := range h.s.Snapshot().Tasks {
		if t.ID == taskID {
			agent = t.AgentID
		}
	}
	st := TestStatus(taskID, agent, state, true)
	for _, m := range mod {
		m(&st)
	}
	h.send(UpdateInput(st))
}

func (h *harness) tasks(appID string) []Task { return h.s.Snapshot().TasksOf(appID) }

func (h *harness) activeIDs(appID string) []string {
	var ids []string
	for _, t := range h.tasks(appID) {
		if !t.Killing {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

// runAll marks every staging task of an app RUNNING.
func (h *harness) runAll(appID string) {
	h.t.Helper()
	for _, t := range h.tasks(appID) {
		if t.State == mesos.TASK_STAGING {
			h.update(t.ID, mesos.TASK_RUNNING)
		}
	}
}

func launchedIDs(calls []Call) []string {
	var ids []string
	for _, c := range calls {
		for _, ti := range c.Launched() {
			ids = append(ids, ti.TaskID.Value)
		}
	}
	return ids
}

func countCalls(calls []Call, t CallType) int {
	n := 0
	for _, c := range calls {
		if c.Type == t {
			n++
		}
	}
	return n
}

func testApp(id string, n int) appspec.App {
	return appspec.App{
		ID: id, Version: "v1", Instances: n, CPUs: 0.5, Mem: 64,
		Container:       &appspec.Container{Type: "DOCKER", Docker: &appspec.Docker{Image: "flotilla/testapp:dev", Network: "HOST"}},
		PortDefinitions: []appspec.PortDefinition{{Port: 0, Name: "http"}},
		BackoffSeconds:  1, BackoffFactor: 2, MaxLaunchDelaySeconds: 30,
		KillSelection: "YOUNGEST_FIRST",
	}
}

func envOf(ti mesos.TaskInfo) map[string]string {
	m := map[string]string{}
	for _, v := range ti.GetCommand().GetEnvironment().GetVariables() {
		m[v.Name] = v.GetValue()
	}
	return m
}

func hasPrefixAll(ids []string, prefix string) bool {
	for _, id := range ids {
		if !strings.HasPrefix(id, prefix) {
			return false
		}
	}
	return true
}
