//go:build !linux

package abuse

import "syscall"

func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }
