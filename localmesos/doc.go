// Package localmesos is a Mesos-compatible master with in-process agents, for
// tests and `flotilla dev`. It speaks the v1 scheduler HTTP API exactly as
// /work/shared/MESOS.md describes it (JSON and protobuf, RecordIO SUBSCRIBE
// streams, status codes, offers, filters, reliable status updates,
// reconciliation), registers in ZooKeeper like a Mesos master, serves each
// agent's /monitor/statistics, and injects faults (agent removed or
// unreachable, master failover, lost or delayed updates and acknowledgements,
// rescinded offers). It must never be used by production code paths.
//
// Tasks run through package localmesos/executor: one Executor per agent,
// made by Config.Executor.
//
//	m, err := localmesos.Start(ctx, localmesos.Config{
//		Listen:   "127.0.0.1:0",
//		Agents:   3,
//		Executor: func(agentID string) (executor.Executor, error) { return executor.NewProcess(cfg) },
//	})
//	if err != nil { ... }
//	defer m.Close()
//	// point mesos-go's httpcli at m.SchedulerURL()
//
// Faults, for tests (each also an HTTP admin endpoint under /admin/, see
// admin.go):
//
//	m.RemoveAgent(id)                 // FAILURE event; tasks GONE_BY_OPERATOR / LOST
//	m.SetAgentReachable(id, false)    // FAILURE; tasks UNREACHABLE / LOST
//	m.SetAgentReachable(id, true)     // agent re-registers; pending updates resent
//	m.Failover(ctx)                   // streams dropped, tasks kept, new master id
//	m.SetFaults(localmesos.Faults{DropUpdates: 1, DelayAcks: time.Second})
//	m.RescindOffer(offerID)
//
// Concurrency: one mutex guards the master's state and is never held across
// I/O; each subscribed framework has one writer goroutine (its HTTP handler)
// that encodes and writes queued events in batches; executors run outside
// the lock.
package localmesos
