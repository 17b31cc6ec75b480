package api

import (
	"encoding/json"
	"strconv"

	"github.com/flotilla-sched/flotilla/framework"
)

// appendHealthResults appends a task's healthCheckResults entries, one per
// check that has a result, in the order of the app's healthChecks, in
// Marathon's shape (core/health/Health.scala, with the task id older
// clients read).
func appendHealthResults(b []byte, t *framework.Task) []byte {
	if len(t.Checks) == 0 {
		// A task whose version's checks are not known (adopted during a
		// roll): Mesos's word alone, without times or counts.
		if t.Healthy == nil {
			return b
		}
		return appendHealthResult(b, t, *t.Healthy, framework.CheckResult{})
	}
	first := true
	for _, r := range t.Checks {
		if !r.Reported() {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendHealthResult(b, t, r.Alive(), r)
	}
	return b
}

func appendHealthResult(b []byte, t *framework.Task, alive bool, r framework.CheckResult) []byte {
	b = append(b, `{"alive":`...)
	b = strconv.AppendBool(b, alive)
	b = append(b, `,"consecutiveFailures":`...)
	b = strconv.AppendInt(b, int64(r.ConsecutiveFailures), 10)
	b = append(b, `,"firstSuccess":`...)
	b = appendTime(b, r.FirstSuccess)
	b = append(b, `,"lastFailure":`...)
	b = appendTime(b, r.LastFailure)
	b = append(b, `,"lastSuccess":`...)
	b = appendTime(b, r.LastSuccess)
	b = append(b, `,"lastFailureCause":`...)
	if r.LastFailure.IsZero() {
		b = append(b, "null"...)
	} else {
		b = appendString(b, r.LastFailureCause)
	}
	b = append(b, `,"instanceId":`...)
	b = appendString(b, instanceID(t.ID))
	b = append(b, `,"taskId":`...)
	b = appendString(b, t.ID)
	return append(b, '}')
}

// Marathon's health check events (core/event/Events.scala).
const (
	eventFailedHealthCheck = "failed_health_check_event"
	eventUnhealthyInstKill = "unhealthy_instance_kill_event"
)

// failedHealthCheckEvent is Marathon's FailedHealthCheck: the app, the
// instance (and, as Marathon before 1.4 said, the task) and the check.
type failedHealthCheckEvent struct {
	eventHeader
	AppID       string          `json:"appId"`
	TaskID      string          `json:"taskId"`
	InstanceID  string          `json:"instanceId"`
	HealthCheck json.RawMessage `json:"healthCheck"`
}

// unhealthyKillEvent is Marathon's UnhealthyInstanceKillEvent.
type unhealthyKillEvent struct {
	eventHeader
	AppID      string  `json:"appId"`
	TaskID     string  `json:"taskId"`
	InstanceID string  `json:"instanceId"`
	Version    string  `json:"version"`
	Reason     string  `json:"reason"`
	Host       string  `json:"host"`
	SlaveID    *string `json:"slaveId"`
}

// translateHealth turns the scheduler's health check events into
// Marathon's.
func (s *Server) translateHealth(ev framework.Event) {
	t := ev.Task
	if t == nil {
		return
	}
	switch ev.Type {
	case framework.EventHealthCheckFailed:
		hc := json.RawMessage("null")
		if ev.App != nil && ev.Check >= 0 && ev.Check < len(ev.App.HealthChecks) {
			if b, err := json.Marshal(ev.App.HealthChecks[ev.Check]); err == nil {
				hc = b
			} else {
				s.log.WithError(err).WithField("app", t.AppID).Warn("health check not encodable; the event carries null")
			}
		}
		s.publish(eventFailedHealthCheck, failedHealthCheckEvent{
			eventHeader: eventHeader{EventType: eventFailedHealthCheck, Timestamp: timestamp(ev.At)},
			AppID:       t.AppID, TaskID: t.ID, InstanceID: instanceID(t.ID), HealthCheck: hc})
	case framework.EventUnhealthyKill:
		reason := "unknown" // as Marathon says without a failure cause
		if ev.Check >= 0 && ev.Check < len(t.Checks) && t.Checks[ev.Check].LastFailureCause != "" {
			reason = t.Checks[ev.Check].LastFailureCause
		}
		var slave *string
		if t.AgentID != "" {
			slave = &t.AgentID
		}
		s.publish(eventUnhealthyInstKill, unhealthyKillEvent{
			eventHeader: eventHeader{EventType: eventUnhealthyInstKill, Timestamp: timestamp(ev.At)},
			AppID:       t.AppID, TaskID: t.ID, InstanceID: instanceID(t.ID), Version: t.AppVersion,
			Reason: reason, Host: t.Host, SlaveID: slave})
	}
}
