// Package mesosdns is Flotilla's embedded DNS server: Mesos-DNS names and
// HTTP API, but fed from the framework's own task events instead of polling
// the master every 60 s, and publishing only tasks that are running, healthy
// and ready.
//
// It owns record building and serving; it does not read the store. The
// framework hands it snapshots of its tasks; each snapshot becomes an
// immutable RecordSet (BuildRecords is pure, like Mesos-DNS's InsertState)
// that is swapped in atomically. A snapshot that cannot be built leaves the
// previous set in service. Update rebuilds only the apps whose tasks changed
// and reuses the rest of the previous set, so an update costs what changed,
// not the size of the cluster.
//
//	srv, err := mesosdns.New(mesosdns.Config{Addr: "127.0.0.1:8600", Log: log})
//	if err != nil { … }
//	reg.MustRegister(srv.Collectors()...)        // freshness histogram and counters
//	if err := srv.Start(); err != nil { … }        // UDP and TCP
//	defer srv.Shutdown(ctx)
//	http.Handle("/v1/", srv.HTTPHandler())         // Mesos-DNS HTTP API
//	// on every task event, with the framework's current view:
//	err = srv.Update(tasks, leader, masters)       // web.flotilla.mesos, _web._tcp.flotilla.mesos, …
//
// Names (domain "mesos", framework "flotilla" by default):
//
//	{task}.{fw}.{domain}, {task}.{fw}.slave.{domain}            A/AAAA of the agent
//	{task}-{hash}.{fw}.{domain}, {task}-{hash}.{fw}.slave.{domain}   one instance
//	_{task}._tcp.{fw}.{domain}, _{task}._udp.{fw}.slave.{domain}     SRV per port → {task}-{hash}.{fw}.slave.{domain}
//	leader.{domain}, master.{domain}, masterN.{domain}, _leader._tcp.{domain}
//	{domain} SOA and NS (ns1.{domain})
//
// UDP is served by a fixed pool of workers on Config.UDPSockets
// SO_REUSEPORT sockets (one per two cores by default), reading and writing in
// batches with recvmmsg/sendmmsg issued as raw system calls (batch_linux.go).
// The common queries (A, AAAA and SRV of a name in the zone, NXDOMAIN) are
// answered on the wire path (wire.go) from records kept packed per name,
// with only the header and the question copied from the query; every other
// query, and any reply that would not fit, takes the dns.Msg path, which
// TestWirePathMatchesSlowPath holds the wire path to.
//
// Names outside the domain are forwarded to upstream resolvers only for
// clients that Config.AllowForward accepts (loopback by default); others get
// REFUSED, so the server is never an open resolver.
package mesosdns
