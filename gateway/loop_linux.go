//go:build linux

package gateway

import (
	"bufio"
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/flotilla-sched/flotilla/internal/connlimit"
)

// EventLoopSupported says whether Config.EventLoop can be had here (epoll:
// Linux); the command turns the loops on by default where it is true.
const EventLoopSupported = true

// loops is the event-loop engine of the plain listeners (doc.go, "Event
// loops", says why and what it serves): one loop per P, each a goroutine
// that waits in epoll_wait and yields now and then (run).
type loops struct {
	g    *Gateway
	all  []*evLoop
	lns  []loopListener
	done chan struct{} // closed when every loop has ended
	// closing: Shutdown has begun; force: its context ended too.
	closing, force atomic.Bool
	// outOfFDs counts loops backing off from accept (pauseAccept), so
	// that the gateway logs the trouble once and its end once.
	outOfFDs atomic.Int32
	// fdMu: the loops' epoll and eventfd descriptors are open while
	// fdsClosed is false.
	fdMu      sync.Mutex
	fdsClosed bool
	wg        sync.WaitGroup
}

// loopListener is one listening socket, shared by every loop's epoll
// (EPOLLEXCLUSIVE: a connection wakes one loop, not all).
type loopListener struct {
	fd  int
	l   Listener
	lim *connlimit.Listener
	srv *fasthttp.Server // what a handed-off connection goes to
}

// spareP is the P the loops leave free. A loop waits in epoll_wait as a
// goroutine in a system call; when every P is in one, the runtime's
// monitor (sysmon) takes each P away after 20 µs, wakes a thread to hold
// it, and keeps polling every 20 µs, so each wait costs thread hand-offs
// (0.93 context switches and 0.28 nanosleeps per request measured, with
// 2 loops on GOMAXPROCS=2). With one P idle the monitor leaves a waiting
// P alone and backs off (0.38 and 0.05; bench/RESULTS.md). So the loops
// raise GOMAXPROCS by one while any run: the spare P also runs what the
// loops hand off, the rest of the process and the garbage collector.
// (Setting GOMAXPROCS ends the runtime's own updates of it when the
// container's CPU limit changes; the loops' count is fixed at start
// anyway.)
var spareP struct {
	sync.Mutex
	users int // gateways whose loops run
	base  int // GOMAXPROCS before the first of them: the loops' count
}

// reserveProcs returns how many loops to run (GOMAXPROCS as it was) and
// adds the spare P for the first gateway to start loops.
func reserveProcs() int {
	spareP.Lock()
	defer spareP.Unlock()
	if spareP.users == 0 {
		spareP.base = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(spareP.base + 1)
	}
	spareP.users++
	return spareP.base
}

// releaseProcs gives the spare P back when the last loops end, unless
// someone set GOMAXPROCS since.
func releaseProcs() {
	spareP.Lock()
	defer spareP.Unlock()
	spareP.users--
	if spareP.users == 0 && runtime.GOMAXPROCS(0) == spareP.base+1 {
		runtime.GOMAXPROCS(spareP.base)
	}
}

// startLoops serves the given listeners (their sockets taken over from
// net.Listen, so addresses resolve as they always did) on one loop per P,
// with one P to spare (spareP).
func (g *Gateway) startLoops(lns []loopListener) (*loops, error) {
	ls := &loops{g: g, lns: lns, done: make(chan struct{})}
	n := reserveProcs()
	for i := 0; i < n; i++ {
		lp, err := newEvLoop(ls)
		if err != nil {
			for _, o := range ls.all {
				o.closeFDs()
			}
			releaseProcs()
			return nil, err
		}
		ls.all = append(ls.all, lp)
	}
	for _, lp := range ls.all {
		ls.wg.Add(1)
		go lp.run()
	}
	go func() {
		ls.wg.Wait()
		// The loops' own descriptors close only now, under fdMu: a
		// descriptor closed while wakeAll might still write to it could
		// be another connection's by then (a client once got the
		// eventfd's 8 bytes in front of its answer).
		ls.fdMu.Lock()
		for _, lp := range ls.all {
			lp.closeFDs()
		}
		ls.fdsClosed = true
		ls.fdMu.Unlock()
		releaseProcs()
		close(ls.done)
	}()
	return ls, nil
}

// takeListener turns a net.Listener into a raw non-blocking socket the
// loops accept on; ln is closed (the duplicate keeps the socket).
func takeListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, errors.New("gateway: listener has no socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := ln.Close(); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// closeLoopListeners closes sockets takeListener took, when Start fails
// before loops own them.
func closeLoopListeners(lns []loopListener) {
	for _, l := range lns {
		unix.Close(l.fd)
	}
}

// shutdown stops accepting, lets requests in flight finish (their
// connections close after the answer) and ends the loops; when ctx's
// deadline passes first, force closes what is left.
func (ls *loops) shutdown(deadline <-chan struct{}) error {
	if ls.closing.Swap(true) {
		<-ls.done
		return nil
	}
	// New connections are refused from now on, as a closed listener's
	// are; the descriptor itself is closed once no loop can touch it.
	for _, l := range ls.lns {
		if err := unix.Shutdown(l.fd, unix.SHUT_RD); err != nil {
			ls.g.log.WithError(err).Warn("gateway: shutting a listener down")
		}
	}
	ls.wakeAll()
	select {
	case <-ls.done:
	case <-deadline:
		ls.force.Store(true)
		ls.wakeAll()
		<-ls.done
	}
	for _, l := range ls.lns {
		if err := unix.Close(l.fd); err != nil {
			ls.g.log.WithError(err).Debug("closing a listening socket")
		}
	}
	if ls.force.Load() {
		return errors.New("gateway: shutdown deadline passed with requests in flight")
	}
	return nil
}

func (ls *loops) wakeAll() {
	var one = [8]byte{1}
	ls.fdMu.Lock()
	defer ls.fdMu.Unlock()
	if ls.fdsClosed {
		return
	}
	for _, lp := range ls.all {
		if _, err := rawWrite(lp.wake, one[:]); err != nil {
			ls.g.log.WithError(err).Warn("waking a gateway loop")
		}
	}
}

// evLoop owns its connections outright: nothing here is shared with
// another loop, so nothing is locked.
type evLoop struct {
	ls    *loops
	g     *Gateway
	ep    int
	wake  int // eventfd
	conns []evConn
	idle  map[*backendState][]*upConn
	tq    timerQueue
	// parsing: a bufio.Reader over the bytes a connection has read
	src bytes.Reader
	br  *bufio.Reader
	buf []byte // read scratch
	out []byte // request heads to backends
	// big holds buffers of bigBuf bytes that long answers used, for the
	// next long answer (room, trim).
	big [][]byte
	// acceptBackoff > 0: accepting failed for want of descriptors, and the
	// listeners are out of this loop until resumeAccept fires.
	acceptBackoff time.Duration
	acceptPaused  bool
	resumeAccept  timer
	open          int  // client connections
	stopped       bool // listeners removed (Shutdown)
	// now is read once per epoll_wait: deadlines are seconds long, so
	// the time the events came is near enough for all of them.
	now    time.Time
	logger fasthttp.Logger
}

// evConn is a registered descriptor: a client or a backend connection.
type evConn struct {
	c  *clientConn
	up *upConn
}

func newEvLoop(ls *loops) (*evLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("gateway: epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("gateway: eventfd: %w", err)
	}
	lp := &evLoop{ls: ls, g: ls.g, ep: ep, wake: wake, idle: map[*backendState][]*upConn{},
		logger: fasthttpLogger{ls.g.log}, resumeAccept: timer{idx: -1, fd: -1},
		br: bufio.NewReaderSize(nil, ls.g.cfg.MaxHeaderBytes+backendReadBuffer), buf: make([]byte, backendReadBuffer)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		lp.closeFDs()
		return nil, err
	}
	if err := lp.addListeners(); err != nil {
		lp.closeFDs()
		return nil, err
	}
	return lp, nil
}

func (lp *evLoop) closeFDs() {
	unix.Close(lp.wake)
	unix.Close(lp.ep)
}

// run is the loop. It waits in epoll_wait as a system call: a thread
// asleep in the kernel, as nginx's workers wait, instead of a goroutine
// parked in the runtime's poller and woken through it.
//
// It yields every yieldEvery. The runtime's monitor preempts a goroutine
// that has run 10 ms without being scheduled, and takes the P from one
// that is in a system call then; each time, it also goes back to
// polling every 20 µs. A loop that never yielded paid that twice per
// loop every 10 ms (0.1 nanosleeps per request, more context switches
// than nginx's workers); a yield of an unlocked goroutine costs a pass
// through the scheduler on the same thread. The loop does not lock its
// thread for the same reason: a locked goroutine's yield or preemption
// hands its thread's P to another thread and back.
func (lp *evLoop) run() {
	defer lp.ls.wg.Done()
	evs := make([]unix.EpollEvent, 128)
	var yielded time.Time
	for {
		if lp.ls.closing.Load() && !lp.stopped {
			lp.stop()
		}
		if lp.stopped && (lp.open == 0 || lp.ls.force.Load()) {
			lp.closeAll()
			return
		}
		n, err := unix.EpollWait(lp.ep, evs, lp.tq.waitMillis(time.Now()))
		lp.now = time.Now()
		if err != nil && err != unix.EINTR {
			lp.g.log.WithError(err).Error("gateway loop: epoll_wait failed; the loop stops")
			lp.closeAll()
			return
		}
		for i := 0; i < n; i++ {
			lp.dispatch(int(evs[i].Fd), evs[i].Events)
		}
		lp.tq.fire(lp.now, lp)
		if lp.now.Sub(yielded) > yieldEvery {
			yielded = lp.now
			runtime.Gosched()
		}
	}
}

// yieldEvery is well under the runtime's 10 ms (forcePreemptNS), with
// room for a long round of events; 2, 5 and 8 ms measured alike within
// the noise (bench/RESULTS.md).
const yieldEvery = 2 * time.Millisecond

// dispatch handles one event; a panic is logged and costs only the
// connection it happened on.
func (lp *evLoop) dispatch(fd int, ev uint32) {
	defer func() {
		if rec := recover(); rec != nil {
			lp.recovered(fd, rec)
		}
	}()
	if fd == lp.wake {
		var b [8]byte
		_, _ = rawRead(lp.wake, b[:]) // only wakes the loop
		return
	}
	for i := range lp.ls.lns {
		if lp.ls.lns[i].fd == fd {
			lp.accept(&lp.ls.lns[i])
			return
		}
	}
	if fd >= len(lp.conns) {
		return
	}
	if c := lp.conns[fd].c; c != nil {
		lp.clientEvent(c, ev)
	} else if u := lp.conns[fd].up; u != nil {
		lp.upEvent(u, ev)
	}
}

func (lp *evLoop) register(fd int, e evConn) error {
	for fd >= len(lp.conns) {
		lp.conns = append(lp.conns, make([]evConn, len(lp.conns)+64)...)
	}
	// Edge-triggered, for both directions, once: nothing is changed per
	// request (an epoll_ctl is a system call), and a read that returns
	// less than it asked for has drained the socket, so nothing is missed.
	ev := &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(lp.ep, unix.EPOLL_CTL_ADD, fd, ev); err != nil {
		return err
	}
	lp.conns[fd] = e
	return nil
}

// forget takes fd out of the loop without closing it.
func (lp *evLoop) forget(fd int) {
	if err := unix.EpollCtl(lp.ep, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		lp.g.log.WithError(err).Debug("gateway loop: epoll_ctl del")
	}
	lp.conns[fd] = evConn{}
}

// stop removes the listeners and closes the clients with no request under
// way; the others close after their answer.
func (lp *evLoop) stop() {
	lp.stopped = true
	if !lp.acceptPaused { // else they are out already
		lp.removeListeners()
	}
	for _, e := range lp.conns {
		if c := e.c; c != nil {
			// A connection with no request under way closes now, even
			// one halfway through sending a header: nothing of it was
			// taken on yet, and a slow sender must not hold Shutdown.
			if c.st == nil && len(c.pend) == 0 {
				lp.closeClient(c)
			} else {
				c.closeAfter = true
			}
		}
	}
}

func (lp *evLoop) closeAll() {
	for _, e := range lp.conns {
		if e.c != nil {
			lp.closeClient(e.c)
		}
	}
	for _, e := range lp.conns {
		if e.up != nil {
			lp.closeUp(e.up)
		}
	}
}

// pauseAccept takes the listeners out of this loop for a while when
// accepting fails for want of descriptors: they stay readable, and the
// loop would spin on them. It backs off as connlimit's Accept does, and
// says so once.
func (lp *evLoop) pauseAccept(err error) {
	if lp.acceptBackoff == 0 && lp.ls.outOfFDs.Add(1) == 1 { // the first loop to find out says so
		lp.g.log.WithError(err).Warn("gateway loop: accepting connections fails for want of file descriptors; backing off (raise the open-files limit, or lower the connection caps)")
	}
	lp.acceptBackoff = connlimit.Backoff(lp.acceptBackoff)
	lp.removeListeners()
	lp.acceptPaused = true
	lp.tq.set(&lp.resumeAccept, lp.now.Add(lp.acceptBackoff))
}

// addListeners puts the listening sockets in this loop's epoll; one
// connection wakes one loop (EPOLLEXCLUSIVE).
func (lp *evLoop) addListeners() error {
	for _, l := range lp.ls.lns {
		if err := unix.EpollCtl(lp.ep, unix.EPOLL_CTL_ADD, l.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.fd)}); err != nil {
			return err
		}
	}
	return nil
}

func (lp *evLoop) removeListeners() {
	for _, l := range lp.ls.lns {
		if err := unix.EpollCtl(lp.ep, unix.EPOLL_CTL_DEL, l.fd, nil); err != nil {
			lp.g.log.WithError(err).Debug("gateway loop: taking a listener out")
		}
	}
}

// acceptWorks ends a back-off: accept took a connection, or found none
// waiting without running out of descriptors.
func (lp *evLoop) acceptWorks() {
	if lp.acceptBackoff == 0 {
		return
	}
	lp.acceptBackoff = 0
	if lp.ls.outOfFDs.Add(-1) == 0 { // the last loop to recover says so
		lp.g.log.Info("gateway loop: accepting connections again")
	}
}

// unpauseAccept puts the listeners back after pauseAccept's wait, and
// tries them at once (their connections may all have come already, and
// an exclusive wake-up may go to another loop).
func (lp *evLoop) unpauseAccept() {
	if !lp.acceptPaused || lp.stopped {
		return
	}
	lp.acceptPaused = false
	if err := lp.addListeners(); err != nil {
		lp.g.log.WithError(err).Error("gateway loop: resuming a listener")
	}
	for i := range lp.ls.lns {
		if !lp.acceptPaused {
			lp.accept(&lp.ls.lns[i])
		}
	}
}

// accept takes what the listener has queued, within its connection caps.
func (lp *evLoop) accept(l *loopListener) {
	for {
		fd, sa, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case connlimit.OutOfDescriptors(err):
				lp.pauseAccept(err)
			case err == unix.EAGAIN:
				lp.acceptWorks()
			case err != unix.EINTR && err != unix.ECONNABORTED && !(err == unix.EINVAL && lp.ls.closing.Load()):
				lp.g.log.WithError(err).Warn("gateway loop: accept")
			}
			return
		}
		lp.acceptWorks()
		addr := sockaddrTCP(sa)
		ip, _ := netip.AddrFromSlice(addr.IP)
		ip = ip.Unmap()
		if why, ok := l.lim.Admit(ip); !ok {
			// A fresh socket's send buffer takes the short answer.
			_, _ = rawWrite(fd, l.lim.Refusal(why))
			unix.Close(fd)
			continue
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		c := &clientConn{fd: fd, ln: l, ip: ip, timer: timer{idx: -1, fd: fd}}
		c.ctx = &fasthttp.RequestCtx{}
		c.addrs = &loopAddrs{remote: addr, local: lp.localAddr(fd)}
		c.ctx.Init2(c.addrs, lp.logger, false)
		if err := lp.register(fd, evConn{c: c}); err != nil {
			lp.g.log.WithError(err).Warn("gateway loop: registering a connection")
			unix.Close(fd)
			l.lim.Release(ip)
			continue
		}
		lp.open++
		// The first request's header deadline counts from the
		// connection's start.
		c.reading = true
		lp.setDeadline(c, lp.now.Add(lp.g.cfg.ReadHeaderTimeout))
	}
}

func (lp *evLoop) localAddr(fd int) net.Addr {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return &net.TCPAddr{}
	}
	return sockaddrTCP(sa)
}

func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	}
	return &net.TCPAddr{}
}

// loopAddrs is the net.Conn a loop's fasthttp.RequestCtx reports for its
// addresses; nothing reads or writes through it.
type loopAddrs struct{ remote, local net.Addr }

func (a *loopAddrs) Read([]byte) (int, error)         { return 0, errLoopConn }
func (a *loopAddrs) Write([]byte) (int, error)        { return 0, errLoopConn }
func (a *loopAddrs) Close() error                     { return nil }
func (a *loopAddrs) LocalAddr() net.Addr              { return a.local }
func (a *loopAddrs) RemoteAddr() net.Addr             { return a.remote }
func (a *loopAddrs) SetDeadline(time.Time) error      { return nil }
func (a *loopAddrs) SetReadDeadline(time.Time) error  { return nil }
func (a *loopAddrs) SetWriteDeadline(time.Time) error { return nil }

var errLoopConn = errors.New("gateway: a loop connection is not read through net.Conn")

// clientConn is a client connection served by the loop.
type clientConn struct {
	fd    int
	ln    *loopListener
	ip    netip.Addr
	addrs *loopAddrs
	ctx   *fasthttp.RequestCtx
	// reading: a request is arriving and its header deadline runs; false
	// while idle between requests (the idle deadline runs then).
	reading bool
	in      []byte // read and not yet answered: the request in progress, and any pipelined after it
	// pend is the answer being written, pend[sent:] what the socket has
	// not taken yet; pend keeps its start so that the next answer reuses
	// the buffer (advancing the slice instead cost two allocations per
	// request).
	pend []byte
	sent int
	// st is the request in progress (nil when idle); up its backend
	// connection; reqLen the bytes of in it takes.
	st     *reqState
	up     *upConn
	reqLen int
	req    loopReq
	// closeAfter: close once the answer is out (Connection: close, HTTP/1.0,
	// Shutdown).
	closeAfter bool
	// unread: c.in filled up with bytes left in the socket, which the
	// edge-triggered loop will not hear of again.
	unread bool
	// hup: the client has closed its side (its last requests are still
	// answered).
	hup    bool
	timer  timer
	closed bool
}

// loopReq is what the loop keeps of a request across its attempts.
type loopReq struct {
	head, http10, retryable, resend bool
	tried                           []*backendState // refused to connect; as many attempts
}

// upConn is a connection to a backend.
type upConn struct {
	fd        int
	b         *backendState
	in        []byte
	c         *clientConn // the request it carries, nil when idle
	connected bool
	reused    bool
	got       bool // any byte of the answer arrived
	idleSince time.Time
	timer     timer
	// want is how much of in the answer takes once its head is parsed;
	// -1 before.
	want int
	head int // length of the head (interim answers skipped)
}

// timers: one deadline per connection, in a heap that a connection's
// timer keeps its place in. Deadlines move on every request (a header
// deadline, then the idle one), so moving one later only writes it down:
// the heap entry fires at the earlier time, finds the later one and goes
// back in. Moving one earlier, or closing the connection, fixes the heap
// at once. The common request then costs no heap work.
type timer struct {
	at  time.Time // the deadline; zero: none
	key time.Time // where the entry sits in the heap
	idx int       // in the heap; -1 when not in it
	fd  int
	up  bool
}

type timerQueue []*timer

func (h timerQueue) Len() int           { return len(h) }
func (h timerQueue) Less(i, j int) bool { return h[i].key.Before(h[j].key) }
func (h timerQueue) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerQueue) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerQueue) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}

func (h *timerQueue) set(t *timer, at time.Time) {
	t.at = at
	switch {
	case t.idx < 0:
		t.key = at
		heap.Push(h, t)
	case at.Before(t.key):
		t.key = at
		heap.Fix(h, t.idx)
	}
}

// clear drops the deadline; its entry, if any, goes when it comes up.
func (h *timerQueue) clear(t *timer) { t.at = time.Time{} }

// remove takes the entry out now: the connection is closing.
func (h *timerQueue) remove(t *timer) {
	t.at = time.Time{}
	if t.idx >= 0 {
		heap.Remove(h, t.idx)
	}
}

// waitMillis is epoll_wait's timeout: until the earliest entry, -1 for
// none.
func (h timerQueue) waitMillis(now time.Time) int {
	if len(h) == 0 {
		return -1
	}
	d := h[0].key.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

func (h *timerQueue) fire(now time.Time, lp *evLoop) {
	for len(*h) > 0 && !(*h)[0].key.After(now) {
		t := heap.Pop(h).(*timer)
		switch {
		case t.at.IsZero():
			continue
		case t.at.After(now):
			t.key = t.at
			heap.Push(h, t)
			continue
		}
		t.at = time.Time{}
		if t == &lp.resumeAccept {
			lp.unpauseAccept()
			continue
		}
		if t.fd >= len(lp.conns) {
			continue
		}
		if t.up {
			if u := lp.conns[t.fd].up; u != nil && &u.timer == t {
				lp.upTimeout(u)
			}
		} else if c := lp.conns[t.fd].c; c != nil && &c.timer == t {
			lp.clientTimeout(c)
		}
	}
}

func (lp *evLoop) setDeadline(c *clientConn, at time.Time) { lp.tq.set(&c.timer, at) }
func (lp *evLoop) clearDeadline(c *clientConn)             { lp.tq.clear(&c.timer) }
func (lp *evLoop) setUpDeadline(u *upConn, at time.Time)   { lp.tq.set(&u.timer, at) }
func (lp *evLoop) clearUpDeadline(u *upConn)               { lp.tq.clear(&u.timer) }

// rawRead and rawWrite are read(2) and write(2) on the loop's
// non-blocking sockets as raw system calls: they never block, so the loop
// keeps its P through them. With syscall.Syscall the runtime's sysmon
// takes the P from a loop in a long loopback write (the kernel delivers
// to the receiver inside it) and the loop must win one back afterwards,
// a thread hand-off per request (the DNS server's raw batches found the
// same, batch_linux.go).
func rawRead(fd int, p []byte) (int, error)  { return rawIO(unix.SYS_READ, fd, p) }
func rawWrite(fd int, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
