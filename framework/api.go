package framework

import (
	"context"
	"errors"
	"math/rand"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/offers"
)

// Sentinel errors of the scheduler core.
var (
	// ErrUnknownApp: the app id names no app the scheduler was given.
	ErrUnknownApp = errors.New("framework: unknown app")
	// ErrRunning: Run was called while another Run of the same Scheduler
	// is still active.
	ErrRunning = errors.New("framework: scheduler already running")
	// ErrNotRunning: Sync was called while no Run is active.
	ErrNotRunning = errors.New("framework: scheduler not running")
	// ErrUnknownTask: the task id names no task of the app.
	ErrUnknownTask = errors.New("framework: unknown task")
)

// EnvResolver returns extra environment variables for one task at launch
// (Vault secrets). An error keeps the task queued with the error as its
// reason; the error must not carry a secret value.
type EnvResolver func(ctx context.Context, app *appspec.App, taskID string) ([]mesos.Environment_Variable, error)

// Config configures a Scheduler. Zero values get the defaults noted.
type Config struct {
	Clock clock.Clock // default clock.Real{}
	Rand  *rand.Rand  // task id uuids; default seeded from Clock
	Log   *logrus.Entry
	// Role is the framework's role: resources are asked for under it, and
	// REVIVE/SUPPRESS name it. Default "*".
	Role string
	// Principal goes into the reservations of resident instances
	// (ReservationInfo.principal, as Marathon's
	// --mesos_authentication_principal); "" leaves it out, which a Mesos
	// master without authentication accepts.
	Principal string
	// AcceptedRolesDefault is which resources an app without
	// acceptedResourceRoles takes: AcceptAny (default), AcceptUnreserved
	// or AcceptReserved.
	AcceptedRolesDefault string
	// MaxLaunchDelay caps every app's launch backoff (on top of the app's
	// maxLaunchDelaySeconds). Default 1 h.
	MaxLaunchDelay time.Duration
	// BackoffResetAfter: a task that ran (healthy, when it has health
	// checks) this long resets its app's backoff. Default 60 s.
	BackoffResetAfter time.Duration
	// ReconcileInterval is the period of implicit reconciliation. Default 10 min.
	ReconcileInterval time.Duration
	// ReconcileRetry is the first retry delay of explicit reconciliation,
	// doubled per round up to ReconcileRetryMax. Defaults 5 s and 60 s.
	ReconcileRetry    time.Duration
	ReconcileRetryMax time.Duration
	// UnreachableReconcile is how often unreachable tasks are reconciled
	// explicitly, to notice soon that one came back. Default 5 s.
	UnreachableReconcile time.Duration
	// ReconcileSettle holds launches after SUBSCRIBED so that implicit
	// reconciliation can reveal tasks launched by a previous leader before
	// new ones are started. Default 2 s; negative means none.
	ReconcileSettle time.Duration
	// KillRetry re-sends a KILL for a task that did not reach a terminal
	// state. Default 10 s.
	KillRetry time.Duration
	// DeclineRefuse is the refuse_seconds filter of declined offers while
	// nothing waits (default 120 s); DeclineRefuseWaiting while something
	// waits but did not fit (default 5 s).
	DeclineRefuse        time.Duration
	DeclineRefuseWaiting time.Duration
	// Placement options passed to offers.Place (strategy: spread/binpack).
	Placement offers.Options
	// ResolveEnv, when set, adds environment variables at launch (secrets).
	ResolveEnv EnvResolver
	// StagingTimeout kills and replaces a task that stays TASK_STAGING
	// this long after launch (Marathon's task_launch_timeout). Default
	// 5 min; negative disables.
	StagingTimeout time.Duration
	// KillGracePeriod is the kill policy's grace period between SIGTERM
	// and SIGKILL, in TaskInfo and KILL calls. Zero leaves Mesos's default.
	KillGracePeriod time.Duration
	// AckWorkers is how many acknowledgements may be in flight at once.
	// Default 8.
	AckWorkers int
	// ActionTimeout bounds each call on Actions. Default 10 s.
	ActionTimeout time.Duration
	// Tasks, when set, receives a record of every task (written off the
	// loop, coalesced per task, each write bounded by ActionTimeout) and is
	// read by Restore when this replica is about to lead.
	Tasks TaskStore
}
