package localmesos

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
)

// defaultKillGrace is the grace period of a KILL without a kill policy
// (Mesos's command executor default).
const defaultKillGrace = 3 * time.Second

// maxFailoverSeconds caps failover_timeout (100 years) so that huge values
// cannot overflow into an immediate removal.
const maxFailoverSeconds = 100 * 365 * 24 * 3600

type framework struct {
	id             string
	info           mesos.FrameworkInfo
	partitionAware bool
	stream         *stream
	removed        bool
	suppressed     map[string]bool
	filters        map[string]filter // by agent id
	tasks          map[string]*task
	offers         map[string]*offer
	failoverGen    int
	cancelFailover chan struct{}
	registeredAt   time.Time
}

// filter refuses an agent's resources while they stay within res (Mesos's
// filters are resource-specific: more free resources lift the filter).
type filter struct {
	until time.Time
	res   rset
}

type offer struct {
	id    string
	fw    *framework
	agent *agent
	res   rset
	role  string // the role the offer is allocated to
}

type task struct {
	id         string
	info       mesos.TaskInfo
	fw         *framework
	agent      *agent
	res        rset
	gpus       []int // simulated GPU ids (gpus.go)
	executorID string
	// state is the master's view (what reconciliation answers); agentState
	// is the latest state the executor reported.
	state      mesos.TaskState
	agentState mesos.TaskState
	latest     *mesos.TaskStatus
	statuses   []mesos.TaskStatus
	launched   bool
	recovered  bool
	killing    bool
	killPend   *time.Duration
	// group is the task group (LAUNCH_GROUP) the task belongs to; nil for
	// a task launched on its own.
	group *taskGroup
}

func (f *framework) send(ev *scheduler.Event) {
	if f.stream != nil {
		f.stream.send(ev)
	}
}

func (f *framework) roles() []string {
	if len(f.info.Roles) > 0 {
		return f.info.Roles
	}
	if f.info.Role != nil && *f.info.Role != "" {
		return []string{*f.info.Role}
	}
	return []string{"*"}
}

func (f *framework) allSuppressed() bool {
	for _, r := range f.roles() {
		if !f.suppressed[r] {
			return false
		}
	}
	return true
}

func (f *framework) stopFailoverTimer() {
	if f.cancelFailover != nil {
		close(f.cancelFailover)
		f.cancelFailover = nil
	}
}

func hasCapability(fi *mesos.FrameworkInfo, c mesos.FrameworkInfo_Capability_Type) bool {
	for _, x := range fi.Capabilities {
		if x.Type == c {
			return true
		}
	}
	return false
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// forFramework maps the partition-aware states to TASK_LOST for frameworks
// without the PARTITION_AWARE capability, as the Mesos master does.
func forFramework(s mesos.TaskState, partitionAware bool) mesos.TaskState {
	if partitionAware {
		return s
	}
	switch s {
	case mesos.TASK_DROPPED, mesos.TASK_UNREACHABLE, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR, mesos.TASK_UNKNOWN:
		return mesos.TASK_LOST
	}
	return s
}

// validateRoles is Mesos's framework::internal::validateRoles
// (src/master/validation.cpp), for SUBSCRIBE and UPDATE_FRAMEWORK: a
// MULTI_ROLE framework names its roles in `roles` and must not set `role`;
// any other framework must not set `roles`; no role twice, each valid.
func validateRoles(fi *mesos.FrameworkInfo) error {
	if hasCapability(fi, mesos.FrameworkInfo_Capability_MULTI_ROLE) {
		if fi.Role != nil {
			return errors.New("'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable")
		}
	} else if len(fi.Roles) > 0 {
		return errors.New("'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable")
	}
	seen := map[string]bool{}
	for _, role := range fi.Roles {
		if seen[role] {
			return fmt.Errorf("'FrameworkInfo.roles' contains duplicate role '%s'", role)
		}
		seen[role] = true
	}
	roles := fi.Roles
	if fi.Role != nil {
		roles = []string{fi.GetRole()}
	}
	for _, role := range roles {
		if err := validRole(role); err != nil {
			return fmt.Errorf("'FrameworkInfo.roles' contains invalid role: %w", err)
		}
	}
	return nil
}

// validRole follows Mesos's roles::validate: not empty, not "." or "..",
// no leading '-', no '/', whitespace or control characters ("*" is the
// default role).
func validRole(r string) error {
	if r == "*" {
		return nil
	}
	if r == "" || r == "." || r == ".." {
		return fmt.Errorf("role %q is invalid", r)
	}
	if strings.HasPrefix(r, "-") {
		return fmt.Errorf("role %q cannot start with '-'", r)
	}
	for _, c := range r {
		if c == '/' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("role %q contains invalid characters", r)
		}
	}
	return nil
}

func (m *Master) newUUID() []byte {
	b := make([]byte, 16)
	m.rnd.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return b
}

func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func errorEvent(msg string) *scheduler.Event {
	return &scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: msg}}
}

func updateEvent(st mesos.TaskStatus) *scheduler.Event {
	return &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}}
}

// subscribe answers SUBSCRIBE: a 200 RecordIO stream whose first event is
// SUBSCRIBED (or a single ERROR for refused subscriptions).
func (m *Master) subscribe(w http.ResponseWriter, r *http.Request, call *scheduler.Call, log *logrus.Entry) {
	codec, ctype, msgType, ok := eventCodec(r)
	if !ok {
		http.Error(w, "Expecting 'Accept' to allow application/json or application/x-protobuf", http.StatusNotAcceptable)
		return
	}
	if r.Header.Get(streamIDHeader) != "" {
		http.Error(w, "Subscribe calls should not include the 'Mesos-Stream-Id' header", http.StatusBadRequest)
		return
	}
	fi := *call.Subscribe.FrameworkInfo
	refusal := ""
	if err := validateRoles(&fi); err != nil {
		refusal = err.Error()
	}
	if fi.FailoverTimeout != nil && (*fi.FailoverTimeout < 0 || *fi.FailoverTimeout != *fi.FailoverTimeout) {
		refusal = "Invalid failover_timeout"
	}
	streamID := ""
	var s *stream
	var rescinds []*scheduler.Event
	m.mu.Lock()
	if refusal == "" && fi.ID != nil && m.removedFws[fi.ID.Value] {
		refusal = "Framework has been removed"
	}
	if refusal == "" {
		var fw *framework
		if fi.ID != nil && fi.ID.Value != "" {
			fw = m.frameworks[fi.ID.Value]
		}
		if fw == nil {
			id := ""
			if fi.ID != nil && fi.ID.Value != "" {
				// A framework id this master never saw: a re-registration
				// after master failover, which Mesos accepts.
				id = fi.ID.Value
			} else {
				id = fmt.Sprintf("%s-%04d", m.id, m.fwSeq)
				m.fwSeq++
			}
			fw = &framework{id: id, suppressed: map[string]bool{}, filters: map[string]filter{},
				tasks: map[string]*task{}, offers: map[string]*offer{}, registeredAt: m.now()}
			m.frameworks[id] = fw
		} else {
			if fw.stream != nil {
				old := fw.stream
				fw.stream = nil
				old.close(errorEvent("Framework failed over"))
			}
			fw.stopFailoverTimer()
			for _, o := range fw.offers {
				rescinds = append(rescinds, &scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: o.id}}})
				m.removeOffer(o)
			}
		}
		fi.ID = &mesos.FrameworkID{Value: fw.id}
		fw.info = fi
		fw.partitionAware = hasCapability(&fi, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
		fw.suppressed = map[string]bool{}
		for _, role := range call.Subscribe.SuppressedRoles {
			fw.suppressed[role] = true
		}
		streamID = uuidString(m.newUUID())
		s = newStream(streamID, codec, fw)
		fw.stream = s
		hb := m.cfg.Heartbeat.Seconds()
		info := m.info
		s.send(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
			FrameworkID: &mesos.FrameworkID{Value: fw.id}, HeartbeatIntervalSeconds: &hb, MasterInfo: &info}})
		for _, ev := range rescinds {
			s.send(ev)
		}
		m.resumeUpdatesLocked(fw)
		log = log.WithFields(logrus.Fields{"framework": fw.id, "name": fi.Name, "stream": streamID})
	}
	m.mu.Unlock()

	w.Header().Set("Content-Type", ctype)
	if msgType != "" {
		w.Header().Set("Message-Content-Type", msgType)
	}
	if s == nil {
		log.WithField("reason", refusal).Info("subscription refused")
		s = newStream("", codec, nil)
		s.close(errorEvent(refusal))
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		m.serveStream(w, r, s, log)
		return
	}
	w.Header().Set(streamIDHeader, streamID)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	log.Info("framework subscribed")
	m.kickAllocator()
	m.serveStream(w, r, s, log)
}

// resumeUpdatesLocked re-sends, now, the oldest unacknowledged update of
// each of fw's tasks, its retry back at the shortest interval. Mesos does
// this when a framework fails over: the master sends UpdateFrameworkMessage
// to the agents and each agent's Slave::updateFramework resumes its status
// update manager ("immediately resend any pending updates"). Without it a
// new leader waits for each agent's retry, 10 s doubling per attempt: in
// make chaos an update held through three leader changes reached the
// fourth 38 s after it subscribed, and a roll ended only then.
func (m *Master) resumeUpdatesLocked(fw *framework) {
	for _, t := range fw.tasks {
		a := t.agent
		if a == nil || a.state != agentActive {
			continue
		}
		if q := a.pending[t.id]; q != nil && len(q.items) > 0 {
			q.attempts = 0
			m.sendUpdateLocked(a, t, q)
		}
	}
}

// streamGone marks the stream's framework disconnected: its offers go back
// and its failover timeout starts.
func (m *Master) streamGone(s *stream, reason string) {
	s.close(nil)
	if s.fw == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fw := s.fw
	if fw.stream != s || m.closed {
		return
	}
	m.log.WithFields(logrus.Fields{"framework": fw.id, "reason": reason}).Info("framework disconnected")
	m.disconnectLocked(fw)
}

func (m *Master) disconnectLocked(fw *framework) {
	fw.stream = nil
	for _, o := range fw.offers {
		m.removeOffer(o)
	}
	fw.stopFailoverTimer()
	secs := fw.info.GetFailoverTimeout()
	if secs > maxFailoverSeconds {
		secs = maxFailoverSeconds // beyond this time.Duration overflows
	}
	timeout := time.Duration(secs * float64(time.Second))
	if timeout <= 0 {
		m.removeFrameworkLocked(fw, "failover timeout 0 expired")
		return
	}
	fw.failoverGen++
	gen := fw.failoverGen
	cancel := make(chan struct{})
	fw.cancelFailover = cancel
	t := m.clock.NewTimer(timeout)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer t.Stop()
		select {
		case <-t.C():
			m.mu.Lock()
			if fw.failoverGen == gen && fw.stream == nil && !fw.removed {
				m.removeFrameworkLocked(fw, "failover timeout expired")
			}
			m.mu.Unlock()
		case <-cancel:
		case <-m.ctx.Done():
		}
	}()
	m.kickAllocator()
}

// removeFrameworkLocked forgets the framework and kills its tasks; their
// resources return when the executor reports them gone.
func (m *Master) removeFrameworkLocked(fw *framework, reason string) {
	if fw.removed {
		return
	}
	m.log.WithFields(logrus.Fields{"framework": fw.id, "reason": reason, "tasks": len(fw.tasks)}).Info("framework removed")
	fw.removed = true
	fw.stopFailoverTimer()
	delete(m.frameworks, fw.id)
	m.removedFws[fw.id] = true
	for _, o := range fw.offers {
		m.removeOffer(o)
	}
	if fw.stream != nil {
		fw.stream.close(nil)
		fw.stream = nil
	}
	for _, t := range fw.tasks {
		if t.agent.pending != nil {
			delete(t.agent.pending, t.id)
		}
		if isTerminal(t.agentState) {
			m.finishTaskLocked(t)
			continue
		}
		m.killLocked(t, 0)
	}
	m.kickAllocator()
}

func (m *Master) removeOffer(o *offer) {
	delete(m.offers, o.id)
	delete(o.fw.offers, o.id)
	if o.agent.offer == o {
		o.agent.offer = nil
	}
}

// dispatch runs every call but SUBSCRIBE; it answers 202 (200 for
// UPDATE_FRAMEWORK) or a callError.
func (m *Master) dispatch(r *http.Request, call *scheduler.Call, log *logrus.Entry) (int, *callError) {
	if call.Type == scheduler.Call_ACKNOWLEDGE {
		return m.acknowledge(r, call)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fw, cerr := m.checkFramework(r, call)
	m.countCallLocked(r.Header.Get(streamIDHeader), call.Type, cerr != nil)
	if cerr != nil {
		return 0, cerr
	}
	switch call.Type {
	case scheduler.Call_TEARDOWN:
		m.removeFrameworkLocked(fw, "teardown")
	case scheduler.Call_ACCEPT:
		m.acceptLocked(fw, call.Accept, log)
	case scheduler.Call_DECLINE:
		m.declineLocked(fw, call.Decline.OfferIDs, call.Decline.Filters)
	case scheduler.Call_REVIVE:
		m.reviveLocked(fw, call.Revive.GetRoles())
	case scheduler.Call_SUPPRESS:
		roles := call.Suppress.GetRoles()
		if len(roles) == 0 {
			roles = fw.roles()
		}
		for _, role := range roles {
			fw.suppressed[role] = true
		}
	case scheduler.Call_KILL:
		m.killCallLocked(fw, call.Kill)
	case scheduler.Call_SHUTDOWN:
		if a := m.agents[call.Shutdown.AgentID.Value]; a != nil {
			for _, t := range a.tasks {
				if t.fw == fw && t.executorID == call.Shutdown.ExecutorID.Value {
					m.killLocked(t, 0)
				}
			}
		}
	case scheduler.Call_RECONCILE:
		m.reconcileLocked(fw, call.Reconcile.Tasks)
	case scheduler.Call_RECONCILE_OPERATIONS:
		// No operation ever gets an id here, so every operation asked for
		// is unknown, as Mesos answers for operations it does not know.
		for _, op := range call.ReconcileOperations.Operations {
			id := op.OperationID
			fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE_OPERATION_STATUS, UpdateOperationStatus: &scheduler.Event_UpdateOperationStatus{
				Status: mesos.OperationStatus{OperationID: &id, State: mesos.OPERATION_UNKNOWN, AgentID: op.AgentID}}})
		}
	case scheduler.Call_UPDATE_FRAMEWORK:
		fi := call.UpdateFramework.FrameworkInfo
		if err := validateRoles(&fi); err != nil {
			return 0, badRequest("Invalid FrameworkInfo: %v", err)
		}
		fw.info = fi
		fw.partitionAware = hasCapability(&fi, mesos.FrameworkInfo_Capability_PARTITION_AWARE)
		fw.suppressed = map[string]bool{}
		for _, role := range call.UpdateFramework.SuppressedRoles {
			fw.suppressed[role] = true
		}
		m.kickAllocator()
		return http.StatusOK, nil
	case scheduler.Call_MESSAGE, scheduler.Call_REQUEST, scheduler.Call_ACCEPT_INVERSE_OFFERS,
		scheduler.Call_DECLINE_INVERSE_OFFERS, scheduler.Call_ACKNOWLEDGE_OPERATION_STATUS:
		// Accepted and dropped: no custom executors, no allocator
		// requests, no maintenance windows, no offer operations with ids.
	}
	return http.StatusAccepted, nil
}

// checkFramework applies Mesos's checks for non-SUBSCRIBE calls: known
// framework (400), subscribed (403), stream id present and matching (400).
func (m *Master) checkFramework(r *http.Request, call *scheduler.Call) (*framework, *callError) {
	fw := m.frameworks[call.FrameworkID.Value]
	if fw == nil {
		return nil, badRequest("Framework cannot be found")
	}
	if fw.stream == nil {
		return nil, &callError{http.StatusForbidden, "Framework is not subscribed"}
	}
	sid := r.Header.Get(streamIDHeader)
	if sid == "" {
		return nil, badRequest("All non-subscribe calls should include the 'Mesos-Stream-Id' header")
	}
	if sid != fw.stream.id {
		return nil, badRequest("The stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s", sid, fw.id)
	}
	return fw, nil
}

func (m *Master) declineLocked(fw *framework, ids []mesos.OfferID, f *mesos.Filters) {
	for _, id := range ids {
		o := m.offers[id.Value]
		if o == nil || o.fw != fw {
			continue
		}
		m.removeOffer(o)
		m.addFilterLocked(fw, o.agent, o.res, f)
	}
	m.kickAllocator()
}

func (m *Master) addFilterLocked(fw *framework, a *agent, res rset, f *mesos.Filters) {
	secs := f.GetRefuseSeconds()
	if secs <= 0 || secs != secs || res.empty() {
		return
	}
	if secs > 365*24*3600 {
		secs = 365 * 24 * 3600
	}
	fw.filters[a.id] = filter{until: m.now().Add(time.Duration(secs * float64(time.Second))), res: res}
}

func (m *Master) reviveLocked(fw *framework, roles []string) {
	if len(roles) == 0 {
		fw.suppressed = map[string]bool{}
	}
	for _, role := range roles {
		delete(fw.suppressed, role)
	}
	// Filters are per agent here, not per role: a revive clears them all.
	fw.filters = map[string]filter{}
	m.kickAllocator()
}

// masterStatus builds an update generated by the master: source MASTER and
// no uuid, so it is never acknowledged.
func (m *Master) masterStatus(fw *framework, taskID, agentID string, state mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) mesos.TaskStatus {
	st := mesos.TaskStatus{
		TaskID:    mesos.TaskID{Value: taskID},
		State:     forFramework(state, fw.partitionAware).Enum(),
		Source:    mesos.SOURCE_MASTER.Enum(),
		Reason:    reason.Enum(),
		Timestamp: m.timestamp(),
	}
	if msg != "" {
		st.Message = strPtr(msg)
	}
	if agentID != "" {
		st.AgentID = &mesos.AgentID{Value: agentID}
	}
	return st
}

func (m *Master) killCallLocked(fw *framework, k *scheduler.Call_Kill) {
	t := fw.tasks[k.TaskID.Value]
	if t == nil {
		// Mesos answers a kill of an unknown task with an explicit
		// reconciliation of that task.
		m.reconcileLocked(fw, []scheduler.Call_Reconcile_Task{{TaskID: k.TaskID, AgentID: k.AgentID}})
		return
	}
	grace := defaultKillGrace
	if t.info.KillPolicy != nil && t.info.KillPolicy.GracePeriod != nil {
		grace = time.Duration(t.info.KillPolicy.GracePeriod.Nanoseconds)
	}
	if k.KillPolicy != nil && k.KillPolicy.GracePeriod != nil {
		grace = time.Duration(k.KillPolicy.GracePeriod.Nanoseconds)
	}
	if grace < 0 {
		grace = 0
	}
	if t.agent.state != agentActive {
		m.log.WithFields(logrus.Fields{"framework": fw.id, "task": t.id, "agent": t.agent.id}).Warn("cannot kill a task on an unreachable agent")
		return
	}
	m.killLocked(t, grace)
}

// killLocked asks the task's executor to kill it, outside the lock. A task
// whose launch has not returned yet is killed as soon as it has.
func (m *Master) killLocked(t *task, grace time.Duration) {
	if isTerminal(t.agentState) {
		return
	}
	if !t.launched {
		t.killPend = &grace
		return
	}
	if t.killing {
		return
	}
	t.killing = true
	ex, id := t.agent.exec, t.id
	log := m.log.WithFields(logrus.Fields{"task": t.id, "agent": t.agent.id})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := ex.Kill(m.ctx, id, grace); err != nil {
			log.WithError(err).Warn("kill failed")
			m.mu.Lock()
			t.killing = false
			m.mu.Unlock()
		}
	}()
}

// reconcileLocked answers RECONCILE exactly as MESOS.md lists it.
func (m *Master) reconcileLocked(fw *framework, tasks []scheduler.Call_Reconcile_Task) {
	reply := func(t *task, taskID, agentID string, state mesos.TaskState) {
		st := m.masterStatus(fw, taskID, agentID, state, mesos.REASON_RECONCILIATION, "Reconciliation: Latest task state")
		if t != nil {
			if t.executorID != "" {
				st.ExecutorID = &mesos.ExecutorID{Value: t.executorID}
			}
			if t.latest != nil {
				st.Healthy = t.latest.Healthy
				st.ContainerStatus = t.latest.ContainerStatus
			}
		} else {
			st.Message = strPtr("Reconciliation: Task is unknown")
		}
		fw.send(updateEvent(st))
	}
	if len(tasks) == 0 {
		ids := make([]string, 0, len(fw.tasks))
		for id := range fw.tasks {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			t := fw.tasks[id]
			reply(t, t.id, t.agent.id, t.state)
		}
		return
	}
	for _, rt := range tasks {
		agentID := ""
		if rt.AgentID != nil {
			agentID = rt.AgentID.Value
		}
		if t := fw.tasks[rt.TaskID.Value]; t != nil {
			reply(t, t.id, t.agent.id, t.state)
			continue
		}
		var state mesos.TaskState
		switch a := m.agents[agentID]; {
		case agentID != "" && a != nil && a.state == agentActive:
			state = mesos.TASK_GONE
		case agentID != "" && a != nil && a.state == agentUnreachable:
			state = mesos.TASK_UNREACHABLE
		case agentID != "" && m.goneAgents[agentID]:
			state = mesos.TASK_GONE_BY_OPERATOR
		default:
			state = mesos.TASK_UNKNOWN
		}
		reply(nil, rt.TaskID.Value, agentID, state)
	}
}

// countCallLocked counts a call by the stream id it carried (calls
// without one are not counted: they name no stream).
func (m *Master) countCallLocked(sid string, ty scheduler.Call_Type, refused bool) {
	if sid == "" {
		return
	}
	c := m.calls[sid]
	if c == nil {
		c = map[string]int{}
		m.calls[sid] = c
	}
	k := ty.String()
	if refused {
		k += " refused"
	}
	c[k]++
}

// StreamCalls returns the scheduler calls counted per Mesos-Stream-Id and
// type (ACKNOWLEDGE excepted), refused ones as "TYPE refused", and each
// subscribed framework's current stream id: a test checks with it that a
// framework's old stream (a leader fenced and woken) sent nothing, or that
// what it sent was refused.
func (m *Master) StreamCalls() (calls map[string]map[string]int, current map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	calls = make(map[string]map[string]int, len(m.calls))
	for sid, c := range m.calls {
		cp := make(map[string]int, len(c))
		for k, v := range c {
			cp[k] = v
		}
		calls[sid] = cp
	}
	current = map[string]string{}
	for id, fw := range m.frameworks {
		if fw.stream != nil {
			current[id] = fw.stream.id
		}
	}
	return calls, current
}
