package portfwd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// udpProxy forwards one UDP host port: one flow per client address, each
// with its own connected socket inside the namespace, so the container sees
// distinct peers and its replies find their way back.
type udpProxy struct {
	f  *Forwarder
	ln *net.UDPConn
	m  Mapping

	mu    sync.Mutex
	flows map[netip.AddrPort]*udpFlow
}

type udpFlow struct {
	client netip.AddrPort
	conn   *net.UDPConn
	last   atomic.Int64 // unix nanoseconds on the forwarder's clock
}

func newUDPProxy(f *Forwarder, ln *net.UDPConn, m Mapping) *udpProxy {
	return &udpProxy{f: f, ln: ln, m: m, flows: map[netip.AddrPort]*udpFlow{}}
}

func (u *udpProxy) start(ns *NetNS) {
	u.f.wg.Add(2)
	go u.readLoop(ns)
	go u.sweepLoop()
}

func (u *udpProxy) close() error {
	err := u.ln.Close()
	u.mu.Lock()
	flows := u.flows
	u.flows = map[netip.AddrPort]*udpFlow{}
	u.mu.Unlock()
	for _, fl := range flows {
		// Ends the flow's reply goroutine; nothing is in flight that a
		// closed task could still answer.
		_ = fl.conn.Close()
	}
	if err != nil {
		return fmt.Errorf("portfwd: close %s: %w", u.m, err)
	}
	return nil
}

func (u *udpProxy) now() int64 { return u.f.cfg.Clock.Now().UnixNano() }

func (u *udpProxy) readLoop(ns *NetNS) {
	defer u.f.wg.Done()
	log := u.f.log.WithField("mapping", u.m.String())
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := u.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if u.f.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			log.WithError(err).Warn("udp read failed; datagram lost")
			continue
		}
		fl, err := u.flow(ns, client)
		if err != nil {
			log.WithError(err).WithField("client", client.String()).Info("cannot reach the container; datagram dropped")
			continue
		}
		fl.last.Store(u.now())
		if _, err := fl.conn.Write(buf[:n]); err != nil && !isRefused(err) {
			log.WithError(err).WithField("client", client.String()).Debug("datagram to the container lost")
		}
	}
}

// flow finds or makes the client's flow.
func (u *udpProxy) flow(ns *NetNS, client netip.AddrPort) (*udpFlow, error) {
	u.mu.Lock()
	fl := u.flows[client]
	u.mu.Unlock()
	if fl != nil {
		return fl, nil
	}
	conn, err := ns.DialUDP(u.m.ContainerPort)
	if err != nil {
		return nil, err
	}
	fl = &udpFlow{client: client, conn: conn}
	fl.last.Store(u.now())
	u.mu.Lock()
	if u.f.ctx.Err() != nil {
		u.mu.Unlock()
		_ = conn.Close()
		return nil, ErrClosed
	}
	u.flows[client] = fl
	u.f.wg.Add(1)
	u.mu.Unlock()
	go u.replyLoop(fl)
	return fl, nil
}

// replyLoop sends the container's datagrams back to the client from the
// host port, so the client sees the address it wrote to.
func (u *udpProxy) replyLoop(fl *udpFlow) {
	defer u.f.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, err := fl.conn.Read(buf)
		if err != nil {
			if isRefused(err) {
				// An ICMP port-unreachable for an earlier datagram: the
				// container is not listening yet; the flow stays.
				continue
			}
			u.drop(fl)
			return
		}
		fl.last.Store(u.now())
		if _, err := u.ln.WriteToUDPAddrPort(buf[:n], fl.client); err != nil {
			u.f.log.WithError(err).WithFields(map[string]any{"mapping": u.m.String(), "client": fl.client.String()}).Debug("reply to the client lost")
		}
	}
}

func (u *udpProxy) drop(fl *udpFlow) {
	u.mu.Lock()
	if u.flows[fl.client] == fl {
		delete(u.flows, fl.client)
	}
	u.mu.Unlock()
	_ = fl.conn.Close() // closing twice (Close, sweep) only errors
}

// sweepLoop closes flows idle for UDPIdle, checking a quarter as often.
func (u *udpProxy) sweepLoop() {
	defer u.f.wg.Done()
	t := u.f.cfg.Clock.NewTicker(max(u.f.cfg.UDPIdle/4, 1))
	defer t.Stop()
	for {
		select {
		case <-u.f.ctx.Done():
			return
		case <-t.C():
		}
		cutoff := u.now() - int64(u.f.cfg.UDPIdle)
		var idle []*udpFlow
		u.mu.Lock()
		for _, fl := range u.flows {
			if fl.last.Load() <= cutoff {
				idle = append(idle, fl)
			}
		}
		u.mu.Unlock()
		for _, fl := range idle {
			u.drop(fl)
		}
	}
}

// flowCount is for tests.
func (u *udpProxy) flowCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.flows)
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
