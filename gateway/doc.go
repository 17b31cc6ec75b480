// Package gateway is Flotilla's built-in L7 reverse proxy. It owns the two
// listeners, the route tables and the per-app request metrics, and it draws
// the line between what is reachable from outside and what only inside:
//
//   - the internal listener routes every app, by its DNS name (Host header)
//     and by its vhosts and path prefixes;
//   - the external listener routes only apps whose exposure is external, by
//     vhost and optional path prefix (longest prefix wins). An internal app
//     is simply absent from its table, so asking for one there gets the very
//     same 404 as a host that does not exist.
//
// Routes come from the caller, not from task events, so the framework's
// event types can change without touching routing. BuildRoutes is pure and
// turns []App into an immutable Table; an app that cannot be routed is
// skipped and reported and never blocks the others (Traefik's rule, not
// marathon-lb's "one bad label halts every update"). Update swaps the new
// table in atomically. A request holds the table and backends it started
// with, so an update never drops a request in flight.
//
//	gw, err := gateway.New(gateway.Config{Log: log, Registerer: reg})
//	if err != nil { … }
//	if err := gw.Start(); err != nil { … }    // 127.0.0.1:8000 external, :8001 internal
//	defer gw.Shutdown(ctx)
//	// on every task change, with running, healthy, ready tasks only:
//	gw.Update([]gateway.App{{
//		ID: "/prod/shop/web", DNSName: "web-shop-prod.flotilla.mesos",
//		Exposure: app.EffectiveExposure(),
//		Backends: []gateway.Backend{{TaskID: "web.1", Host: "agent-7.example", Port: 31005}},
//	}})
//	rps := gw.RequestRate("/prod/shop/web")   // task ID → requests/s, for the autoscaler
//
// Balancing is round robin or least connections over backends in rotation.
// A backend that refuses a connection is ejected for Config.EjectFor
// (passive health, timed on the injected clock) and an idempotent request
// without a body (GET, HEAD, OPTIONS, PUT, DELETE) is retried on another
// backend, up to Config.MaxAttempts. An app with no backend in rotation gets
// 503 naming the app. Dialling and waiting for response headers have
// deadlines; bodies stream without one, so downloads and WebSockets
// (passed through by net/http/httputil) are not cut. Connections to
// backends are kept alive: GET and HEAD without a body go over the
// gateway's own pooled connections on the handler's goroutine (lean.go,
// about a quarter less CPU per request than http.Transport on small
// responses), all other requests over one shared http.Transport.
//
// Backends see the client's Host header and X-Forwarded-For/Proto/Host.
// The external listener starts X-Forwarded-For afresh (a client could
// forge it); the internal one appends to the chain it was given.
package gateway
