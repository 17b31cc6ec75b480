package framework

import (
	"context"
	"maps"
	"slices"
	"sort"
	"sync"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Recorder is an Actions that performs nothing and records every call, so
// that tests (this package's and others') run the scheduler with no
// master, like Nomad's scheduler Harness. Fail, when set, is consulted
// before recording and its error returned (the call is still recorded).
type Recorder struct {
	mu    sync.Mutex
	calls []Call
	Fail  func(Call) error
}

// CallType names a recorded call.
type CallType string

// The calls Actions makes.
const (
	CallAccept      CallType = "ACCEPT"
	CallDecline     CallType = "DECLINE"
	CallKill        CallType = "KILL"
	CallAcknowledge CallType = "ACKNOWLEDGE"
	CallReconcile   CallType = "RECONCILE"
	CallRevive      CallType = "REVIVE"
	CallSuppress    CallType = "SUPPRESS"
)

// Call is one recorded call; only the fields of its Type are set.
type Call struct {
	Type       CallType
	OfferIDs   []string
	Ops        []mesos.Offer_Operation
	Filters    *mesos.Filters
	TaskID     string
	AgentID    string
	KillPolicy *mesos.KillPolicy
	UUID       []byte
	Reconcile  []scheduler.Call_Reconcile_Task
	Roles      []string
}

// Launched returns the tasks an ACCEPT call launches.
func (c Call) Launched() []mesos.TaskInfo {
	var out []mesos.TaskInfo
	for _, op := range c.Ops {
		if op.Launch != nil {
			out = append(out, op.Launch.TaskInfos...)
		}
	}
	return out
}

var _ Actions = (*Recorder)(nil)

func (r *Recorder) record(c Call) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	if r.Fail != nil {
		return r.Fail(c)
	}
	return nil
}

func offerIDs(ids []mesos.OfferID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Value
	}
	return out
}

func (r *Recorder) Accept(_ context.Context, ids []mesos.OfferID, ops []mesos.Offer_Operation, f *mesos.Filters) error {
	return r.record(Call{Type: CallAccept, OfferIDs: offerIDs(ids), Ops: ops, Filters: f})
}

func (r *Recorder) Decline(_ context.Context, ids []mesos.OfferID, f *mesos.Filters) error {
	return r.record(Call{Type: CallDecline, OfferIDs: offerIDs(ids), Filters: f})
}

func (r *Recorder) Kill(_ context.Context, taskID mesos.TaskID, agentID *mesos.AgentID, p *mesos.KillPolicy) error {
	return r.record(Call{Type: CallKill, TaskID: taskID.Value, AgentID: agentID.GetValue(), KillPolicy: p})
}

func (r *Recorder) Acknowledge(_ context.Context, agentID mesos.AgentID, taskID mesos.TaskID, uuid []byte) error {
	return r.record(Call{Type: CallAcknowledge, AgentID: agentID.Value, TaskID: taskID.Value, UUID: uuid})
}

func (r *Recorder) Reconcile(_ context.Context, tasks []scheduler.Call_Reconcile_Task) error {
	return r.record(Call{Type: CallReconcile, Reconcile: tasks})
}

func (r *Recorder) Revive(_ context.Context, roles []string) error {
	return r.record(Call{Type: CallRevive, Roles: roles})
}

func (r *Recorder) Suppress(_ context.Context, roles []string) error {
	return r.record(Call{Type: CallSuppress, Roles: roles})
}

// Calls returns every call recorded so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Take returns the calls recorded so far and forgets them.
func (r *Recorder) Take() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// Of returns the recorded calls of one type.
func (r *Recorder) Of(t CallType) []Call {
	var out []Call
	for _, c := range r.Calls() {
		if c.Type == t {
			out = append(out, c)
		}
	}
	return out
}

// Launched returns every task launched so far, in launch order.
func (r *Recorder) Launched() []mesos.TaskInfo {
	var out []mesos.TaskInfo
	for _, c := range r.Of(CallAccept) {
		out = append(out, c.Launched()...)
	}
	return out
}

// Killed returns the task ids of every KILL so far, sorted.
func (r *Recorder) Killed() []string {
	var out []string
	for _, c := range r.Of(CallKill) {
		out = append(out, c.TaskID)
	}
	sort.Strings(out)
	return out
}

// ---- inputs for tests ----

// SubscribedInput is the SUBSCRIBED event the connection forwards.
func SubscribedInput(frameworkID string) Input {
	return Input{Event: &scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &mesos.FrameworkID{Value: frameworkID},
	}}}
}

// OffersInput is an OFFERS event.
func OffersInput(offers ...mesos.Offer) Input {
	return Input{Event: &scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: offers}}}
}

// UpdateInput is an UPDATE event.
func UpdateInput(st mesos.TaskStatus) Input {
	return Input{Event: &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}}}
}

// TestOffer builds an unreserved offer with cpus, mem, disk 10000 and the
// ports range [portsBegin, portsEnd], and text attributes.
func TestOffer(id, agentID, host string, cpus, mem float64, portsBegin, portsEnd uint64, attrs map[string]string) mesos.Offer {
	scalar := func(name string, v float64) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
	}
	res := []mesos.Resource{scalar("cpus", cpus), scalar("mem", mem), scalar("disk", 10000)}
	if portsEnd >= portsBegin && portsBegin > 0 {
		res = append(res, mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(),
			Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: portsBegin, End: portsEnd}}}})
	}
	o := mesos.Offer{ID: mesos.OfferID{Value: id}, FrameworkID: mesos.FrameworkID{Value: "fw"},
		AgentID: mesos.AgentID{Value: agentID}, Hostname: host, Resources: res}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := attrs[k]
		o.Attributes = append(o.Attributes, mesos.Attribute{Name: k, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}})
	}
	return o
}

// TestStatus builds a status update; with uuid set it carries a 16-byte
// uuid as an agent's update does.
func TestStatus(taskID, agentID string, state mesos.TaskState, uuid bool) mesos.TaskStatus {
	st := mesos.TaskStatus{TaskID: mesos.TaskID{Value: taskID}, State: state.Enum(),
		AgentID: &mesos.AgentID{Value: agentID}}
	if uuid {
		st.UUID = []byte("0123456789abcdef")
	}
	return st
}
