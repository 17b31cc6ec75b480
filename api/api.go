package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/connlimit"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/secrets"
	"github.com/flotilla-sched/flotilla/store"
)

// Scheduler is the part of framework.Scheduler the API reads, and the
// one change it makes itself: killing tasks to be replaced, which changes
// no desired state (package deploy makes every change that does).
type Scheduler interface {
	Snapshot() *framework.Snapshot
	// SnapshotByApp is Snapshot without its flat task list (Tasks nil;
	// TasksOf works): what the app lists read.
	SnapshotByApp() *framework.Snapshot
	// SnapshotOf: the named apps only (framework.Scheduler.SnapshotOf).
	SnapshotOf(appIDs []string) *framework.Snapshot
	Subscribe(buffer int) *framework.Subscription
	KillTasks(appID string, taskIDs []string) error
	// WipeTasks and SuspendedOf are resident instances' (wipe=true, and
	// the instances a scale down left with their volumes).
	WipeTasks(appID string, taskIDs []string) error
	SuspendedOf(appID string) []framework.Suspended
	ResetDelay(appID string) error
}

// Leadership is the part of mesosconn.Replica the API needs: whether to
// serve or proxy, where the leader is, and DELETE /v2/leader.
type Leadership interface {
	IsLeader() bool
	LeaderAddress(ctx context.Context) (string, error)
	Abdicate(ctx context.Context) error
}

// SecretChecker checks an app's secret references at submit time
// (secrets.Resolver).
type SecretChecker interface {
	Check(ctx context.Context, app *appspec.App) ([]secrets.Problem, error)
}

// Auth holds the optional credentials. When any is set, every endpoint
// but /ping requires them (the route table's open routes), /metrics and
// the mounts included: HTTP basic (Username and Password) or
// "Authorization: Bearer <Token>".
type Auth struct {
	Username string
	Password string
	Token    string
}

func (a Auth) enabled() bool { return a.Username != "" || a.Token != "" }

// Authorize adds these credentials to a request to another replica (the
// bearer token when there is one, else basic auth); nothing when unset.
func (a Auth) Authorize(r *http.Request) {
	switch {
	case a.Token != "":
		r.Header.Set("Authorization", "Bearer "+a.Token)
	case a.Username != "":
		r.SetBasicAuth(a.Username, a.Password)
	}
}

// Config configures a Server. Scheduler, Store and Deploy are required;
// zero values of the rest get the defaults noted.
type Config struct {
	Scheduler Scheduler
	// Store is read for app versions; writes go through Deploy.
	Store store.Store
	// Deploy makes every change of desired state the API is asked for.
	Deploy *deploy.Service
	// Leadership, when nil, means this replica always leads.
	Leadership Leadership
	// View, when set, is the apps-and-tasks view this replica's discovery
	// serves (discovery.Feed.Current): GET /flotilla/v1/view serves it, so
	// standbys follow what the leader's own DNS answers. A nil result, or
	// no View, serves the scheduler's snapshot once settled.
	View func() *framework.Snapshot
	// ViewChanged, when set, returns a channel closed once View's answer
	// changes (the feed rebuilt its views): a long poll of the view answers
	// then instead of at its next recheck. Nil: scheduler events and
	// viewRecheck only.
	ViewChanged func() <-chan struct{}
	// Secrets checks secret references at submit time. Default: a
	// resolver without Vault, which refuses every app that uses a secret
	// with a message saying Vault is not configured.
	Secrets SecretChecker
	// Registry receives the API's metrics and is served at /metrics.
	// Default: a new registry (never the global default one).
	Registry *prometheus.Registry
	Clock    clock.Clock // default clock.Real{}
	Log      *logrus.Entry
	Auth     Auth
	// RequestTimeout bounds the store and Vault calls of one request.
	// Default 10 s.
	RequestTimeout time.Duration
	// Version is Flotilla's version, shown by /v2/info.
	Version string
	// FrameworkID, when set, gives the Mesos framework id for /v2/info.
	FrameworkID func() string
	// Info is merged into /v2/info's "marathon_config" (master, zk, …).
	Info map[string]any
	// ProxyTransport carries requests a standby forwards to the leader.
	// Default http.DefaultTransport.
	ProxyTransport http.RoundTripper
	// ListSnapshotMaxAge, when positive, lets GET /v2/apps and /v2/tasks
	// answer from a scheduler snapshot up to this old while a fresh one is
	// taken in the background (stale-while-revalidate). With 100,000 tasks
	// and steady status updates, taking a snapshot costs tens of
	// milliseconds; this keeps list latency flat at the price of task
	// counts that lag by up to twice this much. App specs are never stale.
	// Default 0: every request takes a fresh snapshot.
	ListSnapshotMaxAge time.Duration
	// ClientLimits bound what clients can hold of the API listener
	// (connections, timeouts, header size, event streams); HTTPServer and
	// Listener apply them. Zero fields take DefaultClientLimits.
	ClientLimits ClientLimits
	// AppHandlers serve /v2/apps/{id}/<name> for other packages (the
	// autoscaler's "autoscale" decision log); the app id is canonical and
	// the app known to exist when the handler is called.
	AppHandlers map[string]AppHandler
	// Mounts serve other packages' HTTP APIs on this listener, keyed by
	// path prefix ("/v1/" for Mesos-DNS's, "/flotilla/v1/agents/" for the
	// Mesos agents the UI's cluster page lists): behind the same
	// credentials, and served by a standby itself, since they describe
	// this replica or what it can read as well as the leader.
	Mounts map[string]http.Handler
}

// AppHandler serves one sub-resource of an app.
type AppHandler func(w http.ResponseWriter, r *http.Request, appID string)

// Server is the HTTP API; it is an http.Handler.
type Server struct {
	cfg     Config
	log     *logrus.Entry
	sched   Scheduler
	st      store.Store
	dep     *deploy.Service
	clk     clock.Clock
	secrets SecretChecker

	frags           fragments  // fragments.go: apps as lists render them
	gtree           groupCache // grouptree.go: GET /v2/groups from kept bytes
	lists           chunkCache // chunks.go: GET /v2/apps from kept chunks
	lsnap           atomic.Pointer[agedSnapshot]
	lsnapRefreshing atomic.Bool
	hub             hub
	met             *metrics
	lastTF          lastFailures
	logFollows      atomic.Int64 // task log follows open (ClientLimits.MaxLogFollows)
	recent          recentTasks  // tasks that ended, for their logs (recent.go)
	// tr is this term's translator of scheduler events (Run sets it).
	tr atomic.Pointer[translator]
	// noFragments turns kept fragments off (fragments.go): the benchmark's
	// A/B of one run.
	noFragments atomic.Bool
	// flatSnapshots makes the app lists read Snapshot (with its flat task
	// list) instead of SnapshotByApp: the benchmark's A/B of one run.
	flatSnapshots atomic.Bool
	// streamedLists writes GET /v2/apps through a 64 KiB bufio.Writer,
	// chunked, as every list with taskStats is, instead of from its kept
	// fragments with its length known (pieces.go): the benchmark's A/B.
	streamedLists atomic.Bool
	// loggedEmbeds are the unknown embeds already logged (render_embed.go).
	loggedEmbeds  sync.Map
	loggedEmbedsN atomic.Int64

	table routeTable
	conns atomic.Pointer[connlimit.Listener]
}

// New returns a Server; it starts no goroutine (Run does).
func New(cfg Config) (*Server, error) {
	if cfg.Scheduler == nil {
		return nil, errors.New("api: Config.Scheduler is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is required")
	}
	if cfg.Deploy == nil {
		return nil, errors.New("api: Config.Deploy is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = logging.Component(logging.Discard(), "api")
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Secrets == nil {
		cfg.Secrets = secrets.NewResolver(nil, cfg.Clock, time.Minute, cfg.Log)
	}
	if cfg.ProxyTransport == nil {
		cfg.ProxyTransport = http.DefaultTransport
	}
	cfg.ClientLimits = cfg.ClientLimits.WithDefaults()
	s := &Server{
		cfg: cfg, log: cfg.Log, sched: cfg.Scheduler, st: cfg.Store, dep: cfg.Deploy, clk: cfg.Clock,
		secrets: cfg.Secrets,
	}
	s.lastTF.init()
	met, err := newMetrics(cfg.Registry, s)
	if err != nil {
		return nil, err
	}
	s.met = met
	for p := range cfg.Mounts {
		if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/v2/") || p == "/" {
			return nil, fmt.Errorf("api: Config.Mounts: %q is not a path prefix like /v1/ outside /v2/", p)
		}
	}
	s.table = s.routes()
	// What deploy does (deployments, app writes, unreadable store items)
	// becomes Marathon events on this Server's /v2/events.
	cfg.Deploy.SetEvents(deployPublisher{s})
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(w, r) }

func (s *Server) isLeader() bool {
	return s.cfg.Leadership == nil || s.cfg.Leadership.IsLeader()
}

func (s *Server) now() time.Time { return s.clk.Now() }

// timestamp is Marathon's time format (UTC, milliseconds).
func timestamp(t time.Time) string { return deploy.Timestamp(t) }

type agedSnapshot struct {
	snap *framework.Snapshot
	at   time.Time
}

// appsSnapshot is the snapshot the app lists (GET /v2/apps, the group
// tree) render: without the flat task list, which they do not read (each
// app's tasks come from TasksOf), so a fresh one costs only the apps that
// changed since the last. With ListSnapshotMaxAge, the aged one.
func (s *Server) appsSnapshot() *framework.Snapshot {
	if s.cfg.ListSnapshotMaxAge > 0 || s.flatSnapshots.Load() {
		return s.listSnapshot()
	}
	return s.sched.SnapshotByApp()
}

// listSnapshot is the snapshot list endpoints render (ListSnapshotMaxAge).
func (s *Server) listSnapshot() *framework.Snapshot {
	if s.cfg.ListSnapshotMaxAge <= 0 {
		return s.sched.Snapshot()
	}
	now := s.now()
	cur := s.lsnap.Load()
	if cur != nil && now.Sub(cur.at) < s.cfg.ListSnapshotMaxAge {
		return cur.snap
	}
	// Stale-while-revalidate only just past the max age: after a quiet
	// spell the kept snapshot may be minutes old, and the first list must
	// not show that (found by hand: a list after a pause showed tasks long
	// gone). So nothing older than twice the max age is ever served.
	if cur == nil || now.Sub(cur.at) >= 2*s.cfg.ListSnapshotMaxAge {
		snap := s.sched.Snapshot()
		s.lsnap.Store(&agedSnapshot{snap: snap, at: now})
		return snap
	}
	if s.lsnapRefreshing.CompareAndSwap(false, true) {
		go func() {
			defer s.lsnapRefreshing.Store(false)
			defer s.recoverLoop("refresh list snapshot")
			at := s.now()
			s.lsnap.Store(&agedSnapshot{snap: s.sched.Snapshot(), at: at})
		}()
	}
	return cur.snap
}
