package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/store"
)

// errIsPlan: a stored deployment is a group deployment's own record.
var errIsPlan = errors.New("deploy: the record is a group deployment")

// GroupPlan is a group deployment: steps of app changes, run one step at
// a time. The apps of the running step each have a Deployment (PlanID set
// to the plan's ID); the later steps wait, and their apps are locked.
type GroupPlan struct {
	ID      string
	Version string
	GroupID string
	Steps   []PlanStep
	// Current is the index of the running step.
	Current int
	Started time.Time
	// failed says why an app deployment of the running step failed; the
	// plan stops there.
	failed string
}

// Affected lists the ids of every app the plan changes, sorted.
func (p *GroupPlan) Affected() []string {
	var out []string
	for _, s := range p.Steps {
		for _, c := range s {
			out = append(out, c.ID)
		}
	}
	sort.Strings(out)
	return out
}

// planState is a GroupPlan as the store keeps it (inside
// store.Deployment.State), so a new leader resumes it.
type planState struct {
	GroupID string        `json:"groupId"`
	Steps   [][]planEntry `json:"steps"`
	Current int           `json:"current"`
	Started time.Time     `json:"started"`
}

type planEntry struct {
	ID  string       `json:"id"`
	App *appspec.App `json:"app,omitempty"` // nil: remove the app
}

// plans holds the running group deployments.
type plans struct {
	mu   sync.RWMutex
	byID map[string]*GroupPlan
}

func (ps *plans) init() { ps.byID = map[string]*GroupPlan{} }

// replaceAll is Restore's: the plans read from the store.
func (ps *plans) replaceAll(list []*GroupPlan) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.byID = make(map[string]*GroupPlan, len(list))
	for _, p := range list {
		ps.byID[p.ID] = p
	}
}

// update changes a plan's fields under the lock its readers take.
func (ps *plans) update(f func()) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	f()
}

// snapshot copies a plan for readers outside the write lock.
func (ps *plans) snapshot(p *GroupPlan) GroupPlan {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	c := *p
	c.Steps = append([]PlanStep(nil), p.Steps...)
	return c
}

func (ps *plans) get(id string) *GroupPlan {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.byID[id]
}

func (ps *plans) put(p *GroupPlan) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.byID[p.ID] = p
}

func (ps *plans) remove(id string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.byID, id)
}

func (ps *plans) count() int {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return len(ps.byID)
}

func (ps *plans) list() []*GroupPlan {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	out := make([]*GroupPlan, 0, len(ps.byID))
	for _, p := range ps.byID {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// pendingFor is the plan whose later steps will change app id, or nil.
func (ps *plans) pendingFor(id string) *GroupPlan {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	for _, p := range ps.byID {
		for _, s := range p.Steps[min(p.Current+1, len(p.Steps)):] {
			for _, c := range s {
				if c.ID == id {
					return p
				}
			}
		}
	}
	return nil
}

// dropPending takes app id out of every plan's later steps.
func (ps *plans) dropPending(id string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.byID {
		for i := p.Current + 1; i < len(p.Steps); i++ {
			kept := p.Steps[i][:0:0]
			for _, c := range p.Steps[i] {
				if c.ID != id {
					kept = append(kept, c)
				}
			}
			p.Steps[i] = kept
		}
	}
}

// GroupOpKind is what a GroupOp does.
type GroupOpKind int

const (
	GroupCreate GroupOpKind = iota // POST /v2/groups: refused if the group exists
	GroupUpdate                    // PUT/PATCH /v2/groups/{id}
	GroupDelete                    // DELETE /v2/groups/{id}
	GroupScale                     // PUT /v2/groups/{id} {"scaleBy": x}
	// GroupApps changes the apps listed in Apps, wherever they are, as one
	// deployment (Marathon's bulk PUT/PATCH /v2/apps); ID is "/".
	GroupApps
)

// GroupOp is one change to a group and everything in it.
type GroupOp struct {
	Kind    GroupOpKind
	ID      string         // canonical
	Group   *appspec.Group // Create, Update: validated, ids absolute
	ScaleBy float64        // Scale
	Apps    []*appspec.App // Apps: validated, ids absolute, each once
	Force   bool
	// DryRun computes the plan and changes nothing (Marathon's dryRun).
	DryRun        bool
	URI, ClientIP string
}

// Groups returns the stored group records, by id.
func (s *Service) Groups() map[string]store.StoredGroup {
	s.groupsMu.RLock()
	defer s.groupsMu.RUnlock()
	out := make(map[string]store.StoredGroup, len(s.groups))
	for k, v := range s.groups {
		out[k] = v
	}
	return out
}

// Plans lists the running group deployments, sorted by id: copies, so
// that readers need no lock.
func (s *Service) Plans() []*GroupPlan {
	ps := s.plans.list()
	out := make([]*GroupPlan, len(ps))
	for i, p := range ps {
		c := s.plans.snapshot(p)
		out[i] = &c
	}
	return out
}

// groupExists: an app inside id, or a record of it.
func (s *Service) groupExists(id string) bool {
	if _, ok := s.Groups()[id]; ok {
		return true
	}
	for _, r := range s.idx.list() {
		if appspec.Contains(id, r.App.ID) && r.App.ID != id {
			return true
		}
	}
	return false
}

// ApplyGroup changes a group and everything in it as one deployment: it
// computes the plan (Plan), refuses it whole if any app it touches is
// locked by another deployment (unless forced) or the dependencies form a
// cycle, stores the group records, starts the first step and returns the
// plan. Nothing is half-written: the checks come before the first write.
func (s *Service) ApplyGroup(ctx context.Context, op GroupOp) (p *GroupPlan, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	version := Timestamp(s.now())
	if !op.DryRun {
		defer func() { s.groupChanged(op.ID, version, p, err) }()
	}
	return s.applyGroupLocked(ctx, op)
}

func (s *Service) applyGroupLocked(ctx context.Context, op GroupOp) (*GroupPlan, error) {
	cur := map[string]*appspec.App{}
	for _, r := range s.idx.list() {
		cur[r.App.ID] = r.App
	}
	changes := map[string]*appspec.App{}
	var records []store.StoredGroup
	var dropRecords []string
	switch op.Kind {
	case GroupCreate:
		if s.groupExists(op.ID) {
			return nil, errorf(Conflict, "Group %s already exists; change it with PUT /v2/groups%s", op.ID, op.ID)
		}
		fallthrough
	case GroupUpdate:
		for _, a := range op.Group.AllApps() {
			if c := cur[a.ID]; c != nil && unchanged(c, a) {
				continue // not part of the deployment
			}
			changes[a.ID] = a
		}
		for _, g := range op.Group.AllGroups() {
			if g.AppsSet {
				keep := map[string]bool{}
				for _, a := range g.Apps {
					keep[a.ID] = true
				}
				for id, a := range cur {
					// A group's apps do not list its pods: those are
					// written through /v2/pods, read-only here (Marathon).
					if appspec.ParentID(id) == g.ID && !keep[id] && a.Pod == nil {
						changes[id] = nil
					}
				}
			}
			if g.GroupsSet {
				keep := map[string]bool{}
				for _, c := range g.Groups {
					keep[c.ID] = true
				}
				for id := range cur {
					if child := childOf(g.ID, id); child != "" && !keep[child] {
						changes[id] = nil
						dropRecords = append(dropRecords, child)
					}
				}
			}
			records = append(records, store.StoredGroup{ID: g.ID, Dependencies: g.Dependencies})
		}
	case GroupDelete:
		if !s.groupExists(op.ID) {
			return nil, errorf(NotFound, "Group '%s' does not exist; list the groups with GET /v2/groups", op.ID)
		}
		for id := range cur {
			if appspec.Contains(op.ID, id) {
				changes[id] = nil
			}
		}
		for id := range s.Groups() {
			if appspec.Contains(op.ID, id) {
				dropRecords = append(dropRecords, id)
			}
		}
	case GroupApps:
		groups := s.groupIDs()
		for _, a := range op.Apps {
			if groups[a.ID] {
				return nil, &appspec.ValidationError{Message: "Object is not valid", Details: []appspec.Detail{{Path: "/id",
					Errors: []string{fmt.Sprintf("app %s: a group with this id exists; an app and a group cannot share an id", a.ID)}}}}
			}
			if c := cur[a.ID]; c != nil && unchanged(c, a) {
				continue
			}
			changes[a.ID] = a
		}
	case GroupScale:
		if !s.groupExists(op.ID) {
			return nil, errorf(NotFound, "Group '%s' does not exist; list the groups with GET /v2/groups", op.ID)
		}
		if !(op.ScaleBy >= 0) || math.IsInf(op.ScaleBy, 0) {
			return nil, &appspec.ValidationError{Message: "Object is not valid", Details: []appspec.Detail{{Path: "/scaleBy", Errors: []string{fmt.Sprintf("must be a number ≥ 0 (got %v)", op.ScaleBy)}}}}
		}
		for id, a := range cur {
			if appspec.Contains(op.ID, id) {
				n := *a
				n.Version = ""
				n.Instances = int(math.Ceil(float64(a.Instances) * op.ScaleBy))
				if n.Instances > s.cfg.Limits.MaxInstances {
					return nil, &appspec.ValidationError{Message: "Object is not valid", Details: []appspec.Detail{{Path: "/scaleBy",
						Errors: []string{fmt.Sprintf("would scale %s to %d instances, more than this server's limit of %d (--max-instances)", id, n.Instances, s.cfg.Limits.MaxInstances)}}}}
				}
				if n.Instances != a.Instances {
					changes[id] = &n
				}
			}
		}
	}
	groupDeps := map[string][]string{}
	for id, g := range s.Groups() {
		groupDeps[id] = g.Dependencies
	}
	for _, r := range records {
		groupDeps[r.ID] = r.Dependencies
	}
	steps, err := Plan(PlanInput{Current: cur, Changes: changes, GroupDeps: groupDeps})
	if err != nil {
		return nil, planError(err)
	}
	// Service ports are assigned now, so that a dry run shows them and a
	// conflict refuses the whole change before anything is written.
	held := s.portsAfter(changes)
	for _, st := range steps {
		for _, c := range st {
			if c.App == nil {
				continue
			}
			holder := func(p uint32) string {
				if h := held[p]; h != c.ID {
					return h
				}
				return ""
			}
			if err := appspec.AssignServicePorts(c.App, cur[c.ID], holder, s.cfg.ServicePorts); err != nil {
				return nil, prefixDetails(err, c.ID)
			}
			// Refused here, with the whole change, not at its step.
			if err := appspec.ResidentUpdate(cur[c.ID], c.App); err != nil {
				return nil, prefixDetails(err, c.ID)
			}
			for _, sp := range c.App.ServicePorts() {
				held[sp] = c.ID
			}
		}
	}
	p := &GroupPlan{ID: s.newID(), Version: Timestamp(s.now()), GroupID: op.ID, Steps: steps, Current: -1, Started: s.now()}
	if op.DryRun {
		return p, nil
	}
	if !op.Force {
		for _, id := range p.Affected() {
			if d := s.deps.forApp(id); d != nil {
				return nil, &Error{Kind: Locked, Deployment: d.ID,
					Message: fmt.Sprintf("App %s is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/%s'.", id, d.ID)}
			}
			if other := s.plans.pendingFor(id); other != nil {
				return nil, &Error{Kind: Locked, Deployment: other.ID,
					Message: fmt.Sprintf("App %s is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/%s'.", id, other.ID)}
			}
		}
	}
	// The state this change replaces stays a version of its groups.
	if err := s.keepGroupVersionsLocked(ctx); err != nil {
		return nil, err
	}
	removed := dropRecords
	if op.Kind == GroupDelete {
		removed = append(removed, op.ID)
	}
	s.forgetGroupVersionsLocked(ctx, s.groupsInside(removed))
	for _, r := range records {
		stored, err := s.st.PutGroup(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("deploy: store group %s: %w", r.ID, err)
		}
		s.setGroup(stored)
	}
	for _, id := range dropRecords {
		if err := s.st.DeleteGroup(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("deploy: remove group %s: %w", id, err)
		}
		s.deleteGroup(id)
	}
	if op.Kind == GroupDelete && op.ID != "/" {
		if err := s.st.DeleteGroup(ctx, op.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("deploy: remove group %s: %w", op.ID, err)
		}
		s.deleteGroup(op.ID)
	}
	s.plans.put(p)
	s.started.Inc()
	s.log.WithFields(logrus.Fields{"group": op.ID, "deployment": p.ID, "steps": len(p.Steps), "apps": len(p.Affected())}).Info("group deployment started")
	c := s.plans.snapshot(p)
	s.events().Plan(EventDeploymentInfo, &c, "")
	s.advanceLocked(ctx, p, op.Force, op.URI, op.ClientIP)
	return p, nil
}

// unchanged: a group definition asks for an app exactly as it runs. Its
// service ports left at 0 are the ones it has (they would be kept), so a
// group PUT back as it was starts no deployment.
func unchanged(cur, next *appspec.App) bool {
	n := *next
	if n.NetworkMode() == appspec.NetworkHost {
		n.PortDefinitions = append([]appspec.PortDefinition(nil), next.PortDefinitions...)
	} else if next.Container != nil {
		c := *next.Container
		c.PortMappings = append([]appspec.PortMapping(nil), next.Container.PortMappings...)
		n.Container = &c
	}
	old := cur.ServicePorts()
	for i, p := range n.ServicePorts() {
		if p == 0 && i < len(old) {
			n.SetServicePort(i, old[i])
		}
	}
	return ConfigEqual(cur, &n) && cur.Instances == n.Instances
}

// portsAfter maps the service ports that stay held once changes apply to
// the app holding them: an app outside the change keeps its ports; an app
// the change keeps keeps each port its new spec leaves at 0 (or names
// again) — the one AssignServicePorts will keep for it — and holds the
// ports its new spec names; a removed app holds none. Built once, so that
// assigning ports to a group of 1,000 apps costs a map lookup per port
// tried.
func (s *Service) portsAfter(changes map[string]*appspec.App) map[uint32]string {
	held := map[uint32]string{}
	for _, r := range s.idx.list() {
		next, changing := changes[r.App.ID]
		if !changing {
			for _, p := range r.ServicePorts {
				if p != 0 {
					held[p] = r.App.ID
				}
			}
			continue
		}
		if next == nil {
			continue // removed: its ports are free
		}
		asked := next.ServicePorts()
		for i, p := range r.ServicePorts {
			if p != 0 && i < len(asked) && (asked[i] == 0 || asked[i] == p) {
				held[p] = r.App.ID
			}
		}
	}
	// Ports the change asks for by number, unless another app holds them
	// already: that one is then named when the asking app is refused, as
	// is the first of two apps of the change asking for the same port.
	for _, id := range sortedIDs(changes) {
		if a := changes[id]; a != nil {
			for _, p := range a.ServicePorts() {
				if _, taken := held[p]; p != 0 && !taken {
					held[p] = id
				}
			}
		}
	}
	return held
}

func sortedIDs(m map[string]*appspec.App) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// childOf is the direct child group of g that id is inside, or "".
func childOf(g, id string) string {
	if !appspec.Contains(g, id) || id == g {
		return ""
	}
	rest := id[len(g):]
	if g == "/" {
		rest = id
	}
	// rest is "/child/…/app"; a direct app of g has no child group.
	for i := 1; i < len(rest); i++ {
		if rest[i] == '/' {
			return appspec.CanonicalID(g + "/" + rest[1:i])
		}
	}
	return ""
}

func planError(err error) error {
	var ce *CycleError
	var ue *UnknownDependencyError
	switch {
	case errors.As(err, &ce):
		return &appspec.ValidationError{Message: "Object is not valid", Details: []appspec.Detail{{Path: "/dependencies", Errors: []string{ce.Error()}}}}
	case errors.As(err, &ue):
		return &appspec.ValidationError{Message: "Object is not valid", Details: []appspec.Detail{{Path: "/dependencies", Errors: []string{ue.Error()}}}}
	}
	return err
}

// prefixDetails names the app a service port problem belongs to.
func prefixDetails(err error, id string) error {
	var ve *appspec.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	out := &appspec.ValidationError{Message: ve.Message}
	for _, d := range ve.Details {
		out.Details = append(out.Details, appspec.Detail{Path: d.Path, Errors: append([]string{"app " + id + ":"}, d.Errors...)})
	}
	return out
}

// advanceLocked starts the plan's next step, or ends the plan when no
// step is left (caller holds mu). A step whose changes cannot be applied
// fails the plan; the steps before it stay applied.
func (s *Service) advanceLocked(ctx context.Context, p *GroupPlan, force bool, uri, clientIP string) {
	for {
		if p.Current >= 0 {
			c := s.plans.snapshot(p)
			s.events().Plan(EventDeploymentStepSuccess, &c, "")
		}
		next := p.Current + 1
		if next >= len(p.Steps) {
			s.plans.update(func() { p.Current = next })
			s.finishPlanLocked(ctx, p, true, "")
			return
		}
		started := 0
		for _, c := range p.Steps[next] {
			op := Op{ID: c.ID, App: c.App, Force: force, URI: uri, ClientIP: clientIP, planID: p.ID}
			switch {
			case c.App == nil:
				if s.idx.get(c.ID) == nil {
					continue // gone meanwhile
				}
				op.Kind = OpStop
			default:
				op.Kind = OpUpdate
			}
			if _, err := s.applyLocked(ctx, op); err != nil {
				s.plans.update(func() { p.Current = next })
				s.finishPlanLocked(ctx, p, false, fmt.Sprintf("step %d of %d: %s: %v", next+1, len(p.Steps), c.ID, err))
				return
			}
			started++
		}
		// Readers see the step as running once its apps are changed.
		s.plans.update(func() { p.Current = next })
		s.persistPlan(ctx, p)
		if started > 0 {
			return
		}
	}
}

func (s *Service) persistPlan(ctx context.Context, p *GroupPlan) {
	st := planState{GroupID: p.GroupID, Current: p.Current, Started: p.Started}
	var steps []store.DeploymentStep
	for _, step := range p.Steps {
		var es []planEntry
		var acts []store.DeploymentAction
		for _, c := range step {
			es = append(es, planEntry(c))
			acts = append(acts, store.DeploymentAction{Action: changeAction(c), App: c.ID})
		}
		st.Steps = append(st.Steps, es)
		steps = append(steps, store.DeploymentStep{Actions: acts})
	}
	b, err := json.Marshal(deploymentState{Plan: &st})
	if err == nil {
		err = s.st.PutDeployment(ctx, &store.Deployment{ID: p.ID, Version: p.Version, AffectedApps: p.Affected(), Steps: steps,
			CurrentStep: p.Current + 1, State: b})
	}
	if err != nil {
		// The apps of the running step are stored; a new leader would not
		// go on with the later steps.
		s.log.WithError(err).WithField("deployment", p.ID).Error("group deployment not persisted")
	}
}

// changeAction names a plan change as Marathon's deployment actions do.
func changeAction(c Change) string {
	if c.App == nil {
		return ActionStop
	}
	return ActionStart // refined to restart or scale when the step runs
}

// StepActions is the plan's steps as Marathon shows them: each app's
// action as decided when its step ran (for the running step) or as it
// would be decided now (for later steps).
func (s *Service) StepActions(p *GroupPlan) [][][2]string {
	out := make([][][2]string, len(p.Steps))
	for i, st := range p.Steps {
		for _, c := range st {
			a := changeAction(c)
			if d := s.deps.forApp(c.ID); d != nil && d.PlanID == p.ID {
				a = d.Action
			} else if cur := s.idx.get(c.ID); c.App != nil && cur != nil && i > p.Current {
				a = ActionRestart
				if ConfigEqual(cur.App, c.App) {
					a = ActionScale
				}
			}
			out[i] = append(out[i], [2]string{a, c.ID})
		}
	}
	return out
}

func (s *Service) finishPlanLocked(ctx context.Context, p *GroupPlan, success bool, reason string) {
	if s.plans.get(p.ID) != p {
		return
	}
	s.plans.remove(p.ID)
	if err := s.st.DeleteDeployment(ctx, p.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.WithError(err).WithField("deployment", p.ID).Error("finished group deployment not removed from the store")
	}
	log := s.log.WithFields(logrus.Fields{"group": p.GroupID, "deployment": p.ID})
	c := s.plans.snapshot(p)
	if success {
		s.ended.WithLabelValues("success").Inc()
		log.Info("group deployment succeeded")
		s.events().Plan(EventDeploymentSuccess, &c, "")
		return
	}
	s.ended.WithLabelValues("failed").Inc()
	log.WithField("reason", reason).Warn("group deployment failed")
	s.events().Plan(EventDeploymentStepFailure, &c, reason)
	s.events().Plan(EventDeploymentFailed, &c, reason)
}

// checkPlans moves every plan whose running step has ended (caller holds
// mu): a failure ends the plan, otherwise the next step starts.
func (s *Service) checkPlansLocked(ctx context.Context) {
	for _, p := range s.plans.list() {
		running := false
		for _, c := range p.Steps[max(p.Current, 0)] {
			if d := s.deps.forApp(c.ID); d != nil && d.PlanID == p.ID {
				running = true
			}
		}
		switch {
		case p.failed != "":
			s.finishPlanLocked(ctx, p, false, p.failed)
		case !running:
			s.advanceLocked(ctx, p, false, "", "")
		}
	}
}

// noteFinished tells d's plan how d ended.
func (s *Service) noteFinished(d *Deployment, success bool, reason string) {
	if d.PlanID == "" || success {
		return
	}
	if p := s.plans.get(d.PlanID); p != nil {
		s.plans.update(func() {
			if p.failed == "" {
				p.failed = fmt.Sprintf("%s: %s", d.AppID, reason)
			}
		})
	}
}

// cancelPlanLocked ends a plan on request: with force its running app
// deployments are only forgotten; otherwise they are rolled back. The
// later steps never run.
func (s *Service) cancelPlanLocked(ctx context.Context, p *GroupPlan, force bool) (*Deployment, error) {
	why := fmt.Sprintf("canceled with DELETE /v2/deployments/%s", p.ID)
	var first *Deployment
	var errs []error
	for _, c := range p.Steps[max(p.Current, 0)] {
		d := s.deps.forApp(c.ID)
		if d == nil || d.PlanID != p.ID {
			continue
		}
		if force {
			s.finishLocked(ctx, d, false, why+"?force=true; the app is left as it is")
			continue
		}
		nd, err := s.rollbackLocked(ctx, d, why)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if first == nil {
			first = nd
		}
	}
	s.finishPlanLocked(ctx, p, false, why)
	return first, errors.Join(errs...)
}

func (s *Service) setGroup(g store.StoredGroup) {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	s.groups[g.ID] = g
}

func (s *Service) deleteGroup(id string) {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	delete(s.groups, id)
}

// restorePlan rebuilds a group deployment from its record.
func restorePlan(sd *store.Deployment) (*GroupPlan, error) {
	var st deploymentState
	if err := json.Unmarshal(sd.State, &st); err != nil || st.Plan == nil {
		return nil, fmt.Errorf("deploy: group deployment %s: unreadable state", sd.ID)
	}
	p := &GroupPlan{ID: sd.ID, Version: sd.Version, GroupID: st.Plan.GroupID, Current: st.Plan.Current, Started: st.Plan.Started}
	for _, es := range st.Plan.Steps {
		var step PlanStep
		for _, e := range es {
			step = append(step, Change(e))
		}
		p.Steps = append(p.Steps, step)
	}
	if p.Current < 0 || p.Current >= len(p.Steps) {
		return nil, fmt.Errorf("deploy: group deployment %s: step %d of %d", sd.ID, p.Current, len(p.Steps))
	}
	return p, nil
}
