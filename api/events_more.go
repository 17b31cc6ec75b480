package api

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/framework"
)

// More of Marathon's event types: instance_changed_event (Marathon 1.4+'s
// per-instance condition, which newer consumers follow instead of
// status_update_event) and group_change_success/failed.
const (
	eventInstanceChanged    = "instance_changed_event"
	eventGroupChangeSuccess = "group_change_success"
	eventGroupChangeFailed  = "group_change_failed"
)

// GroupChange publishes Marathon's group_change_success (reason "") or
// group_change_failed: a change of desired state accepted or refused.
func (p deployPublisher) GroupChange(groupID, version, reason string) {
	s := p.s
	if reason == "" {
		s.publish(eventGroupChangeSuccess, struct {
			GroupID string `json:"groupId"`
			Version string `json:"version"`
			eventHeader
		}{groupID, version, s.header(eventGroupChangeSuccess)})
		return
	}
	s.publish(eventGroupChangeFailed, struct {
		GroupID string `json:"groupId"`
		Version string `json:"version"`
		Reason  string `json:"reason"`
		eventHeader
	}{groupID, version, reason, s.header(eventGroupChangeFailed)})
}

// condition is Marathon's instance condition of a task (its Condition
// names): the Mesos state, Killing once a kill was asked for, and
// TASK_LOST as Unreachable, as Marathon maps it.
func condition(t *framework.Task) string {
	switch t.State {
	case mesos.TASK_STAGING:
		return "Staging"
	case mesos.TASK_STARTING:
		return "Starting"
	case mesos.TASK_RUNNING:
		if t.Killing {
			return "Killing"
		}
		return "Running"
	case mesos.TASK_KILLING:
		return "Killing"
	case mesos.TASK_FINISHED:
		return "Finished"
	case mesos.TASK_FAILED:
		return "Failed"
	case mesos.TASK_KILLED:
		return "Killed"
	case mesos.TASK_ERROR:
		return "Error"
	case mesos.TASK_LOST, mesos.TASK_UNREACHABLE:
		return "Unreachable"
	case mesos.TASK_DROPPED:
		return "Dropped"
	case mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return "Gone"
	}
	return "Unknown"
}

type instanceChangedEvent struct {
	InstanceID     string `json:"instanceId"`
	Condition      string `json:"condition"`
	RunSpecID      string `json:"runSpecId"`
	AgentID        string `json:"agentId"`
	Host           string `json:"host"`
	RunSpecVersion string `json:"runSpecVersion"`
	eventHeader
}

// instanceChanged publishes instance_changed_event when a task's
// condition differs from the last one published for it (a health or
// readiness change alone is not a condition change).
func (s *Server) instanceChanged(tr *translator, ev framework.Event) {
	t := ev.Task
	c := condition(t)
	if ev.Type == framework.EventTaskRemoved {
		delete(tr.condition, t.ID)
	} else if tr.condition[t.ID] == c {
		return
	} else {
		tr.condition[t.ID] = c
	}
	s.publish(eventInstanceChanged, instanceChangedEvent{InstanceID: instanceID(t.ID), Condition: c, RunSpecID: t.AppID,
		AgentID: t.AgentID, Host: t.Host, RunSpecVersion: t.AppVersion,
		eventHeader: eventHeader{EventType: eventInstanceChanged, Timestamp: timestamp(ev.At)}})
}

// detached tells the clients still attached that one left (Marathon's
// event_stream_detached): it closed the stream, or fell behind and was
// dropped.
func (s *Server) detached(remote string) {
	s.publish(eventStreamDetached, struct {
		RemoteAddress string `json:"remoteAddress"`
		eventHeader
	}{remote, s.header(eventStreamDetached)})
}
