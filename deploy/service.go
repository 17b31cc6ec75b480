package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/store"
)

// Scheduler is the part of framework.Scheduler a Service drives.
type Scheduler interface {
	PutApp(app appspec.App)
	RemoveApp(id string) error
	KillAndScale(appID string, taskIDs []string, instances int) error
	Snapshot() *framework.Snapshot
	// SnapshotByApp: Snapshot without the flat task list, for judging
	// deployments app by app.
	SnapshotByApp() *framework.Snapshot
	// SnapshotOf: the named apps only, for judging the few deployments
	// an event batch touched.
	SnapshotOf(appIDs []string) *framework.Snapshot
	Subscribe(buffer int) *framework.Subscription
	// HoldUnknown: see framework.Scheduler.HoldUnknown. Restore holds
	// until the store was read completely.
	HoldUnknown(hold bool)
}

// Publisher hears of what a Service did, to tell clients (the API's event
// stream). Its methods must not block.
type Publisher interface {
	// Deployment: typ is one of the Event* constants.
	Deployment(typ string, d *Deployment, reason string)
	// AppWritten: an app was created or changed by op (Marathon's
	// api_post_event).
	AppWritten(op Op, r *Record)
	// StoreItemBroken: Restore found an item it cannot read.
	StoreItemBroken(it store.Broken)
	// Plan: a group deployment started, finished a step, succeeded or
	// failed (typ is one of the Event* constants).
	Plan(typ string, p *GroupPlan, reason string)
	// SchedulerEvent is every scheduler event Run receives, in order,
	// before deployments are judged on it: a client of the event stream
	// sees the task update before the deployment_success it caused.
	SchedulerEvent(ev framework.Event)
	// GroupChange: a change of desired state was accepted (reason "") or
	// refused (Marathon's group_change_success and group_change_failed).
	// groupID is the group changed, an app's parent for an app.
	GroupChange(groupID, version, reason string)
}

// Deployment events, Marathon's names.
const (
	EventDeploymentInfo        = "deployment_info"
	EventDeploymentSuccess     = "deployment_success"
	EventDeploymentFailed      = "deployment_failed"
	EventDeploymentStepSuccess = "deployment_step_success"
	EventDeploymentStepFailure = "deployment_step_failure"
)

// Config configures a Service.
type Config struct {
	Store     store.Store
	Scheduler Scheduler
	Events    Publisher // nil: nobody hears
	Clock     clock.Clock
	// Rand draws deployment ids; seeded by tests.
	Rand *rand.Rand
	Log  *logrus.Entry
	// Registry gets the deployment metrics; nil: a private one.
	Registry prometheus.Registerer
	// Limits judge every write and every app read back (appspec's
	// ValidateWith); unset fields take appspec.DefaultLimits().
	Limits appspec.Limits
	// ServicePorts is the range service ports are assigned from.
	ServicePorts appspec.PortRange
	// ProgressDeadline bounds a deployment unless its app sets
	// progressDeadlineSeconds; default 10 minutes.
	ProgressDeadline time.Duration
}

// Service owns desired state. Its methods are safe from any goroutine.
type Service struct {
	cfg   Config
	log   *logrus.Entry
	st    store.Store
	sched Scheduler
	clk   clock.Clock
	ev    atomic.Pointer[publisherBox]

	// mu serialises every write: validation has been done before it is
	// taken; the store, the scheduler and the index change under it.
	mu    sync.Mutex
	idx   index
	deps  *deployments
	plans plans
	// groups are the stored group records (Restore, ApplyGroup).
	groupsMu sync.RWMutex
	groups   map[string]store.StoredGroup
	// kept is the newest version of each group known to be kept in the
	// store (groupversions.go); under mu.
	kept   map[string]string
	broken brokenSet
	// loaded: this leadership term's Restore has run.
	loaded atomic.Bool
	// attached: the subscription Attach made for the Run that follows.
	attached atomic.Pointer[framework.Subscription]

	randMu sync.Mutex
	rand   *rand.Rand

	started prometheus.Counter
	ended   *prometheus.CounterVec
}

// New returns a Service; it starts no goroutine (Run does).
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Scheduler == nil {
		return nil, errors.New("deploy: Config.Store and Config.Scheduler are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewSource(cfg.Clock.Now().UnixNano()))
	}
	if cfg.Log == nil {
		cfg.Log = logging.Component(logging.Discard(), "deploy")
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.ProgressDeadline <= 0 {
		cfg.ProgressDeadline = 10 * time.Minute
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	s := &Service{cfg: cfg, log: cfg.Log, st: cfg.Store, sched: cfg.Scheduler, clk: cfg.Clock, rand: cfg.Rand,
		deps: newDeployments(),
		// The names predate this package (the API counted them) and are
		// kept so that dashboards keep working.
		started: prometheus.NewCounter(prometheus.CounterOpts{Name: "flotilla_api_deployments_started_total",
			Help: "Deployments started."}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flotilla_api_deployments_ended_total",
			Help: "Deployments ended, by result (success or failed)."}, []string{"result"}),
	}
	s.idx.init()
	s.plans.init()
	s.groups = map[string]store.StoredGroup{}
	s.kept = map[string]string{}
	s.SetEvents(cfg.Events)
	for _, c := range []prometheus.Collector{s.started, s.ended} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("deploy: register metrics (one Service per registry): %w", err)
		}
	}
	return s, nil
}

type publisherBox struct{ p Publisher }

// SetEvents sets who hears of what the Service does (nil: nobody). The API
// sets itself once it exists, since it is built after the Service.
func (s *Service) SetEvents(p Publisher) {
	if p == nil {
		p = nopPublisher{}
	}
	s.ev.Store(&publisherBox{p})
}

func (s *Service) events() Publisher { return s.ev.Load().p }

type nopPublisher struct{}

func (nopPublisher) Deployment(string, *Deployment, string) {}
func (nopPublisher) AppWritten(Op, *Record)                 {}
func (nopPublisher) StoreItemBroken(store.Broken)           {}
func (nopPublisher) SchedulerEvent(framework.Event)         {}
func (nopPublisher) Plan(string, *GroupPlan, string)        {}
func (nopPublisher) GroupChange(string, string, string)     {}

// Limits are the limits every write is judged by.
func (s *Service) Limits() appspec.Limits { return s.cfg.Limits }

// ServicePortRange is the range service ports are assigned from.
func (s *Service) ServicePortRange() appspec.PortRange { return s.cfg.ServicePorts.WithDefaults() }

// Loaded reports whether this leadership term's Restore has run; before
// it, nothing this Service holds is true.
func (s *Service) Loaded() bool { return s.loaded.Load() }

// App is the record of an app, or nil.
func (s *Service) App(id string) *Record { return s.idx.get(id) }

// Apps lists every app's record, sorted by id.
func (s *Service) Apps() []*Record { return s.idx.list() }

// AppCount is how many apps there are.
func (s *Service) AppCount() int { return s.idx.len() }

// Deployments lists the running deployments, sorted by id.
func (s *Service) Deployments() []*Deployment { return s.deps.list() }

// DeploymentCount is how many deployments run.
func (s *Service) DeploymentCount() int { return s.deps.count() }

// Deployment is a running deployment, or nil.
func (s *Service) Deployment(id string) *Deployment { return s.deps.get(id) }

// DeploymentOf is the app's running deployment, or nil.
func (s *Service) DeploymentOf(appID string) *Deployment { return s.deps.forApp(appID) }

// DeploymentsByApp maps app id → running deployment id.
func (s *Service) DeploymentsByApp() map[string]string { return s.deps.byAppIDs() }

// BrokenApp reports an app the store holds but cannot read.
func (s *Service) BrokenApp(id string) (store.Broken, bool) { return s.broken.app(id) }

// BrokenItems lists what the last Restore could not read and is still
// unresolved.
func (s *Service) BrokenItems() []BrokenItem { return s.broken.items() }

func (s *Service) now() time.Time { return s.clk.Now() }

// newID returns a random (version 4) uuid from the injected source.
func (s *Service) newID() string {
	s.randMu.Lock()
	a, b := s.rand.Uint64(), s.rand.Uint64()
	s.randMu.Unlock()
	var u [16]byte
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Timestamp is Marathon's time format (UTC, milliseconds).
func Timestamp(t time.Time) string { return t.UTC().Format(store.VersionFormat) }

// ConfigEqual reports whether two specs differ at most in instances (and
// version): such a change is a scale and replaces no task.
func ConfigEqual(a, b *appspec.App) bool {
	ca, cb := *a, *b
	ca.Instances, cb.Instances = 0, 0
	ca.Version, cb.Version = "", ""
	ja, err1 := json.Marshal(&ca)
	jb, err2 := json.Marshal(&cb)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func (s *Service) deadlineOf(app *appspec.App) time.Duration {
	if app != nil && app.ProgressDeadlineSeconds > 0 {
		return time.Duration(app.ProgressDeadlineSeconds * float64(time.Second))
	}
	return s.cfg.ProgressDeadline
}

// recoverLoop recovers a panic at the loop's edge, so one bad event does
// not stop deployments; the stack is logged.
func (s *Service) recoverLoop(what string) {
	if r := recover(); r != nil {
		s.log.WithFields(logrus.Fields{"panic": fmt.Sprint(r), "stack": string(debug.Stack())}).Error("deploy loop panicked: " + what)
	}
}

// ProgressDeadline is the default deadline of a deployment.
func (s *Service) ProgressDeadline() time.Duration { return s.cfg.ProgressDeadline }
