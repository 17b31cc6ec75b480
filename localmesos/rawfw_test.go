package localmesos

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// rawFW is a framework speaking raw JSON over HTTP, with a reader
// goroutine so tests can also assert that nothing arrives.
type rawFW struct {
	t      testing.TB
	m      *Master
	s      *rawStream
	id     string
	events chan *scheduler.Event
	closed chan struct{}
	// seen keeps offers that arrived while a test waited for something
	// else.
	seen []mesos.Offer
}

func subscribeRaw(t testing.TB, m *Master, info string) *rawFW {
	t.Helper()
	body := `{"type":"SUBSCRIBE","subscribe":{"framework_info":` + info + `}}`
	var fi mesos.FrameworkInfo
	if err := json.Unmarshal([]byte(info), &fi); err != nil {
		t.Fatalf("bad framework info in test: %v", err)
	}
	if fi.ID != nil {
		body = `{"type":"SUBSCRIBE","framework_id":{"value":"` + fi.ID.Value + `"},"subscribe":{"framework_info":` + info + `}}`
	}
	f := &rawFW{t: t, m: m, s: rawSubscribe(t, m, body), events: make(chan *scheduler.Event, 10000), closed: make(chan struct{})}
	go func() {
		defer close(f.closed)
		for {
			b, err := f.s.r.ReadFrame()
			if err != nil {
				return
			}
			var ev scheduler.Event
			if err := json.Unmarshal(b, &ev); err != nil {
				return
			}
			f.events <- &ev
		}
	}()
	ev := f.next(scheduler.Event_SUBSCRIBED, scheduler.Event_ERROR)
	if ev.Type == scheduler.Event_SUBSCRIBED {
		f.id = ev.Subscribed.FrameworkID.Value
	} else {
		f.events <- ev
	}
	return f
}

const paInfo = `{"user":"root","name":"pa","failover_timeout":3600,"capabilities":[{"type":"PARTITION_AWARE"}]}`
const plainInfo = `{"user":"root","name":"plain","failover_timeout":3600}`

func (f *rawFW) next(types ...scheduler.Event_Type) *scheduler.Event {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-f.events:
			for _, ty := range types {
				if ev.Type == ty {
					return ev
				}
			}
			f.remember(ev)
		case <-deadline:
			f.t.Fatalf("no %v event within 10s", types)
		}
	}
}

// none asserts that no event of the types arrives within d.
func (f *rawFW) none(d time.Duration, types ...scheduler.Event_Type) {
	f.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-f.events:
			for _, ty := range types {
				if ev.Type == ty {
					f.t.Fatalf("unexpected %s event: %v", ev.Type, ev)
				}
			}
			f.remember(ev)
		case <-deadline:
			return
		}
	}
}

func (f *rawFW) remember(ev *scheduler.Event) {
	switch ev.Type {
	case scheduler.Event_OFFERS:
		f.seen = append(f.seen, ev.Offers.Offers...)
	case scheduler.Event_RESCIND:
		for i, o := range f.seen {
			if o.ID.Value == ev.Rescind.OfferID.Value {
				f.seen = append(f.seen[:i], f.seen[i+1:]...)
				break
			}
		}
	}
}

func (f *rawFW) update(taskID string) mesos.TaskStatus {
	f.t.Helper()
	for {
		ev := f.next(scheduler.Event_UPDATE)
		if ev.Update.Status.TaskID.Value == taskID {
			return ev.Update.Status
		}
	}
}

func (f *rawFW) updateIn(taskID string, state mesos.TaskState) mesos.TaskStatus {
	f.t.Helper()
	for {
		st := f.update(taskID)
		if st.GetState() == state {
			return st
		}
	}
}

func (f *rawFW) call(body string) {
	f.t.Helper()
	if code, out := f.try(body); code != 202 && code != 200 {
		f.t.Fatalf("call %s: %d %s", body, code, out)
	}
}

func (f *rawFW) try(body string) (int, string) {
	f.t.Helper()
	return f.s.call(f.t, f.m, `{"framework_id":{"value":"`+f.id+`"},`+body+`}`)
}

func (f *rawFW) ack(st mesos.TaskStatus) {
	f.t.Helper()
	u, _ := json.Marshal(st.UUID)
	f.call(`"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"` + st.GetAgentID().GetValue() + `"},"task_id":{"value":"` + st.TaskID.Value + `"},"uuid":` + string(u) + `}`)
}

// offer waits for an offer (optionally on one agent).
func (f *rawFW) offer(agentID string) mesos.Offer {
	f.t.Helper()
	for {
		for i, o := range f.seen {
			if agentID == "" || o.AgentID.Value == agentID {
				f.seen = append(f.seen[:i], f.seen[i+1:]...)
				return o
			}
		}
		f.remember(f.next(scheduler.Event_OFFERS))
	}
}

// taskJSON is a minimal valid command task.
func taskJSON(id, agentID string) string {
	return `{"name":"` + id + `","task_id":{"value":"` + id + `"},"agent_id":{"value":"` + agentID + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":16}}],"command":{"value":"sleep 100"}}`
}

func acceptJSON(offerID string, refuse float64, tasks ...string) string {
	return fmt.Sprintf(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"%s"}],"filters":{"refuse_seconds":%v},"operations":[{"type":"LAUNCH","launch":{"task_infos":[%s]}}]}`,
		offerID, refuse, strings.Join(tasks, ","))
}

// launchRunning launches a task on the offer and acks it to TASK_RUNNING.
func (f *rawFW) launchRunning(o mesos.Offer, id string) {
	f.t.Helper()
	f.call(acceptJSON(o.ID.Value, 0, taskJSON(id, o.AgentID.Value)))
	f.ack(f.updateIn(id, mesos.TASK_STARTING))
	f.ack(f.updateIn(id, mesos.TASK_RUNNING))
}

func (f *rawFW) closeStream() {
	f.s.resp.Body.Close()
	select {
	case <-f.closed:
	case <-time.After(5 * time.Second):
	}
}

func (f *rawFW) streamEnded(d time.Duration) bool {
	select {
	case <-f.closed:
		return true
	case <-time.After(d):
		return false
	}
}

var _ = io.EOF
