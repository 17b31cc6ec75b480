package mesosconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os/user"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// Errors a subscription ends with (in Input.Disconnected).
var (
	// ErrHeartbeatTimeout: the master sent nothing, not even a HEARTBEAT,
	// for HeartbeatMisses heartbeat intervals; the stream was dropped.
	ErrHeartbeatTimeout = errors.New("mesosconn: no event from the mesos master within the heartbeat timeout")
	// ErrMasterChanged: the detector named another leading master; the
	// stream to the old one was dropped.
	ErrMasterChanged = errors.New("mesosconn: leading mesos master changed")
	// ErrStreamEnded: the master closed the subscription stream.
	ErrStreamEnded = errors.New("mesosconn: mesos master closed the subscription stream")
)

// DefaultFailoverTimeout is how long Mesos keeps a disconnected framework's
// tasks (one week, as Marathon).
const DefaultFailoverTimeout = 7 * 24 * time.Hour

// defaultHeartbeat is used until SUBSCRIBED says otherwise (Mesos's default).
const defaultHeartbeat = 15 * time.Second

// ConnConfig configures a Conn. Zero values take the documented defaults.
type ConnConfig struct {
	Detector     Detector                   // required: where the leading master is
	FrameworkIDs framework.FrameworkIDStore // required: the id to re-subscribe with

	Name            string        // FrameworkInfo.name; default "flotilla"
	User            string        // FrameworkInfo.user; default the current OS user
	Roles           []string      // default ["*"]; sent as roles with MULTI_ROLE
	Principal       string        // FrameworkInfo.principal, if any
	FailoverTimeout time.Duration // default DefaultFailoverTimeout; must be > 0
	Hostname        string        // FrameworkInfo.hostname, if any
	WebUIURL        string        // FrameworkInfo.webui_url, if any
	GPUResources    bool          // add the GPU_RESOURCES capability

	// Codec is "protobuf" (default) or "json". Protobuf is what
	// production frameworks speak; at 100,000 tasks JSON halves the launch
	// rate (bench/RESULTS.md), most of it encoding and decoding.
	Codec string
	// HeartbeatMisses: drop the stream after this many heartbeat intervals
	// without any event; default 2.
	HeartbeatMisses int
	// BackoffMin and BackoffMax bound the re-subscribe backoff; defaults
	// 500 ms and 30 s, jittered.
	BackoffMin, BackoffMax time.Duration
	// CallTimeout bounds a Driver call whose ctx has no deadline; default 10 s.
	CallTimeout time.Duration
	// RequestTimeout bounds connecting and waiting for response headers,
	// SUBSCRIBE included; default 10 s.
	RequestTimeout time.Duration
	// LeaderTimeout bounds one wait for the detector to name a master
	// before the attempt counts as failed; default 30 s.
	LeaderTimeout time.Duration

	Clock  clock.Clock   // default clock.Real
	Rand   *rand.Rand    // jitter; default seeded with 1. Used by Run only.
	Logger *logrus.Entry // default discards
}

func (c *ConnConfig) defaults() error {
	if c.Detector == nil {
		return errors.New("mesosconn: conn config has no Detector")
	}
	if c.FrameworkIDs == nil {
		return errors.New("mesosconn: conn config has no FrameworkIDs store")
	}
	if c.Name == "" {
		c.Name = "flotilla"
	}
	if c.User == "" {
		c.User = "root"
		if u, err := user.Current(); err == nil && u.Username != "" {
			c.User = u.Username
		}
	}
	if len(c.Roles) == 0 {
		c.Roles = []string{"*"}
	}
	if c.FailoverTimeout < 0 {
		return fmt.Errorf("mesosconn: failover timeout %v is negative", c.FailoverTimeout)
	}
	if c.FailoverTimeout == 0 {
		c.FailoverTimeout = DefaultFailoverTimeout
	}
	switch c.Codec {
	case "", "json", "protobuf":
	default:
		return fmt.Errorf("mesosconn: codec %q unknown (want json or protobuf)", c.Codec)
	}
	if c.HeartbeatMisses <= 0 {
		c.HeartbeatMisses = 2
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 500 * time.Millisecond
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(30*time.Second, c.BackoffMin)
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.LeaderTimeout <= 0 {
		c.LeaderTimeout = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewSource(1))
	}
	if c.Logger == nil {
		c.Logger = logging.Component(logging.Discard(), "conn")
	}
	return nil
}

// Conn keeps one subscription to the leading Mesos master and feeds its
// events to the scheduler core. Its Driver sends calls on that subscription.
type Conn struct {
	cfg       ConnConfig
	log       *logrus.Entry
	codec     encoding.Codec
	transport *http.Transport
	running   atomic.Bool

	// sess is the current subscription, nil while disconnected; the Driver
	// reads it, Run writes it.
	sess atomic.Pointer[connSession]
	// reader is the current stream's event reader, for tests that must
	// know it is blocked handing an event over before they step a clock.
	reader atomic.Pointer[eventReader]

	// Owned by Run's goroutine.
	fresh  bool   // subscribe without an id: the framework was removed
	lastID string // the id Mesos last gave us, in case the store failed
	hint   string // a redirect's target, tried before asking the detector
}

type connSession struct {
	caller      calls.Caller
	frameworkID string
	master      string
	acks        *ackPipe // nil: acknowledge through caller, one call at a time
}

// NewConn checks cfg and returns a Conn; Run starts it.
func NewConn(cfg ConnConfig) (*Conn, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	codec := codecs.ByMediaType[codecs.MediaTypeProtobuf]
	if cfg.Codec == "json" {
		codec = codecs.ByMediaType[codecs.MediaTypeJSON]
	}
	dialer := &net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}
	return &Conn{
		cfg:   cfg,
		log:   cfg.Logger,
		codec: codec,
		transport: &http.Transport{
			// No proxy from the environment: the master is reached directly.
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: cfg.RequestTimeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		},
	}, nil
}

// Subscribed reports whether a subscription is up (SUBSCRIBED received and
// the stream not yet ended).
func (c *Conn) Subscribed() bool { return c.sess.Load() != nil }

// FrameworkID is the id of the current subscription, "" while disconnected.
func (c *Conn) FrameworkID() string {
	if s := c.sess.Load(); s != nil {
		return s.frameworkID
	}
	return ""
}

// Run subscribes and re-subscribes until ctx ends, then returns nil. Every
// event but HEARTBEAT goes to out in order; when a subscription that
// delivered events ends, Input{Disconnected: err} follows. Run sends on out
// only while ctx is live. One Run at a time.
func (c *Conn) Run(ctx context.Context, out chan<- framework.Input) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("mesosconn: conn is already running")
	}
	defer c.running.Store(false)
	defer c.transport.CloseIdleConnections()
	failures, redirects := 0, 0
	for ctx.Err() == nil {
		res := c.attempt(ctx, out)
		if res.subscribed {
			failures = 0
		}
		if res.forwarded {
			select {
			case out <- framework.Input{Disconnected: res.err}:
			case <-ctx.Done():
				return nil
			}
		}
		if ctx.Err() != nil {
			break
		}
		// A redirect names the leader: follow it at once, a few times.
		if res.redirected && redirects < 3 {
			redirects++
			c.log.WithError(res.err).WithField("master", c.hint).Info("following redirect to the leading master")
			continue
		}
		redirects = 0
		failures++
		delay := haBackoff(failures, c.cfg.BackoffMin, c.cfg.BackoffMax, c.cfg.Rand)
		entry := c.log.WithError(res.err).WithField("retry_in", delay)
		if res.subscribed {
			entry.Warn("subscription ended; re-subscribing")
		} else {
			entry.Warn("subscribe failed")
		}
		t := c.cfg.Clock.NewTimer(delay)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
		}
	}
	return nil
}

type attemptResult struct {
	err        error
	subscribed bool // SUBSCRIBED arrived
	forwarded  bool // at least one event went to out
	redirected bool // c.hint names the master to try next
}

// attempt runs one SUBSCRIBE and its stream to the end: find the master
// (target), subscribe (subscribe, with a client from newClient), then
// serve the stream (stream.serve) until it ends.
func (c *Conn) attempt(ctx context.Context, out chan<- framework.Input) (res attemptResult) {
	defer func() {
		if r := recover(); r != nil {
			c.log.WithField("panic", r).WithField("stack", haStack()).Error("subscription crashed")
			res.err = fmt.Errorf("mesosconn: subscription panicked: %v", r)
		}
	}()
	target, changed, err := c.target(ctx)
	if err != nil {
		return attemptResult{err: err}
	}
	fid, err := c.subscribeID(ctx)
	if err != nil {
		return attemptResult{err: err}
	}
	s := &stream{c: c, res: &res, target: target, asked: fid, changed: changed,
		log: c.log.WithFields(logrus.Fields{"master": target, "framework_id": fid})}
	// A fresh client per subscription, pointed at the master just
	// resolved, and no redirects inside httpsched: after following a 307 it
	// keeps sending the other calls to the old master (MESOS.md). Redirects
	// are followed here, by re-pointing the next attempt.
	s.caller = httpsched.NewCaller(c.newClient(target, &s.hdr), httpsched.MaxRedirects(0))
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := s.subscribe(streamCtx)
	if err != nil {
		res.err = err
		return res
	}
	s.rd = newEventReader(resp, c.cfg.Clock)
	c.reader.Store(s.rd)
	go s.rd.run(s.log)
	defer func() {
		// Fence the Driver first, then tear the stream down.
		c.sess.Store(nil)
		c.reader.Store(nil)
		cancel()
		resp.Close()
		s.rd.stop()
		if s.acks != nil {
			s.acks.close()
		}
	}()
	res.err = s.serve(ctx, out)
	return res
}

// target is the master to subscribe to: a redirect's target if the last
// attempt got one, else the detector's leader; changed is closed when the
// detector's leader changes.
func (c *Conn) target(ctx context.Context) (target string, changed <-chan struct{}, err error) {
	if c.hint != "" {
		target, c.hint = c.hint, ""
		// Following a redirect: still hear about the detector's changes.
		_, changed, err = c.peekLeader(ctx)
		if err != nil {
			c.log.WithError(err).WithField("master", target).Info("following a redirect while the detector knows no leader; a change of leader ends this subscription only through the master")
		}
		return target, changed, nil
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.LeaderTimeout)
	defer cancel()
	return c.cfg.Detector.Leader(lctx)
}

// masterHeaders are what the client's doer notes of the master's answers.
// The doer also serves the Driver's goroutines, hence the atomics.
type masterHeaders struct {
	location atomic.Pointer[string] // a 307's Location
	streamID atomic.Pointer[string] // SUBSCRIBE's Mesos-Stream-Id, for the ackPipe
}

func (h *masterHeaders) load(p *atomic.Pointer[string]) string {
	if v := p.Load(); v != nil {
		return *v
	}
	return ""
}

// newClient is a mesos-go client for target that notes redirects and
// stream ids in hdr and puts a frameGuard on the event stream.
func (c *Conn) newClient(target string, hdr *masterHeaders) *httpcli.Client {
	return httpcli.New(
		httpcli.Endpoint(target),
		httpcli.Codec(c.codec),
		httpcli.Do(httpcli.With(httpcli.RoundTripper(c.transport))),
		httpcli.WrapDoer(func(next httpcli.DoFunc) httpcli.DoFunc {
			return func(req *http.Request) (*http.Response, error) {
				resp, err := next(req)
				if err != nil {
					return resp, err
				}
				if resp.StatusCode == http.StatusTemporaryRedirect {
					loc := resp.Header.Get("Location")
					hdr.location.Store(&loc)
				}
				if id := resp.Header.Get("Mesos-Stream-Id"); id != "" {
					hdr.streamID.Store(&id)
				}
				guardStream(resp)
				return resp, nil
			}
		}),
	)
}

// stream is one subscription from SUBSCRIBE to its end, owned by Run's
// goroutine.
type stream struct {
	c       *Conn
	res     *attemptResult // the attempt's, kept if serve panics
	log     *logrus.Entry
	target  string
	asked   string // the framework id subscribed with
	caller  calls.Caller
	hdr     masterHeaders
	changed <-chan struct{} // the detector's leader changed
	rd      *eventReader
	acks    *ackPipe

	limit    time.Duration // silence that drops the stream
	watchdog clock.Timer
}

// subscribe sends SUBSCRIBE. A refusal that redirects to another master
// sets the Conn's hint and res.redirected, so Run tries that master next.
func (s *stream) subscribe(ctx context.Context) (mesos.Response, error) {
	s.log.Info("subscribing")
	resp, err := s.caller.Call(ctx, calls.Subscribe(s.c.frameworkInfo(s.asked)))
	if err == nil {
		return resp, nil
	}
	if resp != nil {
		if cerr := resp.Close(); cerr != nil {
			s.log.WithError(cerr).Debug("closing the refused SUBSCRIBE's response")
		}
	}
	if next, ok := resolveRedirect(s.target, s.hdr.load(&s.hdr.location)); ok && next != s.target {
		s.c.hint = next
		s.res.redirected = true
	}
	return nil, fmt.Errorf("mesosconn: subscribe to %s: %w", s.target, err)
}

// serve hands the stream's events to out in order until the stream ends,
// the heartbeat watchdog fires, the leading master changes or ctx ends,
// and returns why.
func (s *stream) serve(ctx context.Context, out chan<- framework.Input) error {
	s.limit = time.Duration(s.c.cfg.HeartbeatMisses) * defaultHeartbeat
	s.watchdog = s.c.cfg.Clock.NewTimer(s.limit)
	defer s.watchdog.Stop()
	for {
		var err error
		select {
		case d := <-s.rd.events:
			err = s.event(ctx, d, out)
		case <-s.watchdog.C():
			err = s.heartbeatDue()
		case <-s.changed:
			err = s.leaderChanged(ctx)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}

// event handles one decoded event (SUBSCRIBED and ERROR here too) and
// forwards it to the core.
func (s *stream) event(ctx context.Context, d decodedEvent, out chan<- framework.Input) error {
	s.rd.taken()
	if d.err != nil {
		return fmt.Errorf("%w: %w", ErrStreamEnded, d.err)
	}
	switch d.ev.GetType() {
	case scheduler.Event_SUBSCRIBED:
		s.subscribed(ctx, d.ev.GetSubscribed())
	case scheduler.Event_ERROR:
		s.c.mesosError(ctx, s.log, d.ev.GetError().GetMessage())
	}
	select {
	case out <- framework.Input{Event: d.ev}:
		s.res.forwarded = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscribed stores the confirmed framework id, opens the session the
// Driver sends on, and sets the watchdog to the announced heartbeat.
func (s *stream) subscribed(ctx context.Context, sub *scheduler.Event_Subscribed) {
	id := sub.GetFrameworkID().GetValue()
	s.log = s.c.log.WithFields(logrus.Fields{"master": s.target, "framework_id": id})
	s.c.subscribed(ctx, s.log, s.asked, id)
	if sid := s.hdr.load(&s.hdr.streamID); sid != "" && s.acks == nil {
		s.acks = newAckPipe(s.target, s.c.codec, sid, s.c.cfg.RequestTimeout)
	}
	s.c.sess.Store(&connSession{caller: s.caller, frameworkID: id, master: s.target, acks: s.acks})
	s.res.subscribed = true
	hb, clamped := heartbeatInterval(sub.GetHeartbeatIntervalSeconds())
	if clamped {
		s.log.WithField("announced_seconds", sub.GetHeartbeatIntervalSeconds()).Warnf("the master announced a heartbeat interval outside %v..%v; using %v", minHeartbeat, maxHeartbeat, hb)
	}
	s.limit = time.Duration(s.c.cfg.HeartbeatMisses) * hb
	s.watchdog.Reset(s.limit)
	s.log.WithField("heartbeat", hb).Info("subscribed")
}

// heartbeatDue is the watchdog's turn: ErrHeartbeatTimeout once the
// master was silent for limit; time the core spent not taking an event
// does not count.
func (s *stream) heartbeatDue() error {
	silent, busy := s.rd.silence()
	switch {
	case busy: // the core is slow, not the master: we are not reading
		s.watchdog.Reset(s.limit)
		return nil
	case silent < s.limit:
		s.watchdog.Reset(s.limit - silent)
		return nil
	}
	s.log.WithFields(logrus.Fields{"silent": silent, "limit": s.limit}).Warn("heartbeat missed; dropping the subscription")
	return ErrHeartbeatTimeout
}

// leaderChanged ends the stream unless the detector's leader is still
// target (no leader at all also ends it).
func (s *stream) leaderChanged(ctx context.Context) error {
	u, ch, err := s.c.peekLeader(ctx)
	if err == nil && u == s.target {
		s.changed = ch
		return nil
	}
	s.log.WithField("new_master", u).Warn("leading master changed; dropping the subscription")
	return ErrMasterChanged
}

// peekLeader asks the detector without waiting: with a cancelled context
// it answers only if a leader is known.
func (c *Conn) peekLeader(ctx context.Context) (string, <-chan struct{}, error) {
	peek, cancel := context.WithCancel(ctx)
	cancel()
	return c.cfg.Detector.Leader(peek)
}

// eventReader decodes a subscription stream in its own goroutine, drops
// HEARTBEATs, and hands the rest over one at a time. It notes when it
// began waiting on the network, so the watchdog measures the master's
// silence and not time spent waiting for the core to take an event.
type eventReader struct {
	resp    mesos.Response
	clk     clock.Clock
	events  chan decodedEvent
	waiting atomic.Int64 // clock nanos of the last frame or hand-over
	handing atomic.Bool  // blocked handing an event over
	handed  atomic.Int64 // events handed over so far (tests wait on it)
	stopped chan struct{}
	done    chan struct{}
}

type decodedEvent struct {
	ev  *scheduler.Event
	err error // the stream ended; last value sent
}

func newEventReader(resp mesos.Response, clk clock.Clock) *eventReader {
	r := &eventReader{resp: resp, clk: clk, events: make(chan decodedEvent),
		stopped: make(chan struct{}), done: make(chan struct{})}
	r.waiting.Store(clk.Now().UnixNano())
	return r
}

func (r *eventReader) run(log *logrus.Entry) {
	defer close(r.done)
	defer func() {
		if p := recover(); p != nil {
			log.WithField("panic", p).WithField("stack", haStack()).Error("event reader crashed")
			r.hand(decodedEvent{err: fmt.Errorf("mesosconn: event reader panicked: %v", p)})
		}
	}()
	for {
		ev := new(scheduler.Event)
		err := r.resp.Decode(ev)
		r.waiting.Store(r.clk.Now().UnixNano()) // a frame (or the end) arrived
		if err == nil && ev.GetType() == scheduler.Event_HEARTBEAT {
			continue
		}
		if !r.hand(decodedEvent{ev, err}) || err != nil {
			return
		}
	}
}

func (r *eventReader) hand(d decodedEvent) bool {
	r.handing.Store(true)
	select {
	case r.events <- d:
		// Silence counts from the hand-over, which the receiver notes
		// (taken) before anything else can look at it.
		r.handed.Add(1)
		r.handing.Store(false)
		return true
	case <-r.stopped:
		return false
	}
}

// taken is called by the receiver of each event as it takes it: silence
// counts from here. Noted on the receiver's goroutine, so the watchdog
// (on the same goroutine) and whatever the event is forwarded to see it,
// however late the reader's goroutine runs again.
func (r *eventReader) taken() { r.waiting.Store(r.clk.Now().UnixNano()) }

// silence is how long the current read has waited; busy when the reader
// is not reading at all but handing an event over.
func (r *eventReader) silence() (time.Duration, bool) {
	if r.handing.Load() {
		return 0, true
	}
	return r.clk.Now().Sub(time.Unix(0, r.waiting.Load())), false
}

// stop ends the reader; the caller has closed the response first.
func (r *eventReader) stop() {
	close(r.stopped)
	<-r.done
}

// subscribeID is the framework id to SUBSCRIBE with: none after the
// framework was removed; otherwise the stored one, or the one Mesos gave us
// last if the store lost it. A store that cannot be read fails the attempt:
// subscribing as a new framework would orphan every running task.
func (c *Conn) subscribeID(ctx context.Context) (string, error) {
	if c.fresh {
		return "", nil
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	id, err := c.cfg.FrameworkIDs.FrameworkID(sctx)
	if err != nil {
		if c.lastID != "" {
			c.log.WithError(err).WithField("framework_id", c.lastID).Warn("framework id store unreadable; using the id from the last subscription")
			return c.lastID, nil
		}
		return "", fmt.Errorf("mesosconn: read the stored framework id: %w", err)
	}
	if id == "" {
		id = c.lastID
	}
	return id, nil
}

// subscribed records the id Mesos confirmed.
func (c *Conn) subscribed(ctx context.Context, log *logrus.Entry, asked, got string) {
	c.fresh = false
	c.lastID = got
	if asked != "" && asked != got {
		log.WithField("asked", asked).Warn("mesos gave a different framework id than the one we subscribed with")
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	stored, err := c.cfg.FrameworkIDs.FrameworkID(sctx)
	if err == nil && stored == got {
		return
	}
	if err := c.cfg.FrameworkIDs.SetFrameworkID(sctx, got); err != nil {
		// Kept in memory for re-subscribing; stored again next SUBSCRIBED.
		log.WithError(err).Error("could not store the framework id; a restart would register a new framework")
		return
	}
	log.Info("framework id stored")
}

// mesosError handles an ERROR event; the master closes the stream after it.
func (c *Conn) mesosError(ctx context.Context, log *logrus.Entry, msg string) {
	if !frameworkRemoved(msg) {
		log.WithField("message", msg).Warn("mesos sent an error event")
		return
	}
	log.WithField("message", msg).Error("MESOS REMOVED THIS FRAMEWORK: its tasks are gone; clearing the stored framework id and registering as a new framework")
	c.fresh = true
	c.lastID = ""
	sctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if err := c.cfg.FrameworkIDs.SetFrameworkID(sctx, ""); err != nil {
		log.WithError(err).Error("could not clear the stored framework id")
	}
}

// frameworkRemoved tells apart the ERROR messages after which the framework
// id is dead for good (torn down, or failover timeout passed) from those
// after which re-subscribing with it works ("Framework failed over").
func frameworkRemoved(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "framework has been removed") ||
		strings.Contains(m, "framework removed") ||
		strings.Contains(m, "completed framework")
}

func (c *Conn) frameworkInfo(id string) *mesos.FrameworkInfo {
	failover := c.cfg.FailoverTimeout.Seconds()
	checkpoint := true
	caps := []mesos.FrameworkInfo_Capability_Type{
		mesos.FrameworkInfo_Capability_PARTITION_AWARE,
		mesos.FrameworkInfo_Capability_TASK_KILLING_STATE,
		mesos.FrameworkInfo_Capability_MULTI_ROLE,
		mesos.FrameworkInfo_Capability_REGION_AWARE,
	}
	if c.cfg.GPUResources {
		caps = append(caps, mesos.FrameworkInfo_Capability_GPU_RESOURCES)
	}
	info := &mesos.FrameworkInfo{
		User:            c.cfg.User,
		Name:            c.cfg.Name,
		FailoverTimeout: &failover,
		Checkpoint:      &checkpoint,
		Roles:           append([]string(nil), c.cfg.Roles...),
	}
	for _, t := range caps {
		info.Capabilities = append(info.Capabilities, mesos.FrameworkInfo_Capability{Type: t})
	}
	if id != "" {
		info.ID = &mesos.FrameworkID{Value: id}
	}
	if c.cfg.Hostname != "" {
		info.Hostname = &c.cfg.Hostname
	}
	if c.cfg.WebUIURL != "" {
		info.WebUiURL = &c.cfg.WebUIURL
	}
	if c.cfg.Principal != "" {
		info.Principal = &c.cfg.Principal
	}
	return info
}

// resolveRedirect turns a 307's Location (//host:port/path) into a URL
// with the current scheme.
func resolveRedirect(current, location string) (string, bool) {
	if location == "" {
		return "", false
	}
	base, err := url.Parse(current)
	if err != nil {
		return "", false
	}
	loc, err := url.Parse(location)
	if err != nil || (loc.Host == "" && loc.Path == "") {
		return "", false
	}
	next := base.ResolveReference(loc)
	if next.Path == "" || next.Path == "/" {
		next.Path = schedulerAPIPath
	}
	return next.String(), true
}

func haStack() string { return string(debug.Stack()) }
