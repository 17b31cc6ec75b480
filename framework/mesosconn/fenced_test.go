package mesosconn

import (
	"context"
	"errors"
	"testing"

	"github.com/flotilla-sched/flotilla/framework"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// killCounter is a framework.Actions that counts the KILLs it is asked
// for; its other calls are not used here (nil interface: they would panic).
type killCounter struct {
	framework.Actions
	kills int
}

func (k *killCounter) Kill(context.Context, mesos.TaskID, *mesos.AgentID, *mesos.KillPolicy) error {
	k.kills++
	return nil
}

// A leader whose ZooKeeper session is disconnected sends no KILL: it may
// already have been replaced, and its followers could not see the kill.
func TestFencedActionsHoldKillsWhileDisconnected(t *testing.T) {
	disconnected := false
	next := &killCounter{}
	fence, end := context.WithCancel(context.Background())
	defer end()
	act := &fencedActions{fence: fence, next: next, holdKills: func() bool { return disconnected }}
	kill := func() error { return act.Kill(context.Background(), mesos.TaskID{Value: "t1"}, nil, nil) }

	if err := kill(); err != nil || next.kills != 1 {
		t.Fatalf("connected: Kill = %v, kills sent %d; want nil, 1", err, next.kills)
	}
	disconnected = true
	if err := kill(); !errors.Is(err, ErrKillHeld) || next.kills != 1 {
		t.Fatalf("disconnected: Kill = %v, kills sent %d; want ErrKillHeld, still 1", err, next.kills)
	}
	disconnected = false
	if err := kill(); err != nil || next.kills != 2 {
		t.Fatalf("reconnected: Kill = %v, kills sent %d; want nil, 2", err, next.kills)
	}
	end()
	disconnected = true
	if err := kill(); !errors.Is(err, ErrFenced) || next.kills != 2 {
		t.Fatalf("fenced: Kill = %v, kills sent %d; want ErrFenced, still 2", err, next.kills)
	}
}
