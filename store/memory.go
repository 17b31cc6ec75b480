package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Memory is the in-memory Store for `flotilla dev` and unit tests. It
// keeps the same rules as the ZooKeeper store (revisions, history, size
// limits, secret references only) and copies everything in and out, so
// callers never share memory with it.
type Memory struct {
	checked
	mem *memStore
}

// memStore is Memory's backend.
type memStore struct {
	clock   clock.Clock
	history int

	mu          sync.Mutex
	apps        map[string]memApp
	versions    map[string][]memVersion // oldest first
	deployments map[string][]byte
	groups      map[string][]byte // by canonical id; bytes, so a list decodes like ZK's
	// groupVersions: group id → version → GroupVersion JSON.
	groupVersions map[string]map[string][]byte
	tasks         map[string]map[string]TaskRecord
	frameworkID   string
}

type memApp struct {
	data []byte
	rev  Revision
}

type memVersion struct {
	version string
	data    []byte
}

// NewMemory returns an empty Memory store keeping history versions per
// app (DefaultHistory if ≤ 0). A nil clock is the wall clock.
func NewMemory(c clock.Clock, history int) *Memory {
	if c == nil {
		c = clock.Real{}
	}
	if history <= 0 {
		history = DefaultHistory
	}
	m := &memStore{
		clock: c, history: history,
		apps: map[string]memApp{}, versions: map[string][]memVersion{},
		deployments: map[string][]byte{}, groups: map[string][]byte{}, tasks: map[string]map[string]TaskRecord{},
	}
	return &Memory{checked{m}, m}
}

var (
	_ Store   = (*Memory)(nil)
	_ backend = (*memStore)(nil)
)

func (m *memStore) GetApp(ctx context.Context, id string) (StoredApp, error) {
	m.mu.Lock()
	a, ok := m.apps[id]
	m.mu.Unlock()
	if !ok {
		return StoredApp{}, fmt.Errorf("store: app %s: %w", id, ErrNotFound)
	}
	sa, err := decodeApp(a.data)
	if err != nil {
		return StoredApp{}, fmt.Errorf("store: app %s: %w", id, err)
	}
	sa.Revision = a.rev
	return sa, nil
}

func (m *memStore) ListApps(ctx context.Context) ([]StoredApp, error) {
	m.mu.Lock()
	ids := slices.Sorted(maps.Keys(m.apps))
	snap := make([]memApp, len(ids))
	for i, id := range ids {
		snap[i] = m.apps[id]
	}
	m.mu.Unlock()
	out := make([]StoredApp, 0, len(snap))
	var broken []Broken
	for i, a := range snap {
		sa, err := decodeApp(a.data)
		if err != nil {
			broken = append(broken, Broken{Kind: "app", Key: appKey(ids[i]), AppID: ids[i], Err: err})
			continue
		}
		sa.Revision = a.rev
		out = append(out, sa)
	}
	return out, brokenErr(broken)
}

func (m *memStore) PutAppConfig(ctx context.Context, app *appspec.App, expect Revision, configVersion string) (StoredApp, error) {
	id := appspec.CanonicalID(app.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, exists := m.apps[id]
	if err := checkExpect(id, exists, cur.rev, expect); err != nil {
		return StoredApp{}, err
	}
	hist := m.versions[id]
	latest := ""
	if len(hist) > 0 {
		latest = hist[len(hist)-1].version
	}
	c, data, err := prepareApp(app, nextVersion(m.clock.Now(), latest), configVersion)
	if err != nil {
		return StoredApp{}, err
	}
	rev := cur.rev + 1
	m.apps[id] = memApp{data: data, rev: rev}
	hist = append(hist, memVersion{version: c.Version, data: data})
	if len(hist) > m.history {
		hist = append([]memVersion(nil), hist[len(hist)-m.history:]...)
	}
	m.versions[id] = hist
	sa, err := decodeApp(data)
	if err != nil {
		return StoredApp{}, fmt.Errorf("store: put app %s: decode own encoding: %w", id, err)
	}
	sa.App, sa.Revision = c, rev
	return sa, nil
}

// checkExpect is the compare-and-set rule both stores share.
func checkExpect(id string, exists bool, cur, expect Revision) error {
	switch {
	case expect == AnyRevision:
		return nil
	case expect == CreateOnly && exists:
		return fmt.Errorf("store: create app %s: it already exists: %w", id, ErrConflict)
	case expect == CreateOnly:
		return nil
	case expect < 0:
		return fmt.Errorf("store: app %s: invalid expected revision %d (use CreateOnly, AnyRevision or a revision read before)", id, expect)
	case !exists:
		return fmt.Errorf("store: app %s (expected revision %d): %w", id, expect, ErrNotFound)
	case cur != expect:
		return fmt.Errorf("store: app %s is at revision %d, not %d: %w", id, cur, expect, ErrConflict)
	}
	return nil
}

func (m *memStore) DeleteApp(ctx context.Context, id string, expect Revision) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, exists := m.apps[id]
	if !exists {
		return fmt.Errorf("store: delete app %s: %w", id, ErrNotFound)
	}
	if expect == CreateOnly {
		return fmt.Errorf("store: delete app %s: it exists: %w", id, ErrConflict)
	}
	if err := checkExpect(id, exists, cur.rev, expect); err != nil {
		return err
	}
	delete(m.apps, id)
	delete(m.versions, id)
	return nil
}

func (m *memStore) ListVersions(ctx context.Context, id string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hist, ok := m.versions[id]
	if !ok {
		return nil, fmt.Errorf("store: versions of app %s: %w", id, ErrNotFound)
	}
	out := make([]string, len(hist))
	for i, v := range hist {
		out[len(hist)-1-i] = v.version
	}
	return out, nil
}

func (m *memStore) GetVersion(ctx context.Context, id, version string) (*appspec.App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.versions[id] {
		if v.version == version {
			sa, err := decodeApp(v.data)
			return sa.App, err
		}
	}
	return nil, fmt.Errorf("store: app %s version %s: %w", id, version, ErrNotFound)
}

// taskFitsNode says that t's JSON encoding surely succeeds within
// MaxNodeBytes: its times have four-digit years and whole-hour-or-less
// zones JSON can write, and a bound on its size (every string byte
// escaped to six, every port at its longest, the keys and times at
// theirs) is under the limit. False means "encode to know".
func taskFitsNode(t *TaskRecord) bool {
	for _, tm := range []time.Time{t.StagedAt, t.StartedAt} {
		if y := tm.Year(); y < 0 || y > 9999 {
			return false
		}
		if _, off := tm.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
			return false
		}
	}
	strs := len(t.TaskID) + len(t.AppID) + len(t.AgentID) + len(t.AppVersion) + len(t.State) + len(t.Host)
	const fixed = 256 // keys, quotes, commas and two RFC 3339 times with nanoseconds and zone
	return fixed+6*strs+21*len(t.Ports) < MaxNodeBytes
}

func encodeNode(kind, name string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode %s %s: %w", kind, name, err)
	}
	if len(b) > MaxNodeBytes {
		return nil, fmt.Errorf("store: %s %s is %d bytes, limit %d: %w", kind, name, len(b), MaxNodeBytes, ErrTooLarge)
	}
	return b, nil
}

func (m *memStore) PutDeployment(ctx context.Context, d *Deployment) error {
	b, err := encodeNode("deployment", d.ID, d)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.deployments[d.ID] = b
	m.mu.Unlock()
	return nil
}

func decodeDeployment(b []byte) (*Deployment, error) {
	d := &Deployment{}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("store: decode stored deployment: %w", err)
	}
	if d.ID == "" {
		return nil, fmt.Errorf("store: decode stored deployment: no id")
	}
	return d, nil
}

// decodeDeployments decodes deployment nodes by name, sorted, reporting
// the undecodable ones beside the rest.
func decodeDeployments(nodes map[string][]byte) ([]*Deployment, error) {
	out, broken := decodeNodes("deployment", nodes, decodeDeployment)
	return out, brokenErr(broken)
}

func (m *memStore) GetDeployment(ctx context.Context, id string) (*Deployment, error) {
	m.mu.Lock()
	b, ok := m.deployments[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("store: deployment %s: %w", id, ErrNotFound)
	}
	return decodeDeployment(b)
}

func (m *memStore) ListDeployments(ctx context.Context) ([]*Deployment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return decodeDeployments(m.deployments)
}

func (m *memStore) DeleteDeployment(ctx context.Context, id string) error {
	return m.deleteNode(m.deployments, "deployment", id)
}

// deleteNode removes one entry of nodes (a map of m's, never reassigned),
// as ZooKeeper deletes one node.
func (m *memStore) deleteNode(nodes map[string][]byte, kind, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := nodes[key]; !ok {
		return fmt.Errorf("store: delete %s %s: %w", kind, key, ErrNotFound)
	}
	delete(nodes, key)
	return nil
}

func (m *memStore) PutGroup(ctx context.Context, g StoredGroup) (StoredGroup, error) {
	id := g.ID
	m.mu.Lock()
	defer m.mu.Unlock()
	c, b, err := prepareGroup(id, g, nextVersion(m.clock.Now(), groupVersion(m.groups[id])))
	if err != nil {
		return StoredGroup{}, err
	}
	m.groups[id] = b
	return c, nil
}

func (m *memStore) ListGroups(ctx context.Context) ([]StoredGroup, error) {
	m.mu.Lock()
	nodes := make(map[string][]byte, len(m.groups))
	for id, b := range m.groups {
		nodes[groupKey(id)] = b
	}
	m.mu.Unlock()
	return decodeGroups(nodes)
}

func (m *memStore) DeleteGroup(ctx context.Context, id string) error {
	return m.deleteNode(m.groups, "group", id)
}

func (m *memStore) FrameworkID(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frameworkID, nil
}

func (m *memStore) SetFrameworkID(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frameworkID = id
	return nil
}

func (m *memStore) PutTask(ctx context.Context, t TaskRecord) error {
	if !taskFitsNode(&t) {
		// Encoded only to apply ZooKeeper's rules (size, encodable
		// times) when the record could break them: JSON per record was
		// most of this store's cost per task.
		if _, err := encodeNode("task", t.TaskID, t); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tasks[t.AppID] == nil {
		m.tasks[t.AppID] = map[string]TaskRecord{}
	}
	m.tasks[t.AppID][t.TaskID] = t
	return nil
}

func (m *memStore) DeleteTask(ctx context.Context, appID, taskID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tasks[appID][taskID]; !ok {
		return fmt.Errorf("store: delete task %s of %s: %w", taskID, appID, ErrNotFound)
	}
	delete(m.tasks[appID], taskID)
	if len(m.tasks[appID]) == 0 {
		delete(m.tasks, appID)
	}
	return nil
}

func (m *memStore) ListTasks(ctx context.Context, appID string) ([]TaskRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []TaskRecord{}
	for _, id := range slices.Sorted(maps.Keys(m.tasks[appID])) {
		out = append(out, m.tasks[appID][id])
	}
	return out, nil
}

func (m *memStore) ListAllTasks(ctx context.Context) ([]TaskRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []TaskRecord{}
	for _, app := range slices.Sorted(maps.Keys(m.tasks)) {
		for _, id := range slices.Sorted(maps.Keys(m.tasks[app])) {
			out = append(out, m.tasks[app][id])
		}
	}
	return out, nil
}
