package localmesos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
)

// RemoveAgent removes an agent as an operator marking it gone would:
// frameworks get FAILURE{agent_id} and TASK_GONE_BY_OPERATOR (TASK_LOST
// without PARTITION_AWARE) for each of its tasks, its offers are rescinded
// and its tasks are killed.
func (m *Master) RemoveAgent(id string) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	a := m.agents[id]
	if a == nil {
		m.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownAgent, id)
	}
	m.log.WithField("agent", id).Info("fault: agent removed")
	m.agentLostLocked(a, mesos.TASK_GONE_BY_OPERATOR, mesos.REASON_AGENT_REMOVED_BY_OPERATOR)
	a.state = agentGone
	delete(m.agents, id)
	m.goneAgents[id] = true
	for _, t := range a.tasks {
		if t.fw.tasks[t.id] == t {
			delete(t.fw.tasks, t.id)
		}
		m.completed = append(m.completed, t)
	}
	a.tasks = map[string]*task{}
	a.pending = map[string]*updateQueue{}
	m.mu.Unlock()
	a.shutdown()
	return nil
}

// SetAgentReachable makes an agent unreachable (false): FAILURE and
// TASK_UNREACHABLE (TASK_LOST without PARTITION_AWARE) for its tasks, which
// keep running; its updates stay queued. Reachable again (true), the agent
// re-registers: tasks of partition-aware frameworks get back their real
// state (frameworks learn it by reconciling, as with Mesos), tasks of other
// frameworks are killed, queued updates are re-sent at once.
func (m *Master) SetAgentReachable(id string, reachable bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	a := m.agents[id]
	if a == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, id)
	}
	switch {
	case !reachable && a.state == agentActive:
		m.log.WithField("agent", id).Info("fault: agent unreachable")
		m.agentLostLocked(a, mesos.TASK_UNREACHABLE, mesos.REASON_AGENT_REMOVED)
		a.state = agentUnreachable
	case reachable && a.state == agentUnreachable:
		m.log.WithField("agent", id).Info("fault: agent reachable again")
		a.state = agentActive
		now := m.now()
		for _, t := range a.tasks {
			if t.fw.partitionAware || t.fw.removed {
				t.state = t.agentState
				continue
			}
			t.state = t.agentState
			m.killLocked(t, 0)
		}
		for _, q := range a.pending {
			q.nextRetry = now
			q.attempts = 0
		}
		m.kickAllocator()
	}
	return nil
}

// agentLostLocked tells every framework the agent is lost and marks its
// tasks with state.
func (m *Master) agentLostLocked(a *agent, state mesos.TaskState, reason mesos.TaskStatus_Reason) {
	if a.offer != nil {
		o := a.offer
		m.removeOffer(o)
		o.fw.send(&scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: o.id}}})
	}
	for _, f := range m.frameworks {
		f.send(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{AgentID: &mesos.AgentID{Value: a.id}}})
	}
	ut := &mesos.TimeInfo{Nanoseconds: m.now().UnixNano()}
	for _, t := range a.tasks {
		if isTerminal(t.state) {
			continue
		}
		t.state = state
		st := m.masterStatus(t.fw, t.id, a.id, state, reason, "Agent "+a.id+" is "+map[bool]string{true: "unreachable", false: "removed"}[state == mesos.TASK_UNREACHABLE])
		if state == mesos.TASK_UNREACHABLE {
			st.UnreachableTime = ut
		}
		t.fw.send(updateEvent(st))
	}
}

// Failover simulates a master failover: every stream is dropped, a new
// master id is drawn, offers vanish, tasks and agents are kept. Frameworks
// may re-subscribe with their id within their failover_timeout.
func (m *Master) Failover(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("localmesos: failover: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	old := m.id
	for _, o := range m.offers {
		m.removeOffer(o)
	}
	for _, f := range m.frameworks {
		if f.stream != nil {
			f.stream.close(nil)
			m.disconnectLocked(f)
		}
	}
	m.newIdentity()
	m.log.WithFields(logrus.Fields{"previous": old, "new": m.id}).Info("fault: master failed over")
	return nil
}

// SetFaults replaces the status update and acknowledgement faults.
func (m *Master) SetFaults(f Faults) {
	m.mu.Lock()
	m.faults = f
	m.mu.Unlock()
}

// RescindOffer withdraws an outstanding offer: RESCIND goes to its
// framework and the resources are offered again.
func (m *Master) RescindOffer(offerID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.offers[offerID]
	if o == nil {
		return fmt.Errorf("%w: %q", ErrUnknownOffer, offerID)
	}
	m.removeOffer(o)
	o.fw.send(&scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: o.id}}})
	m.kickAllocator()
	return nil
}

// Offers lists the outstanding offer ids, for tests.
func (m *Master) Offers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.offers))
	for id := range m.offers {
		out = append(out, id)
	}
	return out
}

// handleAdmin serves the fault endpoints (POST only):
//
//	/admin/agents/{id}/remove
//	/admin/agents/{id}/unreachable
//	/admin/agents/{id}/reachable
//	/admin/failover
//	/admin/faults          body: {"drop_updates":1,"delay_updates":"2s","drop_acks":0,"delay_acks":"0s"}
//	/admin/offers/{id}/rescind
//
// and GET /admin/calls: the scheduler calls counted per Mesos-Stream-Id
// (StreamCalls) and each framework's current stream.
func (m *Master) handleAdmin(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/admin/calls" && r.Method == http.MethodGet {
		calls, current := m.StreamCalls()
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(map[string]any{"calls": calls, "current": current}); err != nil {
			m.log.WithError(err).Debug("admin calls answer not sent")
		}
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "localmesos: admin endpoints take POST", http.StatusMethodNotAllowed)
		return
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/"), "/"), "/")
	var err error
	switch {
	case len(parts) == 3 && parts[0] == "agents" && parts[2] == "remove":
		err = m.RemoveAgent(parts[1])
	case len(parts) == 3 && parts[0] == "agents" && parts[2] == "unreachable":
		err = m.SetAgentReachable(parts[1], false)
	case len(parts) == 3 && parts[0] == "agents" && parts[2] == "reachable":
		err = m.SetAgentReachable(parts[1], true)
	case len(parts) == 1 && parts[0] == "failover":
		err = m.Failover(r.Context())
	case len(parts) == 3 && parts[0] == "offers" && parts[2] == "rescind":
		err = m.RescindOffer(parts[1])
	case len(parts) == 1 && parts[0] == "faults":
		var body struct {
			DropUpdates  int    `json:"drop_updates"`
			DelayUpdates string `json:"delay_updates"`
			DropAcks     int    `json:"drop_acks"`
			DelayAcks    string `json:"delay_acks"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			http.Error(w, "localmesos: bad faults body: "+err.Error(), http.StatusBadRequest)
			return
		}
		f := Faults{DropUpdates: body.DropUpdates, DropAcks: body.DropAcks}
		for _, d := range []struct {
			s   string
			dst *time.Duration
		}{{body.DelayUpdates, &f.DelayUpdates}, {body.DelayAcks, &f.DelayAcks}} {
			if d.s == "" {
				continue
			}
			v, err := time.ParseDuration(d.s)
			if err != nil || v < 0 {
				http.Error(w, fmt.Sprintf("localmesos: bad duration %q in faults body", d.s), http.StatusBadRequest)
				return
			}
			*d.dst = v
		}
		m.SetFaults(f)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		code := http.StatusNotFound
		if err == ErrClosed {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
		return
	}
	m.log.WithFields(logrus.Fields{"path": r.URL.Path}).Debug("admin call")
	w.WriteHeader(http.StatusOK)
}

// UnacknowledgedUpdates counts the status updates the agents still hold
// for want of an acknowledgement, and how many times since the start an
// update was re-sent because none came; for tests of a framework's
// acknowledgements.
func (m *Master) UnacknowledgedUpdates() (pending, resent int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.agents {
		for _, q := range a.pending {
			pending += len(q.items)
		}
	}
	return pending, m.resentUpdates
}
