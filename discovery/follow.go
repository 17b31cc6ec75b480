package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// ViewPath is the leader's view endpoint (api.ViewPath; not imported, so
// that discovery does not depend on the HTTP API's package).
const ViewPath = "/flotilla/v1/view"

// FollowerConfig wires a Follower.
type FollowerConfig struct {
	// Leader returns the base URL (or host:port) of the API to follow:
	// the current leader's for a replica, any replica's for an edge node
	// (a standby forwards the call to the leader).
	Leader func(ctx context.Context) (string, error)
	// Skip, when it returns true, pauses following (this replica leads and
	// feeds its views from its own scheduler).
	Skip func() bool
	// OnError hears of each failed poll of leader (an edge node moves on
	// to its next replica); nil: nothing.
	OnError func(leader string, err error)
	// Authorize adds credentials to each request; nil sends none.
	Authorize func(*http.Request)
	Client    *http.Client // default: no overall timeout (long polls)
	Clock     clock.Clock
	Log       *logrus.Entry
	// Wait is each long poll's wait (default 25 s); Retry the pause after
	// a failure (default FollowRetry).
	Wait, Retry time.Duration
}

// FollowRetry is the default pause between a failed poll and the next
// lookup of the leader. Short, because when a leader dies its followers
// serve its last view until they find the next one, and the next one acts
// on the cluster from its election on (its kills are held only until
// reconciliation has settled, framework.Config.ReconcileSettle, 2 s by
// default): with 1 s, a follower on a loaded machine found it after the
// first kills of a roll, and its gateway had only killed backends. The
// cost while no leader answers is one leader lookup (two ZooKeeper reads)
// and one refused connection per pause.
const FollowRetry = 200 * time.Millisecond

// Follower keeps a copy of the leader's view — apps and tasks — by long
// polling its view endpoint. It is how standbys and edge nodes serve DNS
// and routes: following the leader over HTTP, as marathon-lb follows
// Marathon's event stream, rather than through ZooKeeper, because the
// leader already holds the whole view in memory and health and readiness
// changes (most of the traffic) are not in ZooKeeper at all. While the
// leader cannot be reached the last view stays, and Age grows.
type Follower struct {
	cfg     FollowerConfig
	changed chan struct{}

	mu     sync.Mutex
	snap   *framework.Snapshot
	got    time.Time // when snap arrived
	synced time.Time // last answer from the leader (new view or not modified)
	// current: the last poll was answered, so the view is the leader's as
	// of now (the next long poll is waiting for its next change).
	current bool
}

// NewFollower returns a Follower; Run starts it.
func NewFollower(cfg FollowerConfig) *Follower {
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 25 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = FollowRetry
	}
	if cfg.Skip == nil {
		cfg.Skip = func() bool { return false }
	}
	if cfg.Log == nil {
		cfg.Log = logging.Component(logging.Discard(), "follower")
	}
	return &Follower{cfg: cfg, changed: make(chan struct{}, 1)}
}

// Snapshot is the last view received and when it arrived; nil before
// the first.
func (f *Follower) Snapshot() (*framework.Snapshot, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, f.got
}

// Changed signals after each new view (coalesced: one pending signal).
func (f *Follower) Changed() <-chan struct{} { return f.changed }

// Age is how old the view may be: 0 while the leader answers (a long poll
// is waiting for its next change), else the time since it last answered; a
// leader that froze is noticed when its poll times out (Wait + 10 s). ok is
// false before the first answer.
func (f *Follower) Age(now time.Time) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.synced.IsZero() {
		return 0, false
	}
	if f.current {
		return 0, true
	}
	return now.Sub(f.synced), true
}

// Run follows until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	var gen uint64
	var from string
	failing := false
	var lastWarn time.Time
	for ctx.Err() == nil {
		if f.cfg.Skip() {
			from = "" // after leading, start over from whoever leads next
			if !f.sleep(ctx, f.cfg.Retry) {
				break
			}
			continue
		}
		leader, err := f.cfg.Leader(ctx)
		if (err != nil || leader == "") && from != "" {
			// The leader is looked up in ZooKeeper, which can be away
			// (restarted, cut) while the leader is not: keep following the
			// one that answered last. Its view endpoint answers 503 once it
			// no longer leads, and then this replica looks again.
			leader, err = from, nil
		}
		if err == nil && leader == "" {
			err = errors.New("no leader is known")
		}
		if err == nil {
			if leader != from {
				gen, from = 0, leader // a new leader's generations are its own
			}
			var snap *framework.Snapshot
			snap, err = f.poll(ctx, leader, gen, gen != 0)
			if err == nil {
				f.mu.Lock()
				f.synced, f.current = f.cfg.Clock.Now(), true
				if snap != nil {
					gen = snap.Generation
					if f.snap != nil {
						// A new leader adopts tasks launched after the old
						// one's last task record without their ports: keep
						// the ports this view already knew.
						snap = KnownPorts(snap, f.snap)
					}
					f.snap, f.got = snap, f.synced
				}
				f.mu.Unlock()
				if snap != nil {
					select {
					case f.changed <- struct{}{}:
					default:
					}
				}
				if failing {
					f.cfg.Log.WithField("leader", leader).Info("following the leader's view again")
					failing = false
				}
				continue
			}
		}
		if ctx.Err() != nil {
			break
		}
		f.mu.Lock()
		f.current = false
		f.mu.Unlock()
		if f.cfg.OnError != nil {
			f.cfg.OnError(leader, err)
		}
		// Said once when following stops, then every 30 s while it stays
		// stopped, each time with the latest reason.
		if now := f.cfg.Clock.Now(); !failing || now.Sub(lastWarn) >= 30*time.Second {
			f.cfg.Log.WithError(err).WithField("leader", leader).Warn("cannot follow the leader's view; serving the last one")
			failing, lastWarn = true, now
		}
		gen, from = 0, ""
		if !f.sleep(ctx, f.cfg.Retry) {
			break
		}
	}
	return ctx.Err()
}

func (f *Follower) sleep(ctx context.Context, d time.Duration) bool {
	t := f.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// poll asks for a view newer than gen; nil, nil means "not modified".
func (f *Follower) poll(ctx context.Context, leader string, gen uint64, have bool) (*framework.Snapshot, error) {
	base := leader
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + ViewPath)
	if err != nil {
		return nil, fmt.Errorf("the leader's address %q is not a URL: %w", leader, err)
	}
	q := url.Values{}
	if have {
		q.Set("generation", strconv.FormatUint(gen, 10))
		q.Set("wait", f.cfg.Wait.String())
	}
	u.RawQuery = q.Encode()
	// The leader answers within Wait; more than that plus a margin means
	// it is gone without a reset (frozen, or its host cut off).
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Wait+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if f.cfg.Authorize != nil {
		f.cfg.Authorize(req)
	}
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, nil
	case http.StatusOK:
	default:
		// The body only adds words to the error; a failed read leaves fewer.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", ViewPath, resp.Status, strings.TrimSpace(string(b)))
	}
	var snap framework.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return nil, fmt.Errorf("GET %s: the view does not decode: %w", ViewPath, err)
	}
	return &snap, nil
}
