//go:build !linux

package mesosdns

import (
	"errors"
	"syscall"
)

const reusePortSupported = false

func reusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("mesosdns: SO_REUSEPORT is only used on Linux")
}
