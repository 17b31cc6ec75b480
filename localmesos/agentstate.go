package localmesos

import (
	"net/http"
	"path/filepath"
	"sort"
)

// handleAgentState answers the agent's GET /state (also /state.json and
// /slave(1)/state) with the part of a Mesos agent's state that localmesos
// keeps: its resources split as the master shows them — reserved ones per
// role, and reserved_resources_full with each reservation's principal and
// labels and each persistent volume — and its frameworks' executors with
// their sandbox directory and live tasks. No flags: the agents share one
// host, so an agent's sandboxes and volumes are under
// <work>/slaves/<agent id>, not a work_dir of its own.
func (a *agent) handleAgentState(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "Expecting one of { 'GET' }", http.StatusMethodNotAllowed)
		return
	}
	m := a.m
	m.mu.Lock()
	st := a.stateLocked()
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (a *agent) stateLocked() map[string]any {
	type execKey struct{ fw, exec string }
	execs := map[execKey][]string{}
	for _, t := range a.tasks {
		k := execKey{t.fw.id, t.executorID}
		execs[k] = append(execs[k], t.id)
	}
	keys := make([]execKey, 0, len(execs))
	for k := range execs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].fw != keys[j].fw {
			return keys[i].fw < keys[j].fw
		}
		return keys[i].exec < keys[j].exec
	})
	byFw := map[string][]map[string]any{}
	var fwIDs []string
	for _, k := range keys {
		tasks := execs[k]
		sort.Strings(tasks)
		dir := ""
		if a.workDir != "" {
			dir = filepath.Join(a.workDir, "frameworks", k.fw, "executors", k.exec, "runs", "latest")
		}
		if _, ok := byFw[k.fw]; !ok {
			fwIDs = append(fwIDs, k.fw)
		}
		byFw[k.fw] = append(byFw[k.fw], map[string]any{"id": k.exec, "framework_id": k.fw, "directory": dir, "tasks": tasks})
	}
	frameworks := make([]map[string]any, 0, len(fwIDs))
	for _, id := range fwIDs {
		frameworks = append(frameworks, map[string]any{"id": id, "executors": byFw[id]})
	}
	return map[string]any{
		"id":                      a.id,
		"hostname":                a.hostname,
		"version":                 Version,
		"resources":               a.total.stateJSON(),
		"unreserved_resources":    a.total.forRole("*").stateJSON(),
		"reserved_resources":      reservedJSON(a.total),
		"reserved_resources_full": reservedFull(a.total),
		"frameworks":              frameworks,
	}
}
