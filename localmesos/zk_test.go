package localmesos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/testbed"
)

func TestParseZK(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		servers []string
		path    string
		bad     bool
	}{
		{in: "zk://127.0.0.1:2181/mesos", servers: []string{"127.0.0.1:2181"}, path: "/mesos"},
		{in: "zk://a:1,b:2/x/y/", servers: []string{"a:1", "b:2"}, path: "/x/y"},
		{in: "http://127.0.0.1:2181/mesos", bad: true},
		{in: "zk://127.0.0.1:2181", bad: true},
		{in: "zk://127.0.0.1/mesos", bad: true},
		{in: "zk://", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			servers, path, err := ParseZK(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseZK(%q) accepted it", tc.in)
				}
				return
			}
			if err != nil || strings.Join(servers, ",") != strings.Join(tc.servers, ",") || path != tc.path {
				t.Fatalf("ParseZK(%q) = %v %q %v", tc.in, servers, path, err)
			}
		})
	}
}

// TestZooKeeperLeadership runs two masters on the real ZooKeeper: the
// lowest sequence leads, the other redirects with 307, and takes over when
// the leader goes away.
func TestZooKeeperLeadership(t *testing.T) {
	t.Parallel()
	addr := testbed.ZooKeeper(t)
	path := fmt.Sprintf("/flotilla-test/localmesos-%d/mesos", time.Now().UnixNano())
	spec := "zk://" + addr + path
	conn, _, err := zk.Connect([]string{addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Registered before the masters start, so this runs after they
		// are closed (cleanups run last-in first-out): only the persistent
		// parents remain.
		defer conn.Close()
		base := strings.TrimSuffix(path, "/mesos")
		for _, p := range []string{path, base} {
			if err := conn.Delete(p, -1); err != nil && err != zk.ErrNoNode {
				t.Logf("remove test znode %s: %v", p, err)
			}
		}
	})
	m1, _ := startMaster(t, Config{ZK: spec})
	m2, _ := startMaster(t, Config{ZK: spec})
	if !m1.IsLeader() || m2.IsLeader() {
		t.Fatalf("leaders: m1=%v m2=%v, want only m1 (lowest sequence)", m1.IsLeader(), m2.IsLeader())
	}

	children, _, err := conn.Children(path)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(children)
	if len(children) != 2 || !strings.HasPrefix(children[0], "json.info_") || len(children[0]) != len("json.info_")+10 {
		t.Fatalf("znodes %v, want two json.info_<10 digits>", children)
	}
	data, stat, err := conn.Get(path + "/" + children[0])
	if err != nil {
		t.Fatal(err)
	}
	if stat.EphemeralOwner == 0 {
		t.Fatal("master znode is not ephemeral")
	}
	var info mesos.MasterInfo
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("znode data is not MasterInfo JSON: %v", err)
	}
	if got := fmt.Sprintf("%s:%d", info.Address.GetIP(), info.Address.Port); got != m1.Addr() {
		t.Fatalf("leader znode address %s, want %s", got, m1.Addr())
	}

	resp := post(t, m2.SchedulerURL(), subscribeJSON, map[string]string{"Content-Type": "application/json"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "//"+m1.Addr()+"/api/v1/scheduler" {
		t.Fatalf("non-leader answered %d Location %q, want 307 //%s/api/v1/scheduler", resp.StatusCode, resp.Header.Get("Location"), m1.Addr())
	}

	m1.Close()
	waitFor(t, m2.IsLeader)
	s := rawSubscribe(t, m2, subscribeJSON)
	if _, ev := s.next(t); ev.Subscribed == nil {
		t.Fatalf("new leader answered %v, want SUBSCRIBED", ev)
	}
}

func TestNoLeaderIs503(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{})
	m.setLeader(leaderState{})
	resp := post(t, m.SchedulerURL(), subscribeJSON, map[string]string{"Content-Type": "application/json"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without a known leader: %d, want 503", resp.StatusCode)
	}
}
