package deploy

import (
	"encoding/json"
	"sort"
	"sync"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/store"
)

// Record is one app as it was last written. It is immutable: a write
// replaces it, so readers may keep one without a lock.
type Record struct {
	App *appspec.App // as stored; Version is the store's version
	Rev store.Revision
	// ConfigVersion is the version whose config the tasks run: it changes
	// with every change but a scale (Marathon's lastConfigChangeAt). The
	// scheduler is given the app with this Version so that a scale
	// replaces no task.
	ConfigVersion string
	LastScalingAt string
	// Spec is the app's JSON in Marathon's shape (empty collections as []
	// and {}), without "version" and without the closing brace, encoded
	// once per version so that listing 10,000 apps encodes no spec.
	Spec []byte
	// ServicePorts per port index.
	ServicePorts []uint32
	// Health: the app has health checks.
	Health bool
}

func newRecord(app *appspec.App, rev store.Revision, configVersion, lastScalingAt string) *Record {
	c := *app
	c.Version = ""
	// Marathon writes absent collections as [] and {}, and clients index
	// into them without a null check.
	if c.Env == nil {
		c.Env = map[string]appspec.EnvValue{}
	}
	if c.Secrets == nil {
		c.Secrets = map[string]appspec.Secret{}
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	if c.Constraints == nil {
		c.Constraints = [][]string{}
	}
	if c.HealthChecks == nil {
		c.HealthChecks = []appspec.HealthCheck{}
	}
	if c.ReadinessChecks == nil {
		c.ReadinessChecks = []appspec.ReadinessCheck{}
	}
	if c.PortDefinitions == nil {
		c.PortDefinitions = []appspec.PortDefinition{}
	}
	b, err := json.Marshal(&c)
	if err != nil || len(b) < 2 {
		// App holds only JSON-encodable types; keep a minimal, valid spec.
		b, _ = json.Marshal(map[string]string{"id": app.ID})
	}
	return &Record{
		App: app, Rev: rev, ConfigVersion: configVersion, LastScalingAt: lastScalingAt,
		Spec: b[:len(b)-1], Health: len(app.HealthChecks) > 0, ServicePorts: app.ServicePorts(),
	}
}

// SchedulerApp is the app as the scheduler gets it.
func (r *Record) SchedulerApp() appspec.App {
	a := *r.App
	a.Version = r.ConfigVersion
	return a
}

// index holds every app's record, sorted by id for listing, and the
// service ports in use.
type index struct {
	mu     sync.RWMutex
	byID   map[string]*Record
	sorted []*Record // by app id; replaced entries are swapped in place
	// servicePorts maps each service port in use to the app holding it;
	// the index owns it so that the set can never drift from the apps.
	servicePorts map[uint32]string
}

func (x *index) init() { x.byID, x.servicePorts = map[string]*Record{}, map[uint32]string{} }

func (x *index) get(id string) *Record {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.byID[id]
}

// servicePortHolder names the app other than self holding port, or "".
func (x *index) servicePortHolder(port uint32, self string) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if h := x.servicePorts[port]; h != self {
		return h
	}
	return ""
}

func (x *index) setPortsLocked(old, r *Record) {
	if old != nil {
		for _, p := range old.ServicePorts {
			if x.servicePorts[p] == old.App.ID {
				delete(x.servicePorts, p)
			}
		}
	}
	if r != nil {
		for _, p := range r.ServicePorts {
			if p != 0 {
				x.servicePorts[p] = r.App.ID
			}
		}
	}
}

func (x *index) search(id string) int {
	return sort.Search(len(x.sorted), func(i int) bool { return x.sorted[i].App.ID >= id })
}

func (x *index) put(r *Record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	id := r.App.ID
	i := x.search(id)
	x.setPortsLocked(x.byID[id], r)
	if _, ok := x.byID[id]; ok {
		x.sorted[i] = r
	} else {
		x.sorted = append(x.sorted, nil)
		copy(x.sorted[i+1:], x.sorted[i:])
		x.sorted[i] = r
	}
	x.byID[id] = r
}

func (x *index) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old, ok := x.byID[id]
	if !ok {
		return
	}
	x.setPortsLocked(old, nil)
	delete(x.byID, id)
	i := x.search(id)
	x.sorted = append(x.sorted[:i], x.sorted[i+1:]...)
}

func (x *index) replaceAll(rs []*Record) {
	byID := make(map[string]*Record, len(rs))
	sorted := append([]*Record(nil), rs...)
	for _, r := range rs {
		byID[r.App.ID] = r
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].App.ID < sorted[j].App.ID })
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byID, x.sorted, x.servicePorts = byID, sorted, map[uint32]string{}
	for _, r := range sorted {
		x.setPortsLocked(nil, r)
	}
}

// list returns the records sorted by id; the slice is the caller's.
func (x *index) list() []*Record {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]*Record(nil), x.sorted...)
}

func (x *index) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.sorted)
}
