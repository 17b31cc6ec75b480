package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// ZKConfig configures the ZooKeeper store.
type ZKConfig struct {
	Servers []string // host:port of the ensemble
	// Root is the store's base path (default /flotilla). Several Flotilla
	// clusters can share an ensemble under different roots.
	Root string
	// SessionTimeout is the ZooKeeper session timeout (default 10 s).
	SessionTimeout time.Duration
	// OpTimeout bounds a call whose ctx has no deadline (default 10 s), so
	// that no call can block forever on a lost ensemble.
	OpTimeout time.Duration
	// History is how many versions of each app are kept, the current one
	// included (default DefaultHistory).
	History int
	Clock   clock.Clock    // default clock.Real
	Logger  *logrus.Logger // default discards
}

// ZK is the ZooKeeper Store. Layout under Root:
//
//	apps/<key>                 current app JSON, one znode per app
//	versions/<key>/<version>   kept versions (the current one included)
//	deployments/<id>           deployment JSON
//	groups/<key>               group record JSON, one znode per group
//	                           (the root group "/" is groups/_root)
//	tasks/<key>/<task id>      task records
//	frameworkid                the Mesos framework id (text)
//
// <key> is the app id without its leading "/" and with "/" replaced by
// "_": /prod/shop/web is apps/prod_shop_web. Valid app ids never hold "_"
// (appspec.CheckID), so the escape is one-to-one and apps/ stays flat: its
// child count is the number of apps. Group keys are the same; no valid id
// has an empty first segment, so no key but the root's starts with "_". A write that touches several nodes
// (an app and its history) is one ZooKeeper multi-op, so nothing is ever
// half-written; an app's Revision is its znode's Stat.Version + 1.
//
// The store uses no ephemeral nodes and no watches, so a lost session is
// harmless: go-zookeeper reconnects (to any server of the ensemble) and
// starts a new session by itself, and calls made meanwhile fail with their
// ctx deadline. Nodes are created with the open ACL (world:anyone).
type ZK struct {
	checked
	z *zkStore
}

// zkStore is ZK's backend.
type zkStore struct {
	conn      *zk.Conn
	root      string
	history   int
	opTimeout time.Duration
	clock     clock.Clock
	log       *logrus.Entry
}

var (
	_ Store   = (*ZK)(nil)
	_ backend = (*zkStore)(nil)
)

type zkLogger struct{ l *logrus.Entry }

func (z zkLogger) Printf(format string, args ...any) { z.l.Debugf(format, args...) }

// NewZK connects to ZooKeeper, waits for a session until ctx ends and
// creates the store's base nodes. Close releases the connection.
func NewZK(ctx context.Context, cfg ZKConfig) (*ZK, error) {
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("store: no ZooKeeper servers given; pass host:port of the ensemble")
	}
	if cfg.Root == "" {
		cfg.Root = "/flotilla"
	}
	if !strings.HasPrefix(cfg.Root, "/") || path.Clean(cfg.Root) != cfg.Root || cfg.Root == "/" {
		return nil, fmt.Errorf("store: ZooKeeper root %q must be an absolute, clean path other than /, e.g. /flotilla", cfg.Root)
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	root := cfg.Logger
	if root == nil {
		root = logging.Discard()
	}
	log := logging.Component(root, "store").WithField("zk_root", cfg.Root)
	conn, events, err := zk.Connect(cfg.Servers, cfg.SessionTimeout, zk.WithLogger(zkLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("store: connect to ZooKeeper %v: %w", cfg.Servers, err)
	}
	s := &zkStore{conn: conn, root: cfg.Root, history: cfg.History, opTimeout: cfg.OpTimeout, clock: cfg.Clock, log: log}
	if err := waitSession(ctx, events); err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: no ZooKeeper session with %v: %w", cfg.Servers, err)
	}
	if err := s.ensureBase(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	log.WithField("servers", cfg.Servers).Info("connected to ZooKeeper")
	return &ZK{checked{s}, s}, nil
}

func waitSession(ctx context.Context, events <-chan zk.Event) error {
	for {
		select {
		case ev := <-events:
			switch ev.State {
			case zk.StateHasSession:
				return nil
			case zk.StateAuthFailed:
				return errors.New("authentication failed")
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close ends the ZooKeeper session.
func (s *ZK) Close() { s.z.conn.Close() }

func (s *zkStore) p(parts ...string) string { return path.Join(append([]string{s.root}, parts...)...) }

// appKey escapes a canonical app id into one node name.
func appKey(id string) string { return strings.ReplaceAll(strings.TrimPrefix(id, "/"), "/", "_") }

func keyApp(key string) string { return "/" + strings.ReplaceAll(key, "_", "/") }

func (s *zkStore) ensureBase(ctx context.Context) error {
	paths := []string{}
	for p := s.root; p != "/"; p = path.Dir(p) {
		paths = append([]string{p}, paths...)
	}
	paths = append(paths, s.p("apps"), s.p("versions"), s.p("deployments"), s.p("groups"), s.p("tasks"))
	for _, p := range paths {
		err := s.call(ctx, func() error {
			_, err := s.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
			return err
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("store: create %s: %w", p, err)
		}
	}
	return nil
}

// call runs one ZooKeeper exchange under ctx (or OpTimeout when ctx has no
// deadline). go-zookeeper's calls take no context, so the call runs in a
// goroutine and is abandoned, not cancelled, when ctx ends.
func (s *zkStore) call(ctx context.Context, fn func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opTimeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w (ZooKeeper state %s)", ctx.Err(), s.conn.State())
	}
}

// multiErr returns the error of the op that failed a multi-op, and its
// index; the other ops report a rollback.
func multiErr(res []zk.MultiResponse, err error) (int, error) {
	for i, r := range res {
		// ZooKeeper marks the ops after the failed one with
		// RUNTIMEINCONSISTENCY (-2), which go-zookeeper has no name for.
		if r.Error != nil && r.Error.Error() != "unknown error: -2" {
			return i, r.Error
		}
	}
	return -1, err
}

const putRetries = 8

func (s *zkStore) GetApp(ctx context.Context, id string) (StoredApp, error) {
	var data []byte
	var st *zk.Stat
	err := s.call(ctx, func() (err error) {
		data, st, err = s.conn.Get(s.p("apps", appKey(id)))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return StoredApp{}, fmt.Errorf("store: app %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return StoredApp{}, fmt.Errorf("store: get app %s: %w", id, err)
	}
	sa, err := decodeApp(data)
	if err != nil {
		return StoredApp{}, fmt.Errorf("store: app %s: %w", id, err)
	}
	sa.Revision = Revision(st.Version) + 1
	return sa, nil
}

// listParallel bounds the gets in flight; go-zookeeper pipelines them on
// one connection, so a list of N apps costs about N/listParallel round trips.
const listParallel = 64

func (s *zkStore) ListApps(ctx context.Context) ([]StoredApp, error) {
	var out []StoredApp
	var broken []Broken
	err := s.call(ctx, func() error {
		keys, _, err := s.conn.Children(s.p("apps"))
		if err != nil {
			return err
		}
		res := make([]StoredApp, len(keys))
		errs := make([]error, len(keys))
		bad := make([]error, len(keys))
		sem := make(chan struct{}, listParallel)
		var wg sync.WaitGroup
		for i, k := range keys {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				data, st, err := s.conn.Get(s.p("apps", k))
				if errors.Is(err, zk.ErrNoNode) {
					return // deleted since Children: not listed
				}
				if err != nil {
					errs[i] = fmt.Errorf("get %s: %w", k, err)
					return
				}
				sa, err := decodeApp(data)
				if err != nil {
					bad[i] = err
					return
				}
				sa.Revision = Revision(st.Version) + 1
				res[i] = sa
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		out, broken = out[:0], broken[:0]
		for i, r := range res {
			if r.App != nil {
				out = append(out, r)
			}
			if bad[i] != nil {
				broken = append(broken, Broken{Kind: "app", Key: keys[i], AppID: keyApp(keys[i]), Err: bad[i]})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list apps: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App.ID < out[j].App.ID })
	sort.Slice(broken, func(i, j int) bool { return broken[i].Key < broken[j].Key })
	return out, brokenErr(broken)
}

func (s *zkStore) PutAppConfig(ctx context.Context, app *appspec.App, expect Revision, configVersion string) (StoredApp, error) {
	id := appspec.CanonicalID(app.ID)
	for attempt := 0; ; attempt++ {
		stored, retry, err := s.putOnce(ctx, app, id, expect, configVersion)
		if !retry || attempt == putRetries {
			return stored, err
		}
		// Another writer changed the app or its history between our read
		// and our multi-op; with AnyRevision that is not a conflict.
		s.log.WithField("app", id).WithError(err).Debug("put app raced, retrying")
	}
}

// readCurrent reads what a write of an app must know first: whether its
// node exists (and its stat), whether its history node exists, and the
// versions kept there.
func (s *zkStore) readCurrent(ctx context.Context, appPath, verDir string) (exists bool, st *zk.Stat, history []string, hasDir bool, err error) {
	err = s.call(ctx, func() (err error) {
		if exists, st, err = s.conn.Exists(appPath); err != nil {
			return err
		}
		var dirErr error
		history, _, dirErr = s.conn.Children(verDir)
		if dirErr != nil && !errors.Is(dirErr, zk.ErrNoNode) {
			return dirErr
		}
		hasDir = dirErr == nil
		return nil
	})
	return exists, st, history, hasDir, err
}

func (s *zkStore) putOnce(ctx context.Context, app *appspec.App, id string, expect Revision, configVersion string) (StoredApp, bool, error) {
	appPath, verDir := s.p("apps", appKey(id)), s.p("versions", appKey(id))
	exists, st, history, hasDir, err := s.readCurrent(ctx, appPath, verDir)
	if err != nil {
		return StoredApp{}, false, fmt.Errorf("store: put app %s: read current: %w", id, err)
	}
	cur := Revision(0)
	if exists {
		cur = Revision(st.Version) + 1
	}
	if err := checkExpect(id, exists, cur, expect); err != nil {
		return StoredApp{}, false, err
	}
	sort.Strings(history)
	latest := ""
	if len(history) > 0 {
		latest = history[len(history)-1]
	}
	c, data, err := prepareApp(app, nextVersion(s.clock.Now(), latest), configVersion)
	if err != nil {
		return StoredApp{}, false, err
	}
	acl := zk.WorldACL(zk.PermAll)
	var ops []any
	if exists {
		ops = append(ops, &zk.SetDataRequest{Path: appPath, Data: data, Version: st.Version})
	} else {
		ops = append(ops, &zk.CreateRequest{Path: appPath, Data: data, Acl: acl})
	}
	if !hasDir {
		ops = append(ops, &zk.CreateRequest{Path: verDir, Acl: acl})
	}
	ops = append(ops, &zk.CreateRequest{Path: verDir + "/" + c.Version, Data: data, Acl: acl})
	for i := 0; i < len(history)+1-s.history; i++ {
		ops = append(ops, &zk.DeleteRequest{Path: verDir + "/" + history[i], Version: -1})
	}
	var res []zk.MultiResponse
	err = s.call(ctx, func() (err error) {
		res, err = s.conn.Multi(ops...)
		return err
	})
	if err == nil {
		rev := Revision(1)
		if exists && res[0].Stat != nil {
			rev = Revision(res[0].Stat.Version) + 1
		}
		sa, err := decodeApp(data)
		if err != nil {
			return StoredApp{}, false, fmt.Errorf("store: put app %s: decode own encoding: %w", id, err)
		}
		sa.App, sa.Revision = c, rev
		return sa, false, nil
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return StoredApp{}, false, fmt.Errorf("store: put app %s: %w", id, err)
	}
	i, opErr := multiErr(res, err)
	switch {
	case i == 0 && (errors.Is(opErr, zk.ErrBadVersion) || errors.Is(opErr, zk.ErrNodeExists) || errors.Is(opErr, zk.ErrNoNode)):
		if expect == AnyRevision {
			return StoredApp{}, true, fmt.Errorf("store: put app %s: %w", id, opErr)
		}
		return StoredApp{}, false, fmt.Errorf("store: put app %s: changed concurrently (%v): %w", id, opErr, ErrConflict)
	case errors.Is(opErr, zk.ErrNodeExists) || errors.Is(opErr, zk.ErrNoNode):
		// The history changed under us (a concurrent writer or delete).
		if expect == AnyRevision {
			return StoredApp{}, true, fmt.Errorf("store: put app %s: history: %w", id, opErr)
		}
		return StoredApp{}, false, fmt.Errorf("store: put app %s: history changed concurrently (%v): %w", id, opErr, ErrConflict)
	}
	return StoredApp{}, false, fmt.Errorf("store: put app %s: %w", id, opErr)
}

func (s *zkStore) DeleteApp(ctx context.Context, id string, expect Revision) error {
	for attempt := 0; ; attempt++ {
		retry, err := s.deleteOnce(ctx, id, expect)
		if !retry || attempt == putRetries {
			return err
		}
	}
}

func (s *zkStore) deleteOnce(ctx context.Context, id string, expect Revision) (bool, error) {
	appPath, verDir := s.p("apps", appKey(id)), s.p("versions", appKey(id))
	exists, st, history, hasDir, err := s.readCurrent(ctx, appPath, verDir)
	if err != nil {
		return false, fmt.Errorf("store: delete app %s: %w", id, err)
	}
	if !exists {
		return false, fmt.Errorf("store: delete app %s: %w", id, ErrNotFound)
	}
	if expect == CreateOnly {
		return false, fmt.Errorf("store: delete app %s: it exists: %w", id, ErrConflict)
	}
	if err := checkExpect(id, true, Revision(st.Version)+1, expect); err != nil {
		return false, err
	}
	ops := []any{&zk.DeleteRequest{Path: appPath, Version: st.Version}}
	for _, h := range history {
		ops = append(ops, &zk.DeleteRequest{Path: verDir + "/" + h, Version: -1})
	}
	if hasDir {
		ops = append(ops, &zk.DeleteRequest{Path: verDir, Version: -1})
	}
	var res []zk.MultiResponse
	err = s.call(ctx, func() (err error) {
		res, err = s.conn.Multi(ops...)
		return err
	})
	if err == nil {
		// Task records outlive the app until the framework has killed its
		// tasks; the empty parent goes now or when the last one does.
		s.dropTaskDir(ctx, id)
		return false, nil
	}
	if ctx.Err() != nil {
		return false, fmt.Errorf("store: delete app %s: %w", id, err)
	}
	i, opErr := multiErr(res, err)
	if expect == AnyRevision && (errors.Is(opErr, zk.ErrBadVersion) || errors.Is(opErr, zk.ErrNoNode) || errors.Is(opErr, zk.ErrNotEmpty)) {
		return true, fmt.Errorf("store: delete app %s: %w", id, opErr)
	}
	if i == 0 && errors.Is(opErr, zk.ErrBadVersion) {
		return false, fmt.Errorf("store: delete app %s: changed concurrently: %w", id, ErrConflict)
	}
	if errors.Is(opErr, zk.ErrNoNode) || errors.Is(opErr, zk.ErrNotEmpty) {
		return false, fmt.Errorf("store: delete app %s: changed concurrently (%v): %w", id, opErr, ErrConflict)
	}
	return false, fmt.Errorf("store: delete app %s: %w", id, opErr)
}

func (s *zkStore) ListVersions(ctx context.Context, id string) ([]string, error) {
	var vs []string
	err := s.call(ctx, func() (err error) {
		vs, _, err = s.conn.Children(s.p("versions", appKey(id)))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("store: versions of app %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: list versions of %s: %w", id, err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(vs)))
	return vs, nil
}

func (s *zkStore) GetVersion(ctx context.Context, id, version string) (*appspec.App, error) {
	var data []byte
	err := s.call(ctx, func() (err error) {
		data, _, err = s.conn.Get(s.p("versions", appKey(id), version))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("store: app %s version %s: %w", id, version, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get app %s version %s: %w", id, version, err)
	}
	sa, err := decodeApp(data)
	return sa.App, err
}

// put creates or replaces one node.
func (s *zkStore) put(ctx context.Context, p string, data []byte) error {
	return s.call(ctx, func() error {
		_, err := s.conn.Set(p, data, -1)
		if errors.Is(err, zk.ErrNoNode) {
			_, err = s.conn.Create(p, data, 0, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				_, err = s.conn.Set(p, data, -1)
			}
		}
		return err
	})
}

func (s *zkStore) PutDeployment(ctx context.Context, d *Deployment) error {
	b, err := encodeNode("deployment", d.ID, d)
	if err != nil {
		return err
	}
	if err := s.put(ctx, s.p("deployments", d.ID), b); err != nil {
		return fmt.Errorf("store: put deployment %s: %w", d.ID, err)
	}
	return nil
}

func (s *zkStore) GetDeployment(ctx context.Context, id string) (*Deployment, error) {
	var data []byte
	err := s.call(ctx, func() (err error) {
		data, _, err = s.conn.Get(s.p("deployments", id))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("store: deployment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get deployment %s: %w", id, err)
	}
	return decodeDeployment(data)
}

// getChildren reads every child of dir (pipelined) and returns their
// data by name; children deleted meanwhile are left out.
func (s *zkStore) getChildren(ctx context.Context, dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.call(ctx, func() error {
		names, _, err := s.conn.Children(dir)
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		sem := make(chan struct{}, listParallel)
		for i, n := range names {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				data, _, err := s.conn.Get(dir + "/" + n)
				if errors.Is(err, zk.ErrNoNode) {
					return
				}
				if err != nil {
					errs[i] = err
					return
				}
				mu.Lock()
				out[n] = data
				mu.Unlock()
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	})
	return out, err
}

func (s *zkStore) ListDeployments(ctx context.Context) ([]*Deployment, error) {
	nodes, err := s.getChildren(ctx, s.p("deployments"))
	if err != nil {
		return nil, fmt.Errorf("store: list deployments: %w", err)
	}
	return decodeDeployments(nodes)
}

func (s *zkStore) DeleteDeployment(ctx context.Context, id string) error {
	err := s.call(ctx, func() error { return s.conn.Delete(s.p("deployments", id), -1) })
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("store: delete deployment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: delete deployment %s: %w", id, err)
	}
	return nil
}

// PutGroup reads the record first to move its version past the stored
// one, and writes only if the node is still the one read (retrying
// otherwise), so concurrent puts never stamp equal or decreasing versions.
func (s *zkStore) PutGroup(ctx context.Context, g StoredGroup) (StoredGroup, error) {
	id := g.ID
	p := s.p("groups", groupKey(id))
	for attempt := 0; ; attempt++ {
		c, raced, err := s.putGroupOnce(ctx, p, id, g)
		if !raced || attempt == putRetries {
			return c, err
		}
		s.log.WithField("group", id).WithError(err).Debug("put group raced, retrying")
	}
}

// putGroupOnce reports raced when the node changed (or appeared, or went)
// between its read and its write.
func (s *zkStore) putGroupOnce(ctx context.Context, p, id string, g StoredGroup) (StoredGroup, bool, error) {
	var prev []byte
	var st *zk.Stat
	err := s.call(ctx, func() (err error) {
		prev, st, err = s.conn.Get(p)
		return err
	})
	exists := err == nil
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return StoredGroup{}, false, fmt.Errorf("store: put group %s: read current: %w", id, err)
	}
	c, b, err := prepareGroup(id, g, nextVersion(s.clock.Now(), groupVersion(prev)))
	if err != nil {
		return StoredGroup{}, false, err
	}
	err = s.call(ctx, func() error {
		if exists {
			_, err := s.conn.Set(p, b, st.Version)
			return err
		}
		_, err := s.conn.Create(p, b, 0, zk.WorldACL(zk.PermAll))
		return err
	})
	if err != nil {
		raced := ctx.Err() == nil && (errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode))
		return StoredGroup{}, raced, fmt.Errorf("store: put group %s: %w", id, err)
	}
	return c, false, nil
}

func (s *zkStore) ListGroups(ctx context.Context) ([]StoredGroup, error) {
	nodes, err := s.getChildren(ctx, s.p("groups"))
	if err != nil {
		return nil, fmt.Errorf("store: list groups: %w", err)
	}
	return decodeGroups(nodes)
}

func (s *zkStore) DeleteGroup(ctx context.Context, id string) error {
	err := s.call(ctx, func() error { return s.conn.Delete(s.p("groups", groupKey(id)), -1) })
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("store: delete group %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: delete group %s: %w", id, err)
	}
	return nil
}

func (s *zkStore) FrameworkID(ctx context.Context) (string, error) {
	var data []byte
	err := s.call(ctx, func() (err error) {
		data, _, err = s.conn.Get(s.p("frameworkid"))
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: get framework id: %w", err)
	}
	return string(data), nil
}

func (s *zkStore) SetFrameworkID(ctx context.Context, id string) error {
	if err := s.put(ctx, s.p("frameworkid"), []byte(id)); err != nil {
		return fmt.Errorf("store: set framework id: %w", err)
	}
	return nil
}

func (s *zkStore) PutTask(ctx context.Context, t TaskRecord) error {
	b, err := encodeNode("task", t.TaskID, t)
	if err != nil {
		return err
	}
	dir := s.p("tasks", appKey(t.AppID))
	err = s.put(ctx, dir+"/"+t.TaskID, b)
	if errors.Is(err, zk.ErrNoNode) {
		err = s.call(ctx, func() error {
			_, err := s.conn.Create(dir, nil, 0, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				return nil
			}
			return err
		})
		if err == nil {
			err = s.put(ctx, dir+"/"+t.TaskID, b)
		}
	}
	if err != nil {
		return fmt.Errorf("store: put task %s of %s: %w", t.TaskID, t.AppID, err)
	}
	return nil
}

func (s *zkStore) DeleteTask(ctx context.Context, appID, taskID string) error {
	dir := s.p("tasks", appKey(appID))
	err := s.call(ctx, func() error { return s.conn.Delete(dir+"/"+taskID, -1) })
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("store: delete task %s of %s: %w", taskID, appID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: delete task %s of %s: %w", taskID, appID, err)
	}
	// Drop the app's task directory once empty, unless the app still
	// exists (it will get tasks again); failures here are harmless.
	if _, err := s.GetApp(ctx, appID); errors.Is(err, ErrNotFound) {
		s.dropTaskDir(ctx, appID)
	}
	return nil
}

// dropTaskDir deletes the task record node of a deleted app if it is
// empty. Records still there (ErrNotEmpty) or no node at all are the
// expected answers; any other failure leaves an empty node behind, which
// costs a znode and nothing else, and is logged.
func (s *zkStore) dropTaskDir(ctx context.Context, appID string) {
	err := s.call(ctx, func() error { return s.conn.Delete(s.p("tasks", appKey(appID)), -1) })
	if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNotEmpty) {
		s.log.WithError(err).WithField("app", appID).Warn("could not delete the empty task record node of a deleted app; it stays")
	}
}

// decodeTasks decodes one app's task record nodes; undecodable ones (or
// ones without the ids a record needs) are reported beside the rest.
func decodeTasks(appKey string, nodes map[string][]byte) ([]TaskRecord, []Broken) {
	out := []TaskRecord{}
	var broken []Broken
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		var t TaskRecord
		err := json.Unmarshal(nodes[n], &t)
		if err == nil {
			err = checkTask(t)
		}
		if err != nil {
			broken = append(broken, Broken{Kind: "task", Key: appKey + "/" + n, AppID: keyApp(appKey), Err: fmt.Errorf("store: decode task record: %w", err)})
			continue
		}
		out = append(out, t)
	}
	return out, broken
}

func (s *zkStore) ListTasks(ctx context.Context, appID string) ([]TaskRecord, error) {
	nodes, err := s.getChildren(ctx, s.p("tasks", appKey(appID)))
	if errors.Is(err, zk.ErrNoNode) {
		return []TaskRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list tasks of %s: %w", appID, err)
	}
	out, broken := decodeTasks(appKey(appID), nodes)
	return out, brokenErr(broken)
}

func (s *zkStore) ListAllTasks(ctx context.Context) ([]TaskRecord, error) {
	var keys []string
	err := s.call(ctx, func() (err error) {
		keys, _, err = s.conn.Children(s.p("tasks"))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list tasks: %w", err)
	}
	apps := make([]string, len(keys))
	for i, k := range keys {
		apps[i] = keyApp(k)
	}
	sort.Strings(apps)
	out := []TaskRecord{}
	var broken []Broken
	for _, a := range apps {
		ts, err := s.ListTasks(ctx, a)
		if items, ok := BrokenItems(err); ok {
			broken = append(broken, items...)
		} else if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, brokenErr(broken)
}
