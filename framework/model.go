package framework

import (
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

// Task is one task as the scheduler knows it. A Task value is immutable:
// the scheduler replaces it on every change, and its slices are never
// written after the Task is published.
type Task struct {
	ID         string
	AppID      string
	AppVersion string
	AgentID    string
	Host       string
	Ports      []uint64
	State      mesos.TaskState
	// Healthy is nil until the first health check result (or when the app
	// has no health checks). With several checks it is false once one of
	// them fails and true once all of them passed (combinedHealth).
	Healthy *bool
	// Checks holds one result per health check of the task's app version,
	// in the order of the app's healthChecks: from Mesos's status updates
	// for the check Mesos runs, from package health for the others. Nil
	// when the app has no checks, or the task's version's checks are not
	// known (adopted during a roll).
	Checks []CheckResult
	// Ready is the app's readiness check, run by the readiness package
	// (Mesos does not run them): false from launch until it passes, true
	// after; nil when the app has no readiness check, and for tasks this
	// scheduler adopted or restored, which ran before it and are taken as
	// ready.
	Ready     *bool
	StagedAt  time.Time
	StartedAt time.Time // first TASK_RUNNING; zero before
	// UnreachableSince is set while the task is TASK_UNREACHABLE.
	UnreachableSince time.Time
	// Killing is set once the scheduler asked Mesos to kill the task.
	Killing bool
	// Message and Reason are the last status update's.
	Message string
	Reason  string
	// Adopted marks a task the scheduler learnt of through reconciliation
	// rather than launched itself (a previous leader did): its ports and
	// agent attributes are unknown.
	Adopted bool
	// Containers are a pod instance's containers (nil for an app's task),
	// in the pod's order.
	Containers []ContainerStatus
}

// Active reports whether the task is not in a terminal state.
func (t Task) Active() bool { return !isTerminal(t.State) }

// IsHealthy reports whether the task runs and, if it is health checked,
// passes its checks.
func (t Task) IsHealthy() bool {
	return t.State == mesos.TASK_RUNNING && (t.Healthy == nil || *t.Healthy)
}

// IsReady reports whether the task passed its readiness check, or has none
// to pass (see Ready).
func (t Task) IsReady() bool { return t.Ready == nil || *t.Ready }

// QueueEntry is an app's launch queue: how many of its instances wait for
// an offer, until when backoff holds them and why the last offers did not
// fit.
type QueueEntry struct {
	AppID      string
	AppVersion string
	Count      int
	// Delay is the current backoff; BackoffUntil the time launching resumes
	// (zero: not delayed).
	Delay        time.Duration
	BackoffUntil time.Time
	// LastRejection summarises why the last offers were not used for this
	// app (offers.Summary); zero before the first offer round.
	LastRejection offers.Summary
	// Reason is a launch problem that is not about resources (a secret that
	// could not be resolved, launching held after failover…).
	Reason string
}

// Snapshot is the scheduler's state at one moment. It is shared and must
// be treated as read-only by every reader: the scheduler never changes a
// published Snapshot, it publishes a new one.
type Snapshot struct {
	At    time.Time
	Apps  []*appspec.App // sorted by ID; read-only
	Tasks []Task         // sorted by ID
	Queue []QueueEntry   // sorted by AppID; only apps with Count > 0
	// Status is every app's progress (rolling upgrades, scaling), sorted
	// by AppID.
	Status []AppStatus
	// Connected is whether the scheduler is subscribed to a master now.
	Connected bool
	// Suppressed is whether offers are suppressed.
	Suppressed bool
	// Settled is whether the reconciliation hold after subscribing is over:
	// before it, adopted tasks may still lack their state and health, so a
	// new leader's view is not yet better than the one it follows.
	Settled bool
	// Generation changes whenever anything in the snapshot does (never
	// reused by one scheduler), so a reader can ask "anything newer than
	// G?" — how standbys follow the leader's view.
	Generation uint64

	// byApp is every app's tasks, set by the scheduler (snapshot.go);
	// nil in snapshots built by hand or decoded. It answers TasksOf only
	// while Tasks is the slice it was built with (tasksOf): a copy whose
	// Tasks was replaced is searched in Tasks.
	byApp   []appTasks
	tasksOf []Task
}

// App returns the app with the given id, or nil.
func (s *Snapshot) App(id string) *appspec.App {
	i := sort.Search(len(s.Apps), func(i int) bool { return s.Apps[i].ID >= id })
	if i < len(s.Apps) && s.Apps[i].ID == id {
		return s.Apps[i]
	}
	return nil
}

// StatusOf returns an app's progress; false when the app is unknown.
func (s *Snapshot) StatusOf(appID string) (AppStatus, bool) {
	i := sort.Search(len(s.Status), func(i int) bool { return s.Status[i].AppID >= appID })
	if i < len(s.Status) && s.Status[i].AppID == appID {
		return s.Status[i], true
	}
	return AppStatus{}, false
}

// TasksOf returns the tasks of one app, sorted by id. In a snapshot of
// Scheduler.SnapshotByApp (whose Tasks is nil) it is the only way to read
// them. Otherwise it is a window of Tasks, found by the
// app's task id prefix (ids are sorted, and an app's ids share the
// prefix), so it is read-only like the rest of the snapshot. Snapshots
// built by hand must keep both properties (ids of NewTaskID's scheme,
// sorted) for it to find them.
func (s *Snapshot) TasksOf(appID string) []Task {
	if s.byApp != nil && SameTasks(s.Tasks, s.tasksOf) {
		ts, _ := s.part(appID)
		return ts[:len(ts):len(ts)]
	}
	prefix := TaskIDPrefix(appID) + instanceSep
	ts := s.Tasks
	i := sort.Search(len(ts), func(i int) bool { return ts[i].ID >= prefix })
	j := i
	for j < len(ts) && strings.HasPrefix(ts[j].ID, prefix) {
		j++
	}
	return ts[i:j:j]
}

// EventType names what an Event is about.
type EventType string

const (
	// EventTask: a task was launched or changed state; Task is set.
	EventTask EventType = "task"
	// EventTaskRemoved: the scheduler forgot a task (terminal, expunged);
	// Task is its last state.
	EventTaskRemoved EventType = "task_removed"
	// EventApp: an app was created, updated or scaled; App is set.
	EventApp EventType = "app"
	// EventAppRemoved: an app was removed; App is its last version.
	EventAppRemoved EventType = "app_removed"
	// EventQueue: an app's launch queue changed; Queue is set (Count 0 when
	// nothing waits any more).
	EventQueue EventType = "queue"
	// EventDeployment: an app's AppStatus changed (a task of the target
	// version started or became healthy, an old one went…); Status is set.
	// Status.Done says the app reached its desired state.
	EventDeployment EventType = "deployment"
	// EventLagged: the subscriber was too slow and lost events before this
	// one; it should re-read a Snapshot.
	EventLagged EventType = "lagged"
	// EventHealthCheckFailed: a task's health check failed (outside its
	// grace period); Task is the task with the failure recorded, App its
	// app (nil once removed), Check the index of the check in
	// App.HealthChecks. Marathon's failed_health_check_event.
	EventHealthCheckFailed EventType = "health_check_failed"
	// EventUnhealthyKill: the scheduler was asked to kill a task that
	// failed a check maxConsecutiveFailures times in a row (package
	// health decides); Task, App and Check as for EventHealthCheckFailed.
	// Marathon's unhealthy_instance_kill_event.
	EventUnhealthyKill EventType = "unhealthy_kill"
)

// Event is one immutable change published on the event bus.
type Event struct {
	Type  EventType
	At    time.Time
	Task  *Task
	App   *appspec.App
	Queue *QueueEntry
	// Status is set for EventDeployment.
	Status *AppStatus
	// Check is set for EventHealthCheckFailed and EventUnhealthyKill.
	Check int
}
