package localmesos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

type agentState int

const (
	agentActive agentState = iota
	agentUnreachable
	agentGone
)

// Retry backoff of unacknowledged status updates (Mesos's status update
// manager: 10 s, doubling, at most 10 min).
const (
	retryMin = 10 * time.Second
	retryMax = 10 * time.Minute
)

// agent is one in-process Mesos agent. Its fields are guarded by the
// master's lock; the executor and the HTTP listener work outside it.
type agent struct {
	m        *Master
	id       string
	hostname string
	attrs    []mesos.Attribute
	domain   *mesos.DomainInfo // nil: no fault domain
	total    rset
	free     rset
	exec     executor.Executor
	state    agentState
	tasks    map[string]*task
	offer    *offer
	workDir  string
	// pending holds each task's unacknowledged updates, oldest (in
	// flight) first.
	pending map[string]*updateQueue

	ln      net.Listener
	srv     *http.Server
	httpURL *mesos.URL

	// files are the sandboxes /files serves; their own lock.
	files sandboxes
}

type updateQueue struct {
	items     []mesos.TaskStatus
	attempts  int
	nextRetry time.Time
}

func (a *agent) url() string {
	if a.httpURL == nil {
		return ""
	}
	return "http://" + a.ln.Addr().String()
}

func (a *agent) stateName() string {
	switch a.state {
	case agentUnreachable:
		return "unreachable"
	case agentGone:
		return "gone"
	}
	return "active"
}

func (m *Master) agentSpecs() []AgentSpec {
	specs := m.cfg.AgentSpecs
	if len(specs) == 0 {
		specs = make([]AgentSpec, m.cfg.Agents)
	}
	return specs
}

// startAgents creates the agents: ids <masterID>-S<n>, ports split unless
// SamePorts, attributes rack:r1..r3 by default.
func (m *Master) startAgents() error {
	specs := m.agentSpecs()
	work := ""
	if !m.cfg.NoSandbox {
		dir, err := os.MkdirTemp(m.cfg.WorkDir, "localmesos-")
		if err != nil {
			return fmt.Errorf("localmesos: create work directory: %w", err)
		}
		// World-searchable, as a Mesos agent's work_dir is: a task run
		// as another user (CommandInfo.user) must reach its sandbox.
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("localmesos: open work directory to task users: %w", err)
		}
		work = dir
		m.workDir = dir
	}
	for i, spec := range specs {
		res := m.cfg.Resources
		if spec.Resources != nil {
			res = *spec.Resources
		} else if !m.cfg.SamePorts && len(specs) > 1 {
			res.Ports = splitPorts(res.Ports, i, len(specs))
			res.Reserved = splitReservedPorts(res.Reserved, i, len(specs))
		}
		if spec.DefaultRole != "" {
			if err := validRole(spec.DefaultRole); err != nil {
				return fmt.Errorf("localmesos: agent %d: default role: %w", i, err)
			}
		}
		res = spec.shape(res)
		host := spec.Hostname
		if host == "" {
			host = m.cfg.Hostname
		}
		attrs := spec.Attributes
		if attrs == nil {
			attrs = map[string]string{"rack": "r" + strconv.Itoa(i%3+1)}
		}
		id := fmt.Sprintf("%s-S%d", m.id, i)
		a := &agent{m: m, id: id, hostname: host, total: fromConfig(res), tasks: map[string]*task{}, pending: map[string]*updateQueue{}}
		a.free = a.total.clone()
		if spec.Region != "" || spec.Zone != "" {
			a.domain = &mesos.DomainInfo{FaultDomain: &mesos.DomainInfo_FaultDomain{
				Region: mesos.DomainInfo_FaultDomain_RegionInfo{Name: spec.Region},
				Zone:   mesos.DomainInfo_FaultDomain_ZoneInfo{Name: spec.Zone},
			}}
		}
		keys := make([]string, 0, len(attrs))
		for k := range attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			a.attrs = append(a.attrs, mesos.Attribute{Name: k, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: attrs[k]}})
		}
		if work != "" {
			a.workDir = filepath.Join(work, "slaves", id)
		}
		ex, err := m.cfg.Executor(id)
		if err != nil {
			return fmt.Errorf("localmesos: make executor for agent %s: %w", id, err)
		}
		a.exec = ex
		m.agents[id] = a
		m.agentList = append(m.agentList, a)
		if !m.cfg.NoAgentHTTP {
			if err := a.serveHTTP(); err != nil {
				return err
			}
		}
	}
	return nil
}

// splitPorts gives agent i of n its own share of the ranges, so real tasks
// of different agents on this one host never get the same port.
func splitPorts(ranges []PortRange, i, n int) []PortRange {
	var all []uint64
	for _, r := range ranges {
		for p := r.Begin; p <= r.End && len(all) < 1<<20; p++ {
			all = append(all, p)
		}
	}
	if len(all) < n {
		return nil
	}
	per := len(all) / n
	part := all[i*per : (i+1)*per]
	var out []PortRange
	for _, p := range part {
		if len(out) > 0 && out[len(out)-1].End+1 == p {
			out[len(out)-1].End = p
			continue
		}
		out = append(out, PortRange{p, p})
	}
	return out
}

func (m *Master) closeAgents() {
	m.mu.Lock()
	agents := append([]*agent(nil), m.agentList...)
	m.mu.Unlock()
	for _, a := range agents {
		a.shutdown()
	}
	if m.workDir != "" {
		if err := os.RemoveAll(m.workDir); err != nil {
			m.log.WithError(err).WithField("dir", m.workDir).Warn("sandboxes left on disk")
		}
	}
}

func (a *agent) shutdown() {
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if err := a.srv.Shutdown(ctx); err != nil {
			a.srv.Close()
		}
		cancel()
	}
	if a.exec != nil {
		if err := a.exec.Close(); err != nil {
			a.m.log.WithError(err).WithField("agent", a.id).Warn("close executor")
		}
	}
}

// report is the executor's callback. It only queues the status: the
// master applies queued work in batches under one lock acquisition, so
// thousands of executor goroutines never convoy on the master lock.
func (a *agent) report(taskID string, s executor.Status) {
	a.m.enqueue(func() { a.reportLocked(taskID, s) })
}

// reportLocked stamps the status as the agent's status update manager
// would and queues it for reliable delivery.
func (a *agent) reportLocked(taskID string, s executor.Status) {
	m := a.m
	t := a.tasks[taskID]
	if t == nil || a.state == agentGone || isTerminal(t.agentState) {
		return
	}
	st := mesos.TaskStatus{
		TaskID:     mesos.TaskID{Value: taskID},
		State:      s.State.Enum(),
		Source:     mesos.SOURCE_EXECUTOR.Enum(),
		AgentID:    &mesos.AgentID{Value: a.id},
		ExecutorID: &mesos.ExecutorID{Value: t.executorID},
		Timestamp:  m.timestamp(),
		UUID:       m.newUUID(),
		Healthy:    s.Healthy,
		Reason:     s.Reason,
	}
	if s.Message != "" {
		st.Message = strPtr(s.Message)
	}
	if t.group != nil {
		st.ContainerStatus = t.group.containerStatus(taskID)
	}
	t.agentState = s.State
	if isTerminal(s.State) {
		if t.group == nil {
			a.files.markEnded(sandboxVirtual(t.fw.id, t.executorID), m.now())
		} else {
			m.groupTaskEndedLocked(t, s.State)
		}
	}
	if t.fw.removed {
		if isTerminal(s.State) {
			m.finishTaskLocked(t)
		}
		return
	}
	q := a.pending[taskID]
	if q == nil {
		q = &updateQueue{}
		a.pending[taskID] = q
	}
	q.items = append(q.items, st)
	if len(q.items) == 1 {
		q.attempts = 0
		m.sendUpdateLocked(a, t, q)
	}
}

// sendUpdateLocked sends the queue's oldest update to the master and arms
// its retry.
func (m *Master) sendUpdateLocked(a *agent, t *task, q *updateQueue) {
	q.attempts++
	backoff := retryMin << (q.attempts - 1)
	if q.attempts > 10 || backoff > retryMax {
		backoff = retryMax
	}
	q.nextRetry = m.now().Add(backoff)
	if a.state != agentActive {
		return
	}
	if m.faults.DropUpdates > 0 {
		m.faults.DropUpdates--
		m.log.WithField("task", t.id).Info("fault: status update dropped")
		return
	}
	st := q.items[0]
	latest := t.agentState
	if d := m.faults.DelayUpdates; d > 0 {
		m.after(d, func() {
			if a.state == agentActive {
				m.deliverLocked(t, st, latest)
			}
		})
		return
	}
	m.deliverLocked(t, st, latest)
}

// enqueue hands f to the inbox loop, which runs it under the master lock.
func (m *Master) enqueue(f func()) {
	m.inboxMu.Lock()
	m.inbox = append(m.inbox, f)
	m.inboxMu.Unlock()
	select {
	case m.inboxWake <- struct{}{}:
	default:
	}
}

func (m *Master) inboxLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.inboxWake:
		case <-m.ctx.Done():
			return
		}
		m.inboxMu.Lock()
		q := m.inbox
		m.inbox = nil
		m.inboxMu.Unlock()
		m.mu.Lock()
		if !m.closed {
			for _, f := range q {
				m.runSafely(f)
			}
		}
		m.mu.Unlock()
	}
}

// runSafely is the inbox loop's edge: one bad report is logged with its
// stack and the loop goes on with the others.
func (m *Master) runSafely(f func()) {
	defer func() {
		if p := recover(); p != nil {
			m.log.WithFields(logrus.Fields{"panic": p, "stack": string(debug.Stack())}).Error("inbox work panicked")
		}
	}()
	f()
}

// after runs f under the master lock once d has passed on the clock. The
// caller holds the lock; once Close has begun nothing is scheduled, so
// the WaitGroup's Add never races Close's Wait.
func (m *Master) after(d time.Duration, f func()) {
	if m.closed {
		return
	}
	tm := m.clock.NewTimer(d)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer tm.Stop()
		select {
		case <-tm.C():
			m.mu.Lock()
			if !m.closed {
				f()
			}
			m.mu.Unlock()
		case <-m.ctx.Done():
		}
	}()
}

// deliverLocked is the master receiving an update: it learns the task's
// latest state (recovering resources on a terminal one, as Mesos does
// before the acknowledgement) and forwards the update to the framework.
func (m *Master) deliverLocked(t *task, st mesos.TaskStatus, latest mesos.TaskState) {
	if t.fw.removed {
		return
	}
	if t.agent.state == agentActive || latest != t.state {
		t.state = latest
	}
	t.latest = &st
	t.statuses = append(t.statuses, st)
	if len(t.statuses) > 8 {
		t.statuses = t.statuses[len(t.statuses)-8:]
	}
	if isTerminal(latest) && !t.recovered {
		t.recovered = true
		t.agent.free.add(t.res)
		m.groupRecoveredLocked(t)
		m.kickAllocator()
	}
	t.fw.send(updateEvent(st))
}

// finishTaskLocked forgets a terminal task whose updates are all
// acknowledged (or whose framework is gone).
func (m *Master) finishTaskLocked(t *task) {
	a := t.agent
	if !t.recovered {
		t.recovered = true
		a.free.add(t.res)
		m.groupRecoveredLocked(t)
		m.kickAllocator()
	}
	delete(a.tasks, t.id)
	delete(a.pending, t.id)
	if t.fw.tasks[t.id] == t {
		delete(t.fw.tasks, t.id)
	}
	m.completed = append(m.completed, t)
	if len(m.completed) > 1000 {
		m.completed = m.completed[len(m.completed)-1000:]
	}
}

// acknowledge handles ACKNOWLEDGE: the usual framework checks, then the
// agent drops the acknowledged update and sends the next one.
func (m *Master) acknowledge(r *http.Request, call *scheduler.Call) (int, *callError) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fw, cerr := m.checkFramework(r, call)
	if cerr != nil {
		return 0, cerr
	}
	ack := call.Acknowledge
	a := m.agents[ack.AgentID.Value]
	if a == nil || a.state != agentActive {
		return http.StatusAccepted, nil
	}
	if m.faults.DropAcks > 0 {
		m.faults.DropAcks--
		m.log.WithField("task", ack.TaskID.Value).Info("fault: acknowledgement dropped")
		return http.StatusAccepted, nil
	}
	taskID, uuid := ack.TaskID.Value, append([]byte(nil), ack.UUID...)
	if d := m.faults.DelayAcks; d > 0 {
		m.after(d, func() { m.applyAckLocked(fw, a, taskID, uuid) })
		return http.StatusAccepted, nil
	}
	m.applyAckLocked(fw, a, taskID, uuid)
	return http.StatusAccepted, nil
}

func (m *Master) applyAckLocked(fw *framework, a *agent, taskID string, uuid []byte) {
	t := a.tasks[taskID]
	q := a.pending[taskID]
	if t == nil || t.fw != fw || q == nil || len(q.items) == 0 || !bytes.Equal(q.items[0].UUID, uuid) {
		return
	}
	q.items = q.items[1:]
	if len(q.items) > 0 {
		q.attempts = 0
		m.sendUpdateLocked(a, t, q)
		return
	}
	delete(a.pending, taskID)
	if isTerminal(t.agentState) {
		m.finishTaskLocked(t)
	}
}

// retryLoop re-sends unacknowledged updates whose backoff has passed.
func (m *Master) retryLoop() {
	defer m.wg.Done()
	tick := m.clock.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C():
		case <-m.ctx.Done():
			return
		}
		m.mu.Lock()
		now := m.now()
		for _, a := range m.agentList {
			if a.state != agentActive {
				continue
			}
			for id, q := range a.pending {
				if len(q.items) > 0 && !now.Before(q.nextRetry) {
					if t := a.tasks[id]; t != nil {
						m.resentUpdates++
						m.sendUpdateLocked(a, t, q)
					}
				}
			}
		}
		m.mu.Unlock()
	}
}

// serveHTTP starts the agent's own endpoint (the offer's url).
func (a *agent) serveHTTP() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("localmesos: listen for agent %s: %w", a.id, err)
	}
	a.ln = ln
	port := ln.Addr().(*net.TCPAddr).Port
	a.httpURL = &mesos.URL{Scheme: "http", Address: mesos.Address{Hostname: strPtr(a.hostname), IP: strPtr("127.0.0.1"), Port: int32(port)}, Path: strPtr("/slave(1)")}
	mux := http.NewServeMux()
	mux.HandleFunc("/monitor/statistics", a.handleStatistics)
	mux.HandleFunc("/monitor/statistics.json", a.handleStatistics)
	mux.HandleFunc("/slave(1)/monitor/statistics", a.handleStatistics)
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, p := range []string{"/state", "/state.json", "/slave(1)/state", "/slave(1)/state.json"} {
		mux.HandleFunc(p, a.handleAgentState)
	}
	a.filesRoutes(mux)
	a.srv = &http.Server{Handler: a.m.recoverer(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.m.log.WithError(err).WithField("agent", a.id).Error("agent http server stopped")
		}
	}()
	return nil
}

// handleStatistics answers GET /monitor/statistics in Mesos's shape: one
// entry per executor; for a command task the executor id is the task id.
func (a *agent) handleStatistics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "Expecting one of { 'GET' }", http.StatusMethodNotAllowed)
		return
	}
	m := a.m
	m.mu.Lock()
	if a.state != agentActive {
		m.mu.Unlock()
		http.Error(w, "agent is not reachable", http.StatusServiceUnavailable)
		return
	}
	type entry struct{ taskID, executorID, fwID string }
	var entries []entry
	for _, t := range a.tasks {
		if t.launched && !isTerminal(t.agentState) {
			entries = append(entries, entry{t.id, t.executorID, t.fw.id})
		}
	}
	m.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].taskID < entries[j].taskID })
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	// Docker's one-shot stats take about a second per container, so ask
	// for them side by side (bounded) rather than one after another.
	results := make([]map[string]any, len(entries))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			stats, err := a.exec.Stats(ctx, e.taskID)
			if err != nil || stats == nil {
				m.log.WithError(err).WithFields(logrus.Fields{"agent": a.id, "task": e.taskID}).Debug("no statistics")
				return
			}
			raw, err := stats.MarshalJSON()
			if err != nil {
				return
			}
			results[i] = map[string]any{
				"executor_id":   e.executorID,
				"executor_name": "Command Executor (Task: " + e.taskID + ")",
				"framework_id":  e.fwID,
				"source":        e.taskID,
				"statistics":    json.RawMessage(raw),
			}
		}()
	}
	wg.Wait()
	out := make([]map[string]any, 0, len(entries))
	for _, r := range mergeGroupStatistics(results) {
		if r != nil {
			out = append(out, r)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
