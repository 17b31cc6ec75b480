package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
)

// zkReplicas finds the replicas of `flotilla edge --zk` from the leader
// election's znodes (<root>/leader, as `flotilla serve --zk` writes them):
// read only — the edge node never joins the election. Leader returns the
// leader's advertised address (the lowest sequence); a failed poll makes
// it look again, so the edge follows leader changes through ZooKeeper.
type zkReplicas struct {
	path string
	log  *logrus.Entry
	conn *zk.Conn
}

func newZKReplicas(zkURL string, sessionTimeout time.Duration, log *logrus.Entry) (*zkReplicas, error) {
	servers, root, err := parseZK(zkURL)
	if err != nil {
		return nil, err
	}
	conn, _, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(zkLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("--zk: connect to %v: %w", servers, err)
	}
	return &zkReplicas{path: root + "/leader", log: log, conn: conn}, nil
}

type zkLogger struct{ l *logrus.Entry }

func (z zkLogger) Printf(format string, args ...any) { z.l.Debugf(format, args...) }

func (z *zkReplicas) Close() { z.conn.Close() }

// Candidates lists the replicas' advertised addresses, the leader first.
func (z *zkReplicas) Candidates(ctx context.Context) ([]string, error) {
	type res struct {
		out []string
		err error
	}
	done := make(chan res, 1)
	go func() {
		out, err := z.candidates()
		done <- res{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("--zk: listing the replicas under %s: %w (ZooKeeper state %s)", z.path, ctx.Err(), z.conn.State())
	}
}

func (z *zkReplicas) candidates() ([]string, error) {
	children, _, err := z.conn.Children(z.path)
	if err != nil {
		return nil, fmt.Errorf("--zk: list the replicas under %s: %w", z.path, err)
	}
	type cand struct {
		name string
		seq  int64
	}
	var cs []cand
	for _, c := range children {
		// Candidates are EPHEMERAL|SEQUENCE nodes named …member_<seq>
		// (framework.Election); the lowest sequence leads.
		i := strings.LastIndex(c, "member_")
		if i < 0 {
			continue
		}
		seq, err := strconv.ParseInt(c[i+len("member_"):], 10, 64)
		if err != nil {
			continue
		}
		cs = append(cs, cand{c, seq})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	var out []string
	for _, c := range cs {
		data, _, err := z.conn.Get(z.path + "/" + c.name)
		if errors.Is(err, zk.ErrNoNode) {
			continue // it left between list and read
		}
		if err != nil {
			return nil, fmt.Errorf("--zk: read replica %s: %w", c.name, err)
		}
		var cd struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(data, &cd); err != nil || cd.Address == "" {
			continue // not a replica's znode
		}
		out = append(out, cd.Address)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--zk: no replica in the election under %s", z.path)
	}
	return out, nil
}

// Leader is the follower's Leader: the election's leader. Following the
// leader directly (not any replica) spares a forwarding hop; when its
// poll fails the next call reads the election again.
func (z *zkReplicas) Leader(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cs, err := z.Candidates(ctx)
	if err != nil {
		return "", err
	}
	return cs[0], nil
}
