package mesosconn

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// ErrNoMaster means no Mesos master is registered under the ZooKeeper path.
var ErrNoMaster = errors.New("mesosconn: no leading mesos master")

// schedulerAPIPath is where a master serves the v1 scheduler API.
const schedulerAPIPath = "/api/v1/scheduler"

// Detector tells the connection where the leading Mesos master is.
type Detector interface {
	// Leader returns the scheduler API URL of the leading master, waiting
	// until one is known or ctx ends, and a channel that is closed when the
	// leader changes after that (nil when it never changes).
	Leader(ctx context.Context) (url string, changed <-chan struct{}, err error)
	// Close stops watching.
	Close()
}

// DetectorConfig configures NewDetector.
type DetectorConfig struct {
	// Master is http(s)://host:port[/api/v1/scheduler], host:port, or
	// zk://host:port[,host:port]/path (Mesos's own --master syntax).
	Master string
	// SessionTimeout of the ZooKeeper session used for detection; default 10 s.
	SessionTimeout time.Duration
	Clock          clock.Clock
	Rand           *rand.Rand
	Logger         *logrus.Entry
}

// NewDetector returns a static detector for a URL and a watching ZooKeeper
// detector for zk://.
func NewDetector(cfg DetectorConfig) (Detector, error) {
	if strings.HasPrefix(cfg.Master, "zk://") {
		servers, path, err := ParseZKURL(cfg.Master)
		if err != nil {
			return nil, err
		}
		return newZKDetector(servers, path, cfg)
	}
	u, err := masterURL(cfg.Master)
	if err != nil {
		return nil, err
	}
	return staticDetector(u), nil
}

// ParseZKURL splits zk://host:port[,host:port]/path into servers and path.
func ParseZKURL(s string) (servers []string, path string, err error) {
	rest, ok := strings.CutPrefix(s, "zk://")
	if !ok {
		return nil, "", fmt.Errorf("mesosconn: zookeeper url %q does not start with zk://", s)
	}
	hosts, p, _ := strings.Cut(rest, "/")
	if strings.Contains(hosts, "@") {
		return nil, "", fmt.Errorf("mesosconn: zookeeper url %q carries credentials, which are not supported", s)
	}
	for _, h := range strings.Split(hosts, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, "", fmt.Errorf("mesosconn: zookeeper url %q: server %q is not host:port: %w", s, h, err)
		}
		servers = append(servers, h)
	}
	path = "/" + strings.TrimSuffix(p, "/")
	if path == "/" {
		return nil, "", fmt.Errorf("mesosconn: zookeeper url %q has no path (want e.g. zk://127.0.0.1:2181/mesos)", s)
	}
	return servers, path, nil
}

// masterURL turns a --master value that is not zk:// into the scheduler API URL.
func masterURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("mesosconn: no master given (want http://host:port or zk://host:port/mesos)")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("mesosconn: master %q is not a url: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("mesosconn: master %q: scheme %q not supported (want http, https or zk)", s, u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("mesosconn: master %q has no host", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = schedulerAPIPath
	}
	return u.String(), nil
}

type staticDetector string

func (s staticDetector) Leader(context.Context) (string, <-chan struct{}, error) {
	return string(s), nil, nil
}

func (staticDetector) Close() {}

// masterInfoJSON is the MasterInfo JSON a Mesos master writes into
// json.info_<seq>. Old masters only set the packed ip and hostname.
type masterInfoJSON struct {
	Hostname string `json:"hostname"`
	IP       uint32 `json:"ip"`
	Port     int    `json:"port"`
	Address  *struct {
		Hostname string `json:"hostname"`
		IP       string `json:"ip"`
		Port     int    `json:"port"`
	} `json:"address"`
}

// masterAddress returns host:port from MasterInfo JSON: address.ip first,
// then address.hostname, then the legacy packed ip and hostname.
func masterAddress(data []byte) (string, error) {
	var mi masterInfoJSON
	if err := json.Unmarshal(data, &mi); err != nil {
		return "", fmt.Errorf("mesosconn: master info is not MasterInfo json: %w", err)
	}
	if a := mi.Address; a != nil && a.Port > 0 {
		switch {
		case a.IP != "":
			return net.JoinHostPort(a.IP, strconv.Itoa(a.Port)), nil
		case a.Hostname != "":
			return net.JoinHostPort(a.Hostname, strconv.Itoa(a.Port)), nil
		}
	}
	if mi.Port <= 0 {
		return "", errors.New("mesosconn: master info has no port")
	}
	if mi.IP != 0 {
		// Mesos packs the address in network byte order into a
		// little-endian uint32 (127.0.0.1 is 16777343).
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], mi.IP)
		return net.JoinHostPort(net.IP(b[:]).String(), strconv.Itoa(mi.Port)), nil
	}
	if mi.Hostname != "" {
		return net.JoinHostPort(mi.Hostname, strconv.Itoa(mi.Port)), nil
	}
	return "", errors.New("mesosconn: master info has neither ip nor hostname")
}

// masterNodePrefix names the znodes Mesos masters register under.
const masterNodePrefix = "json.info_"

// sortedMasterNodes returns the json.info_ children ordered by sequence,
// the leader first. ZooKeeper returns children in no particular order, and
// sequence numbers are compared as numbers, not strings.
func sortedMasterNodes(children []string) []string {
	type node struct {
		name string
		seq  int64
	}
	var nodes []node
	for _, c := range children {
		s, ok := strings.CutPrefix(c, masterNodePrefix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			continue
		}
		nodes = append(nodes, node{c, seq})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].seq < nodes[j].seq })
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.name
	}
	return out
}

// zkDetector watches the masters' znodes and publishes the leader.
type zkDetector struct {
	path string
	conn *zk.Conn
	clk  clock.Clock
	rng  *rand.Rand
	log  *logrus.Entry
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	leader  string
	changed chan struct{} // closed and replaced whenever leader changes
}

func newZKDetector(servers []string, path string, cfg DetectorConfig) (*zkDetector, error) {
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewSource(1))
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Component(logging.Discard(), "detector")
	}
	log := cfg.Logger.WithFields(logrus.Fields{"zk": strings.Join(servers, ","), "path": path})
	conn, events, err := zk.Connect(servers, cfg.SessionTimeout, zk.WithLogger(zkLogger{log}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("mesosconn: connect to zookeeper %v for master detection: %w", servers, err)
	}
	go drainZKEvents(events)
	ctx, cancel := context.WithCancel(context.Background())
	d := &zkDetector{
		path: path, conn: conn, clk: cfg.Clock, rng: cfg.Rand, log: log,
		stop: cancel, done: make(chan struct{}), changed: make(chan struct{}),
	}
	go d.watch(ctx)
	return d, nil
}

func (d *zkDetector) Leader(ctx context.Context) (string, <-chan struct{}, error) {
	for {
		d.mu.Lock()
		leader, changed := d.leader, d.changed
		d.mu.Unlock()
		if leader != "" {
			return leader, changed, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", nil, fmt.Errorf("%w under %s: %w", ErrNoMaster, d.path, ctx.Err())
		case <-d.done:
			return "", nil, errors.New("mesosconn: master detector closed")
		}
	}
}

func (d *zkDetector) Close() {
	d.stop()
	d.conn.Close()
	<-d.done
}

func (d *zkDetector) set(leader string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if leader == d.leader {
		return
	}
	d.log.WithFields(logrus.Fields{"old": d.leader, "new": leader}).Info("leading mesos master changed")
	d.leader = leader
	close(d.changed)
	d.changed = make(chan struct{})
}

// watch re-reads the children on every change; a watch is one-shot in
// ZooKeeper, so each pass sets a new one.
func (d *zkDetector) watch(ctx context.Context) {
	defer close(d.done)
	defer func() {
		if r := recover(); r != nil {
			d.log.WithField("panic", r).WithField("stack", haStack()).Error("master detector crashed")
		}
	}()
	failures := 0
	for ctx.Err() == nil {
		wait, err := d.once()
		if err != nil {
			failures++
			delay := haBackoff(failures, 200*time.Millisecond, 5*time.Second, d.rng)
			d.log.WithError(err).WithField("retry_in", delay).Warn("master detection failed")
			t := d.clk.NewTimer(delay)
			select {
			case <-t.C():
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		failures = 0
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
}

// once resolves the leader and returns the watch to wait on.
func (d *zkDetector) once() (<-chan zk.Event, error) {
	children, _, ch, err := d.conn.ChildrenW(d.path)
	if errors.Is(err, zk.ErrNoNode) {
		d.set("")
		exists, _, ech, err := d.conn.ExistsW(d.path)
		if err != nil {
			return nil, fmt.Errorf("mesosconn: watch %s: %w", d.path, err)
		}
		if exists {
			return closedZKEvent(), nil
		}
		return ech, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mesosconn: list masters under %s: %w", d.path, err)
	}
	nodes := sortedMasterNodes(children)
	if len(nodes) == 0 {
		d.set("")
		return ch, nil
	}
	data, _, err := d.conn.Get(d.path + "/" + nodes[0])
	if errors.Is(err, zk.ErrNoNode) {
		// The leader left between the listing and the read; the children
		// watch has fired or will fire.
		return ch, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mesosconn: read master %s/%s: %w", d.path, nodes[0], err)
	}
	addr, err := masterAddress(data)
	if err != nil {
		return nil, fmt.Errorf("mesosconn: master %s/%s: %w", d.path, nodes[0], err)
	}
	d.set("http://" + addr + schedulerAPIPath)
	return ch, nil
}

func closedZKEvent() <-chan zk.Event {
	ch := make(chan zk.Event)
	close(ch)
	return ch
}

// drainZKEvents empties a session event channel nobody needs: go-zookeeper
// drops events silently when it is full, but draining keeps it honest.
func drainZKEvents(events <-chan zk.Event) {
	for range events {
	}
}

// zkLogger sends go-zookeeper's messages to logrus at debug level.
type zkLogger struct{ log *logrus.Entry }

func (l zkLogger) Printf(format string, args ...any) { l.log.Debugf("zookeeper: "+format, args...) }

// zkDo runs a go-zookeeper call, which takes no context, under ctx: the
// caller stops waiting at the deadline; the call itself ends when the
// client flushes its requests (at the latest on disconnect or Close).
func zkDo(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// haBackoff is exponential backoff from base, capped at max, with the
// upper half jittered so that replicas and retries spread out.
func haBackoff(attempt int, base, max time.Duration, rng *rand.Rand) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(rng.Int63n(int64(half)+1))
}
