package localmesos

import (
	"encoding/json"
	"net/http"
	"sort"
)

// handleState serves GET /master/state in Mesos's shape (the fields
// Mesos-DNS and operators read). Task commands and environments are left
// out, as Mesos leaves them out, so SECRET values can never appear.
func (m *Master) handleState(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "Expecting one of { 'GET' }", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	st := m.stateLocked()
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (m *Master) stateLocked() map[string]any {
	taskJSON := func(t *task) map[string]any {
		statuses := make([]map[string]any, 0, len(t.statuses))
		for _, s := range t.statuses {
			e := map[string]any{"state": s.State.String(), "timestamp": s.GetTimestamp()}
			if s.Healthy != nil {
				e["healthy"] = *s.Healthy
			}
			statuses = append(statuses, e)
		}
		out := map[string]any{
			"id":           t.id,
			"name":         t.info.Name,
			"framework_id": t.fw.id,
			"executor_id":  "",
			"slave_id":     t.agent.id,
			"agent_id":     t.agent.id,
			"state":        t.state.String(),
			"resources":    t.res.stateJSON(),
			"statuses":     statuses,
		}
		if t.executorID != t.id {
			out["executor_id"] = t.executorID
		}
		if t.info.Labels != nil {
			out["labels"] = rawOrNil(t.info.Labels.MarshalJSON())
		}
		if t.info.Discovery != nil {
			out["discovery"] = rawOrNil(t.info.Discovery.MarshalJSON())
		}
		if c := t.info.Container; c != nil {
			cj := map[string]any{"type": c.GetType().String()}
			if d := c.Docker; d != nil {
				cj["docker"] = map[string]any{"image": d.Image, "network": d.GetNetwork().String(), "force_pull_image": d.GetForcePullImage()}
			}
			out["container"] = cj
		}
		if t.latest != nil && t.latest.Healthy != nil {
			out["healthy"] = *t.latest.Healthy
		}
		return out
	}
	fwIDs := make([]string, 0, len(m.frameworks))
	for id := range m.frameworks {
		fwIDs = append(fwIDs, id)
	}
	sort.Strings(fwIDs)
	completedByFw := map[string][]map[string]any{}
	for _, t := range m.completed {
		completedByFw[t.fw.id] = append(completedByFw[t.fw.id], taskJSON(t))
	}
	frameworks := make([]map[string]any, 0, len(fwIDs))
	for _, id := range fwIDs {
		f := m.frameworks[id]
		taskIDs := make([]string, 0, len(f.tasks))
		for tid := range f.tasks {
			taskIDs = append(taskIDs, tid)
		}
		sort.Strings(taskIDs)
		tasks := make([]map[string]any, 0, len(taskIDs))
		var unreachable []map[string]any
		for _, tid := range taskIDs {
			t := f.tasks[tid]
			if t.agent.state == agentUnreachable {
				unreachable = append(unreachable, taskJSON(t))
				continue
			}
			tasks = append(tasks, taskJSON(t))
		}
		offers := make([]map[string]any, 0, len(f.offers))
		for _, o := range f.offers {
			offers = append(offers, map[string]any{"id": o.id, "slave_id": o.agent.id, "resources": o.res.stateJSON()})
		}
		caps := make([]string, 0, len(f.info.Capabilities))
		for _, c := range f.info.Capabilities {
			caps = append(caps, c.Type.String())
		}
		frameworks = append(frameworks, map[string]any{
			"id":                f.id,
			"name":              f.info.Name,
			"user":              f.info.User,
			"hostname":          f.info.GetHostname(),
			"role":              f.roles()[0],
			"roles":             f.roles(),
			"capabilities":      caps,
			"failover_timeout":  f.info.GetFailoverTimeout(),
			"active":            f.stream != nil,
			"connected":         f.stream != nil,
			"registered_time":   float64(f.registeredAt.UnixNano()) / 1e9,
			"tasks":             tasks,
			"unreachable_tasks": unreachable,
			"completed_tasks":   completedByFw[id],
			"offers":            offers,
		})
	}
	agents := make([]map[string]any, 0, len(m.agentList))
	for _, a := range m.agentList {
		if a.state == agentGone {
			continue
		}
		used := a.total.clone()
		used.sub(a.free)
		attrs := map[string]any{}
		for _, at := range a.attrs {
			attrs[at.Name] = at.GetText().GetValue()
		}
		e := map[string]any{
			"id":                      a.id,
			"hostname":                a.hostname,
			"pid":                     "slave(1)@127.0.0.1:0",
			"active":                  a.state == agentActive,
			"resources":               a.total.stateJSON(),
			"unreserved_resources":    a.total.forRole("*").stateJSON(),
			"reserved_resources":      reservedJSON(a.total),
			"reserved_resources_full": reservedFull(a.total),
			"used_resources":          used.stateJSON(),
			"attributes":              attrs,
			"version":                 Version,
		}
		if a.ln != nil {
			e["pid"] = "slave(1)@" + a.ln.Addr().String()
		}
		agents = append(agents, e)
	}
	info := m.info
	leaderInfo := rawOrNil(info.MarshalJSON())
	leader := info.GetPID()
	if !m.leader.self {
		leader = ""
		if m.leader.known {
			leader = "master@" + m.leader.addr
		}
	}
	return map[string]any{
		"version":              Version,
		"id":                   m.id,
		"pid":                  info.GetPID(),
		"hostname":             info.GetHostname(),
		"leader":               leader,
		"leader_info":          leaderInfo,
		"elected_time":         0,
		"activated_slaves":     countActive(m.agentList),
		"frameworks":           frameworks,
		"completed_frameworks": []any{},
		"slaves":               agents,
	}
}

func countActive(as []*agent) int {
	n := 0
	for _, a := range as {
		if a.state == agentActive {
			n++
		}
	}
	return n
}

func rawOrNil(b []byte, err error) json.RawMessage {
	if err != nil {
		return nil
	}
	return json.RawMessage(b)
}
