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
//		Executor: func(agentID string) (executor.Executor, error) {
//			return executor.NewProcess(executor.ProcessConfig{}), nil
//		},
//	})
//	if err != nil { ... }
//	defer m.Close()
//	// point mesos-go's httpcli at m.SchedulerURL()
//
// Faults, for tests (each also an HTTP admin endpoint, POST):
//
//	m.RemoveAgent(id)                 // /admin/agents/{id}/remove: FAILURE; tasks GONE_BY_OPERATOR / LOST
//	m.SetAgentReachable(id, false)    // /admin/agents/{id}/unreachable: FAILURE; tasks UNREACHABLE / LOST
//	m.SetAgentReachable(id, true)     // /admin/agents/{id}/reachable: queued updates resent
//	m.Failover(ctx)                   // /admin/failover: streams dropped, tasks kept, new master id
//	m.SetFaults(localmesos.Faults{DropUpdates: 1, DelayAcks: time.Second}) // /admin/faults
//	m.RescindOffer(offerID)           // /admin/offers/{id}/rescind
//
// Endpoints: POST /api/v1/scheduler, GET /master/state (also /state and
// /master/state.json), /health, /version; each agent serves
// GET /monitor/statistics and Mesos's /files/{browse,read,download} on its
// own 127.0.0.1 listener (the offer's url).
//
// Sandboxes: each task runs in <work>/slaves/<agent>/frameworks/<fw>/
// executors/<task>/runs/latest, its stdout and stderr files written by the
// executor (docker: the container's output followed live). /files serves
// them under that real path and Mesos's virtual path
// /frameworks/<fw>/executors/<task>/runs/latest, refusing any path that
// resolves outside (files.go). Finished tasks' sandboxes stay until they
// are older than Config.SandboxMaxAge or the agent's finished sandboxes
// pass Config.SandboxMaxBytes, as the agent's GC keeps them for
// --gc_delay.
// Reservations: RESERVE, UNRESERVE, CREATE and DESTROY in an ACCEPT work
// as on a Mesos agent without RESERVATION_REFINEMENT (operations.go,
// reservations.go); a persistent volume is the directory
// <agent work dir>/volumes/roles/<role>/<id>, given to the tasks that use
// it at their container path, kept until DESTROY.
//
// localmesos/CONFORMANCE.md maps every rule of MESOS.md to its test.
//
// Docker networking: the engine on these machines runs without a bridge and
// nothing may reach private-range addresses, yet frameworks send Marathon's
// BRIDGE and USER apps with port mappings. So those containers get a
// network namespace of their own (Docker network none) and the agent
// forwards their mapped host ports into it (internal/portfwd), which keeps
// the shape a framework sees — reachable on the offer's host port, the app
// on its container port, health checks on the container port inside the
// namespace — with loopback and link-local traffic only. By default the
// kernel forwards (a veth pair per task addressed from 169.254.64.0/18 and
// an nftables DNAT table, as Docker with --userland-proxy=false) wherever
// it can be set up, else the agent's user-space forwarder does; the docker
// executor's Forwarding setting (cmd/localmesos --port-forwarding
// auto|kernel|userland) chooses. USER networks are names the agents are
// configured with (Config.Networks), since there is no CNI.
//
// Concurrency: one mutex guards the master's state and is never held across
// I/O. Executors report through a queue that the master drains in batches
// under one lock acquisition, so thousands of launch goroutines never
// convoy on the lock. Each subscribed framework has one writer goroutine
// (its SUBSCRIBE handler) that encodes and writes queued events in batches.
// Time comes only from Config.Clock (heartbeats, filters, failover
// timeouts, update retries), ids and uuids from a seeded source.
package localmesos
