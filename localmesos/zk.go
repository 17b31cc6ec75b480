package localmesos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
)

const zkNodePrefix = "json.info_"

// zkRegistration is this master's EPHEMERAL|SEQUENCE node and the watch
// that finds the leader (the smallest sequence number) among all masters.
type zkRegistration struct {
	m      *Master
	conn   *zk.Conn
	dir    string
	node   string // full path of our node
	cancel context.CancelFunc
	done   chan struct{}
	log    *logrus.Entry
}

// ParseZK splits zk://host:port[,host:port]/path into servers and path.
func ParseZK(s string) (servers []string, path string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "zk" || u.Host == "" {
		return nil, "", fmt.Errorf("localmesos: bad ZooKeeper url %q (want zk://host:port/path)", s)
	}
	for _, h := range strings.Split(u.Host, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, "", fmt.Errorf("localmesos: bad ZooKeeper server %q in %q: %w", h, s, err)
		}
		servers = append(servers, h)
	}
	path = strings.TrimRight(u.Path, "/")
	if path == "" {
		return nil, "", fmt.Errorf("localmesos: ZooKeeper url %q has no path (e.g. /mesos)", s)
	}
	return servers, path, nil
}

type zkLogger struct{ l *logrus.Entry }

func (z zkLogger) Printf(format string, args ...any) { z.l.Debugf(format, args...) }

func startZK(ctx context.Context, m *Master, spec string) (*zkRegistration, error) {
	servers, dir, err := ParseZK(spec)
	if err != nil {
		return nil, err
	}
	log := m.log.WithField("zk", spec)
	conn, events, err := zk.Connect(servers, 10*time.Second, zk.WithLogger(zkLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("localmesos: connect to ZooKeeper %s: %w", spec, err)
	}
	wctx, cancelWait := context.WithTimeout(ctx, 15*time.Second)
	defer cancelWait()
wait:
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				break wait
			}
		case <-wctx.Done():
			conn.Close()
			return nil, fmt.Errorf("localmesos: no ZooKeeper session with %s: %w", spec, wctx.Err())
		}
	}
	go func() {
		for range events {
		}
	}()
	z := &zkRegistration{m: m, conn: conn, dir: dir, log: log, done: make(chan struct{})}
	if err := z.register(); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := z.evaluate(); err != nil {
		conn.Close()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	z.cancel = cancel
	go z.watch(lctx)
	return z, nil
}

func (z *zkRegistration) register() error {
	p := ""
	for _, part := range strings.Split(strings.Trim(z.dir, "/"), "/") {
		p += "/" + part
		if _, err := z.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("localmesos: create ZooKeeper path %s: %w", p, err)
		}
	}
	z.m.mu.Lock()
	info := z.m.info
	z.m.mu.Unlock()
	data, err := info.MarshalJSON()
	if err != nil {
		return fmt.Errorf("localmesos: encode MasterInfo: %w", err)
	}
	node, err := z.conn.Create(z.dir+"/"+zkNodePrefix, data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		return fmt.Errorf("localmesos: register master in ZooKeeper: %w", err)
	}
	z.node = node
	z.log.WithField("node", node).Info("registered in ZooKeeper")
	return nil
}

func seqOf(name string) (int64, bool) {
	if !strings.HasPrefix(name, zkNodePrefix) {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(name, zkNodePrefix), 10, 64)
	return n, err == nil
}

// evaluate reads the children, picks the smallest sequence and records
// what this master now knows about the leader. It returns the watch.
func (z *zkRegistration) evaluate() (<-chan zk.Event, error) {
	children, _, ch, err := z.conn.ChildrenW(z.dir)
	if err != nil {
		return nil, fmt.Errorf("localmesos: list masters in %s: %w", z.dir, err)
	}
	type cand struct {
		name string
		seq  int64
	}
	var cands []cand
	for _, c := range children {
		if s, ok := seqOf(c); ok {
			cands = append(cands, cand{c, s})
		}
	}
	// Children come back unordered.
	sort.Slice(cands, func(i, j int) bool { return cands[i].seq < cands[j].seq })
	mine := strings.TrimPrefix(z.node, z.dir+"/")
	ownPresent := false
	for _, c := range cands {
		if c.name == mine {
			ownPresent = true
		}
	}
	st := leaderState{}
	if len(cands) > 0 {
		if cands[0].name == mine {
			st = leaderState{self: true, known: true}
		} else if data, _, err := z.conn.Get(z.dir + "/" + cands[0].name); err == nil {
			if addr, err := masterAddr(data); err == nil {
				st = leaderState{known: true, addr: addr}
			} else {
				z.log.WithError(err).Warn("unreadable leader MasterInfo")
			}
		}
	}
	z.m.setLeader(st)
	if !ownPresent && z.node != "" {
		// Our session expired and took the node: register again.
		if err := z.register(); err != nil {
			return ch, err
		}
	}
	return ch, nil
}

func (z *zkRegistration) watch(ctx context.Context) {
	defer close(z.done)
	for {
		ch, err := z.evaluate()
		if err != nil {
			z.log.WithError(err).Warn("leader detection failed; retrying")
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (z *zkRegistration) close() {
	if z.cancel != nil {
		z.cancel()
	}
	z.conn.Close()
	if z.cancel != nil {
		<-z.done
	}
}

// masterAddr reads host:port from MasterInfo JSON: address.ip and
// address.port, falling back to hostname and the packed ip.
func masterAddr(data []byte) (string, error) {
	var info mesos.MasterInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return "", fmt.Errorf("localmesos: bad MasterInfo JSON: %w", err)
	}
	if a := info.Address; a != nil && a.Port > 0 {
		host := a.GetIP()
		if host == "" {
			host = a.GetHostname()
		}
		if host != "" {
			return net.JoinHostPort(host, strconv.Itoa(int(a.Port))), nil
		}
	}
	if info.Port != nil && info.IP != 0 {
		ip := net.IPv4(byte(info.IP), byte(info.IP>>8), byte(info.IP>>16), byte(info.IP>>24))
		return net.JoinHostPort(ip.String(), strconv.Itoa(int(*info.Port))), nil
	}
	return "", errors.New("localmesos: MasterInfo has no address")
}

// setLeader records leadership; losing it drops every stream, as a Mesos
// master that loses its ZooKeeper leadership exits.
func (m *Master) setLeader(st leaderState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.leader.self
	m.leader = st
	if was && !st.self {
		m.log.Warn("lost leadership")
		for _, f := range m.frameworks {
			if f.stream != nil {
				f.stream.close(nil)
				f.stream = nil
			}
		}
		for _, o := range m.offers {
			m.removeOffer(o)
		}
	}
	if !was && st.self {
		m.log.Info("elected leader")
		m.kickAllocator()
	}
}
