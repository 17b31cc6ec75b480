package mesosdns

import (
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// packetBatch is a worker's batch of UDP packets: read fills it (recvmmsg
// on Linux), reply queues an answer to packet i, flush sends the queued
// answers (sendmmsg on Linux).
type packetBatch interface {
	read() (int, error)
	packet(i int) (data []byte, truncated bool)
	from(i int) net.Addr
	reply(i int, msg []byte)
	flush() error
}

// xnetBatch is packetBatch on golang.org/x/net's ReadBatch/WriteBatch, for
// systems without the raw Linux path.
type xnetBatch struct {
	bc interface {
		ReadBatch(ms []ipv4.Message, flags int) (int, error)
		WriteBatch(ms []ipv4.Message, flags int) (int, error)
	}
	in  []ipv4.Message
	out []ipv4.Message
}

func newXNetBatch(pc *net.UDPConn, size, bufSize int) *xnetBatch {
	b := &xnetBatch{bc: ipv4.NewPacketConn(pc), in: make([]ipv4.Message, size), out: make([]ipv4.Message, 0, size)}
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		b.bc = ipv6.NewPacketConn(pc)
	}
	for i := range b.in {
		b.in[i].Buffers = [][]byte{make([]byte, bufSize)}
	}
	return b
}

func (b *xnetBatch) read() (int, error) {
	b.out = b.out[:0]
	return b.bc.ReadBatch(b.in, 0)
}

func (b *xnetBatch) packet(i int) ([]byte, bool) {
	m := &b.in[i]
	return m.Buffers[0][:m.N], m.Flags&syscall.MSG_TRUNC != 0
}

func (b *xnetBatch) from(i int) net.Addr { return b.in[i].Addr }

func (b *xnetBatch) reply(i int, msg []byte) {
	b.out = append(b.out, ipv4.Message{Buffers: [][]byte{msg}, Addr: b.in[i].Addr})
}

func (b *xnetBatch) flush() error {
	for sent := 0; sent < len(b.out); {
		k, err := b.bc.WriteBatch(b.out[sent:], 0)
		if err != nil {
			return err
		}
		sent += k
	}
	return nil
}
