package mesosdns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/connlimit"
)

// ErrClosed is returned by Start after Shutdown.
var ErrClosed = errors.New("mesosdns: server closed")

// Server answers DNS queries from the record set last given to Update.
//
// UDP is read by a fixed pool of workers that answer from the record set
// inline, so a flood queues in the kernel instead of spawning goroutines
// (miekg/dns starts one per packet, miekg/dns #997). TCP runs on miekg/dns's
// server behind a connection cap. Queries that wait (forwarded ones, TCP ones)
// hold one of MaxInFlight slots; without a slot they get SERVFAIL at once.
type Server struct {
	cfg      Config
	log      *logrus.Entry
	exch     Exchanger
	rs       atomic.Pointer[RecordSet]
	ready    atomic.Bool
	updateMu sync.Mutex // serialises Update: serials and freshness diffs
	inflight atomic.Int64
	metrics  *metrics
	// msgPathOnly turns the wire path off (tests compare the two paths).
	msgPathOnly bool

	rngMu sync.Mutex
	rng   *rand.Rand

	mu        sync.Mutex
	upstreams []string
	pc        net.PacketConn   // the first of pcs
	pcs       []net.PacketConn // UDPSockets sockets on one port
	tcp       *dns.Server
	tcpLn     net.Listener
	workers   sync.WaitGroup
	forwards  sync.WaitGroup
	started   bool
	closed    bool
	stop      context.CancelFunc
	ctx       context.Context
}

// New returns a server with an empty, not yet ready record set: until the
// first Update, queries in the domain get SERVFAIL (not cacheable) rather
// than an NXDOMAIN that clients would cache.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rs, err := BuildRecords(cfg, nil, Master{}, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:     cfg,
		log:     cfg.Log,
		exch:    cfg.Exchanger,
		metrics: newMetrics(),
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		ctx:     ctx,
		stop:    cancel,
	}
	if s.exch == nil {
		s.exch = newClientExchanger()
	}
	s.rs.Store(rs)
	// Upstreams are resolved now so that a bad list fails fast; Start
	// refines the list once it knows the bound address.
	if s.upstreams, err = upstreams(cfg.Upstreams, cfg.ResolvConf, []string{cfg.Addr}); err != nil {
		// No resolv.conf is not fatal: outside names then get SERVFAIL.
		if len(cfg.Upstreams) > 0 {
			return nil, err
		}
		s.log.WithError(err).Warn("no upstream resolvers; outside names will get SERVFAIL")
	}
	return s, nil
}

// Update builds a record set from a snapshot and swaps it in atomically. If
// the build fails the previous set keeps being served and the error is
// returned. Tasks that became visible with this update feed the freshness
// histogram with (swap time − Task.Observed).
func (s *Server) Update(tasks []Task, leader Master, masters []Master) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	old := s.rs.Load()
	rs, err := build(s.cfg, old, tasks, leader, masters)
	if err != nil {
		s.metrics.updates.WithLabelValues("error").Inc()
		s.log.WithError(err).Error("record build failed; keeping the previous record set")
		return err // already "mesosdns: …"
	}
	serial := uint32(s.cfg.Clock.Now().Unix())
	if serial <= old.serial {
		serial = old.serial + 1
	}
	rs.setSerial(serial)
	// Warn once per task, not on every rebuild while it stays broken.
	wasSkipped := make(map[string]bool, len(old.skipped))
	for _, sk := range old.skipped {
		wasSkipped[sk.TaskID] = true
	}
	for _, sk := range rs.skipped {
		if !wasSkipped[sk.TaskID] {
			s.log.WithFields(logrus.Fields{"task": sk.TaskID, "reason": sk.Reason}).Warn("task not published in DNS")
		}
	}
	s.rs.Store(rs)
	s.ready.Store(true)
	now := s.cfg.Clock.Now()
	for id, obs := range rs.published {
		if obs.IsZero() {
			continue
		}
		if prev, was := old.published[id]; was && prev.Equal(obs) {
			continue
		}
		// A stamp from the future (another clock) counts as instant.
		s.metrics.freshness.Observe(max(0, now.Sub(obs).Seconds()))
	}
	s.metrics.updates.WithLabelValues("ok").Inc()
	s.metrics.records.Set(float64(rs.Len()))
	return nil
}

// Records returns the record set being served.
func (s *Server) Records() *RecordSet { return s.rs.Load() }

// Start binds UDP and TCP on Config.Addr (the same port for both, also when
// the port is 0) and serves in the background until Shutdown.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return errors.New("mesosdns: already started")
	}
	pcs, ln, err := listenBoth(s.cfg.Addr, s.cfg.UDPSockets)
	if err != nil {
		return err
	}
	pc := pcs[0]
	s.pcs, s.pc, s.tcpLn = pcs, pc, ln
	for _, c := range pcs {
		// A larger receive buffer absorbs bursts while the fixed workers
		// catch up; beyond it the kernel drops, which is the overload
		// behaviour we want.
		if err := c.(*net.UDPConn).SetReadBuffer(4 << 20); err != nil {
			s.log.WithError(err).Debug("udp read buffer")
		}
	}
	// Recomputed now that the bound address is known, so forwarding never
	// loops back to this server; on failure New's list stays, said aloud.
	if ups, err := upstreams(s.cfg.Upstreams, s.cfg.ResolvConf, []string{s.cfg.Addr, pc.LocalAddr().String()}); err == nil {
		s.upstreams = ups
	} else {
		s.log.WithError(err).WithField("upstreams", s.upstreams).Warn("upstream resolvers not re-read after binding; forwarding with the ones read at start")
	}
	started := make(chan struct{})
	s.tcp = &dns.Server{
		// miekg/dns starts a goroutine per connection, so the cap bounds
		// goroutines too; connlimit also backs off on EMFILE, which
		// miekg/dns would retry at once, in a busy loop.
		Listener: connlimit.New(ln, connlimit.Config{Max: s.cfg.MaxTCPConns, MaxPerIP: s.cfg.MaxTCPConnsPerIP,
			Log: s.log.WithField("listener", "dns-tcp"), OnRefuse: func(connlimit.Reason) { s.metrics.tcpRefused.Inc() }}),
		Net:               "tcp",
		Handler:           s,
		ReadTimeout:       2 * time.Second,
		WriteTimeout:      2 * time.Second,
		IdleTimeout:       func() time.Duration { return 8 * time.Second },
		MaxTCPQueries:     128,
		NotifyStartedFunc: func() { close(started) },
	}
	go func() {
		if err := s.tcp.ActivateAndServe(); err != nil {
			s.log.WithError(err).Error("tcp server stopped")
		}
	}()
	for i := 0; i < s.cfg.UDPWorkers; i++ {
		s.workers.Add(1)
		go s.udpWorker(pcs[i%len(pcs)].(*net.UDPConn), i)
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		return errors.New("mesosdns: tcp server did not start within 5s")
	}
	s.started = true
	s.log.WithFields(logrus.Fields{"addr": pc.LocalAddr().String(), "upstreams": s.upstreams}).Info("dns serving")
	return nil
}

// listenBoth binds UDP first and then TCP on the same port; with port 0 it
// retries when another process owns the TCP side of the chosen port.
//
// With udpSockets > 1 the port's UDP side is then re-bound as that many
// SO_REUSEPORT sockets. The first bind is a plain socket all the same: a
// port-0 bind with SO_REUSEPORT may be given a port that another such socket
// of the same user already holds (Linux counts it as free), and on a fixed
// port a second server would silently share the port instead of failing.
// The plain socket is held until the TCP side is bound, and the TCP side
// stays ours, so two servers can never end up sharing a port.
func listenBoth(addr string, udpSockets int) ([]net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("mesosdns: listen %q: %w", addr, err)
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("mesosdns: listen udp %s: %w", addr, err)
		}
		hp := net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := net.Listen("tcp", hp)
		if err != nil {
			pc.Close()
			lastErr = fmt.Errorf("mesosdns: listen tcp %s: %w", hp, err)
			if port != "0" {
				break
			}
			continue
		}
		if udpSockets <= 1 {
			return []net.PacketConn{pc}, ln, nil
		}
		pc.Close()
		pcs, err := listenReusePort(hp, udpSockets)
		if err == nil {
			return pcs, ln, nil
		}
		ln.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

// listenReusePort binds n UDP sockets on addr with SO_REUSEPORT.
func listenReusePort(addr string, n int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: reusePort}
	pcs := make([]net.PacketConn, 0, n)
	for len(pcs) < n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range pcs {
				c.Close()
			}
			return nil, fmt.Errorf("mesosdns: listen udp %s (SO_REUSEPORT socket %d of %d): %w", addr, len(pcs)+1, n, err)
		}
		pcs = append(pcs, pc)
	}
	return pcs, nil
}

// UDPAddr is the bound UDP address (after Start).
func (s *Server) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc == nil {
		return nil
	}
	return s.pc.LocalAddr()
}

// TCPAddr is the bound TCP address (after Start).
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// Shutdown stops serving and waits, until ctx is done, for workers and
// forwarded queries to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.stop()
	var errs []error
	for _, pc := range s.pcs {
		errs = append(errs, pc.Close())
	}
	tcp := s.tcp
	s.mu.Unlock()
	if tcp != nil {
		if err := tcp.ShutdownContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("mesosdns: shutdown tcp: %w", err))
		}
	}
	done := make(chan struct{})
	go func() { s.workers.Wait(); s.forwards.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("mesosdns: shutdown: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

func (s *Server) acquire() bool {
	if s.inflight.Add(1) > int64(s.cfg.MaxInFlight) {
		s.inflight.Add(-1)
		s.metrics.overload.Inc()
		return false
	}
	return true
}

func (s *Server) release() { s.inflight.Add(-1) }

// ServeDNS answers one query; it is the handler of the TCP server and can be
// used with any miekg/dns server. Panics are recovered here, at the edge.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	defer func() {
		if p := recover(); p != nil {
			s.log.WithField("panic", p).WithField("stack", string(debug.Stack())).Error("dns handler panic")
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeServerFailure)
			if err := w.WriteMsg(m); err != nil {
				s.log.WithError(err).Debug("write SERVFAIL reply after a panic")
			}
		}
	}()
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	if !s.acquire() {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		if err := w.WriteMsg(m); err != nil {
			s.log.WithError(err).Debug("write SERVFAIL reply (over the concurrency cap)")
		}
		return
	}
	defer s.release()
	m, fwd := s.answer(r, func() net.Addr { return w.RemoteAddr() })
	if fwd {
		m = s.forward(r, network)
	}
	if m == nil {
		return
	}
	s.finish(m, r, network == "udp")
	if err := w.WriteMsg(m); err != nil {
		s.log.WithError(err).Debug("write reply")
	}
}

// udpBatch is how many packets a worker reads and writes per system call
// (recvmmsg/sendmmsg on Linux): under load the syscalls, not the answers,
// are most of the cost of a query.
const udpBatch = 32

// maxUDPReply caps UDP replies whatever EDNS0 size a client advertises; larger
// answers go over TCP. It also bounds the workers' buffers.
const maxUDPReply = 4096

// udpWorker reads and answers UDP packets until the socket is closed.
// Answers from the packed records (wire.go) are made in place; other
// queries take handlePacket with the client's address made for them.
func (s *Server) udpWorker(pc *net.UDPConn, worker int) {
	defer s.workers.Done()
	ww := newWireWorker(s.cfg.Seed, worker)
	batch, err := newRawBatch(pc, udpBatch, maxUDPReply)
	if err != nil {
		s.log.WithError(err).Warn("raw udp batches unavailable; using golang.org/x/net batches")
		batch = newXNetBatch(pc, udpBatch, maxUDPReply)
	}
	outBufs := make([][]byte, udpBatch)
	for i := range outBufs {
		outBufs[i] = make([]byte, maxUDPReply)
	}
	later := func(to net.Addr) func([]byte) {
		return func(b []byte) {
			if _, err := pc.WriteTo(b, to); err != nil {
				s.log.WithError(err).Debug("udp write")
			}
		}
	}
	for {
		n, err := batch.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.WithError(err).Debug("udp read")
			continue
		}
		for i := 0; i < n; i++ {
			pkt, truncated := batch.packet(i)
			if truncated {
				continue // a query larger than any DNS client sends over UDP
			}
			if b, ok := s.wireReplySafe(pkt, outBufs[i], ww); ok {
				batch.reply(i, b)
				continue
			}
			from := batch.from(i)
			s.msgPacket(pkt, from, outBufs[i], func(b []byte) { batch.reply(i, b) }, later(from))
		}
		if err := batch.flush(); err != nil {
			s.log.WithError(err).Debug("udp write")
		}
		ww.addTo(s.metrics)
	}
}

// wireReplySafe is wireReply with a panic turned into "not answered": the
// query then takes the dns.Msg path, which answers SERVFAIL if it panics
// too.
func (s *Server) wireReplySafe(pkt, out []byte, w *wireWorker) (b []byte, ok bool) {
	if s.msgPathOnly {
		return nil, false
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.WithField("panic", p).WithField("stack", string(debug.Stack())).Error("dns wire path panic")
			b, ok = nil, false
		}
	}()
	return s.wireAnswer(pkt, out, w)
}

// handlePacket answers one raw UDP query. Answers from our own records go to
// reply before it returns; forwarded queries continue in a goroutine that
// holds an in-flight slot and answers through later. out is scratch space
// for packing the reply.
func (s *Server) handlePacket(pkt []byte, from net.Addr, out []byte, reply, later func([]byte)) {
	if b, ok := s.wireReplySafe(pkt, out, nil); ok {
		reply(b)
		return
	}
	s.msgPacket(pkt, from, out, reply, later)
}

// msgPacket is handlePacket's dns.Msg path: the reference for what the wire
// path answers and the only path for everything else.
func (s *Server) msgPacket(pkt []byte, from net.Addr, out []byte, reply, later func([]byte)) {
	r := new(dns.Msg)
	defer func() {
		if p := recover(); p != nil {
			s.log.WithField("panic", p).WithField("stack", string(debug.Stack())).Error("dns packet panic")
			s.writeRcode(r, dns.RcodeServerFailure, out, reply)
		}
	}()
	if err := r.Unpack(pkt); err != nil {
		// Answer FORMERR when the header is readable and a query, as
		// miekg/dns's server does; anything else is dropped silently.
		if len(pkt) >= 12 && pkt[2]&0x80 == 0 {
			var h dns.Msg
			h.Id = uint16(pkt[0])<<8 | uint16(pkt[1])
			h.Response = true
			h.Opcode = int(pkt[2]>>3) & 0xF
			h.Rcode = dns.RcodeFormatError
			s.metrics.count(dns.RcodeFormatError)
			if b, err := h.PackBuffer(out); err == nil {
				reply(b)
			}
		}
		return
	}
	m, fwd := s.answer(r, func() net.Addr { return from })
	if fwd {
		if !s.acquire() {
			s.writeRcode(r, dns.RcodeServerFailure, out, reply)
			return
		}
		s.forwards.Add(1)
		go func() {
			defer s.forwards.Done()
			defer s.release()
			defer func() {
				if p := recover(); p != nil {
					s.log.WithField("panic", p).WithField("stack", string(debug.Stack())).Error("dns forward panic")
				}
			}()
			m := s.forward(r, "udp")
			s.finish(m, r, true)
			if b, err := m.Pack(); err == nil {
				later(b)
			}
		}()
		return
	}
	if m == nil {
		return
	}
	s.finish(m, r, true)
	b, err := m.PackBuffer(out)
	if err != nil {
		s.log.WithError(err).Error("pack reply")
		s.writeRcode(r, dns.RcodeServerFailure, out, reply)
		return
	}
	reply(b)
}

func (s *Server) writeRcode(r *dns.Msg, rcode int, out []byte, write func([]byte)) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	s.metrics.count(rcode)
	if b, err := m.PackBuffer(out); err == nil {
		write(b)
	}
}

// answer builds the reply to r from the current record set. It returns
// forward=true when r must go upstream, and a nil message when r must be
// dropped (it is itself a response).
func (s *Server) answer(r *dns.Msg, remote func() net.Addr) (m *dns.Msg, forward bool) {
	if r.Response {
		return nil, false
	}
	m = new(dns.Msg)
	m.SetReply(r)
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		s.metrics.count(m.Rcode)
		return m, false
	}
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		s.metrics.count(m.Rcode)
		return m, false
	}
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		// RFC 6891: unknown EDNS version gets BADVERS and our OPT.
		m.Rcode = dns.RcodeBadVers
		m.SetEdns0(advertisedUDPSize, false)
		s.metrics.count(dns.RcodeBadVers)
		return m, false
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	rs := s.rs.Load()
	if name != rs.origin && !strings.HasSuffix(name, "."+rs.origin) {
		if s.cfg.AllowForward(remote()) {
			s.metrics.forwarded.Inc()
			return nil, true
		}
		m.Rcode = dns.RcodeRefused
		s.metrics.count(m.Rcode)
		return m, false
	}
	m.Authoritative = true
	if !s.ready.Load() {
		m.Authoritative = false
		m.Rcode = dns.RcodeServerFailure
		s.metrics.count(m.Rcode)
		return m, false
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		s.metrics.count(m.Rcode)
		return m, false
	}
	n := rs.names[name]
	if n == nil {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{rs.soa}
		s.metrics.count(m.Rcode)
		return m, false
	}
	var ans, extra []dns.RR
	apex := name == rs.origin
	switch q.Qtype {
	case dns.TypeA:
		ans = n.a
	case dns.TypeAAAA:
		ans = n.aaaa
	case dns.TypeSRV:
		ans, extra = n.srv, n.glue
	case dns.TypeSOA:
		if apex {
			ans = []dns.RR{rs.soa}
		}
	case dns.TypeNS:
		ans, extra = n.ns, n.nsGlue
	case dns.TypeANY:
		ans = make([]dns.RR, 0, len(n.a)+len(n.aaaa)+len(n.srv)+len(n.ns)+1)
		ans = append(append(append(append(ans, n.a...), n.aaaa...), n.srv...), n.ns...)
		if apex {
			ans = append(ans, rs.soa)
		}
		extra = n.glue
	}
	if len(ans) == 0 {
		m.Ns = []dns.RR{rs.soa}
		s.metrics.count(dns.RcodeSuccess)
		return m, false
	}
	// Copy before shuffling: the record set is shared and immutable.
	m.Answer = make([]dns.RR, len(ans))
	copy(m.Answer, ans)
	if len(ans) > 1 {
		s.rngMu.Lock()
		s.rng.Shuffle(len(m.Answer), func(i, j int) { m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i] })
		s.rngMu.Unlock()
	}
	if len(extra) > 0 {
		m.Extra = make([]dns.RR, len(extra))
		copy(m.Extra, extra)
	}
	s.metrics.count(dns.RcodeSuccess)
	return m, false
}

// forward sends r to the upstreams in order, within ForwardTimeout overall.
func (s *Server) forward(r *dns.Msg, network string) *dns.Msg {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ForwardTimeout)
	defer cancel()
	s.mu.Lock()
	ups := s.upstreams
	s.mu.Unlock()
	for _, u := range ups {
		resp, err := s.exch.Exchange(ctx, r, network, u)
		if err == nil && resp != nil {
			resp.Id = r.Id
			return resp
		}
		s.log.WithError(err).WithField("upstream", u).Debug("forward failed")
		if ctx.Err() != nil {
			break
		}
	}
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	s.metrics.forwardFailed.Inc()
	return m
}

// finish adds EDNS0 and truncates UDP answers to what the client can take:
// 512 bytes, or its EDNS0 buffer size. Truncate sets the TC bit when records
// had to go, and the client retries over TCP.
func (s *Server) finish(m, r *dns.Msg, udp bool) {
	size := dns.MaxMsgSize
	if opt := r.IsEdns0(); opt != nil {
		if m.IsEdns0() == nil {
			m.SetEdns0(advertisedUDPSize, opt.Do())
		}
		if udp {
			size = min(int(opt.UDPSize()), maxUDPReply)
		}
	} else {
		// A forwarded reply may carry an OPT the client did not ask for.
		if o := m.IsEdns0(); o != nil {
			m.Extra = removeOPT(m.Extra)
		}
		if udp {
			size = dns.MinMsgSize
		}
	}
	m.Truncate(size)
}

func removeOPT(rrs []dns.RR) []dns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}
