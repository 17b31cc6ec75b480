package discovery

import (
	"context"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/gateway"
	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/mesosdns"
)

// Source is the part of the scheduler a feed reads.
type Source interface {
	Snapshot() *framework.Snapshot
	Subscribe(buffer int) *framework.Subscription
}

// DNS is the part of the DNS server a feed writes.
type DNS interface {
	Update(tasks []mesosdns.Task, leader mesosdns.Master, masters []mesosdns.Master) error
}

// Gateway is the part of the gateway a feed writes.
type Gateway interface {
	Update(apps []gateway.App)
}

// Resolver turns an agent hostname into addresses; hostnames that are IP
// literals never reach it.
type Resolver func(ctx context.Context, host string) ([]net.IP, error)

// Config wires a Feed.
type Config struct {
	// Scheduler is the local scheduler; nil on an edge node, which only
	// follows (Remote is then required).
	Scheduler Source
	DNS       DNS     // nil: no DNS view
	Gateway   Gateway // nil: no routes
	// Domain and Framework name the apps for the gateway's internal
	// listener exactly as DNS names them ({task}.{framework}.{domain}).
	Domain, Framework string
	// Leader reports the leading Mesos master for leader./master. records;
	// nil leaves them out.
	Leader func() (mesosdns.Master, bool)
	// Resolve looks up agent hostnames that are not IP literals; default
	// net.DefaultResolver with a 2 s deadline, cached.
	Resolve Resolver
	Log     *logrus.Entry
	// Remote, when set, is the leader's view followed over HTTP: used
	// while this replica does not lead (SetLeading), so that standbys
	// serve the same records as the leader. Nil: the local scheduler only.
	Remote *Follower
	Clock  clock.Clock
	// Groups, when set, limit the routes to apps in one of these
	// marathon-lb groups (an edge node's --gateway-groups): an app is in
	// group g when its HAPROXY_GROUP label lists g, or g is "external" and
	// the app is exposed externally by any means.
	Groups []string
}

// Feed keeps the views current.
type Feed struct {
	cfg Config
	log *logrus.Entry

	mu       sync.Mutex
	observed map[string]time.Time // task id → when it became published
	hosts    map[string]hostEntry // agent hostname → addresses; only Run's goroutine touches it

	leading atomic.Bool
	leftAt  atomic.Pointer[time.Time] // when this replica last stopped leading
	leadAt  atomic.Pointer[time.Time] // when it last started leading
	// handedOver: this term's views come from the local scheduler now.
	handedOver atomic.Bool
	leadChg    chan struct{} // SetLeading and Refresh poke Run
	force      atomic.Bool   // Refresh: rebuild even from the same snapshot
	started    time.Time
	lastView   atomic.Pointer[framework.Snapshot] // what the views were built from
	merged     atomic.Pointer[mergedView]         // withKnownPorts' last answer
	// servingRemote: the views come from (or are kept for lack of) a
	// followed view; the age metric reads it instead of recomputing.
	servingRemote atomic.Bool
}

// New returns a Feed; Run starts it.
func New(cfg Config) *Feed {
	if cfg.Log == nil {
		cfg.Log = logging.Component(logging.Discard(), "discovery")
	}
	if cfg.Resolve == nil {
		cfg.Resolve = func(ctx context.Context, host string) ([]net.IP, error) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
			ips := make([]net.IP, 0, len(addrs))
			for _, a := range addrs {
				ips = append(ips, a.IP)
			}
			return ips, err
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Feed{cfg: cfg, log: cfg.Log, observed: map[string]time.Time{}, hosts: map[string]hostEntry{},
		leadChg: make(chan struct{}, 1), started: cfg.Clock.Now()}
}

// SetLeading says whether this replica leads: its own scheduler is the
// source while it does, the followed view (Config.Remote) while it does
// not. Without a Remote the local scheduler is always the source.
func (f *Feed) SetLeading(leading bool) {
	if f.leading.Swap(leading) != leading {
		f.handedOver.Store(false)
		if leading {
			now := f.cfg.Clock.Now()
			f.leadAt.Store(&now)
		}
		if !leading {
			now := f.cfg.Clock.Now()
			f.leftAt.Store(&now)
		}
		select {
		case f.leadChg <- struct{}{}:
		default:
		}
	}
}

// Refresh rebuilds the views from the current source even if it has not
// changed: the leading master (leader./master. records) is not part of the
// scheduler's snapshot.
func (f *Feed) Refresh() {
	f.force.Store(true)
	select {
	case f.leadChg <- struct{}{}:
	default:
	}
}

// source picks the snapshot the views are built from, or nil to keep
// the views as they are. A new leader keeps serving the view it followed
// until its own scheduler has settled (reconciliation answered), so that
// failover leaves no gap in which adopted tasks, their health not yet
// known, would vanish from DNS and the routes.
func (f *Feed) source() (snap *framework.Snapshot, remote bool) {
	if f.cfg.Remote == nil {
		return f.cfg.Scheduler.Snapshot(), false
	}
	rs, got := f.cfg.Remote.Snapshot()
	if f.cfg.Scheduler == nil {
		return rs, true
	}
	if f.leading.Load() {
		ls := f.cfg.Scheduler.Snapshot()
		if rs == nil {
			if !ls.Settled {
				// Elected before it ever followed a view: until it has
				// settled it knows nothing true, and serves nothing (DNS
				// answers SERVFAIL, not a cacheable NXDOMAIN).
				return nil, false
			}
			return ls, false
		}
		if ls.Settled {
			ls = f.withKnownPorts(ls, rs)
			// Until the new leader's own view covers every app the
			// followed one published (adoption and health can lag the
			// settle on a busy cluster), the followed view stays — for at
			// most handoverMax, after which the leader's own view wins.
			if f.handedOver.Load() || Covers(ls, rs) || f.cfg.Clock.Now().Sub(f.ledAt()) > handoverMax {
				f.handedOver.Store(true)
				return ls, false
			}
		}
		return rs, true
	}
	if left := f.leftAt.Load(); left != nil && got.Before(*left) {
		// A former leader's own last view is newer than what it followed
		// before it led: keep it until the next leader answers.
		return nil, true
	}
	return rs, true
}

// withKnownPorts fills in the host and ports of tasks a new leader adopted
// without them (launched by the old leader after its last task record was
// written) from the view it followed, which had them: without this their
// DNS records and routes would vanish at failover until Mesos reports the
// ports. Results are cached per pair of snapshots, as the feed asks for the
// same pair on every event.
func (f *Feed) withKnownPorts(local, followed *framework.Snapshot) *framework.Snapshot {
	if followed == nil {
		return local
	}
	if c := f.merged.Load(); c != nil && c.local == local && c.followed == followed {
		return c.out
	}
	out := KnownPorts(local, followed)
	f.merged.Store(&mergedView{local: local, followed: followed, out: out})
	return out
}

// handoverMax bounds how long a new leader serves the view it followed
// instead of its own (see source).
const handoverMax = 30 * time.Second

func (f *Feed) ledAt() time.Time {
	if t := f.leadAt.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Covers says whether every app with a published task (one that has
// ports) in followed has one in local too: the new leader's own view
// would take no name away. Pure.
func Covers(local, followed *framework.Snapshot) bool {
	published := func(s *framework.Snapshot) map[string]bool {
		apps := make(map[string]*appspec.App, len(s.Apps))
		for _, a := range s.Apps {
			apps[a.ID] = a
		}
		out := map[string]bool{}
		for i := range s.Tasks {
			t := &s.Tasks[i]
			if len(t.Ports) > 0 && Published(t, apps[t.AppID]) {
				out[t.AppID] = true
			}
		}
		return out
	}
	have := published(local)
	for id := range published(followed) {
		if !have[id] {
			return false
		}
	}
	return true
}

type mergedView struct{ local, followed, out *framework.Snapshot }

// KnownPorts returns local with every task that has no ports taking host
// and ports from the same task in known; local itself when none does (it
// is never modified: snapshots are shared). Pure.
func KnownPorts(local, known *framework.Snapshot) *framework.Snapshot {
	var byID map[string]*framework.Task
	var out *framework.Snapshot
	for i := range local.Tasks {
		t := &local.Tasks[i]
		if len(t.Ports) > 0 {
			continue
		}
		if byID == nil {
			byID = make(map[string]*framework.Task, len(known.Tasks))
			for j := range known.Tasks {
				byID[known.Tasks[j].ID] = &known.Tasks[j]
			}
		}
		k := byID[t.ID]
		if k == nil || len(k.Ports) == 0 || (t.AgentID != "" && k.AgentID != "" && k.AgentID != t.AgentID) {
			continue
		}
		if out == nil {
			cp := *local
			cp.Tasks = append([]framework.Task(nil), local.Tasks...)
			out = &cp
		}
		nt := &out.Tasks[i]
		nt.Ports = k.Ports
		if nt.Host == "" {
			nt.Host = k.Host
		}
	}
	if out == nil {
		return local
	}
	return out
}

// ViewAge is how old the served view may be: 0 while this replica leads
// from its own settled scheduler; while following, the time since the
// leader last answered (since the feed started, before any answer).
func (f *Feed) ViewAge() time.Duration {
	if f.cfg.Remote == nil {
		return 0
	}
	now := f.cfg.Clock.Now()
	if !f.servingRemote.Load() {
		return 0
	}
	if age, ok := f.cfg.Remote.Age(now); ok {
		return age
	}
	return now.Sub(f.started)
}

// Current is the snapshot the views were last built from (nil before the
// first): what this replica's DNS and gateway serve now.
func (f *Feed) Current() *framework.Snapshot { return f.lastView.Load() }

// Collectors are the feed's metrics.
func (f *Feed) Collectors() []prometheus.Collector {
	return []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flotilla_discovery_view_age_seconds",
		Help: "Seconds since the DNS and gateway view was last confirmed current: 0 on a settled leader; on a standby or edge node, since the leader last answered.",
	}, func() float64 { return f.ViewAge().Seconds() })}
}

// Run rebuilds the views after every burst of scheduler events until ctx
// ends. A lagged subscription costs nothing but a rebuild: views are built
// from snapshots, not from the events themselves.
func (f *Feed) Run(ctx context.Context) error {
	var local <-chan framework.Event
	if f.cfg.Scheduler != nil {
		sub := f.cfg.Scheduler.Subscribe(4096)
		defer sub.Close()
		local = sub.C
	}
	var remote <-chan struct{}
	if f.cfg.Remote != nil {
		remote = f.cfg.Remote.Changed()
	}
	f.rebuild(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-remote:
			f.rebuild(ctx)
		case <-f.leadChg:
			f.rebuild(ctx)
		case ev, ok := <-local:
			if !ok {
				return nil
			}
			dirty := f.note(ev)
		drain:
			for {
				select {
				case ev, ok := <-local:
					if !ok {
						break drain
					}
					dirty = f.note(ev) || dirty
				default:
					break drain
				}
			}
			if dirty {
				f.rebuild(ctx)
			}
		}
	}
}

// note records when a task was seen published (for the DNS freshness
// histogram) and says whether the event can change a view.
func (f *Feed) note(ev framework.Event) bool {
	switch ev.Type {
	case framework.EventTask:
		if ev.Task != nil && ev.Task.State == mesos.TASK_RUNNING && ev.Task.Healthy != nil && *ev.Task.Healthy {
			f.mu.Lock()
			if _, seen := f.observed[ev.Task.ID]; !seen {
				f.observed[ev.Task.ID] = ev.At
			}
			f.mu.Unlock()
		}
		return true
	case framework.EventTaskRemoved, framework.EventApp, framework.EventAppRemoved, framework.EventLagged:
		return true
	}
	return false
}

func (f *Feed) rebuild(ctx context.Context) {
	snap, remote := f.source()
	f.servingRemote.Store(remote)
	if snap == nil || (snap == f.lastView.Load() && !f.force.Swap(false)) {
		return // nothing followed yet (keep what is served), or nothing new
	}
	f.lastView.Store(snap)
	if remote {
		// Followed views carry no events: a task is observed published
		// when its view arrives here.
		f.noteView(snap)
	}
	if f.cfg.Gateway != nil {
		f.cfg.Gateway.Update(InGroups(Routes(snap, f.cfg.Domain, f.cfg.Framework), snap, f.cfg.Groups))
	}
	if f.cfg.DNS == nil {
		return
	}
	ips := f.resolveHosts(ctx, snap) // outside the lock: lookups can take seconds
	f.mu.Lock()
	tasks := Tasks(snap, f.observed, ips)
	live := make(map[string]bool, len(snap.Tasks))
	for _, t := range snap.Tasks {
		live[t.ID] = true
	}
	for id := range f.observed {
		if !live[id] {
			delete(f.observed, id)
		}
	}
	f.mu.Unlock()
	var leader mesosdns.Master
	var masters []mesosdns.Master
	if f.cfg.Leader != nil {
		if m, ok := f.cfg.Leader(); ok {
			leader, masters = m, []mesosdns.Master{m}
		}
	}
	if err := f.cfg.DNS.Update(tasks, leader, masters); err != nil {
		f.log.WithError(err).Warn("dns records not rebuilt; serving the previous set")
	}
}

func (f *Feed) noteView(snap *framework.Snapshot) {
	apps := make(map[string]*appspec.App, len(snap.Apps))
	for _, a := range snap.Apps {
		apps[a.ID] = a
	}
	now := f.cfg.Clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range snap.Tasks {
		t := &snap.Tasks[i]
		if _, seen := f.observed[t.ID]; !seen && Published(t, apps[t.AppID]) {
			f.observed[t.ID] = now
		}
	}
}

// hostEntry is a cached lookup of an agent hostname. A failure is cached
// too, briefly, so a hostname that does not resolve costs one lookup per
// hostRetry rather than one per rebuild, and is tried again after it.
type hostEntry struct {
	ips []net.IP
	err error
	at  time.Time
}

const (
	hostRefresh = 5 * time.Minute  // agents rarely change address
	hostRetry   = 30 * time.Second // a failed lookup is retried this soon
)

// resolveHosts returns the addresses of every agent host of the snapshot,
// from the cache where fresh. Entries of hosts no task is on any more are
// dropped, so the cache follows the cluster instead of growing for ever.
func (f *Feed) resolveHosts(ctx context.Context, snap *framework.Snapshot) map[string][]net.IP {
	now := f.cfg.Clock.Now()
	out := map[string][]net.IP{}
	for _, t := range snap.Tasks {
		if _, done := out[t.Host]; done || t.Host == "" {
			continue
		}
		if ip := net.ParseIP(t.Host); ip != nil {
			out[t.Host] = []net.IP{ip}
			continue
		}
		e, ok := f.hosts[t.Host]
		ttl := hostRefresh
		if e.err != nil {
			ttl = hostRetry
		}
		if !ok || now.Sub(e.at) >= ttl {
			ips, err := f.cfg.Resolve(ctx, t.Host)
			if err != nil {
				f.log.WithError(err).WithField("host", t.Host).Warn("agent hostname does not resolve; its tasks get SRV records only until it does")
				if ok && e.err == nil {
					ips = e.ips // keep the last good answer over a passing failure
				}
			}
			e = hostEntry{ips: ips, err: err, at: now}
			f.hosts[t.Host] = e
		}
		out[t.Host] = e.ips
	}
	for h := range f.hosts {
		if _, used := out[h]; !used {
			delete(f.hosts, h)
		}
	}
	return out
}

// Published says whether a task may be announced: running, not being
// killed, ready (Task.IsReady), healthy when its app has health checks.
func Published(t *framework.Task, app *appspec.App) bool {
	if t.State != mesos.TASK_RUNNING || t.Killing || app == nil || !t.IsReady() {
		return false
	}
	if len(app.HealthChecks) > 0 || app.Pod != nil && app.Pod.HealthChecked() {
		return t.Healthy != nil && *t.Healthy
	}
	return true
}

// Tasks turns a snapshot into mesosdns's input. Pure: observed and ips are
// read, never written.
func Tasks(snap *framework.Snapshot, observed map[string]time.Time, ips map[string][]net.IP) []mesosdns.Task {
	apps := make(map[string]*appspec.App, len(snap.Apps))
	for _, a := range snap.Apps {
		apps[a.ID] = a
	}
	out := make([]mesosdns.Task, 0, len(snap.Tasks))
	for i := range snap.Tasks {
		t := &snap.Tasks[i]
		app := apps[t.AppID]
		dt := mesosdns.Task{
			ID:        t.ID,
			Name:      framework.TaskName(t.AppID),
			AgentHost: t.Host,
			IPs:       ips[t.Host],
			Published: Published(t, app),
			Observed:  observed[t.ID],
		}
		var declared []appspec.Port
		if app != nil {
			declared = app.PortList()
		}
		for j, p := range t.Ports {
			// The host port: what is reachable from outside the task, on
			// host and bridge networking alike. "udp,tcp" is published
			// under both protocols, as Mesos-DNS does from DiscoveryInfo.
			protos, name := []string{"tcp"}, ""
			if j < len(declared) {
				protos, name = strings.Split(declared[j].Protocol, ","), declared[j].Name
			}
			for _, proto := range protos {
				dt.Ports = append(dt.Ports, mesosdns.Port{Number: uint32(p), Protocol: proto, Name: name})
			}
		}
		out = append(out, dt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InGroups keeps the routes of apps, and of their ports, in one of groups
// (everything when groups is empty or holds "*"), as marathon-lb's --group
// does: a port is in group g when HAPROXY_{n}_GROUP (else HAPROXY_GROUP)
// lists g, or g is "external" and the port is exposed externally by any
// means. An app whose first port is in none of the groups keeps only its
// later ports that are. Pure.
func InGroups(routes []gateway.App, snap *framework.Snapshot, groups []string) []gateway.App {
	if len(groups) == 0 || slices.Contains(groups, "*") {
		return routes
	}
	apps := make(map[string]*appspec.App, len(snap.Apps))
	for _, a := range snap.Apps {
		apps[a.ID] = a
	}
	out := routes[:0:0]
	for _, r := range routes {
		a := apps[r.ID]
		if a == nil {
			continue
		}
		pes := a.PortExposures()
		first := inGroups(firstGroups(a, pes), r.Exposure.Mode == appspec.ExposureExternal, groups)
		var svcs []gateway.Service
		for _, s := range r.Services {
			if s.Index == 0 && first || s.Index > 0 && s.Index < len(pes) && inGroups(pes[s.Index].Groups, s.External, groups) {
				svcs = append(svcs, s)
			}
		}
		if !first && len(svcs) == 0 {
			continue
		}
		r.Services = svcs
		r.Hidden = r.Hidden || !first
		out = append(out, r)
	}
	return out
}

func firstGroups(a *appspec.App, pes []appspec.PortExposure) []string {
	if len(pes) > 0 {
		return pes[0].Groups
	}
	return a.Groups()
}

func inGroups(have []string, external bool, groups []string) bool {
	for _, g := range groups {
		if g == appspec.ExposureExternal && external || slices.Contains(have, g) {
			return true
		}
	}
	return false
}

// Routes turns a snapshot into the gateway's input: every app, with each
// port index's published backends (task.Ports[n] on the task's host) and
// how marathon-lb's labels say to serve it (appspec.PortExposures). A port
// with HAPROXY_{n}_ENABLED=false is left out: no vhost, path or service
// port; the first port keeps its DNS name on the internal listener, as
// every app does. Pure.
func Routes(snap *framework.Snapshot, domain, fw string) []gateway.App {
	apps := make(map[string]*appspec.App, len(snap.Apps))
	for _, a := range snap.Apps {
		apps[a.ID] = a
	}
	byApp := make(map[string][][]gateway.Backend, len(snap.Apps))
	for i := range snap.Tasks {
		t := &snap.Tasks[i]
		if len(t.Ports) == 0 || !Published(t, apps[t.AppID]) {
			continue
		}
		per := byApp[t.AppID]
		for n, port := range t.Ports {
			if n >= len(per) {
				per = append(per, make([][]gateway.Backend, n+1-len(per))...)
			}
			per[n] = append(per[n], gateway.Backend{TaskID: t.ID, Host: t.Host, Port: uint32(port)})
		}
		byApp[t.AppID] = per
	}
	out := make([]gateway.App, 0, len(snap.Apps))
	for _, a := range snap.Apps {
		per := byApp[a.ID]
		backends := func(n int) []gateway.Backend {
			if n < len(per) {
				return per[n]
			}
			return nil
		}
		r := gateway.App{
			ID:       a.ID,
			DNSName:  mesosdns.AppName(domain, fw, framework.TaskName(a.ID)),
			Exposure: a.EffectiveExposure(),
			Backends: backends(0),
		}
		pes := a.PortExposures()
		for _, pe := range pes {
			if !pe.Enabled {
				if pe.Index == 0 {
					r.Exposure = appspec.Exposure{Mode: appspec.ExposureInternal}
				}
				continue
			}
			opts := gateway.Options{Balance: pe.Balance, Sticky: pe.Sticky, RedirectToHTTPS: pe.RedirectToHTTPS,
				UseHSTS: pe.UseHSTS, PlainPaths: pe.PlainPaths, Weight: pe.BackendWeight}
			s := gateway.Service{Index: pe.Index, Port: pe.ServicePort, Mode: pe.Mode, External: pe.External,
				CertFile: pe.SSLCert, Options: opts, Backends: backends(pe.Index)}
			if pe.Index == 0 {
				r.Options = opts
			} else {
				s.VHosts, s.Paths = pe.VHosts, pe.Paths
			}
			if s.Port != 0 || len(s.VHosts) > 0 || pe.Index == 0 {
				r.Services = append(r.Services, s)
			}
		}
		out = append(out, r)
	}
	return out
}
