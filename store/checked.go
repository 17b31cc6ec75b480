package store

import (
	"context"
	"fmt"

	"github.com/flotilla-sched/flotilla/appspec"
)

// backend is a store's own work, behind checked: it gets only calls with a
// live ctx, well-formed arguments and canonical ids, and checks none of
// that again.
type backend interface {
	GetApp(ctx context.Context, id string) (StoredApp, error)
	ListApps(ctx context.Context) ([]StoredApp, error)
	PutAppConfig(ctx context.Context, app *appspec.App, expect Revision, configVersion string) (StoredApp, error)
	DeleteApp(ctx context.Context, id string, expect Revision) error
	ListVersions(ctx context.Context, id string) ([]string, error)
	GetVersion(ctx context.Context, id, version string) (*appspec.App, error)
	PutDeployment(ctx context.Context, d *Deployment) error
	GetDeployment(ctx context.Context, id string) (*Deployment, error)
	ListDeployments(ctx context.Context) ([]*Deployment, error)
	DeleteDeployment(ctx context.Context, id string) error
	PutGroup(ctx context.Context, g StoredGroup) (StoredGroup, error)
	ListGroups(ctx context.Context) ([]StoredGroup, error)
	DeleteGroup(ctx context.Context, id string) error
	FrameworkID(ctx context.Context) (string, error)
	SetFrameworkID(ctx context.Context, id string) error
	PutTask(ctx context.Context, t TaskRecord) error
	DeleteTask(ctx context.Context, appID, taskID string) error
	ListTasks(ctx context.Context, appID string) ([]TaskRecord, error)
	ListAllTasks(ctx context.Context) ([]TaskRecord, error)
	GroupVersions
}

// checked is the front both stores share (Memory and ZK embed it): every
// call fails at once, before any I/O, on a ctx that is done and on
// malformed arguments, and the backend gets canonical ids. One copy, so
// the two stores cannot drift apart in what they refuse.
type checked struct{ b backend }

// live is the ctx check of every call; op and name say which call.
func live(ctx context.Context, op, name string) error {
	if err := ctx.Err(); err != nil {
		if name != "" {
			op += " " + name
		}
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

func (c checked) GetApp(ctx context.Context, id string) (StoredApp, error) {
	if err := live(ctx, "get app", id); err != nil {
		return StoredApp{}, err
	}
	return c.b.GetApp(ctx, appspec.CanonicalID(id))
}

func (c checked) ListApps(ctx context.Context) ([]StoredApp, error) {
	if err := live(ctx, "list apps", ""); err != nil {
		return nil, err
	}
	return c.b.ListApps(ctx)
}

func (c checked) PutApp(ctx context.Context, app *appspec.App, expect Revision) (StoredApp, error) {
	return c.PutAppConfig(ctx, app, expect, "")
}

func (c checked) PutAppConfig(ctx context.Context, app *appspec.App, expect Revision, configVersion string) (StoredApp, error) {
	if err := live(ctx, "put app", ""); err != nil {
		return StoredApp{}, err
	}
	if app == nil {
		return StoredApp{}, fmt.Errorf("store: put app: app is nil")
	}
	if err := appspec.CheckID(app.ID); err != nil {
		return StoredApp{}, fmt.Errorf("store: put app: %w", err)
	}
	return c.b.PutAppConfig(ctx, app, expect, configVersion)
}

func (c checked) DeleteApp(ctx context.Context, id string, expect Revision) error {
	if err := live(ctx, "delete app", id); err != nil {
		return err
	}
	return c.b.DeleteApp(ctx, appspec.CanonicalID(id), expect)
}

func (c checked) ListVersions(ctx context.Context, id string) ([]string, error) {
	if err := live(ctx, "list versions of", id); err != nil {
		return nil, err
	}
	return c.b.ListVersions(ctx, appspec.CanonicalID(id))
}

func (c checked) GetVersion(ctx context.Context, id, version string) (*appspec.App, error) {
	if err := live(ctx, "get version of", id); err != nil {
		return nil, err
	}
	if err := checkName("version", version); err != nil {
		return nil, err
	}
	return c.b.GetVersion(ctx, appspec.CanonicalID(id), version)
}

func (c checked) PutDeployment(ctx context.Context, d *Deployment) error {
	if err := live(ctx, "put deployment", ""); err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("store: put deployment: deployment is nil")
	}
	if err := checkName("deployment id", d.ID); err != nil {
		return err
	}
	return c.b.PutDeployment(ctx, d)
}

func (c checked) GetDeployment(ctx context.Context, id string) (*Deployment, error) {
	if err := live(ctx, "get deployment", id); err != nil {
		return nil, err
	}
	if err := checkName("deployment id", id); err != nil {
		return nil, err
	}
	return c.b.GetDeployment(ctx, id)
}

func (c checked) ListDeployments(ctx context.Context) ([]*Deployment, error) {
	if err := live(ctx, "list deployments", ""); err != nil {
		return nil, err
	}
	return c.b.ListDeployments(ctx)
}

func (c checked) DeleteDeployment(ctx context.Context, id string) error {
	if err := live(ctx, "delete deployment", id); err != nil {
		return err
	}
	if err := checkName("deployment id", id); err != nil {
		return err
	}
	return c.b.DeleteDeployment(ctx, id)
}

func (c checked) PutGroup(ctx context.Context, g StoredGroup) (StoredGroup, error) {
	if err := live(ctx, "put group", g.ID); err != nil {
		return StoredGroup{}, err
	}
	id, err := checkGroupID(g.ID)
	if err != nil {
		return StoredGroup{}, fmt.Errorf("store: put group %q: %w", g.ID, err)
	}
	g.ID = id
	return c.b.PutGroup(ctx, g)
}

func (c checked) ListGroups(ctx context.Context) ([]StoredGroup, error) {
	if err := live(ctx, "list groups", ""); err != nil {
		return nil, err
	}
	return c.b.ListGroups(ctx)
}

func (c checked) DeleteGroup(ctx context.Context, id string) error {
	if err := live(ctx, "delete group", id); err != nil {
		return err
	}
	cid, err := checkGroupID(id)
	if err != nil {
		return fmt.Errorf("store: delete group %q: %w", id, err)
	}
	return c.b.DeleteGroup(ctx, cid)
}

func (c checked) FrameworkID(ctx context.Context) (string, error) {
	if err := live(ctx, "framework id", ""); err != nil {
		return "", err
	}
	return c.b.FrameworkID(ctx)
}

func (c checked) SetFrameworkID(ctx context.Context, id string) error {
	if err := live(ctx, "set framework id", ""); err != nil {
		return err
	}
	return c.b.SetFrameworkID(ctx, id)
}

func (c checked) PutTask(ctx context.Context, t TaskRecord) error {
	if err := live(ctx, "put task", t.TaskID); err != nil {
		return err
	}
	if err := checkTask(t); err != nil {
		return err
	}
	t.AppID = appspec.CanonicalID(t.AppID)
	return c.b.PutTask(ctx, t)
}

func (c checked) DeleteTask(ctx context.Context, appID, taskID string) error {
	if err := live(ctx, "delete task", taskID); err != nil {
		return err
	}
	if err := checkName("task id", taskID); err != nil {
		return err
	}
	return c.b.DeleteTask(ctx, appspec.CanonicalID(appID), taskID)
}

func (c checked) ListTasks(ctx context.Context, appID string) ([]TaskRecord, error) {
	if err := live(ctx, "list tasks of", appID); err != nil {
		return nil, err
	}
	return c.b.ListTasks(ctx, appspec.CanonicalID(appID))
}

func (c checked) ListAllTasks(ctx context.Context) ([]TaskRecord, error) {
	if err := live(ctx, "list tasks", ""); err != nil {
		return nil, err
	}
	return c.b.ListAllTasks(ctx)
}

func (c checked) PutGroupVersion(ctx context.Context, gv GroupVersion) error {
	if err := live(ctx, "put group version", gv.ID); err != nil {
		return err
	}
	return c.b.PutGroupVersion(ctx, gv) // prepareGroupVersion checks the rest
}

func (c checked) ListGroupVersions(ctx context.Context, id string) ([]string, error) {
	if err := live(ctx, "versions of group", id); err != nil {
		return nil, err
	}
	cid, err := checkGroupID(id)
	if err != nil {
		return nil, fmt.Errorf("store: versions of group %q: %w", id, err)
	}
	return c.b.ListGroupVersions(ctx, cid)
}

func (c checked) GetGroupVersion(ctx context.Context, id, version string) (GroupVersion, error) {
	if err := live(ctx, "get version of group", id); err != nil {
		return GroupVersion{}, err
	}
	cid, err := checkGroupID(id)
	if err != nil {
		return GroupVersion{}, fmt.Errorf("store: group %q version %s: %w", id, version, err)
	}
	if err := checkName("version", version); err != nil {
		return GroupVersion{}, fmt.Errorf("store: group %s: %w", cid, err)
	}
	return c.b.GetGroupVersion(ctx, cid, version)
}

func (c checked) DeleteGroupVersions(ctx context.Context, id string) error {
	if err := live(ctx, "delete versions of group", id); err != nil {
		return err
	}
	cid, err := checkGroupID(id)
	if err != nil {
		return fmt.Errorf("store: delete versions of group %q: %w", id, err)
	}
	return c.b.DeleteGroupVersions(ctx, cid)
}
