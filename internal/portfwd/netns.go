package portfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by dials on a closed NetNS or Forwarder.
var ErrClosed = errors.New("portfwd: closed")

// NetNS is an open network namespace that sockets can be dialled in. It
// holds the namespace's file descriptor, so the namespace lives as long as
// the NetNS even if the process it came from has exited.
type NetNS struct {
	mu     sync.RWMutex // read: a dial in progress; write: Close
	fd     int          // the target namespace
	host   int          // the namespace this process's threads run in
	closed bool
	path   string
}

// OpenNetNS opens a namespace file such as /proc/<pid>/ns/net. The caller's
// current namespace is remembered as the one to come back to.
func OpenNetNS(path string) (*NetNS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("portfwd: open network namespace %s: %w", path, err)
	}
	host, err := currentNetNS()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &NetNS{fd: fd, host: host, path: path}, nil
}

func currentNetNS() (int, error) {
	// thread-self, not self: a namespace is per thread; the lock keeps the
	// goroutine on the thread whose namespace is read.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("portfwd: open this thread's network namespace: %w", err)
	}
	return fd, nil
}

// Path is the file the namespace was opened from.
func (n *NetNS) Path() string { return n.path }

// Close releases the namespace. Dials in progress finish first.
func (n *NetNS) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	return errors.Join(unix.Close(n.fd), unix.Close(n.host))
}

// socket creates a non-blocking IPv4 socket inside the namespace.
func (n *NetNS) socket(typ int) (int, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return -1, ErrClosed
	}
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	// A goroutine of its own, so that a thread which cannot switch back is
	// never unlocked: the runtime ends a thread whose goroutine exits while
	// locked, and no later socket of this process lands in the container.
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("portfwd: enter network namespace %s: %w", n.path, err)}
			return
		}
		fd, serr := unix.Socket(unix.AF_INET, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err := unix.Setns(n.host, unix.CLONE_NEWNET); err != nil {
			if serr == nil {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("portfwd: leave network namespace %s (thread discarded): %w", n.path, err)}
			return // still locked: the thread goes with the goroutine
		}
		runtime.UnlockOSThread()
		if serr != nil {
			serr = fmt.Errorf("portfwd: socket in network namespace %s: %w", n.path, serr)
		}
		ch <- result{fd, serr}
	}()
	r := <-ch
	return r.fd, r.err
}

// fileConn hands a raw socket to Go's poller; the raw descriptor is closed.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "portfwd")
	c, err := net.FileConn(f) // dups fd
	if cerr := f.Close(); cerr != nil && err == nil {
		c.Close()
		return nil, fmt.Errorf("portfwd: close raw socket: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("portfwd: socket to conn: %w", err)
	}
	return c, nil
}

func loopback(port int) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
}

// DialTCP connects to 127.0.0.1:port inside the namespace. ctx bounds the
// connection handshake.
func (n *NetNS) DialTCP(ctx context.Context, port int) (*net.TCPConn, error) {
	fd, err := n.socket(unix.SOCK_STREAM)
	if err != nil {
		return nil, err
	}
	cerr := unix.Connect(fd, loopback(port))
	if cerr != nil && cerr != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, fmt.Errorf("portfwd: connect to 127.0.0.1:%d in %s: %w", port, n.path, cerr)
	}
	c, err := fileConn(fd)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if cerr == unix.EINPROGRESS {
		if err := waitConnected(ctx, tc); err != nil {
			tc.Close()
			return nil, fmt.Errorf("portfwd: connect to 127.0.0.1:%d in %s: %w", port, n.path, err)
		}
	}
	return tc, nil
}

// waitConnected waits, on the poller, for a non-blocking connect to end,
// the way the net package's own dial does (writable, then SO_ERROR).
func waitConnected(ctx context.Context, tc *net.TCPConn) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := tc.SetWriteDeadline(dl); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() {
		// Wakes the wait below; the error is the conn's, already failing.
		_ = tc.SetWriteDeadline(time.Unix(1, 0))
	})
	defer stop()
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var connErr error
	werr := rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			connErr = err
			return true
		case v != 0:
			connErr = syscall.Errno(v)
			return true
		}
		_, err = unix.Getpeername(int(fd))
		return err == nil // ENOTCONN: not yet, wait for writability
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if connErr != nil {
		return connErr
	}
	return tc.SetWriteDeadline(time.Time{})
}

// DialUDP returns a UDP socket inside the namespace connected to
// 127.0.0.1:port.
func (n *NetNS) DialUDP(port int) (*net.UDPConn, error) {
	fd, err := n.socket(unix.SOCK_DGRAM)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, loopback(port)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("portfwd: connect udp to 127.0.0.1:%d in %s: %w", port, n.path, err)
	}
	c, err := fileConn(fd)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}
