package mesosdns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported says whether several UDP sockets can share the port.
const reusePortSupported = true

// reusePort sets SO_REUSEPORT before bind, so that the kernel spreads the
// port's packets over several sockets (by a hash of the client address and
// port), each read by its own workers: no contention on one socket's queue.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
