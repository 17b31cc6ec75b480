package mesosconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// Election errors.
var (
	// ErrNotLeader: the call needs this replica to lead and it does not
	// (framework.ErrNotLeader, which the API checks for).
	ErrNotLeader = framework.ErrNotLeader
	// ErrNoSession: no ZooKeeper session is up to answer from.
	ErrNoSession = errors.New("mesosconn: no zookeeper session")
)

// candidatePrefix names the candidates' znodes (after go-zookeeper's
// protection prefix, which survives a lost create reply).
const candidatePrefix = "member_"

// ElectionConfig configures an Election.
type ElectionConfig struct {
	Servers []string // ZooKeeper host:port list; required
	Path    string   // parent of the candidates' znodes, e.g. /flotilla/leader; required
	// Address is what this replica advertises to the others (the API's
	// base URL); LeaderAddress returns the leader's.
	Address string
	ID      string // names this replica in logs and in its znode; optional
	// SessionTimeout of the ZooKeeper session; default 10 s. The server
	// bounds it (2 to 20 ticks by default).
	SessionTimeout time.Duration
	// FenceAfter: a leader disconnected from ZooKeeper this long stops
	// leading, before the server can expire its session and elect another.
	// go-zookeeper notices a silent server up to 2/3 of the session timeout
	// after it last heard from it, and the server expires the session no
	// sooner than one session timeout after that, so the default, 1/4 of
	// the session timeout, fences at least 1/12 of it before the expiry.
	FenceAfter time.Duration
	// ConnectTimeout bounds getting a session and each ZooKeeper request;
	// default SessionTimeout.
	ConnectTimeout time.Duration
	Clock          clock.Clock   // default clock.Real
	Rand           *rand.Rand    // backoff jitter; default seeded with 1; used by Run only
	Logger         *logrus.Entry // default discards
}

// Election is one replica's candidacy: EPHEMERAL|SEQUENCE znodes under
// Path, the lowest sequence leads, each candidate watches only its
// predecessor, and a leader that loses its session stops leading at once.
type Election struct {
	cfg    ElectionConfig
	log    *logrus.Entry
	leader atomic.Bool
	// disconnected: the session is disconnected now; a leader still
	// leads until FenceAfter or the expiry, but holds its kills (replica.go).
	disconnected atomic.Bool

	mu  sync.Mutex
	cur *electionTerm // the live session, nil between sessions

	// watching is the predecessor znode this standby watches, nil while
	// it does not (tests wait on it instead of sleeping).
	watching atomic.Pointer[string]
}

// electionTerm is one ZooKeeper session and our znode in it.
type electionTerm struct {
	conn      *zk.Conn
	node      string        // full path of our znode
	abdicate  chan struct{} // closed by Abdicate
	abdicated sync.Once
	ended     chan struct{} // closed once a leadership in this term has ended and its work stopped
}

type candidateData struct {
	Address string `json:"address"`
	ID      string `json:"id,omitempty"`
}

// NewElection checks cfg and returns an Election; Run contends.
func NewElection(cfg ElectionConfig) (*Election, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("mesosconn: election needs zookeeper servers")
	}
	if !strings.HasPrefix(cfg.Path, "/") || strings.HasSuffix(cfg.Path, "/") {
		return nil, fmt.Errorf("mesosconn: election path %q must start with / and not end with it", cfg.Path)
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.FenceAfter <= 0 {
		cfg.FenceAfter = cfg.SessionTimeout / 4
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = cfg.SessionTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewSource(1))
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Component(logging.Discard(), "election")
	}
	log := cfg.Logger.WithField("election", cfg.Path)
	if cfg.ID != "" {
		log = log.WithField("replica", cfg.ID)
	}
	return &Election{cfg: cfg, log: log}, nil
}

// IsLeader reports whether this replica leads now.
func (e *Election) IsLeader() bool { return e.leader.Load() }

// SessionDisconnected reports whether this replica's ZooKeeper session is
// disconnected now: a leader in that state may already have been replaced
// (its session expires on the server while it cannot hear of it), and
// leads on only until FenceAfter.
func (e *Election) SessionDisconnected() bool { return e.disconnected.Load() }

// Run contends until ctx ends, then returns nil after lead has returned.
// Each time this replica wins, lead runs with a context that is cancelled
// the moment leadership is lost (session expired, disconnected longer than
// FenceAfter, znode deleted, Abdicate, or ctx); Run waits for lead to
// return before contending again, so two leads never overlap. If lead
// returns by itself, the replica gives up leadership and contends again.
func (e *Election) Run(ctx context.Context, lead func(ctx context.Context)) error {
	failures := 0
	for ctx.Err() == nil {
		clean, err := e.term(ctx, lead)
		if ctx.Err() != nil {
			break
		}
		delay := time.Duration(0)
		if clean {
			failures = 0
		} else {
			failures++
			delay = haBackoff(failures, 200*time.Millisecond, 10*time.Second, e.cfg.Rand)
		}
		e.log.WithError(err).WithField("retry_in", delay).Info("contending again with a new session")
		if delay > 0 {
			t := e.cfg.Clock.NewTimer(delay)
			select {
			case <-t.C():
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	return nil
}

// sessionWatch turns go-zookeeper's session events into one "lost" signal.
type sessionWatch struct {
	ready chan struct{} // closed at the first StateHasSession
	lost  chan struct{} // closed when the session is gone for us
	why   atomic.Pointer[string]
}

func (e *Election) watchSession(ctx context.Context, events <-chan zk.Event) *sessionWatch {
	w := &sessionWatch{ready: make(chan struct{}), lost: make(chan struct{})}
	lose := func(why string) {
		w.why.Store(&why)
		close(w.lost)
	}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				e.log.WithField("panic", r).WithField("stack", haStack()).Error("session watch crashed")
			}
		}()
		var (
			fence    clock.Timer
			fenceC   <-chan time.Time
			hadReady bool
		)
		stopFence := func() {
			if fence != nil {
				fence.Stop()
				fence, fenceC = nil, nil
			}
		}
		defer stopFence()
		defer func() {
			for range events { // keep go-zookeeper from blocking until it closes
			}
		}()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					lose("zookeeper connection closed")
					return
				}
				if ev.Type != zk.EventSession {
					continue
				}
				switch ev.State {
				case zk.StateHasSession:
					e.disconnected.Store(false)
					stopFence()
					if !hadReady {
						hadReady = true
						close(w.ready)
					}
				case zk.StateDisconnected, zk.StateConnecting:
					if hadReady {
						e.disconnected.Store(true)
					}
					if hadReady && fence == nil {
						fence = e.cfg.Clock.NewTimer(e.cfg.FenceAfter)
						fenceC = fence.C()
						e.log.WithField("fence_after", e.cfg.FenceAfter).Warn("disconnected from zookeeper")
					}
				case zk.StateExpired:
					lose("zookeeper session expired")
					return
				case zk.StateAuthFailed:
					lose("zookeeper authentication failed")
					return
				}
			case <-fenceC:
				lose(fmt.Sprintf("disconnected from zookeeper for %v", e.cfg.FenceAfter))
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return w
}

func (w *sessionWatch) reason() error {
	if p := w.why.Load(); p != nil {
		return errors.New("mesosconn: " + *p)
	}
	return errors.New("mesosconn: zookeeper session lost")
}

// term is one session: join, wait for our turn, lead until lost. clean is
// true when the term ended without a failure (abdication, ctx ended).
func (e *Election) term(ctx context.Context, lead func(context.Context)) (clean bool, err error) {
	sessCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, events, err := zk.Connect(e.cfg.Servers, e.cfg.SessionTimeout,
		zk.WithLogger(zkLogger{e.log}), zk.WithLogInfo(false))
	if err != nil {
		return false, fmt.Errorf("mesosconn: connect to zookeeper %v: %w", e.cfg.Servers, err)
	}
	// Closing ends the session: the server deletes our znode at once and
	// the next candidate takes over without waiting for an expiry.
	defer conn.Close()
	sw := e.watchSession(sessCtx, events)

	ready := e.cfg.Clock.NewTimer(e.cfg.ConnectTimeout)
	select {
	case <-sw.ready:
		ready.Stop()
	case <-sw.lost:
		ready.Stop()
		return false, sw.reason()
	case <-ready.C():
		return false, fmt.Errorf("mesosconn: no zookeeper session within %v from %v", e.cfg.ConnectTimeout, e.cfg.Servers)
	case <-ctx.Done():
		ready.Stop()
		return true, ctx.Err()
	}

	if err := e.ensurePath(ctx, conn); err != nil {
		return false, err
	}
	data, _ := json.Marshal(candidateData{Address: e.cfg.Address, ID: e.cfg.ID})
	var node string
	err = e.zk(ctx, func() error {
		var err error
		node, err = conn.CreateProtectedEphemeralSequential(e.cfg.Path+"/"+candidatePrefix, data, zk.WorldACL(zk.PermAll))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("mesosconn: join election under %s: %w", e.cfg.Path, err)
	}
	t := &electionTerm{conn: conn, node: node, abdicate: make(chan struct{}), ended: make(chan struct{})}
	e.mu.Lock()
	e.cur = t
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.cur = nil
		e.mu.Unlock()
	}()
	log := e.log.WithField("node", node)
	log.Info("joined election")

	for {
		order, err := e.candidates(ctx, conn)
		if err != nil {
			return false, err
		}
		me := -1
		for i, c := range order {
			if e.cfg.Path+"/"+c == node {
				me = i
			}
		}
		if me < 0 {
			return false, fmt.Errorf("mesosconn: our candidate znode %s is gone", node)
		}
		if me == 0 {
			return e.lead(ctx, log, conn, t, sw, lead)
		}
		// Watch only the predecessor: one candidate wakes per departure.
		pred := e.cfg.Path + "/" + order[me-1]
		var (
			exists bool
			watch  <-chan zk.Event
		)
		err = e.zk(ctx, func() error {
			var err error
			exists, _, watch, err = conn.ExistsW(pred)
			return err
		})
		if err != nil {
			return false, fmt.Errorf("mesosconn: watch predecessor %s: %w", pred, err)
		}
		if !exists {
			continue
		}
		log.WithField("predecessor", pred).Info("standing by")
		e.watching.Store(&pred)
		select {
		case <-watch:
			e.watching.Store(nil)
		case <-sw.lost:
			e.watching.Store(nil)
			return false, sw.reason()
		case <-ctx.Done():
			e.watching.Store(nil)
			return true, ctx.Err()
		}
	}
}

// lead runs lead until leadership ends, fences, and waits for it to stop.
func (e *Election) lead(ctx context.Context, log *logrus.Entry, conn *zk.Conn, t *electionTerm,
	sw *sessionWatch, lead func(context.Context)) (bool, error) {
	var own <-chan zk.Event
	err := e.zk(ctx, func() error {
		exists, _, w, err := conn.ExistsW(t.node)
		if err == nil && !exists {
			err = zk.ErrNoNode
		}
		own = w
		return err
	})
	if err != nil {
		return false, fmt.Errorf("mesosconn: watch own znode %s: %w", t.node, err)
	}
	leadCtx, fence := context.WithCancel(ctx)
	defer fence()
	done := make(chan struct{})
	e.leader.Store(true)
	log.Info("elected leader")
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				log.WithField("panic", r).WithField("stack", haStack()).Error("leader work crashed")
			}
		}()
		lead(leadCtx)
	}()
	var (
		why   error
		clean bool
	)
	select {
	case <-sw.lost:
		why = sw.reason()
	case ev := <-own:
		// Deleted, or the watch died with the session (EventNotWatching).
		why = fmt.Errorf("mesosconn: own znode watch fired (%v, err %v)", ev.Type, ev.Err)
	case <-t.abdicate:
		why, clean = errors.New("mesosconn: abdicated"), true
	case <-done:
		// Not clean: a core that keeps failing must not make the replicas
		// trade leadership in a tight loop.
		why = errors.New("mesosconn: leader work returned")
	case <-ctx.Done():
		why, clean = ctx.Err(), true
	}
	// Fence first: nothing may act as leader from here on.
	e.leader.Store(false)
	fence()
	log.WithError(why).Warn("leadership lost; fenced")
	e.awaitStop(log, done)
	close(t.ended)
	return clean, why
}

// awaitStop waits for the leader work to return, complaining while it
// does not: contending again before would let two leaders overlap.
func (e *Election) awaitStop(log *logrus.Entry, done <-chan struct{}) {
	start := e.cfg.Clock.Now()
	for {
		t := e.cfg.Clock.NewTimer(5 * time.Second)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C():
			log.WithField("waiting", e.cfg.Clock.Now().Sub(start)).Error("leader work has not stopped after fencing")
		}
	}
}

func (e *Election) ensurePath(ctx context.Context, conn *zk.Conn) error {
	p := ""
	for _, part := range strings.Split(strings.TrimPrefix(e.cfg.Path, "/"), "/") {
		p += "/" + part
		err := e.zk(ctx, func() error {
			_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
			return err
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("mesosconn: create election path %s: %w", p, err)
		}
	}
	return nil
}

// zk runs one ZooKeeper request with the connect timeout as its deadline.
func (e *Election) zk(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	return zkDo(ctx, f)
}

// candidates lists the candidate znodes under Path in election order.
func (e *Election) candidates(ctx context.Context, conn *zk.Conn) ([]string, error) {
	var children []string
	err := e.zk(ctx, func() error {
		var err error
		children, _, err = conn.Children(e.cfg.Path)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mesosconn: list candidates under %s: %w", e.cfg.Path, err)
	}
	return sortedCandidates(children), nil
}

// LeaderAddress returns the leader's advertised address, read from
// ZooKeeper (standbys watch only their predecessor, so they do not cache
// it): two round trips, bounded by ConnectTimeout. It fails with
// ErrNoSession between sessions.
func (e *Election) LeaderAddress(ctx context.Context) (string, error) {
	if e.IsLeader() {
		return e.cfg.Address, nil
	}
	e.mu.Lock()
	t := e.cur
	e.mu.Unlock()
	if t == nil {
		return "", ErrNoSession
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	for range 3 {
		order, err := e.candidates(ctx, t.conn)
		if err != nil {
			return "", err
		}
		if len(order) == 0 {
			return "", fmt.Errorf("mesosconn: no candidates under %s", e.cfg.Path)
		}
		var data []byte
		err = zkDo(ctx, func() error {
			var err error
			data, _, err = t.conn.Get(e.cfg.Path + "/" + order[0])
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue // the leader left between list and read
		}
		if err != nil {
			return "", fmt.Errorf("mesosconn: read leader %s: %w", order[0], err)
		}
		var cd candidateData
		if err := json.Unmarshal(data, &cd); err != nil {
			return "", fmt.Errorf("mesosconn: leader znode %s is not candidate json: %w", order[0], err)
		}
		return cd.Address, nil
	}
	return "", fmt.Errorf("mesosconn: leader under %s kept changing", e.cfg.Path)
}

// Candidates lists the advertised addresses of every replica in the
// election, the leader first, then in the order they would take over.
func (e *Election) Candidates(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	t := e.cur
	e.mu.Unlock()
	if t == nil {
		return nil, ErrNoSession
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	order, err := e.candidates(ctx, t.conn)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range order {
		var data []byte
		err := zkDo(ctx, func() error {
			var err error
			data, _, err = t.conn.Get(e.cfg.Path + "/" + c)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue // it left between list and read
		}
		if err != nil {
			return nil, fmt.Errorf("mesosconn: read candidate %s: %w", c, err)
		}
		var cd candidateData
		if err := json.Unmarshal(data, &cd); err != nil {
			return nil, fmt.Errorf("mesosconn: candidate znode %s is not candidate json: %w", c, err)
		}
		out = append(out, cd.Address)
	}
	return out, nil
}

// Abdicate makes the leader step down: it fences, closes its session
// (deleting its znode, so the next candidate leads at once) and joins
// again at the back of the line. It returns when leadership has ended.
func (e *Election) Abdicate(ctx context.Context) error {
	e.mu.Lock()
	t := e.cur
	e.mu.Unlock()
	if t == nil || !e.IsLeader() {
		return ErrNotLeader
	}
	t.abdicated.Do(func() { close(t.abdicate) })
	select {
	case <-t.ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mesosconn: abdicate: %w", ctx.Err())
	}
}

// sortedCandidates orders candidate znode names by their sequence number,
// the leader first; names that are not candidates are ignored.
func sortedCandidates(children []string) []string {
	type cand struct {
		name string
		seq  int64
	}
	var cs []cand
	for _, c := range children {
		i := strings.LastIndex(c, candidatePrefix)
		if i < 0 {
			continue
		}
		seq, err := strconv.ParseInt(c[i+len(candidatePrefix):], 10, 64)
		if err != nil {
			continue
		}
		cs = append(cs, cand{c, seq})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}
