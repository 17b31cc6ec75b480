package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
)

// Sentinel errors. Every error a Store returns for these conditions wraps
// one of them, so callers use errors.Is.
var (
	// ErrNotFound: the app, version, deployment, group or task does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a compare-and-set lost (the app changed since it was
	// read, or it already exists for a create-only write). Re-read and retry.
	ErrConflict = errors.New("store: conflict: the object changed since it was read; re-read it and retry")
	// ErrTooLarge: the object is over the size a ZooKeeper node can hold
	// (MaxAppBytes for apps, MaxNodeBytes otherwise).
	ErrTooLarge = errors.New("store: object too large for one ZooKeeper node")
)

const (
	// MaxNodeBytes bounds one stored object. ZooKeeper refuses requests
	// over jute.maxbuffer (1 MiB by default) including framing.
	MaxNodeBytes = 1<<20 - 16<<10
	// MaxAppBytes bounds one app's JSON. A write carries the app twice in
	// one atomic multi-op (the current node and its history copy), and the
	// whole request must stay under jute.maxbuffer.
	MaxAppBytes = 500 << 10
	// DefaultHistory is how many versions of each app are kept (the
	// current one included) when the configuration does not say.
	DefaultHistory = 20
)

// Revision is an app's write counter, for compare-and-set. Each write of
// an app increases it; 0 means the app does not exist.
type Revision int64

const (
	// CreateOnly as the expected revision makes PutApp fail with
	// ErrConflict if the app exists.
	CreateOnly Revision = 0
	// AnyRevision writes or deletes whatever the current revision is.
	AnyRevision Revision = -1
)

// StoredApp is an app as stored: its spec (Version set by the store) and
// the revision to pass back for compare-and-set.
type StoredApp struct {
	App      *appspec.App
	Revision Revision
	// ConfigVersion is the version whose config the app's tasks run
	// (Marathon's versionInfo.lastConfigChangeAt): a scale keeps it, any
	// other change moves it to the new Version. It is stored because a new
	// leader that took the latest Version instead would see every running
	// task as outdated after a scale, and restart them all.
	ConfigVersion string
}

// Broken is one stored item that this version cannot decode (written by
// another version, by hand, or damaged). Kind is "app", "deployment",
// "group" or "task"; Key is its node name (app/task for a task record);
// AppID is the app the node belongs to, as its name gives it (empty for
// deployments and groups, which belong to no one app).
type Broken struct {
	Kind, Key, AppID string
	Err              error
}

// BrokenError is what a List method returns beside every item it could
// read when some could not be decoded: one bad item never hides the rest
// (a leader that lost all its apps for one bad node would kill every
// task). Callers that can go on with the good items use BrokenItems.
type BrokenError struct {
	Items []Broken
}

func (e *BrokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: %d stored item(s) could not be decoded", len(e.Items))
	for i, it := range e.Items {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Items)-i)
			break
		}
		fmt.Fprintf(&b, "; %s %s: %v", it.Kind, it.Key, it.Err)
	}
	return b.String()
}

// BrokenItems returns the undecodable items err reports, and whether err
// is only that (so the list returned with it is every other item).
func BrokenItems(err error) ([]Broken, bool) {
	var be *BrokenError
	if errors.As(err, &be) {
		return be.Items, true
	}
	return nil, false
}

// brokenErr is nil for no items, so callers return it as they are.
func brokenErr(items []Broken) error {
	if len(items) == 0 {
		return nil
	}
	return &BrokenError{Items: items}
}

// Deployment is a deployment as the framework persists it so that a new
// leader resumes it. The store treats it as opaque JSON; State is the
// owner's own progress data.
type Deployment struct {
	ID           string           `json:"id"`
	Version      string           `json:"version"`
	AffectedApps []string         `json:"affectedApps"`
	Steps        []DeploymentStep `json:"steps"`
	CurrentStep  int              `json:"currentStep"`
	State        json.RawMessage  `json:"state,omitempty"`
}

// DeploymentStep is one step of a deployment: actions run together.
type DeploymentStep struct {
	Actions []DeploymentAction `json:"actions"`
}

// DeploymentAction is Marathon's {action, app}: StartApplication,
// ScaleApplication, RestartApplication, StopApplication…
type DeploymentAction struct {
	Action string `json:"action"`
	App    string `json:"app"`
}

// StoredGroup is what a group holds beyond what its apps' ids imply.
// Groups are mostly implied (/prod/shop/web is in /prod/shop and /prod);
// a record is what a group needs when it has fields of its own or must
// exist while empty.
type StoredGroup struct {
	ID           string   `json:"id"`                     // canonical, e.g. /prod/shop; "/" is the root
	Dependencies []string `json:"dependencies,omitempty"` // canonical ids of apps or groups
	Version      string   `json:"version"`                // stamped by the store on every put (VersionFormat, moved past the previous like apps' versions)
}

// TaskRecord is the minimum the framework needs after a restart to
// reconcile its tasks with Mesos.
type TaskRecord struct {
	TaskID     string `json:"taskId"`
	AppID      string `json:"appId"`
	AgentID    string `json:"agentId"`
	AppVersion string `json:"appVersion"`
	State      string `json:"state"` // Mesos TaskState name, e.g. TASK_RUNNING
	// Host and Ports are where the task listens: a new leader needs them
	// for DNS and routes, and Mesos's reconciliation does not carry them.
	Host      string    `json:"host,omitempty"`
	Ports     []uint64  `json:"ports,omitempty"`
	StagedAt  time.Time `json:"stagedAt"`
	StartedAt time.Time `json:"startedAt"`
}

// Store persists Flotilla's desired state. Every method takes ctx first
// and honours its deadline; after a ctx error the outcome of a write is
// unknown, so re-read before retrying. Implementations are safe for
// concurrent use. A Store never holds a secret value: env entries that
// reference a secret are stored as the reference only.
type Store interface {
	// GetApp returns the app with this id (canonical or not), or ErrNotFound.
	GetApp(ctx context.Context, id string) (StoredApp, error)
	// ListApps returns every app, sorted by id. Apps it cannot decode are
	// reported in a *BrokenError returned beside all the others.
	ListApps(ctx context.Context) ([]StoredApp, error)
	// PutApp writes app if the stored revision is expect (CreateOnly,
	// AnyRevision or a Revision read before), stamps a new Version and
	// keeps it in the app's history. It does not modify app. The write is
	// a config change: ConfigVersion becomes the new Version.
	PutApp(ctx context.Context, app *appspec.App, expect Revision) (StoredApp, error)
	// PutAppConfig is PutApp keeping configVersion as the ConfigVersion:
	// a scale keeps the current one, a rollback restores an older one.
	// An empty configVersion is PutApp.
	PutAppConfig(ctx context.Context, app *appspec.App, expect Revision, configVersion string) (StoredApp, error)
	// DeleteApp removes the app and its history if its revision is expect
	// (or any, with AnyRevision).
	DeleteApp(ctx context.Context, id string, expect Revision) error

	// ListVersions returns the kept versions of an app, newest first; the
	// first is the current one.
	ListVersions(ctx context.Context, id string) ([]string, error)
	// GetVersion returns one kept version of an app, for rollback.
	GetVersion(ctx context.Context, id, version string) (*appspec.App, error)

	PutDeployment(ctx context.Context, d *Deployment) error
	GetDeployment(ctx context.Context, id string) (*Deployment, error)
	// ListDeployments returns every deployment, sorted by id; undecodable
	// ones are reported in a *BrokenError beside the others.
	ListDeployments(ctx context.Context) ([]*Deployment, error)
	DeleteDeployment(ctx context.Context, id string) error

	// PutGroup creates or replaces a group record and returns it with its new Version.
	PutGroup(ctx context.Context, g StoredGroup) (StoredGroup, error)
	// ListGroups returns every group record, sorted by id; undecodable records are reported in a *BrokenError beside the others (Kind "group").
	ListGroups(ctx context.Context) ([]StoredGroup, error)
	// DeleteGroup removes a group record; ErrNotFound when there is none.
	DeleteGroup(ctx context.Context, id string) error
	// GroupVersions keeps each group's versions (groupversions.go).
	GroupVersions

	// FrameworkID returns "" and no error when none was stored yet.
	FrameworkID(ctx context.Context) (string, error)
	SetFrameworkID(ctx context.Context, id string) error

	// PutTask creates or replaces a task record.
	PutTask(ctx context.Context, t TaskRecord) error
	DeleteTask(ctx context.Context, appID, taskID string) error
	// ListTasks returns the task records of one app, sorted by task id.
	// Like every List method, undecodable records are reported in a
	// *BrokenError beside the others.
	ListTasks(ctx context.Context, appID string) ([]TaskRecord, error)
	// ListAllTasks returns every task record, sorted by app then task id.
	ListAllTasks(ctx context.Context) ([]TaskRecord, error)
}

// VersionFormat is Marathon's version timestamp (UTC, milliseconds). It
// sorts as text in time order, which the history relies on.
const VersionFormat = "2006-01-02T15:04:05.000Z"

// nextVersion is now as a version, moved past latest so that versions of
// one app are strictly increasing even within one millisecond or when the
// clock steps back.
func nextVersion(now time.Time, latest string) string {
	v := now.UTC().Truncate(time.Millisecond)
	if latest != "" {
		if l, err := time.Parse(VersionFormat, latest); err == nil && !v.After(l) {
			v = l.Add(time.Millisecond)
		}
	}
	return v.Format(VersionFormat)
}

// prepareApp checks the id and size and returns the copy to store and its
// JSON. Secret env entries keep only the reference: if a caller ever filled
// in a resolved value, it is dropped here, not persisted.
func prepareApp(app *appspec.App, version, configVersion string) (*appspec.App, []byte, error) {
	if app == nil {
		return nil, nil, fmt.Errorf("store: put app: app is nil")
	}
	if err := appspec.CheckID(app.ID); err != nil {
		return nil, nil, fmt.Errorf("store: put app: %w", err)
	}
	b, err := json.Marshal(app)
	if err != nil {
		return nil, nil, fmt.Errorf("store: put app %s: encode: %w", app.ID, err)
	}
	c := &appspec.App{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, nil, fmt.Errorf("store: put app %s: decode own encoding: %w", app.ID, err)
	}
	c.ID = appspec.CanonicalID(app.ID)
	c.Version = version
	for k, v := range c.Env {
		if v.Secret != "" {
			c.Env[k] = appspec.EnvValue{Secret: v.Secret}
		}
	}
	b, err = json.Marshal(c)
	if err != nil {
		return nil, nil, fmt.Errorf("store: put app %s: encode: %w", c.ID, err)
	}
	if configVersion == "" || configVersion > version {
		configVersion = version
	}
	// Marathon's own place for it; appspec drops versionInfo from what
	// users send, so it never comes from a request.
	vi, err := json.Marshal(storedVersionInfo{LastConfigChangeAt: configVersion})
	if err != nil {
		return nil, nil, fmt.Errorf("store: put app %s: encode version info: %w", c.ID, err)
	}
	b = append(append(append(b[:len(b)-1:len(b)-1], `,"versionInfo":`...), vi...), '}')
	if len(b) > MaxAppBytes {
		return nil, nil, fmt.Errorf("store: put app %s: %d bytes of JSON, limit %d: %w", c.ID, len(b), MaxAppBytes, ErrTooLarge)
	}
	return c, b, nil
}

type storedVersionInfo struct {
	LastConfigChangeAt string `json:"lastConfigChangeAt"`
}

// decodeApp reads an app node. A node written before the config version
// was stored has none: its config version is then its version, as a new
// leader assumed before.
func decodeApp(b []byte) (StoredApp, error) {
	var w struct {
		appspec.App
		VersionInfo storedVersionInfo `json:"versionInfo"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return StoredApp{}, fmt.Errorf("store: decode stored app: %w", err)
	}
	if w.ID == "" {
		return StoredApp{}, fmt.Errorf("store: decode stored app: no id")
	}
	a := w.App
	cv := w.VersionInfo.LastConfigChangeAt
	if cv == "" || cv > a.Version {
		cv = a.Version
	}
	return StoredApp{App: &a, ConfigVersion: cv}, nil
}

// checkName refuses names that cannot be one ZooKeeper node name.
func checkName(kind, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("store: %s %q is not a valid name: it must be non-empty and hold no '/'", kind, name)
	}
	return nil
}

// checkGroupID returns the canonical form of a group id: the root "/" or
// an id appspec.CheckID accepts. Only ids of that form map one-to-one onto
// node names: "/a_b" would otherwise name the node of /a/b.
func checkGroupID(id string) (string, error) {
	if strings.TrimSpace(id) == "" {
		// CanonicalID would make it the root; an unset id is a mistake,
		// not a request for the root group.
		return "", errors.New(`the group id is empty; the root group is "/"`)
	}
	c := appspec.CanonicalID(id)
	if c == "/" {
		return c, nil
	}
	if err := appspec.CheckID(c); err != nil {
		return "", err
	}
	return c, nil
}

// prepareGroup checks g's dependencies and returns the record to store
// under the canonical id (checked by checkGroupID), sharing no memory with
// g, and its JSON.
func prepareGroup(id string, g StoredGroup, version string) (StoredGroup, []byte, error) {
	c := StoredGroup{ID: id, Version: version}
	for _, d := range g.Dependencies {
		if err := appspec.CheckID(d); err != nil {
			return StoredGroup{}, nil, fmt.Errorf("store: put group %s: dependency %q: %w", id, d, err)
		}
		c.Dependencies = append(c.Dependencies, appspec.CanonicalID(d))
	}
	b, err := encodeNode("group", id, c)
	if err != nil {
		return StoredGroup{}, nil, err
	}
	return c, b, nil
}

// decodeGroup reads a group node; a record whose id is not a valid group
// id is as unusable as one that is not JSON.
func decodeGroup(b []byte) (StoredGroup, error) {
	var g StoredGroup
	if err := json.Unmarshal(b, &g); err != nil {
		return StoredGroup{}, fmt.Errorf("store: decode stored group: %w", err)
	}
	if _, err := checkGroupID(g.ID); err != nil {
		return StoredGroup{}, fmt.Errorf("store: decode stored group: id %q: %w", g.ID, err)
	}
	return g, nil
}

// groupVersion is the version a stored group record holds, "" when there
// is none or it cannot be read: a put replaces a broken record, and its
// version goes with it.
func groupVersion(b []byte) string {
	var v struct {
		Version string `json:"version"`
	}
	if b == nil || json.Unmarshal(b, &v) != nil {
		return ""
	}
	return v.Version
}

// rootGroupKey is the root group's node name. appKey would make it "";
// no valid id has an empty first segment, so no other group's key starts
// with "_".
const rootGroupKey = "_root"

// groupKey is the node name of a canonical group id.
func groupKey(id string) string {
	if id == "/" {
		return rootGroupKey
	}
	return appKey(id)
}

// decodeGroups decodes group nodes by name, sorted by id, reporting the
// undecodable ones beside the rest.
func decodeGroups(nodes map[string][]byte) ([]StoredGroup, error) {
	out, broken := decodeNodes("group", nodes, decodeGroup)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, brokenErr(broken)
}

// decodeNodes decodes nodes in name order; the ones decode refuses are
// returned as Broken items of kind, never failing the others.
func decodeNodes[T any](kind string, nodes map[string][]byte, decode func([]byte) (T, error)) ([]T, []Broken) {
	out := []T{}
	var broken []Broken
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		v, err := decode(nodes[n])
		if err != nil {
			broken = append(broken, Broken{Kind: kind, Key: n, Err: err})
			continue
		}
		out = append(out, v)
	}
	return out, broken
}

func checkTask(t TaskRecord) error {
	if err := checkName("task id", t.TaskID); err != nil {
		return err
	}
	if err := appspec.CheckID(t.AppID); err != nil {
		return fmt.Errorf("store: task %s: %w", t.TaskID, err)
	}
	return nil
}
