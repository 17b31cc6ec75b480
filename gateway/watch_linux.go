//go:build linux

package gateway

import (
	"net"
	"syscall"
)

func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitClosed blocks until the peer closes the connection (true), or sends
// something, or the read deadline passes (false). It only peeks, so what a
// client sent stays for the server to read.
func waitClosed(rc syscall.RawConn) bool {
	var closed bool
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false // nothing yet: wait until the socket is readable
			case err != nil, n == 0:
				closed = true
			}
			return true
		}
	})
	return closed
}

// connAlive reports whether an idle kept-alive connection is still usable:
// the backend has neither closed it nor sent anything unasked. It does not
// block, and ignores deadlines.
func connAlive(c net.Conn) bool {
	rc := rawConn(c)
	if rc == nil {
		return true
	}
	alive := false
	var b [1]byte
	rc.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN
	})
	return alive
}
