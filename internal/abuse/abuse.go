package abuse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// RaiseNoFile raises the open-files limit to at least n: the soft limit,
// and the hard one when the process may (root). Thousands of connections
// on both ends of loopback need a descriptor each.
func RaiseNoFile(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("abuse: getrlimit: %w", err)
	}
	if rl.Cur >= n {
		return nil
	}
	rl.Cur = n
	if rl.Max < n {
		rl.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("abuse: raise the open-files limit to %d: %w", n, err)
	}
	return nil
}

// Dialer connects from a given loopback source address.
func Dialer(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 30 * time.Second}
}

// Idle is a set of connections that never send a byte.
type Idle struct {
	mu    sync.Mutex
	conns []net.Conn
}

// OpenIdle dials n connections from src to addr and keeps them. A dial
// the server's backlog cannot take at once is retried by the kernel, so
// this takes as long as the server takes to accept (or refuse) them.
func OpenIdle(ctx context.Context, src, addr string, n int) (*Idle, error) {
	const parallel = 64
	d := Dialer(src)
	idle := &Idle{conns: make([]net.Conn, 0, n)}
	var wg sync.WaitGroup
	errc := make(chan error, parallel)
	next := make(chan struct{})
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					errc <- err
					return
				}
				idle.mu.Lock()
				idle.conns = append(idle.conns, c)
				idle.mu.Unlock()
			}
		}()
	}
	var err error
feed:
	for range n {
		select {
		case next <- struct{}{}:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if err != nil {
		return idle, fmt.Errorf("abuse: dial idle connection %d of %d: %w", idle.Len()+1, n, errors.Join(err, idle.Close()))
	}
	return idle, nil
}

// Len is how many connections were opened.
func (i *Idle) Len() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.conns)
}

// Close closes them all.
func (i *Idle) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	var errs []error
	for _, c := range i.conns {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	i.conns = nil
	return errors.Join(errs...)
}

// SlowHeader sends header one byte every interval from src, and then,
// having nothing more to send, waits. It returns once the server has
// closed the connection (nil) or ctx ends (its error), with the bytes sent.
func SlowHeader(ctx context.Context, src, addr string, header []byte, every time.Duration) (int, error) {
	c, err := Dialer(src).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("abuse: dial: %w", err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		var b [512]byte
		for {
			// Whatever the server answers (408, or nothing) the end is EOF
			// or a reset.
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	sent := 0
	for {
		select {
		case <-closed:
			return sent, nil
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-t.C:
			if sent == len(header) {
				continue
			}
			if _, err := c.Write(header[sent : sent+1]); err != nil {
				<-closed
				return sent, nil
			}
			sent++
		}
	}
}

// Latencies collects request durations; safe for concurrent use.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Quantile returns the q-quantile (0.99 for p99) by nearest rank; 0 when
// nothing was recorded.
func (l *Latencies) Quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Len is how many were recorded.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}
