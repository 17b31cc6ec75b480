package framework

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/offers"
)

// ---- offers ----

func (c *core) handleOffers(now time.Time, mos []mesos.Offer, p *plan) {
	if len(mos) == 0 {
		return
	}
	ofs := make([]offers.Offer, len(mos))
	for i := range mos {
		ofs[i] = offers.FromMesos(&mos[i])
		c.largest.Grow(&ofs[i])
		c.agents[ofs[i].AgentID] = agentInfo{host: ofs[i].Hostname, attrs: ofs[i].Attributes, url: agentURL(mos[i].URL)}
	}
	for id, ts := range c.hostless {
		// Adopted tasks learn their host from the first offer of their agent.
		if ai, ok := c.agents[ts.t.AgentID]; ok && ai.host != "" {
			t := ts.t
			t.Host = ai.host
			ts.t = t
			c.touch(t.AppID)
			ts.attrs = ai.attrs
			c.placedValid = false
			c.gen++ // a visible change: snapshots (DNS, routes) show the host
			delete(c.hostless, id)
		}
	}

	byOffer := map[string]int{}
	var used map[string]bool // offers with operations on reservations
	var reqs []offers.Request
	var reqApp []*appState
	if !now.Before(c.settleUntil) {
		used = c.residentOffers(now, mos, p, byOffer)
		reqs, reqApp = c.offerRequests(now, ofs)
	}
	if len(reqs) == 0 {
		ids := make([]string, 0, len(ofs))
		for _, o := range ofs {
			if !used[o.ID] {
				ids = append(ids, o.ID)
			}
		}
		if len(ids) > 0 {
			p.declines = append(p.declines, declineOp{offerIDs: ids, refuse: c.refuse(now)})
		}
		return
	}
	res := offers.Place(ofs, reqs, c.placedTasks(), c.cfg.Placement)
	if c.cfg.Tasks != nil {
		// One record per launch (recordAdded): grown once, not by append.
		c.recOps = slices.Grow(c.recOps, len(res.Placements))
	}

	for _, pl := range res.Placements {
		i, _ := strconv.Atoi(pl.Request.ID)
		as := reqApp[i]
		if as.app.Pod != nil {
			c.launchPod(now, as, pl, p, byOffer)
			continue
		}
		id := NewTaskID(as.id, c.rand)
		resources := pl.Resources
		l := p.launchFor(pl.OfferID, byOffer)
		if as.app.IsResident() {
			inst, _, _ := splitTaskID(id)
			nr, _ := c.reserveNew(as, inst, pl, frameworkOf(mos, pl.OfferID))
			resources = nr.task
			ops := []mesos.Offer_Operation{{Type: mesos.Offer_Operation_RESERVE, Reserve: &mesos.Offer_Operation_Reserve{Resources: nr.reserve}}}
			if len(nr.volumes) > 0 {
				ops = append(ops, mesos.Offer_Operation{Type: mesos.Offer_Operation_CREATE, Create: &mesos.Offer_Operation_Create{Volumes: nr.volumes}})
			}
			l.resident = append(l.resident, residentOps{taskID: id, ops: ops})
		}
		if as.tmplFor != as.app {
			as.tmpl, as.tmplFor = newTaskTmpl(as.app), as.app
		}
		ports := portsByIndex(as.tmpl.ports, pl.Ports)
		c.startTask(now, as, id, pl.AgentID, pl.Hostname, ports)
		ti := buildTaskInfo(as.app, launchSpec{TaskID: id, AgentID: pl.AgentID, Host: pl.Hostname,
			Ports: ports, Resources: resources, KillGrace: c.killGrace(as.app), Tmpl: as.tmpl})
		l.tasks = append(l.tasks, ti)
		l.apps = append(l.apps, as.app)
	}
	for rid, sum := range res.Unplaced {
		i, err := strconv.Atoi(rid)
		if err != nil || i < 0 || i >= len(reqApp) {
			continue
		}
		reqApp[i].rejection = sum
	}
	unused := res.UnusedOffers
	if len(used) > 0 {
		unused = slices.DeleteFunc(slices.Clone(unused), func(id string) bool { return used[id] })
	}
	if len(unused) > 0 {
		p.declines = append(p.declines, declineOp{offerIDs: unused, refuse: c.refuse(now)})
	}
	c.prevLaunchable = c.launchable(now)
	c.publishQueues(now)
	if len(res.Placements) > 0 {
		c.log.WithFields(logrus.Fields{"launched": len(res.Placements), "offers": len(ofs), "unused": len(res.UnusedOffers)}).Debug("offers used")
	}
}

// offerRequests builds the placement requests of the waiting apps, by app
// id as offers are matched in that order; only queued apps can wait
// (due.go), not every app. reqApp[i] is the app of reqs[i].
func (c *core) offerRequests(now time.Time, ofs []offers.Offer) (reqs []offers.Request, reqApp []*appState) {
	waiting := c.offerSpare[:0]
	for _, as := range c.queuedApps() {
		if as.app == nil || as.need <= 0 || as.constraintsErr != nil || now.Before(as.backoffUntil) {
			continue
		}
		waiting = append(waiting, as)
	}
	slices.SortFunc(waiting, func(a, b *appState) int { return strings.Compare(a.id, b.id) })
	// How many requests each app gets is counted first, so that the
	// requests are one allocation of their final size: with 100,000
	// instances waiting, growing them by append copied every request (and
	// its pointers, under write barriers) a dozen times per offer round.
	counts, bases := c.countSpare[:0], c.baseSpare[:0]
	total := 0
	for _, as := range waiting {
		base := requestFor(as.app, as.constraints, &c.cfg)
		need := as.need
		if as.app.IsResident() {
			// Instances with a reservation wait for their agent's
			// offer (residentOffers); only the others are placed.
			need -= c.freeReservations(as.id)
		}
		// Waiting instances stay a count: only as many requests as the
		// offers could hold are built, plus one that cannot fit, so an
		// app that keeps waiting gets its rejection summary. 10^9
		// instances on three agents cost what fits on three agents.
		n := max(0, min(need, offers.Fits(ofs, &base)+1))
		counts, bases = append(counts, n), append(bases, base)
		total += n
	}
	reqs = make([]offers.Request, 0, total)
	reqApp = make([]*appState, 0, total)
	for j, as := range waiting {
		for i := 0; i < counts[j]; i++ {
			r := bases[j]
			r.ID = c.requestID(len(reqs))
			reqs = append(reqs, r)
			reqApp = append(reqApp, as)
		}
	}
	clear(bases)
	c.countSpare, c.baseSpare = counts[:0], bases[:0]
	clear(waiting)
	c.offerSpare = waiting[:0]
	return reqs, reqApp
}

// requestID is the id of the i-th request of an offer round, kept from
// round to round: strconv.Itoa allocates for every i past 99. The ids of
// the largest round stay (100,000 waiting instances: ~3 MB).
func (c *core) requestID(i int) string {
	for len(c.reqIDs) <= i {
		c.reqIDs = append(c.reqIDs, strconv.Itoa(len(c.reqIDs)))
	}
	return c.reqIDs[i]
}

// refuse is how long declined offers stay away: briefly while something
// waits (new capacity may fit it), long when nothing does.
func (c *core) refuse(now time.Time) time.Duration {
	if c.launchable(now) > 0 || now.Before(c.settleUntil) {
		return c.cfg.DeclineRefuseWaiting
	}
	return c.cfg.DeclineRefuse
}

func (c *core) placedTasks() []offers.Placed {
	if c.placedValid {
		return c.placed
	}
	c.placed = c.placed[:0]
	for _, ts := range c.tasks {
		if !ts.t.Active() || ts.t.AgentID == "" {
			continue
		}
		c.placed = append(c.placed, offers.Placed{App: ts.t.AppID, AgentID: ts.t.AgentID, Hostname: ts.t.Host, Attributes: ts.attrs})
	}
	c.placedValid = true
	return c.placed
}

func requestFor(app *appspec.App, cs []offers.Constraint, cfg *Config) offers.Request {
	r := offers.Request{App: app.ID, CPUs: app.CPUs, Mem: app.Mem, Disk: app.Disk, GPUs: app.GPUs, Role: cfg.Role, Constraints: cs,
		AcceptedRoles: acceptedRoles(app, cfg.Role, cfg.AcceptedRolesDefault)}
	if app.IsResident() {
		// A new instance reserves what it takes, and only unreserved
		// resources can be reserved; its disk holds its volumes too.
		r.Disk = residentRequestDisk(app)
		r.AcceptedRoles = []string{appspec.Unreserved}
	}
	for _, p := range app.PortList() {
		if p.HostPort != 0 {
			r.HostPorts = append(r.HostPorts, uint64(p.HostPort))
		} else {
			r.Ports++
		}
	}
	return r
}

// portsByIndex puts a placement's ports (the fixed host ports first, then
// the dynamic ones, offers.Placement's order) in the app's port index
// order, so PORT<i> and port mapping i get the port asked for at index i.
func portsByIndex(ps []appspec.Port, placed []uint64) []uint64 {
	fixed := 0
	for _, p := range ps {
		if p.HostPort != 0 {
			fixed++
		}
	}
	if fixed == 0 || fixed == len(ps) || len(placed) != len(ps) {
		return placed
	}
	out := make([]uint64, len(ps))
	f, d := 0, fixed
	for i, p := range ps {
		if p.HostPort != 0 {
			out[i] = placed[f]
			f++
		} else {
			out[i] = placed[d]
			d++
		}
	}
	return out
}

// launchFailed drops a task that was placed but not launched (its
// secrets did not resolve, or ACCEPT failed): it is forgotten and its app
// waits again, with backoff when the app is to blame.
func (c *core) launchFailed(now time.Time, taskID string, reason string, appFault bool) {
	ts := c.tasks[taskID]
	if ts == nil {
		return
	}
	as := c.apps[ts.t.AppID]
	if as != nil && as.app != nil {
		as.reason = reason
		if appFault {
			c.fail(now, as)
		}
	}
	t := ts.t
	t.State = mesos.TASK_DROPPED
	t.Message = reason
	c.setTask(as, ts, t)
	c.removeTask(now, ts)
}

// launched clears a launch problem once a launch of the app went out.
func (c *core) launched(appID string) {
	if as := c.apps[appID]; as != nil && as.reason != "" {
		as.reason = ""
		c.gen++
	}
}

// agentURL turns an offer's agent URL into http(s)://host:port, preferring
// the IP Mesos reports over the hostname.
func agentURL(u *mesos.URL) string {
	if u == nil {
		return ""
	}
	host := u.Address.GetIP()
	if host == "" {
		host = u.Address.GetHostname()
	}
	if host == "" || u.Address.Port == 0 {
		return ""
	}
	scheme := u.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(int(u.Address.Port)))
}

// frameworkOf is the framework id an offer was made to.
func frameworkOf(mos []mesos.Offer, offerID string) string {
	for i := range mos {
		if mos[i].ID.Value == offerID {
			return mos[i].FrameworkID.Value
		}
	}
	return ""
}
