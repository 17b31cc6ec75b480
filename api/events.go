package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// Marathon's event types (plus Flotilla's event_stream_lagged).
const (
	eventStatusUpdate   = "status_update_event"
	eventHealthChanged  = "health_status_changed_event"
	eventAppTerminated  = "app_terminated_event"
	eventAPIPost        = "api_post_event"
	eventStreamAttached = "event_stream_attached"
	eventStreamDetached = "event_stream_detached"
	eventStreamLagged   = "event_stream_lagged"
	// Flotilla's own: Marathon has no autoscaler.
	eventAutoscaleDecision = "autoscale_decision"
	subscriberBuffer       = 1024
	schedulerEventBuffer   = 16384
)

// sseEvent is one event, encoded once for every subscriber.
type sseEvent struct {
	typ  string
	data []byte
}

// hub fans API events out to event stream clients without ever blocking
// the publisher: a client that falls a buffer behind is disconnected with
// an event_stream_lagged event, so it reconnects and re-reads the state
// instead of silently missing events.
type hub struct {
	mu   sync.Mutex
	subs map[*hubSub]struct{}
}

type hubSub struct {
	ch     chan sseEvent
	lagged bool   // set before ch is closed by the hub
	why    string // what the client is told then
}

const laggedMessage = "this client fell behind and events were lost; re-read the state (GET /v2/apps?embed=apps.tasks) and reconnect"

func (h *hub) subscribe() *hubSub {
	sub, _ := h.subscribeUpTo(0)
	return sub
}

// subscribeUpTo subscribes unless max (> 0) subscribers are attached. The
// cap is checked under the same lock that adds, so a burst of clients
// cannot overshoot it.
func (h *hub) subscribeUpTo(max int) (*hubSub, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if max > 0 && len(h.subs) >= max {
		return nil, false
	}
	sub := &hubSub{ch: make(chan sseEvent, subscriberBuffer)}
	if h.subs == nil {
		h.subs = map[*hubSub]struct{}{}
	}
	h.subs[sub] = struct{}{}
	return sub, true
}

func (h *hub) unsubscribe(sub *hubSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		close(sub.ch)
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *hub) publish(e sseEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		select {
		case sub.ch <- e:
		default:
			sub.lagged, sub.why = true, laggedMessage
			delete(h.subs, sub)
			close(sub.ch)
		}
	}
}

// dropAll disconnects every client, telling it why: events were lost
// upstream, or this replica stopped leading.
func (h *hub) dropAll(why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		sub.lagged, sub.why = true, why
		delete(h.subs, sub)
		close(sub.ch)
	}
}

func (s *Server) publish(typ string, v any) {
	if s.hub.count() == 0 {
		return // nobody listens: spare encoding every task update
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.log.WithError(err).WithField("event", typ).Error("event not encodable; dropped")
		return
	}
	s.hub.publish(sseEvent{typ: typ, data: b})
}

// PublishAutoscaleDecision sends a decision of the autoscaler that scaled
// an app, or tried to and failed, to /v2/events as "autoscale_decision",
// with the decision as the autoscaler logs it under "decision" (the same
// entry GET /v2/apps/{id}/autoscale shows). Evaluations that change
// nothing are left to that log, or the stream would carry one per app per
// interval.
func (s *Server) PublishAutoscaleDecision(appID string, decision any) {
	s.publish(eventAutoscaleDecision, struct {
		eventHeader
		AppID    string `json:"appId"`
		Decision any    `json:"decision"`
	}{s.header(eventAutoscaleDecision), appID, decision})
}

type eventHeader struct {
	EventType string `json:"eventType"`
	Timestamp string `json:"timestamp"`
}

func (s *Server) header(typ string) eventHeader {
	return eventHeader{EventType: typ, Timestamp: timestamp(s.now())}
}

type planJSON struct {
	ID      string     `json:"id"`
	Version string     `json:"version"`
	Steps   []stepJSON `json:"steps"`
}

type deploymentEvent struct {
	eventHeader
	ID          string    `json:"id"`
	Plan        planJSON  `json:"plan"`
	CurrentStep *stepJSON `json:"currentStep,omitempty"`
	// Reason is Flotilla's: why a deployment failed, and what was done
	// about it (rollback).
	Reason string `json:"reason,omitempty"`
	AppID  string `json:"appId"`
}

// deployPublisher tells the event stream what package deploy did.
type deployPublisher struct{ s *Server }

func (p deployPublisher) Deployment(typ string, d *deploy.Deployment, reason string) {
	s := p.s
	step := stepJSON{Actions: []actionJSON{{Action: d.Action, App: d.AppID}}}
	e := deploymentEvent{eventHeader: s.header(typ), ID: d.ID, AppID: d.AppID, Reason: reason,
		Plan: planJSON{ID: d.ID, Version: d.Version, Steps: []stepJSON{step}}}
	if typ == deploy.EventDeploymentInfo {
		e.CurrentStep = &step
	}
	s.publish(typ, e)
}

func (p deployPublisher) AppWritten(op deploy.Op, m *deploy.Record) {
	s := p.s
	def := append(append([]byte(nil), m.Spec...), `,"version":`...)
	def = append(appendString(def, m.App.Version), '}')
	s.publish(eventAPIPost, struct {
		eventHeader
		ClientIP      string          `json:"clientIp"`
		URI           string          `json:"uri"`
		AppDefinition json.RawMessage `json:"appDefinition"`
	}{s.header(eventAPIPost), op.ClientIP, op.URI, def})
}

func (p deployPublisher) Plan(typ string, pl *deploy.GroupPlan, reason string) {
	s := p.s
	steps := planSteps(s.dep.StepActions(pl))
	e := deploymentEvent{eventHeader: s.header(typ), ID: pl.ID, AppID: pl.GroupID, Reason: reason,
		Plan: planJSON{ID: pl.ID, Version: pl.Version, Steps: steps}}
	if pl.Current >= 0 && pl.Current < len(steps) {
		e.CurrentStep = &steps[pl.Current]
	}
	s.publish(typ, e)
}

// eventStoreItemBroken is Flotilla's own event: Marathon fails its whole
// start on a bad stored item, where Flotilla skips it and says so.
const eventStoreItemBroken = "store_item_broken"

func (p deployPublisher) StoreItemBroken(it store.Broken) {
	p.s.publish(eventStoreItemBroken, struct {
		eventHeader
		Item deploy.BrokenItem `json:"item"`
	}{p.s.header(eventStoreItemBroken), deploy.ItemOf(it)})
}

type statusUpdateEvent struct {
	eventHeader
	SlaveID     string   `json:"slaveId"`
	TaskID      string   `json:"taskId"`
	TaskStatus  string   `json:"taskStatus"`
	Message     string   `json:"message"`
	AppID       string   `json:"appId"`
	Host        string   `json:"host"`
	Ports       []uint64 `json:"ports"`
	IPAddresses []any    `json:"ipAddresses"`
	Version     string   `json:"version"`
}

type healthChangedEvent struct {
	eventHeader
	AppID      string `json:"appId"`
	TaskID     string `json:"taskId"`
	InstanceID string `json:"instanceId"`
	Version    string `json:"version"`
	Alive      bool   `json:"alive"`
}

// translator turns scheduler events into Marathon's; it is called from
// deploy's loop only, one event at a time.
type translator struct {
	healthy   map[string]bool   // task id → last health result seen
	condition map[string]string // task id → last instance condition published
}

func newTranslator() *translator {
	return &translator{healthy: map[string]bool{}, condition: map[string]string{}}
}

func (s *Server) translate(tr *translator, ev framework.Event) {
	switch ev.Type {
	case framework.EventTask, framework.EventTaskRemoved:
		t := ev.Task
		if t == nil {
			return
		}
		hdr := eventHeader{EventType: eventStatusUpdate, Timestamp: timestamp(ev.At)}
		ports := t.Ports
		if ports == nil {
			ports = []uint64{}
		}
		s.publish(eventStatusUpdate, statusUpdateEvent{eventHeader: hdr, SlaveID: t.AgentID, TaskID: t.ID,
			TaskStatus: t.State.String(), Message: t.Message, AppID: t.AppID, Host: t.Host, Ports: ports,
			IPAddresses: []any{}, Version: t.AppVersion})
		s.instanceChanged(tr, ev)
		if ev.Type == framework.EventTaskRemoved {
			delete(tr.healthy, t.ID)
			s.recent.add(t, ev.At) // recent.go: its sandbox can still be read
			if !t.Killing && failedState(t.State) {
				f := taskFailure{AppID: t.AppID, Host: t.Host, Message: t.Message, State: t.State.String(),
					TaskID: t.ID, Timestamp: timestamp(ev.At), Version: t.AppVersion, SlaveID: t.AgentID}
				s.lastTF.set(f)
				s.addFailureTail(f) // logs.go: its stderr's last lines, read from the agent
			}
			return
		}
		if t.Healthy != nil {
			if prev, ok := tr.healthy[t.ID]; !ok || prev != *t.Healthy {
				tr.healthy[t.ID] = *t.Healthy
				s.publish(eventHealthChanged, healthChangedEvent{
					eventHeader: eventHeader{EventType: eventHealthChanged, Timestamp: timestamp(ev.At)},
					AppID:       t.AppID, TaskID: t.ID, InstanceID: instanceID(t.ID), Version: t.AppVersion, Alive: *t.Healthy})
			}
		}
	case framework.EventHealthCheckFailed, framework.EventUnhealthyKill:
		s.translateHealth(ev) // health.go
	case framework.EventAppRemoved:
		if ev.App != nil {
			s.publish(eventAppTerminated, struct {
				eventHeader
				AppID string `json:"appId"`
			}{eventHeader{EventType: eventAppTerminated, Timestamp: timestamp(ev.At)}, ev.App.ID})
		}
	case framework.EventLagged:
		// Events were lost between the scheduler and here: clients of the
		// stream cannot be told which, so they are made to resync.
		s.log.Warn("scheduler events lost (api too slow); disconnecting event stream clients so they resync")
		s.hub.dropAll(laggedMessage)
		*tr = *newTranslator()
	}
}

func failedState(st mesos.TaskState) bool {
	switch st {
	case mesos.TASK_FAILED, mesos.TASK_ERROR, mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE,
		mesos.TASK_FINISHED, mesos.TASK_KILLED, mesos.TASK_GONE_BY_OPERATOR, mesos.TASK_UNKNOWN:
		return true
	}
	return false
}

// Run marks a leadership term for the event stream: scheduler events
// reach it through package deploy's loop (SchedulerEvent), in order with
// the deployment events they cause. When ctx ends the clients attached
// are dropped, so that they reconnect (through the proxy) to the new
// leader.
func (s *Server) Run(ctx context.Context) error {
	s.tr.Store(newTranslator())
	<-ctx.Done()
	s.hub.dropAll("this replica stopped leading; reconnect to follow the new leader's events")
	return nil
}

func (p deployPublisher) SchedulerEvent(ev framework.Event) {
	tr := p.s.tr.Load()
	if tr == nil {
		tr = newTranslator()
		p.s.tr.CompareAndSwap(nil, tr)
		tr = p.s.tr.Load()
	}
	p.s.safeTranslate(tr, ev)
}

// safeTranslate recovers a panic at the loop's edge, so one
// bad event does not stop deployments; the stack is logged.
func (s *Server) safeTranslate(tr *translator, ev framework.Event) {
	defer s.recoverLoop("translate event")
	s.translate(tr, ev)
}

func (s *Server) recoverLoop(what string) {
	if r := recover(); r != nil {
		s.log.WithFields(logrus.Fields{"panic": fmt.Sprint(r), "stack": string(debug.Stack())}).Error("api loop panicked: " + what)
	}
}

// events serves /v2/events as Server-Sent Events, with Marathon's
// event_type filter (repeatable, or comma-separated).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	filter := map[string]bool{}
	for _, v := range r.URL.Query()["event_type"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				filter[t] = true
			}
		}
	}
	rc := http.NewResponseController(w)
	sub, ok := s.hub.subscribeUpTo(s.cfg.ClientLimits.MaxEventStreams)
	if !ok {
		s.met.sseRefused.Inc()
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, errorf(http.StatusServiceUnavailable,
			"%d event stream clients are attached, the most this server takes (--api-max-event-streams); retry later, or share one stream among your consumers", s.cfg.ClientLimits.MaxEventStreams))
		return
	}
	defer func() {
		s.hub.unsubscribe(sub)
		s.detached(r.RemoteAddr)
	}()
	s.met.sseClients.Inc()
	defer s.met.sseClients.Dec()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Headers go out now: a filtered stream may wait long for its first event.
	if err := rc.Flush(); err != nil {
		return
	}

	write := func(typ string, data []byte) bool {
		if len(filter) > 0 && !filter[typ] {
			return true
		}
		// A stalled client must not hold its goroutine forever.
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	attached, _ := json.Marshal(struct {
		RemoteAddress string `json:"remoteAddress"`
		eventHeader
	}{r.RemoteAddr, s.header(eventStreamAttached)})
	if !write(eventStreamAttached, attached) {
		return
	}
	keepAlive := s.clk.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	s.log.WithField("remote", r.RemoteAddr).Debug("event stream attached")
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C():
			// An SSE comment keeps proxies from closing an idle stream.
			_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
			if _, err := w.Write([]byte(":\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		case e, ok := <-sub.ch:
			if !ok {
				if sub.lagged {
					msg, _ := json.Marshal(struct {
						eventHeader
						Message string `json:"message"`
					}{s.header(eventStreamLagged), sub.why})
					write(eventStreamLagged, msg)
				}
				return
			}
			if !write(e.typ, e.data) {
				return
			}
		}
	}
}
