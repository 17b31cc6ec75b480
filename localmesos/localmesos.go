package localmesos

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// Version is what /version and MasterInfo report: the Mesos release whose
// protocol this master follows.
const Version = "1.10.0"

// ExecutorFactory makes the executor of one agent.
type ExecutorFactory func(agentID string) (executor.Executor, error)

// AgentSpec overrides one agent's hostname, resources or attributes.
type AgentSpec struct {
	// Hostname is what offers carry; default Config.Hostname.
	Hostname string
	// Resources default to Config.Resources (ports split, see Config).
	Resources *Resources
	// Attributes are TEXT attributes; default rack:r<i%3+1>.
	Attributes map[string]string
	// Region and Zone are the agent's fault domain (Mesos's DomainInfo,
	// --domain on a real agent), carried by its offers; both or neither.
	Region, Zone string
	// DefaultRole reserves the agent's unreserved resources to this role
	// (a Mesos agent's --default_role; DC/OS public agents use
	// slave_public). "" or "*" leaves them unreserved.
	DefaultRole string
	// GPUs adds this many simulated GPUs to the agent's unreserved
	// resources (gpus.go).
	GPUs int
}

// Config configures a master and its agents. The zero value of every field
// but Executor is usable.
type Config struct {
	// Listen is the master's address; default 127.0.0.1:0.
	Listen string
	// Agents is the number of agents when AgentSpecs is empty; default 1.
	Agents int
	// AgentSpecs, when set, gives one agent per entry.
	AgentSpecs []AgentSpec
	// Resources of every agent without its own; default DefaultResources.
	Resources Resources
	// SamePorts gives every agent the whole ports range. By default the
	// range is split evenly between agents, because all agents share this
	// host and tasks use host networking: two agents offering the same
	// port would let two real tasks collide. Only the simulated executor
	// can share ports.
	SamePorts bool
	// Hostname agents report in offers; default 127.0.0.1 (tasks listen on
	// the host network of this machine).
	Hostname string
	// Networks are the USER networks every agent offers Docker tasks (no
	// CNI here: a USER task runs like a BRIDGE one, in its own namespace
	// with its mapped ports forwarded); a task naming another fails with
	// REASON_CONTAINER_LAUNCH_FAILED. nil means executor.DefaultNetworks
	// ("dcos"); an empty non-nil list offers none.
	Networks []string
	// Executor makes each agent's executor. Required.
	Executor ExecutorFactory
	// ZK is zk://host:port[,host:port]/path; empty means no ZooKeeper and
	// this master always leads.
	ZK string
	// Heartbeat is the interval of HEARTBEAT events; default 15s.
	Heartbeat time.Duration
	// AllocationInterval is how often filters and free resources are
	// re-examined even without a trigger; default 1s (Mesos's default).
	AllocationInterval time.Duration
	// NoAgentHTTP skips the agents' HTTP listeners (offers then have no
	// url); for benchmarks with many agents.
	NoAgentHTTP bool
	// NoSandbox skips the per-task sandbox directories (the simulated
	// executor needs none).
	NoSandbox bool
	// WorkDir is where agents' sandboxes go (a fresh temporary directory
	// inside it, removed on Close); default os.TempDir().
	WorkDir string
	// SandboxMaxAge is how long a finished task's sandbox is kept for
	// /files (Mesos's --gc_delay); default DefaultSandboxMaxAge.
	SandboxMaxAge time.Duration
	// SandboxMaxBytes caps the finished sandboxes one agent keeps: past
	// it the oldest go first; default DefaultSandboxMaxBytes.
	SandboxMaxBytes int64
	// MaxBodyBytes bounds a call's body; default 16 MiB.
	MaxBodyBytes int64
	// Clock drives heartbeats, filters, failover timeouts and retries;
	// default the wall clock.
	Clock clock.Clock
	// Seed seeds ids and uuids; default derived from the listening port
	// and the process id, so that two masters never share ids.
	Seed int64
	// Log is the root logger; default discards.
	Log *logrus.Logger
}

// AgentInfo describes one agent for tests.
type AgentInfo struct {
	ID       string
	Hostname string
	// URL is the agent's HTTP endpoint ("" when Config.NoAgentHTTP).
	URL string
	// State is "active", "unreachable" or "gone".
	State string
	// WorkDir is the agent's work directory, holding its sandboxes and
	// persistent volumes (volumes/roles/<role>/<id>); "" with NoSandbox.
	WorkDir string
}

// Faults perturb the reliable status update path. Counts are consumed as
// they apply; delays apply until reset.
type Faults struct {
	// DropUpdates loses the next n agent→master status update sends (the
	// agent retries after its backoff).
	DropUpdates int
	// DelayUpdates holds every agent→master status update this long.
	DelayUpdates time.Duration
	// DropAcks loses the next n ACKNOWLEDGE calls after answering 202.
	DropAcks int
	// DelayAcks holds every acknowledgement this long before the agent
	// sees it.
	DelayAcks time.Duration
}

// Errors returned by the Go API.
var (
	ErrClosed       = errors.New("localmesos: master closed")
	ErrUnknownAgent = errors.New("localmesos: unknown agent")
	ErrUnknownOffer = errors.New("localmesos: unknown offer")
)

// Master is a running local Mesos master with its agents.
type Master struct {
	cfg   Config
	log   *logrus.Entry
	clock clock.Clock
	ln    net.Listener
	srv   *http.Server
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	allocKick chan struct{}

	resentUpdates int // status updates re-sent for want of an ack; under mu

	inboxMu   sync.Mutex
	inbox     []func()
	inboxWake chan struct{}

	mu         sync.Mutex
	rnd        *rand.Rand
	id         string
	epoch      int
	info       mesos.MasterInfo
	leader     leaderState
	frameworks map[string]*framework
	removedFws map[string]bool
	// calls counts scheduler calls by the Mesos-Stream-Id they carried
	// and type ("ACCEPT", or "ACCEPT refused" when the stream was not the
	// framework's current one): what a fenced, woken leader still sent.
	calls      map[string]map[string]int
	fwSeq      int
	offers     map[string]*offer
	offerSeq   int
	agents     map[string]*agent
	agentList  []*agent
	goneAgents map[string]bool
	completed  []*task // recent terminal tasks, for /master/state
	faults     Faults
	rrNext     int
	closed     bool
	workDir    string

	zk *zkRegistration
}

// leaderState is what this master knows about leadership.
type leaderState struct {
	self  bool
	known bool
	addr  string // host:port of the leader when not self
}

// Start listens, starts the agents and (with ZK) registers in ZooKeeper.
// Close releases everything.
func Start(ctx context.Context, cfg Config) (*Master, error) {
	if cfg.Executor == nil {
		return nil, errors.New("localmesos: config has no Executor factory")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Agents <= 0 && len(cfg.AgentSpecs) == 0 {
		cfg.Agents = 1
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.AllocationInterval <= 0 {
		cfg.AllocationInterval = time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "127.0.0.1"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.SandboxMaxAge <= 0 {
		cfg.SandboxMaxAge = DefaultSandboxMaxAge
	}
	if cfg.SandboxMaxBytes <= 0 {
		cfg.SandboxMaxBytes = DefaultSandboxMaxBytes
	}

	if cfg.Log == nil {
		cfg.Log = logging.Discard()
	}
	zeroRes := Resources{}
	if cfg.Resources.CPUs == zeroRes.CPUs && cfg.Resources.Mem == 0 && cfg.Resources.Disk == 0 && len(cfg.Resources.Ports) == 0 {
		cfg.Resources = DefaultResources()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("localmesos: listen on %s: %w", cfg.Listen, err)
	}
	if cfg.Seed == 0 {
		// Distinct per master on this host (ids must not collide between
		// two masters sharing a ZooKeeper), yet no wall clock.
		cfg.Seed = int64(ln.Addr().(*net.TCPAddr).Port)<<22 ^ int64(os.Getpid())
	}
	mctx, stop := context.WithCancel(context.Background())
	m := &Master{
		cfg:        cfg,
		log:        logging.Component(cfg.Log, "localmesos"),
		clock:      cfg.Clock,
		ln:         ln,
		ctx:        mctx,
		stop:       stop,
		allocKick:  make(chan struct{}, 1),
		inboxWake:  make(chan struct{}, 1),
		rnd:        rand.New(rand.NewSource(cfg.Seed)),
		frameworks: map[string]*framework{},
		removedFws: map[string]bool{},
		calls:      map[string]map[string]int{},
		offers:     map[string]*offer{},
		agents:     map[string]*agent{},
		goneAgents: map[string]bool{},
		leader:     leaderState{self: cfg.ZK == "", known: cfg.ZK == ""},
	}
	m.newIdentity()
	m.log = m.log.WithField("master", m.id)
	if err := m.startAgents(); err != nil {
		m.closeAgents()
		ln.Close()
		stop()
		return nil, err
	}
	m.srv = &http.Server{Handler: m.routes(), ReadHeaderTimeout: 10 * time.Second}
	m.wg.Add(5)
	go func() {
		defer m.wg.Done()
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.WithError(err).Error("master http server stopped")
		}
	}()
	go m.allocatorLoop()
	go m.retryLoop()
	go m.inboxLoop()
	go m.sandboxGCLoop()
	if cfg.ZK != "" {
		zr, err := startZK(ctx, m, cfg.ZK)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.mu.Lock()
		m.zk = zr
		m.mu.Unlock()
	}
	m.log.WithFields(logrus.Fields{"addr": ln.Addr().String(), "agents": len(m.agentList)}).Info("local mesos master started")
	return m, nil
}

// newIdentity draws a new master id (at start and on failover), as a new
// Mesos master process would. Callers hold mu or run before serving.
func (m *Master) newIdentity() {
	m.epoch++
	m.id = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", m.rnd.Uint32(), m.rnd.Intn(1<<16), 0x4000|m.rnd.Intn(1<<12), 0x8000|m.rnd.Intn(1<<14), m.rnd.Int63n(1<<48))
	tcp := m.ln.Addr().(*net.TCPAddr)
	port := uint32(tcp.Port)
	ip4 := tcp.IP.To4()
	if ip4 == nil {
		ip4 = net.IPv4(127, 0, 0, 1).To4()
	}
	// MasterInfo.ip is the IPv4 address in network order read as a
	// little-endian integer: 127.0.0.1 is 16777343.
	ip := uint32(ip4[0]) | uint32(ip4[1])<<8 | uint32(ip4[2])<<16 | uint32(ip4[3])<<24
	host := ip4.String()
	m.info = mesos.MasterInfo{
		ID:       m.id,
		IP:       ip,
		Port:     &port,
		PID:      strPtr("master@" + host + ":" + strconv.Itoa(int(port))),
		Hostname: strPtr(host),
		Version:  strPtr(Version),
		Address:  &mesos.Address{Hostname: strPtr(host), IP: strPtr(host), Port: int32(port)},
	}
}

// URL is the master's base URL, e.g. http://127.0.0.1:5050.
func (m *Master) URL() string { return "http://" + m.ln.Addr().String() }

// SchedulerURL is the v1 scheduler endpoint mesos-go's httpcli points at.
func (m *Master) SchedulerURL() string { return m.URL() + "/api/v1/scheduler" }

// Addr is the master's host:port.
func (m *Master) Addr() string { return m.ln.Addr().String() }

// ID is the current master id (it changes on Failover).
func (m *Master) ID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// IsLeader reports whether this master currently leads.
func (m *Master) IsLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader.self
}

// Agents lists the agents in creation order.
func (m *Master) Agents() []AgentInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]AgentInfo, 0, len(m.agentList))
	for _, a := range m.agentList {
		out = append(out, AgentInfo{ID: a.id, Hostname: a.hostname, URL: a.url(), State: a.stateName(), WorkDir: a.workDir})
	}
	return out
}

// Close drops every stream, kills every task without reporting and stops
// the listeners. It is safe to call twice.
func (m *Master) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var streams []*stream
	for _, f := range m.frameworks {
		if f.stream != nil {
			streams = append(streams, f.stream)
			f.stream = nil
		}
		f.stopFailoverTimer()
	}
	zr := m.zk
	m.mu.Unlock()
	for _, s := range streams {
		s.close(nil)
	}
	if zr != nil {
		zr.close()
	}
	m.stop()
	// A short graceful window lets in-flight calls finish; net/http counts
	// a connection that never sent a request as busy for 5 s, so the rest
	// is cut.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	m.closeAgents()
	m.wg.Wait()
	return nil
}

func (m *Master) kickAllocator() {
	select {
	case m.allocKick <- struct{}{}:
	default:
	}
}

func (m *Master) now() time.Time { return m.clock.Now() }

// timestamp is a TaskStatus timestamp: seconds since the epoch.
func (m *Master) timestamp() *float64 {
	t := float64(m.now().UnixNano()) / 1e9
	return &t
}
