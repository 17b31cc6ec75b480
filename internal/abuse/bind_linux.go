//go:build linux

package abuse

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort lets the kernel pick the source port at connect time, per
// destination, instead of at bind time, where every port still in
// TIME_WAIT from an earlier run counts as taken: 10,000 connections from
// one source address twice in a row otherwise run out of ports.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
