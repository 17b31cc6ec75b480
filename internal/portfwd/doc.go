// Package portfwd forwards ports of the host into a network namespace, the
// way Docker's userland proxy forwards published ports: localmesos runs
// BRIDGE and USER Docker tasks with network "none" (the engine on these
// machines has no bridge, and nothing may talk to private-range addresses),
// so each mapped host port is bound on the agent's address and every
// connection or datagram is carried to 127.0.0.1:<container port> inside the
// container's namespace. Only loopback traffic ever results. Kernel
// forwarding (below) is the faster way, used by default by localmesos.
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
//
// # Kernel forwarding
//
// The user-space forwarder costs a second loopback TCP hop per connection
// and ~20 µs of CPU per request (bench/RESULTS.md, "Bridge forwarder"),
// too much to keep a bridge task near a host-network one. Docker avoids it
// with --userland-proxy=false: iptables DNAT to the container's bridge
// address. ForwardKernel does the same without a bridge or a private
// address:
//
//   - a veth pair per task: host end flfwdNNN at 169.254.x.1, container end
//     eth0 at 169.254.x.2, a /30 block of KernelPool (169.254.64.0/18,
//     link-local). The container gets no default route: only the host
//     reaches it. Block NNN belongs to whoever created the link flfwdNNN,
//     which the kernel lets one process do, so several agents on a machine
//     never share a block; a block with a foreign address on it is skipped.
//   - one nftables table per task, flotilla_fwd_NNN (so that removal is one
//     command): DNAT of <host>:<host port> (tcp and udp) to
//     169.254.x.2:<container port> in the output hook (clients on this
//     machine) and the prerouting hook (other machines, where the host
//     forwards IPv4), and masquerade towards the container so that replies
//     come back through the host.
//   - route_localnet=1 (a DNAT from 127.x leaves through the veth) and
//     forwarding=1 on the host end only; nothing machine-wide changes.
//
// The commands are ip, nsenter (the container side, entered through a
// duplicate of the NetNS descriptor, never by pid) and nft, each bounded by
// KernelConfig.Timeout, their stderr in the error. The caller keeps the
// host ports bound with Listen and never calls Serve: the DNAT takes the
// packets first, and no other process can bind the ports meanwhile.
//
//	ln, err := portfwd.Listen(host, mappings, cfg) // reserve (or fail the task)
//	k, err := portfwd.ForwardKernel(ctx, host, mappings, ns, portfwd.KernelConfig{})
//	if err != nil { ln.Serve(ns) } // fall back to user space
//	...
//	k.Close()  // table, then veth; the block is free again
//	ln.Close() // the ports are bindable again
//
// Unlike the user-space forwarder, the kernel delivers to the container's
// eth0 address: the app must listen on 0.0.0.0 (as on Docker's bridge), not
// only on 127.0.0.1. KernelSupported, on its first call, deletes the tables
// that processes which died while forwarding left behind (a table whose
// veth is gone), so that their DNAT does not keep taking the ports.
package portfwd
