//go:build !linux

package mesosdns

import "net"

func newRawBatch(pc *net.UDPConn, size, bufSize int) (packetBatch, error) {
	return newXNetBatch(pc, size, bufSize), nil
}
