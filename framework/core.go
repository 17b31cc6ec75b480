package framework

import (
	"math/rand"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

// core is all scheduler state. Task state is written only by Run's
// goroutine; the desired state (apps, kill requests) also by the API
// methods. Both hold Scheduler.mu, which exists so Snapshot and the API
// can get in between two steps of the loop, never during one.
type core struct {
	cfg  Config
	log  *logrus.Entry
	rand *rand.Rand
	pub  func(Event)

	apps map[string]*appState
	// appList holds the same states for the per-step scans: walking a
	// slice costs a fraction of walking a map, and a step walks every app
	// a few times. Removed states are marked gone and compacted away at the
	// start of the next step, so removal during a scan is safe.
	appList  []*appState
	appsGone bool
	// What a step visits instead of every app (due.go).
	nextSeq      uint64
	dirtyList    []*appState
	dueSpare     []*appState
	statusList   []*appState
	wakes        wakeHeap
	queued       []*appState
	queuedSorted bool
	offerSpare   []*appState
	countSpare   []int            // offerRequests: requests per waiting app
	baseSpare    []offers.Request // offerRequests: each waiting app's request
	reqIDs       []string         // requestID: "0", "1", … kept across offer rounds
	snapSpare    []*appState

	tasks map[string]*taskState
	// pods are the containers of each pod instance in tasks (pods.go).
	pods map[string]*podInstance
	// resv are resident instances' reservations by instance id
	// (resident_core.go).
	resv       map[string]*reservation
	killWanted map[string]bool // desired: tasks the API asked to kill
	// holdUnknown: the desired state was not read completely (a store
	// item this version cannot decode, or the store unreachable), so a
	// task of an app the scheduler does not know may belong to an app it
	// could not read. Such tasks are kept running, neither killed nor
	// adopted, until the owner of the desired state says it is complete.
	holdUnknown bool
	held        map[string]bool // unknown tasks kept, logged once each
	agents      map[string]agentInfo
	// largest is the most of each resource one offer has held this term,
	// so the queue can say an app needs more than any agent has offered.
	largest offers.Capacity

	// Sets kept so that time-driven work scans only what is due.
	killing     map[string]*taskState
	unreachable map[string]*taskState
	// hostless are tasks adopted before an offer of their agent told its
	// host: every OFFERS event looks only at these, not at every task.
	hostless    map[string]*taskState
	nextKill    time.Time // earliest kill retry; zero: none
	nextUnreach time.Time // earliest inactive/expunge deadline; zero: none
	// nextUnreachRecon is when unreachable tasks are next reconciled
	// explicitly: Mesos need not tell when an agent comes back, and
	// waiting for the periodic implicit round (Marathon's #5506) would
	// leave a surplus running for minutes.
	nextUnreachRecon time.Time

	connected      bool
	suppressed     bool
	prevLaunchable int
	lastRevive     time.Time
	reviveAt       time.Time // a throttled revive is due then
	settleUntil    time.Time
	// killsHeld: a decision wanted kills while they were held
	// (holdingKills); every app is decided again when the hold ends.
	killsHeld bool

	recon reconState

	placed      []offers.Placed // cache for offers.Place; nil = rebuild
	placedValid bool

	// recOps are task record writes decided since the last plan; the
	// loop hands them to the persister. Nil Config.Tasks: never filled.
	recOps []recordOp

	gen     uint64 // bumped on every visible change
	snapGen uint64
	snap    *Snapshot
	parts   snapParts // snapshot.go: what the next snapshot reuses
}

type agentInfo struct {
	host  string
	attrs map[string]string
	url   string // the agent's HTTP endpoint from its offers ("" if none)
}

type reconState struct {
	pending      map[string]string // task id → agent id awaiting an answer
	delay        time.Duration
	next         time.Time // next explicit retry; zero: none
	nextImplicit time.Time
}

type appState struct {
	gone  bool // removed from apps; dropped from appList at the next step
	id    string
	seq   uint64       // creation order, which is appList's
	app   *appspec.App // nil once removed; the state lives on until its tasks are gone
	tasks map[string]*taskState

	failures     int
	delay        time.Duration
	backoffUntil time.Time
	resetAt      time.Time // a healthy task may reset the backoff then
	rejection    offers.Summary
	reason       string

	constraints    []offers.Constraint
	constraintsErr error
	tmpl           *taskTmpl // for tmplFor; rebuilt when app changes
	tmplFor        *appspec.App

	need  int        // instances to launch, from the last decision
	next  time.Time  // the app's next time-driven decision
	dirty bool       // set by markDirty only: it also lists the app
	queue QueueEntry // last published
	// wake and wakeIdx (index+1 in core.wakes, 0: not in it) are
	// setWake's; queued says the app is in core.queued (due.go).
	wake    time.Time
	wakeIdx int
	queued  bool

	counts        taskCounts // sums of countsOf over tasks; see setTask
	status        AppStatus  // last published
	statusChanged bool       // set by markStatus only: it also lists the app
}

type taskState struct {
	t            Task
	attrs        map[string]string
	killSentAt   time.Time
	healthySince time.Time
	// mesosCheck is the index of the check Mesos runs in t.Checks (-1:
	// none); set with t.Checks (healthChecks).
	mesosCheck int
}

func newCore(cfg Config, pub func(Event)) *core {
	return &core{
		cfg:         cfg,
		log:         cfg.Log,
		rand:        cfg.Rand,
		pub:         pub,
		apps:        map[string]*appState{},
		tasks:       map[string]*taskState{},
		pods:        map[string]*podInstance{},
		resv:        map[string]*reservation{},
		killWanted:  map[string]bool{},
		held:        map[string]bool{},
		agents:      map[string]agentInfo{},
		killing:     map[string]*taskState{},
		unreachable: map[string]*taskState{},
		hostless:    map[string]*taskState{},
		recon:       reconState{pending: map[string]string{}},
	}
}

// plan is the side effects one step decided, performed by the loop
// after the lock is released.
type plan struct {
	acks       []ackOp
	kills      []killOp
	launches   []launchOp
	declines   []declineOp
	reconciles [][]scheduler.Call_Reconcile_Task // nil element: implicit
	revive     bool
	suppress   bool
	records    []recordOp
}

type ackOp struct {
	agentID, taskID string
	uuid            []byte
}

type killOp struct {
	taskID, agentID string
	policy          *mesos.KillPolicy
}

type launchOp struct {
	offerID string
	tasks   []mesos.TaskInfo
	apps    []*appspec.App
	groups  []groupLaunch // pod instances, one LAUNCH_GROUP each
	// resident are operations on reservations, before the LAUNCH: a new
	// instance's RESERVE and CREATE (dropped with its task, should that
	// not launch), a teardown's DESTROY and UNRESERVE (taskID "").
	resident []residentOps
}

// residentOps are operations for one resident instance.
type residentOps struct {
	taskID string
	ops    []mesos.Offer_Operation
}

type declineOp struct {
	offerIDs []string
	refuse   time.Duration
}

func (p *plan) empty() bool {
	return len(p.acks)+len(p.kills)+len(p.launches)+len(p.declines)+len(p.reconciles)+len(p.records) == 0 && !p.revive && !p.suppress
}
