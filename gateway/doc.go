// Package gateway is Flotilla's built-in L7 reverse proxy. It owns the two
// listeners, the route tables and the per-app request metrics, and it draws
// the line between what is reachable from outside and what only inside:
//
//   - the internal listener routes every app, by its DNS name (Host header)
//     and by its vhosts and path prefixes;
//   - the external listener routes only apps whose exposure is external, by
//     vhost and optional path prefix (longest prefix wins). An internal app
//     is simply absent from its table, so asking for one there gets the very
//     same 404 as a host that does not exist;
//   - each app port with a service port (App.Services, marathon-lb's
//     frontends) gets a listener of its own on the internal listener's
//     host, and on the external one's for external ports (once when both
//     share an address): TCP mode splices bytes to a backend (tcp.go), HTTP
//     mode is the proxy below with the port's Options (services.go).
//     Listeners open and close with the route table; one that cannot be
//     bound is retried every Config.BindRetry and stops nothing else.
//
// An empty Config.ExternalAddr or InternalAddr opens no such listener.
// Per port, Options carry marathon-lb's balancing (round robin, least
// connections, source), stickiness (a cookie in HTTP, the client address
// in TCP), HTTPS redirect, HSTS and route weight.
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
//	if err := gw.Start(); err != nil { … }    // the listeners of Config's non-empty addresses
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
// 503 naming the app; a backend that fails gets 502, one that does not
// answer within Config.ResponseHeaderTimeout 504.
//
// Path prefixes match the path as fasthttp normalises it (percent-decoded,
// dot segments and doubled slashes resolved), so "/a/../b" is routed as
// "/b"; the backend still gets the path exactly as the client sent it.
//
// Backends see the client's Host header and X-Forwarded-For/Proto/Host.
// The external listener starts X-Forwarded-For afresh (a client could
// forge it); the internal one appends to the chain it was given.
//
// # Serving and proxying
//
// Both listeners are github.com/valyala/fasthttp servers, the well-kept
// HTTP/1.1 server and client library built to allocate nothing per
// request. net/http's server side alone cost about as much CPU per request
// as nginx spends on the whole proxying (bench/RESULTS.md, ## gateway);
// with fasthttp the common request, GET or HEAD without a body, allocates
// nothing in the gateway (BenchmarkProxy). The price: HTTP/2 takes a
// path of its own (below), request headers up to Config.MaxHeaderBytes,
// 16 KiB by default (431 beyond; nginx allows 32 KiB, net/http allowed
// 1 MiB), and interim 1xx answers such as
// 103 Early Hints are dropped, since fasthttp cannot send them ahead of
// the real answer.
//
// HTTP/2 (h2.go): fasthttp speaks HTTP/1.1 only, so a connection that
// opens with the HTTP/2 preface — h2c with prior knowledge on either
// listener, or h2 negotiated by ALPN on the TLS one — is recognised on
// fasthttp's first read of it (by ALPN on TLS, by its preface in h2c)
// and handed to net/http's own HTTP/2 server (Go's bundled copy of
// golang.org/x/net/http2, whose standalone server API is deprecated in
// its favour), on a listener of its own that only those connections
// reach. Each stream becomes a fasthttp.RequestCtx (its header block
// written out as HTTP/1.1 and parsed by fasthttp) and goes through the
// same serve as an HTTP/1.1 request: the same tables, exposure rules,
// X-Forwarded-* rewrites, balancing, metrics and backend pool (backends
// are always spoken to in HTTP/1.1). A separate net/http server with its
// own proxy would have doubled all of that; a fasthttp HTTP/2 server
// (there is no well-kept one) would have replaced the HTTP/1.1 path that
// the benchmarks measure. A stream reset by the client ends the backend
// request as a closed connection does (499). Not offered over HTTP/2:
// h2c by Upgrade (dropped by RFC 9113; such a request goes to the
// backend like any Upgrade), WebSockets (extended CONNECT; they work over
// HTTP/1.1 on the same listener), response trailers, and a per-request
// header deadline (an HTTP/2 connection is bounded by IdleTimeout, and
// its header list by MaxHeaderBytes).
//
// The backend side (backend.go) is the gateway's own keep-alive pool per
// backend, written and read on the goroutine serving the request with
// fasthttp's header writer and parser; fasthttp.HostClient measured no
// cheaper and has its own rules for retries and timeouts, where the
// gateway needs a refused connection to eject, a kept-alive connection
// the backend closed while idle to be replaced without the client seeing
// it (requests safe to repeat are sent again; others first check the
// connection), and a slow answer to be a 504. The request goes out as the
// client sent it (path, query and Host untouched) minus hop-by-hop headers,
// as HTTP/1.1, its body streamed. A response body of up to 64 KiB is
// copied whole before the answer goes out; a longer or unframed one
// streams, straight from the backend connection's buffer, with no
// deadline, so downloads are neither held in memory nor cut (an HTTP/1.0
// client, which cannot read chunks, gets a body of unknown length framed
// by the end of the connection). The response's Date is the gateway's, as
// nginx's is.
//
// fasthttp does not notice a client that goes away while its handler
// waits, as net/http did with a read in the background of every request.
// The gateway waits on a backend with a short deadline first; only when it
// passes does a goroutine start peeking at the client's socket (watch.go),
// so that a client that leaves ends the backend request, counted as 499.
//
// An Upgrade request (WebSocket) that the backend answers 101 becomes a
// byte pipe: the client connection is hijacked from fasthttp, the 101 head
// written to it, and bytes copied both ways until either side closes.
// Shutdown waits for requests in flight, not for such pipes.
//
// # Event loops
//
// With Config.EventLoop (--gateway-event-loop, on by default in the
// command on Linux; Config's zero value is the goroutine path), the plain
// (non-TLS) listeners are served by epoll event loops instead
// (loop_linux.go): one per P, each waiting in epoll_wait, all accepting on
// the listener's socket (EPOLLEXCLUSIVE), each with its own kept-alive
// backend connections, every socket registered once, edge-triggered, and
// read and written with raw system calls. This is nginx's shape. The
// goroutine path costs a read that finds nothing (EAGAIN) before every
// wait, on each side, and a runtime wake-up per wait. While loops run,
// GOMAXPROCS is one more than their count (spareP): with every P waiting
// in epoll_wait the runtime takes each P away after 20 µs and polls every
// 20 µs, which cost more than the loops saved; and a loop yields every 2
// ms, so that the runtime never has to preempt it (run).
// bench/RESULTS.md has the figures.
//
// A loop serves the common request whole: no body, no Upgrade, Expect or
// CONNECT, a backend given by IP address, and an answer with at most 64
// KiB of body (or none). It uses the same pieces as the goroutine path:
// the tables, balancing and ejection, the X-Forwarded-* rewrites, the
// metrics and the answers of fail. Anything else leaves the loop with its
// connection and goes to the listener's fasthttp server (ServeConn), which
// serves that connection from then on, counted by reason in
// flotilla_gateway_loop_handoffs_total:
//
//   - before any backend has seen the request (a body or an Upgrade,
//     HTTP/2, a header fasthttp must refuse, a backend host to resolve, no
//     backend left to try): the connection's bytes go along, and fasthttp
//     reads the request as if it had come straight to it; that path also
//     waits for newer routes (redispatch.go);
//   - an answer whose body streams: the backend connection goes along too,
//     with the head already read, and respond passes it on as it does
//     every streamed answer (resume).
//
// Deadlines are the same: ReadHeaderTimeout (408), IdleTimeout,
// DialTimeout (a connect failure), ResponseHeaderTimeout (504), kept in a
// heap per loop. A client that leaves while its answer is awaited is
// noticed by its socket's hang-up, counted 499 and its backend connection
// closed. A panic costs its request (500), not the loop. A loop that runs
// out of file descriptors stops accepting for a back-off (5 ms to 1 s)
// rather than spin on its listener, and says so once. Shutdown refuses
// new connections at once, closes idle ones, and lets requests in flight
// finish. The whole gateway suite passes on the loops
// (FLOTILLA_GATEWAY_EVENT_LOOP=1, which make test runs), and on the
// goroutine path.
//
// Slow and abusive clients (clients.go): a request header must arrive
// within Config.ReadHeaderTimeout of the connection's start (not per
// byte), an idle kept-alive connection closes after IdleTimeout, and each
// listener holds at most MaxConns connections and MaxConnsPerIP from one
// address (internal/connlimit, in front of fasthttp and below TLS, so a
// refusal costs no handshake). The excess gets 503 or 429 at once and is
// counted in flotilla_gateway_connections_refused_total; accept errors for
// want of descriptors are waited out, where fasthttp alone would stop
// serving the listener.
package gateway
