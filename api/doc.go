// Package api is Flotilla's HTTP API: Marathon's v2 REST API (apps, tasks,
// deployments, queue, info, leader, events) plus /ping and /metrics, so
// Marathon clients and tools work against Flotilla unchanged. It owns the
// Marathon JSON shapes of responses, turns appspec's validation into
// Marathon's {"message","details":[{"path","errors"}]} errors, persists
// every accepted change in the store before handing it to the scheduler,
// and tracks each change as a deployment with a progress deadline and an
// automatic rollback. It never touches Mesos: it talks to the scheduler
// through the small Scheduler interface and reads its snapshots.
//
//	srv, err := api.New(api.Config{Scheduler: sched, Store: st, Registry: reg, Leadership: replica})
//	if err := srv.Restore(ctx); err != nil { … } // on gaining leadership: apps back from the store
//	go srv.Run(ctx)                              // deployments and the event stream, while leading
//	srv.HTTPServer().Serve(srv.Listener(ln))    // with Config.ClientLimits: timeouts, header size, connection caps
//
// Reads (GET /v2/apps with 10,000 apps) are served from memory: the app
// specs the API last wrote, with their JSON pre-rendered per version, and
// the scheduler's immutable snapshot for tasks. The store is read only by
// Restore and the versions endpoints. Writes are serialised by one mutex:
// validate, check the app's deployment lock, compare-and-set in the store,
// then tell the scheduler; a failed step leaves nothing half-written.
//
// Deployments (deployments.go) are driven by Run from scheduler events and
// the injected clock: one per app at a time, done when every instance of
// the target config runs (and is healthy where checked), failed past the
// app's progressDeadlineSeconds (Config.ProgressDeadline by default), in
// which case the previous version is restored as a rollback deployment.
// Server.Scale is the same scale path for in-process callers (autoscale).
//
// Every endpoint is one entry of the route table (table.go), marked open
// (served without credentials: /ping only) and local (served by a standby
// itself: /ping, /metrics, GET /v2/leader, the Mounts such as Mesos-DNS's
// /v1/); the credentials check wraps the whole table, so no route can slip
// past it. On a standby (Leadership.IsLeader false) every other request is
// proxied to the leader.
//
// ClientLimits (clients.go) keep slow and abusive clients from starving
// the others: header, body and idle timeouts, a header size (431), caps on
// connections in total (503) and per client address (429), refused at once
// by internal/connlimit, and a cap on /v2/events clients (503).
package api
