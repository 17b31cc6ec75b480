package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
)

// Memory is the in-memory Store for `flotilla dev` and unit tests. It
// keeps the same rules as the ZooKeeper store (revisions, history, size
// limits, secret references only) and copies everything in and out, so
// callers never share memory with it.
type Memory struct {
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
	return &Memory{
		clock: c, history: history,
		apps: map[string]memApp{}, versions: map[string][]memVersion{},
		deployments: map[string][]byte{}, groups: map[string][]byte{}, tasks: map[string]map[string]TaskRecord{},
	}
}

var _ Store = (*Memory)(nil)

func (m *Memory) GetApp(ctx context.Context, id string) (StoredApp, error) {
	if err := ctx.Err(); err != nil {
		return StoredApp{}, fmt.Errorf("store: get app %s: %w", id, err)
	}
	id = appspec.CanonicalID(id)
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

func (m *Memory) ListApps(ctx context.Context) ([]StoredApp, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list apps: %w", err)
	}
	m.mu.Lock()
	ids := sortedKeys(m.apps)
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

func (m *Memory) PutApp(ctx context.Context, app *appspec.App, expect Revision) (StoredApp, error) {
	return m.PutAppConfig(ctx, app, expect, "")
}

func (m *Memory) PutAppConfig(ctx context.Context, app *appspec.App, expect Revision, configVersion string) (StoredApp, error) {
	if err := ctx.Err(); err != nil {
		return StoredApp{}, fmt.Errorf("store: put app: %w", err)
	}
	if app == nil {
		return StoredApp{}, fmt.Errorf("store: put app: app is nil")
	}
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

func (m *Memory) DeleteApp(ctx context.Context, id string, expect Revision) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete app %s: %w", id, err)
	}
	id = appspec.CanonicalID(id)
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

func (m *Memory) ListVersions(ctx context.Context, id string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list versions of %s: %w", id, err)
	}
	id = appspec.CanonicalID(id)
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

func (m *Memory) GetVersion(ctx context.Context, id, version string) (*appspec.App, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: get version of %s: %w", id, err)
	}
	id = appspec.CanonicalID(id)
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

func (m *Memory) PutDeployment(ctx context.Context, d *Deployment) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: put deployment: %w", err)
	}
	if d == nil {
		return fmt.Errorf("store: put deployment: deployment is nil")
	}
	if err := checkName("deployment id", d.ID); err != nil {
		return err
	}
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

func (m *Memory) GetDeployment(ctx context.Context, id string) (*Deployment, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: get deployment %s: %w", id, err)
	}
	m.mu.Lock()
	b, ok := m.deployments[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("store: deployment %s: %w", id, ErrNotFound)
	}
	return decodeDeployment(b)
}

func (m *Memory) ListDeployments(ctx context.Context) ([]*Deployment, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list deployments: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return decodeDeployments(m.deployments)
}

func (m *Memory) DeleteDeployment(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete deployment %s: %w", id, err)
	}
	return m.deleteNode(m.deployments, "deployment", id)
}

// deleteNode removes one entry of nodes (a map of m's, never reassigned),
// as ZooKeeper deletes one node.
func (m *Memory) deleteNode(nodes map[string][]byte, kind, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := nodes[key]; !ok {
		return fmt.Errorf("store: delete %s %s: %w", kind, key, ErrNotFound)
	}
	delete(nodes, key)
	return nil
}

func (m *Memory) PutGroup(ctx context.Context, g StoredGroup) (StoredGroup, error) {
	if err := ctx.Err(); err != nil {
		return StoredGroup{}, fmt.Errorf("store: put group %s: %w", g.ID, err)
	}
	id, err := checkGroupID(g.ID)
	if err != nil {
		return StoredGroup{}, fmt.Errorf("store: put group %q: %w", g.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, b, err := prepareGroup(id, g, nextVersion(m.clock.Now(), groupVersion(m.groups[id])))
	if err != nil {
		return StoredGroup{}, err
	}
	m.groups[id] = b
	return c, nil
}

func (m *Memory) ListGroups(ctx context.Context) ([]StoredGroup, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list groups: %w", err)
	}
	m.mu.Lock()
	nodes := make(map[string][]byte, len(m.groups))
	for id, b := range m.groups {
		nodes[groupKey(id)] = b
	}
	m.mu.Unlock()
	return decodeGroups(nodes)
}

func (m *Memory) DeleteGroup(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete group %s: %w", id, err)
	}
	c, err := checkGroupID(id)
	if err != nil {
		return fmt.Errorf("store: delete group %q: %w", id, err)
	}
	return m.deleteNode(m.groups, "group", c)
}

func (m *Memory) FrameworkID(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("store: framework id: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frameworkID, nil
}

func (m *Memory) SetFrameworkID(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: set framework id: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frameworkID = id
	return nil
}

func (m *Memory) PutTask(ctx context.Context, t TaskRecord) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: put task %s: %w", t.TaskID, err)
	}
	if err := checkTask(t); err != nil {
		return err
	}
	if _, err := encodeNode("task", t.TaskID, t); err != nil {
		return err
	}
	t.AppID = appspec.CanonicalID(t.AppID)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tasks[t.AppID] == nil {
		m.tasks[t.AppID] = map[string]TaskRecord{}
	}
	m.tasks[t.AppID][t.TaskID] = t
	return nil
}

func (m *Memory) DeleteTask(ctx context.Context, appID, taskID string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete task %s: %w", taskID, err)
	}
	appID = appspec.CanonicalID(appID)
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

func (m *Memory) ListTasks(ctx context.Context, appID string) ([]TaskRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list tasks of %s: %w", appID, err)
	}
	appID = appspec.CanonicalID(appID)
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []TaskRecord{}
	for _, id := range sortedKeys(m.tasks[appID]) {
		out = append(out, m.tasks[appID][id])
	}
	return out, nil
}

func (m *Memory) ListAllTasks(ctx context.Context) ([]TaskRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list tasks: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []TaskRecord{}
	for _, app := range sortedKeys(m.tasks) {
		for _, id := range sortedKeys(m.tasks[app]) {
			out = append(out, m.tasks[app][id])
		}
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
