package localmesos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/extras/scheduler/controller"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/events"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// startMaster starts a master with simulated executors unless cfg says
// otherwise, closed at the end of the test.
func startMaster(t testing.TB, cfg Config) (*Master, map[string]*executor.Simulated) {
	t.Helper()
	sims := map[string]*executor.Simulated{}
	var mu sync.Mutex
	if cfg.Executor == nil {
		cfg.Executor = func(agentID string) (executor.Executor, error) {
			s := executor.NewSimulated(cfgClock(cfg))
			mu.Lock()
			sims[agentID] = s
			mu.Unlock()
			return s, nil
		}
		cfg.NoSandbox = true
	}
	if cfg.Log == nil {
		cfg.Log = logging.Discard()
	}
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start master: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, sims
}

// testFramework is a scheduler written only with mesos-go: httpsched,
// controller.Run, and calls builders. Events land on a channel.
type testFramework struct {
	t      testing.TB
	caller calls.Caller
	events chan *scheduler.Event
	ended  chan error
	cancel context.CancelFunc

	stopOnce sync.Once
	mu       sync.Mutex
	fwID     string
}

type fwOpts struct {
	info       *mesos.FrameworkInfo
	codec      string // "json" (default) or "protobuf"
	noAutoAck  bool
	oneSession bool // stop after the first subscription ends
}

func startFramework(t testing.TB, m *Master, o fwOpts) *testFramework {
	t.Helper()
	if o.info == nil {
		o.info = &mesos.FrameworkInfo{User: "root", Name: "test"}
	}
	codec := codecs.ByMediaType[codecs.MediaTypeJSON]
	if o.codec == "protobuf" {
		codec = codecs.ByMediaType[codecs.MediaTypeProtobuf]
	}
	cli := httpcli.New(httpcli.Endpoint(m.SchedulerURL()), httpcli.Codec(codec))
	f := &testFramework{t: t, events: make(chan *scheduler.Event, 10000), ended: make(chan error, 1)}
	f.caller = httpsched.NewCaller(cli)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	handler := events.HandlerFunc(func(ctx context.Context, e *scheduler.Event) error {
		if e.Type == scheduler.Event_SUBSCRIBED {
			f.mu.Lock()
			f.fwID = e.Subscribed.FrameworkID.Value
			f.mu.Unlock()
		}
		if e.Type == scheduler.Event_UPDATE && !o.noAutoAck && len(e.Update.Status.UUID) > 0 {
			st := e.Update.Status
			ack := calls.Acknowledge(st.GetAgentID().GetValue(), st.TaskID.Value, st.UUID)
			ack.FrameworkID = &mesos.FrameworkID{Value: f.ID()}
			if err := calls.CallNoData(ctx, f.caller, ack); err != nil {
				f.t.Logf("ack %s: %v", st.TaskID.Value, err)
			}
		}
		select {
		case f.events <- e:
		default:
			return errors.New("test framework: event buffer full")
		}
		return nil
	})
	opts := []controller.Option{
		controller.WithEventHandler(handler),
		controller.WithFrameworkID(func() string { return f.ID() }),
	}
	if o.oneSession {
		opts = append(opts, controller.WithSubscriptionTerminated(func(error) { cancel() }))
	} else {
		tokens := make(chan struct{})
		go func() {
			for {
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
					close(tokens)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		opts = append(opts, controller.WithRegistrationTokens(tokens))
	}
	go func() { f.ended <- controller.Run(ctx, o.info, f.caller, opts...) }()
	t.Cleanup(f.stop)
	return f
}

func (f *testFramework) stop() {
	f.stopOnce.Do(func() {
		f.cancel()
		select {
		case <-f.ended:
		case <-time.After(5 * time.Second):
			f.t.Logf("test framework: controller.Run did not return within 5s")
		}
	})
}

func (f *testFramework) ID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fwID
}

// call sends a non-SUBSCRIBE call with the framework id filled in.
func (f *testFramework) call(c *scheduler.Call) error {
	c.FrameworkID = &mesos.FrameworkID{Value: f.ID()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return calls.CallNoData(ctx, f.caller, c)
}

// next waits for the next event of one of the types, skipping others.
func (f *testFramework) next(timeout time.Duration, types ...scheduler.Event_Type) *scheduler.Event {
	f.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-f.events:
			for _, ty := range types {
				if e.Type == ty {
					return e
				}
			}
		case <-deadline:
			f.t.Fatalf("no %v event within %v", types, timeout)
			return nil
		}
	}
}

// update waits for an UPDATE of the task in the given state.
func (f *testFramework) update(timeout time.Duration, taskID string, state mesos.TaskState) *mesos.TaskStatus {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			f.t.Fatalf("no %s update for %s within %v", state, taskID, timeout)
		}
		e := f.next(left, scheduler.Event_UPDATE)
		st := e.Update.Status
		if st.TaskID.Value == taskID && st.GetState() == state {
			return &st
		}
	}
}

func (f *testFramework) offers(timeout time.Duration) []mesos.Offer {
	f.t.Helper()
	return f.next(timeout, scheduler.Event_OFFERS).Offers.Offers
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func portsRes(begin, end uint64) mesos.Resource {
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: begin, End: end}}}}
}

func cmdTask(id string, o mesos.Offer, cmd string, res ...mesos.Resource) mesos.TaskInfo {
	if len(res) == 0 {
		res = []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)}
	}
	shell := true
	return mesos.TaskInfo{Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: o.AgentID, Resources: res,
		Command: &mesos.CommandInfo{Value: &cmd, Shell: &shell}}
}

func launch(o mesos.Offer, tasks ...mesos.TaskInfo) *scheduler.Call {
	return calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(o.ID))
}

func firstPort(o mesos.Offer) uint64 {
	for _, r := range o.Resources {
		if r.Name == "ports" && r.Ranges != nil && len(r.Ranges.Range) > 0 {
			return r.Ranges.Range[0].Begin
		}
	}
	panic(fmt.Sprintf("offer %s has no ports", o.ID.Value))
}

func cfgClock(cfg Config) clock.Clock {
	if cfg.Clock == nil {
		return clock.Real{}
	}
	return cfg.Clock
}
