// Command forward runs the bridge-forwarder benchmark's two targets (issue
// 15): the same flotilla/testapp:dev image twice through localmesos's docker
// executor, once on the host network and once on BRIDGE with its container
// port 8080 mapped to a host port, so run.sh can load both side by side and
// see what the forwarder (internal/portfwd) costs.
//
//	forward -host-port 29401 -bridge-port 29402   # prints "ready", runs until SIGTERM
package main
