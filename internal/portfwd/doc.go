// Package portfwd forwards ports of the host into a network namespace, the
// way Docker's userland proxy forwards published ports: localmesos runs
// BRIDGE and USER Docker tasks with network "none" (the engine on these
// machines has no bridge, and nothing may talk to private-range addresses),
// so each mapped host port is bound on the agent's address and every
// connection or datagram is carried to 127.0.0.1:<container port> inside the
// container's namespace. Only loopback traffic ever results.
//
// A socket opened inside a namespace stays there after the thread leaves
// it, so a dial switches namespaces only for the socket() call: on a
// throwaway goroutine locked to its thread, which the runtime discards if
// switching back fails. Connect, splice and every later read and write run
// on ordinary goroutines.
//
//	ns, err := portfwd.OpenNetNS(fmt.Sprintf("/proc/%d/ns/net", pid))
//	...
//	defer ns.Close()
//	f, err := portfwd.Listen("127.0.0.1", []portfwd.Mapping{
//		{HostPort: 31000, ContainerPort: 8080, Protocol: "tcp"},
//		{HostPort: 31001, ContainerPort: 53, Protocol: "udp"},
//	}, portfwd.Config{Log: entry})
//	if err != nil { ... } // a port that cannot be bound; nothing is left bound
//	f.Serve(ns)
//	...
//	f.Close() // listeners, connections and UDP flows closed; waits for its goroutines
//
// TCP: one goroutine per direction, bytes moved with splice(2) (io.Copy
// between *net.TCPConn), each direction half-closed on EOF so protocols
// that shut down writing still get their answer. UDP: one socket inside
// the namespace per client address, replies sent back from the host port,
// flows idle for Config.UDPIdle (default 90 s, Docker's) closed on the
// injected clock.
package portfwd
