package discovery

import (
	"context"
	"net"
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/gateway"
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
}

// Feed keeps the views current.
type Feed struct {
	cfg Config
	log *logrus.Entry

	mu       sync.Mutex
	observed map[string]time.Time // task id → when it became published
	hosts    map[string][]net.IP
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
	return &Feed{cfg: cfg, log: cfg.Log, observed: map[string]time.Time{}, hosts: map[string][]net.IP{}}
}

// Run rebuilds the views after every burst of scheduler events until ctx
// ends. A lagged subscription costs nothing but a rebuild: views are built
// from snapshots, not from the events themselves.
func (f *Feed) Run(ctx context.Context) error {
	sub := f.cfg.Scheduler.Subscribe(4096)
	defer sub.Close()
	f.rebuild(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			dirty := f.note(ev)
		drain:
			for {
				select {
				case ev, ok := <-sub.C:
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
	snap := f.cfg.Scheduler.Snapshot()
	if f.cfg.Gateway != nil {
		f.cfg.Gateway.Update(Routes(snap, f.cfg.Domain, f.cfg.Framework))
	}
	if f.cfg.DNS == nil {
		return
	}
	f.mu.Lock()
	tasks := Tasks(snap, f.observed, f.ipsLocked(ctx, snap))
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

// ipsLocked resolves every agent host of the snapshot, caching answers.
func (f *Feed) ipsLocked(ctx context.Context, snap *framework.Snapshot) map[string][]net.IP {
	out := map[string][]net.IP{}
	for _, t := range snap.Tasks {
		if _, done := out[t.Host]; done || t.Host == "" {
			continue
		}
		if ip := net.ParseIP(t.Host); ip != nil {
			out[t.Host] = []net.IP{ip}
			continue
		}
		ips, ok := f.hosts[t.Host]
		if !ok {
			var err error
			ips, err = f.cfg.Resolve(ctx, t.Host)
			if err != nil {
				f.log.WithError(err).WithField("host", t.Host).Warn("agent hostname does not resolve; its tasks get SRV records only")
			}
			f.hosts[t.Host] = ips
		}
		out[t.Host] = ips
	}
	return out
}

// Published says whether a task may be announced: running, not being
// killed, ready (Task.IsReady), healthy when its app has health checks.
func Published(t *framework.Task, app *appspec.App) bool {
	if t.State != mesos.TASK_RUNNING || t.Killing || app == nil || !t.IsReady() {
		return false
	}
	if len(app.HealthChecks) > 0 {
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
		for j, p := range t.Ports {
			port := mesosdns.Port{Number: uint32(p), Protocol: "tcp"}
			if app != nil && j < len(app.PortDefinitions) {
				pd := app.PortDefinitions[j]
				port.Name = pd.Name
				if pd.Protocol == "udp" {
					port.Protocol = "udp"
				}
			}
			dt.Ports = append(dt.Ports, port)
		}
		out = append(out, dt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Routes turns a snapshot into the gateway's input: every app, with its
// published tasks' first port as backends. Pure.
func Routes(snap *framework.Snapshot, domain, fw string) []gateway.App {
	byApp := make(map[string][]gateway.Backend, len(snap.Apps))
	apps := make(map[string]*appspec.App, len(snap.Apps))
	for _, a := range snap.Apps {
		apps[a.ID] = a
	}
	for i := range snap.Tasks {
		t := &snap.Tasks[i]
		if len(t.Ports) == 0 || !Published(t, apps[t.AppID]) {
			continue
		}
		byApp[t.AppID] = append(byApp[t.AppID], gateway.Backend{TaskID: t.ID, Host: t.Host, Port: uint32(t.Ports[0])})
	}
	out := make([]gateway.App, 0, len(snap.Apps))
	for _, a := range snap.Apps {
		out = append(out, gateway.App{
			ID:       a.ID,
			DNSName:  mesosdns.AppName(domain, fw, framework.TaskName(a.ID)),
			Exposure: a.EffectiveExposure(),
			Backends: byApp[a.ID],
		})
	}
	return out
}
