// Package api is Flotilla's HTTP API: Marathon's v2 REST API (apps, tasks,
// deployments, queue, info, leader, events) plus /ping and /metrics, so
// Marathon clients and tools work against Flotilla unchanged. It is HTTP
// only: it owns the Marathon JSON shapes of responses, turns appspec's
// validation into Marathon's {"message","details":[{"path","errors"}]}
// errors, checks secret references, and hands every accepted change to
// package deploy, which decides what it means (start, scale, restart,
// stop), stores it, tells the scheduler and tracks the deployment. The API
// never touches Mesos: it reads the scheduler's snapshots and asks it for
// one thing only, killing tasks to be replaced.
//
//	dep, err := deploy.New(deploy.Config{Store: st, Scheduler: sched, Registry: reg})
//	srv, err := api.New(api.Config{Scheduler: sched, Store: st, Deploy: dep, Registry: reg, Leadership: replica})
//	if err := dep.Restore(ctx); err != nil { … } // on gaining leadership: apps back from the store
//	go dep.Run(ctx)                              // deployments, while leading
//	go srv.Run(ctx)                              // the event stream, while leading
//	srv.HTTPServer().Serve(srv.Listener(ln))    // with Config.ClientLimits: timeouts, header size, connection caps
//
// Reads (GET /v2/apps with 10,000 apps) are served from memory: deploy's
// records, with their JSON pre-rendered per version, and the scheduler's
// immutable snapshot for tasks. The store is read here only by the
// versions endpoints. The large answers (GET /v2/apps, GET /v2/groups
// with tasks: 76 MiB for 100,000 tasks) are written from kept bytes
// (fragments.go; chunks.go: apps joined 64 at a time, which the group tree
// of grouptree.go and the unfiltered app list share) with their length
// known, as one
// net.Buffers that net/http hands to the socket as writev (pieces.go;
// internal/connlimit's connections keep the socket's ReadFrom for it).
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
