package mesosdns

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawBatch reads and writes with recvmmsg/sendmmsg issued as raw system
// calls on the non-blocking socket, waiting in the netpoller when there is
// nothing to read (RawConn.Read). A raw call keeps its P: with syscall.Syscall
// (what golang.org/x/net's ReadBatch/WriteBatch use) the runtime's sysmon
// hands the P of a worker in a long sendmmsg to another thread and the worker
// must win one back afterwards; under dnsperf that thread switching was a
// tenth of the server's CPU (perf: runtime.sysmon, handoffp, park_m) where
// Knot's threads switch nothing. The calls never block (MSG_DONTWAIT), so
// holding the P costs other goroutines at most one batch's time.
//
// Client addresses stay as the kernel wrote them and go back unparsed as the
// replies' destinations; a net.Addr is made only for the queries that take
// the dns.Msg path.
type rawBatch struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
	bufs  [][]byte
	n     int // packets read by the last read

	out     []mmsghdr
	outIovs []unix.Iovec
}

// mmsghdr is struct mmsghdr: a msghdr and the byte count the kernel returns.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

func newRawBatch(pc *net.UDPConn, size, bufSize int) (packetBatch, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &rawBatch{rc: rc, hdrs: make([]mmsghdr, size), iovs: make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrAny, size), bufs: make([][]byte, size),
		out: make([]mmsghdr, 0, size), outIovs: make([]unix.Iovec, size)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, bufSize)
	}
	return b, nil
}

func (b *rawBatch) read() (int, error) {
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		h := &b.hdrs[i].hdr
		*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&b.names[i])), Namelen: uint32(unsafe.Sizeof(b.names[i])), Iov: &b.iovs[i]}
		h.SetIovlen(1)
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait for the socket in the netpoller
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	b.n = n
	b.out = b.out[:0]
	return n, nil
}

func (b *rawBatch) packet(i int) ([]byte, bool) {
	return b.bufs[i][:b.hdrs[i].n], b.hdrs[i].hdr.Flags&unix.MSG_TRUNC != 0
}

func (b *rawBatch) from(i int) net.Addr {
	sa := &b.names[i]
	switch sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := int(p.Port>>8 | p.Port<<8) // network byte order
		return &net.UDPAddr{IP: net.IPv4(p.Addr[0], p.Addr[1], p.Addr[2], p.Addr[3]), Port: port}
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		port := int(p.Port>>8 | p.Port<<8)
		ip := make(net.IP, net.IPv6len)
		copy(ip, p.Addr[:])
		var zone string
		if p.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(p.Scope_id)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.UDPAddr{IP: ip, Port: port, Zone: zone}
	}
	return nil
}

func (b *rawBatch) reply(i int, msg []byte) {
	j := len(b.out)
	b.outIovs[j].Base = &msg[0]
	b.outIovs[j].SetLen(len(msg))
	h := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&b.names[i])), Namelen: b.hdrs[i].hdr.Namelen, Iov: &b.outIovs[j]}
	h.SetIovlen(1)
	b.out = append(b.out, mmsghdr{hdr: h})
}

func (b *rawBatch) flush() error {
	var firstErr error
	for sent := 0; sent < len(b.out); {
		var n int
		var errno syscall.Errno
		err := b.rc.Write(func(fd uintptr) bool {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[sent])), uintptr(len(b.out)-sent), unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false // send buffer full: wait until writable
			}
			n, errno = int(r), e
			return true
		})
		if err != nil {
			return err
		}
		if errno != 0 {
			// The first message failed (sendmmsg reports a later
			// failure as a short count): drop it and go on.
			if firstErr == nil {
				firstErr = errno
			}
			sent++
			continue
		}
		sent += n
	}
	return firstErr
}
