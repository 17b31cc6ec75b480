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
// Waiting in recvmmsg itself instead (a blocking socket, syscall.Syscall6,
// as Knot's threads wait) was measured and is worse in Go: while a worker
// is blocked in a system call the runtime keeps another thread polling the
// network for it, 4 epoll_pwait and 3 context switches per batch (perf stat
// under dnsperf: 9.5 µs of CPU per query against 5.4 µs here).
//
// Client addresses stay as the kernel wrote them and go back unparsed as the
// replies' destinations; a net.Addr is made only for the queries that take
// the dns.Msg path. Nothing here allocates per batch: the functions handed
// to RawConn are made once and keep their results in the batch.
type rawBatch struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
	bufs  [][]byte
	n     int // packets read by the last read

	out     []mmsghdr
	outIovs []unix.Iovec

	readFn, writeFn func(fd uintptr) bool
	sent, res       int // flush's progress; the last call's result
	errno           syscall.Errno
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
	b.readFn, b.writeFn = b.recv, b.send
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
	b.n = 0
	b.out = b.out[:0]
	if err := b.rc.Read(b.readFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	b.n = b.res
	return b.n, nil
}

// recv takes what the socket holds, or asks to wait in the netpoller.
func (b *rawBatch) recv(fd uintptr) bool {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false // wait for the socket in the netpoller
	}
	b.res, b.errno = int(r), e
	return true
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
	for b.sent = 0; b.sent < len(b.out); {
		if err := b.rc.Write(b.writeFn); err != nil {
			return err
		}
		if b.errno != 0 {
			// The first message failed (sendmmsg reports a later
			// failure as a short count): drop it and go on.
			if firstErr == nil {
				firstErr = b.errno
			}
			b.sent++
			continue
		}
		b.sent += b.res
	}
	return firstErr
}

// send hands the queued replies from b.sent on to sendmmsg.
func (b *rawBatch) send(fd uintptr) bool {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[b.sent])), uintptr(len(b.out)-b.sent), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false // send buffer full: wait until writable
	}
	b.res, b.errno = int(r), e
	return true
}
