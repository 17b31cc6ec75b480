package appspec

// RunByMesos reports whether Mesos runs the check beside the task (COMMAND
// and the MESOS_* protocols) rather than the scheduler: Marathon runs HTTP,
// HTTPS and TCP checks itself, from the leader, against the task's host
// port (package health does so for Flotilla).
func (h HealthCheck) RunByMesos() bool {
	switch h.Protocol {
	case "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP":
		return true
	}
	return false
}

// MesosHealthCheck is the index in HealthChecks of the check Mesos runs
// (the task's one TaskInfo.health_check), or -1 when every check is run by
// the scheduler. Validation allows at most one.
func (a *App) MesosHealthCheck() int {
	for i, h := range a.HealthChecks {
		if h.RunByMesos() {
			return i
		}
	}
	return -1
}
