//go:build !linux

package gateway

import (
	"net"
	"syscall"
)

// Elsewhere the client is not watched (a client that leaves is noticed
// when its answer cannot be written) and idle connections are assumed
// open (a closed one fails the request that meets it).

func rawConn(net.Conn) syscall.RawConn { return nil }

func waitClosed(syscall.RawConn) bool { return false }

func connAlive(net.Conn) bool { return true }
