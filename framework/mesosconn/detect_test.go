package mesosconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

func TestParseZKURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		servers []string
		path    string
		wantErr string
	}{
		{"zk://127.0.0.1:2181/mesos", []string{"127.0.0.1:2181"}, "/mesos", ""},
		{"zk://a:1,b:2,c:3/mesos/prod/", []string{"a:1", "b:2", "c:3"}, "/mesos/prod", ""},
		{"zk://127.0.0.1:2181", nil, "", "no path"},
		{"zk://127.0.0.1/mesos", nil, "", "not host:port"},
		{"zk://u:p@127.0.0.1:2181/mesos", nil, "", "credentials"},
		{"http://127.0.0.1:2181/mesos", nil, "", "zk://"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			servers, path, err := ParseZKURL(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(servers, tc.servers) || path != tc.path {
				t.Fatalf("got %v %q %v, want %v %q", servers, path, err, tc.servers, tc.path)
			}
		})
	}
}

func TestMasterURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"http://127.0.0.1:5050", "http://127.0.0.1:5050/api/v1/scheduler"},
		{"http://127.0.0.1:5050/", "http://127.0.0.1:5050/api/v1/scheduler"},
		{"127.0.0.1:5050", "http://127.0.0.1:5050/api/v1/scheduler"},
		{"https://m.example:5050/api/v1/scheduler", "https://m.example:5050/api/v1/scheduler"},
		{"ftp://m:1", ""},
		{"", ""},
		{"http://", ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := masterURL(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("accepted %q as %q", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestMasterAddress(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, json, want string }{
		{"address ip", `{"id":"M1","ip":16777343,"port":5050,"hostname":"m1","address":{"hostname":"m1","ip":"127.0.0.2","port":5051}}`, "127.0.0.2:5051"},
		{"address hostname only", `{"address":{"hostname":"m1.example","port":5050}}`, "m1.example:5050"},
		{"legacy packed ip", `{"id":"M1","ip":16777343,"port":5050,"hostname":"m1"}`, "127.0.0.1:5050"},
		{"legacy hostname", `{"port":5050,"hostname":"m1"}`, "m1:5050"},
		{"ipv6", `{"address":{"ip":"::1","port":5050}}`, "[::1]:5050"},
		{"no port", `{"hostname":"m1"}`, ""},
		{"no host", `{"port":5050}`, ""},
		{"not json", `master@127.0.0.1:5050`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := masterAddress([]byte(tc.json))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("accepted as %q", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSortedMasterNodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		children []string
		want     []string
	}{
		{"unordered", []string{"json.info_0000000012", "json.info_0000000003", "json.info_0000000007"},
			[]string{"json.info_0000000003", "json.info_0000000007", "json.info_0000000012"}},
		// Sequence numbers past 10 digits (a counter wrap) still sort by value.
		{"numeric not lexical", []string{"json.info_0000000010", "json.info_9"}, []string{"json.info_9", "json.info_0000000010"}},
		{"ignores others", []string{"log_replicas", "info_0000000001", "json.info_x", "json.info_0000000005"}, []string{"json.info_0000000005"}},
		{"none", nil, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := sortedMasterNodes(tc.children); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHABackoff(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(7))
	cases := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{30, 500 * time.Millisecond, time.Second}, // capped
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.attempt), func(t *testing.T) {
			for range 100 {
				d := haBackoff(tc.attempt, 100*time.Millisecond, time.Second, rng)
				if d < tc.lo || d > tc.hi {
					t.Fatalf("attempt %d: %v outside [%v, %v]", tc.attempt, d, tc.lo, tc.hi)
				}
			}
		})
	}
}

// haZK connects to the test bed's ZooKeeper and gives the test its own
// root path, removed at the end.
func haZK(t testing.TB) (servers []string, root string, conn *zk.Conn) {
	t.Helper()
	addr := testbed.ZooKeeper(t)
	conn, events, err := zk.Connect([]string{addr}, 4*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkLogger{haLog(t, "zk")}))
	if err != nil {
		t.Fatal(err)
	}
	go drainZKEvents(events)
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	root = fmt.Sprintf("/flotilla-test/%s-%d", name, time.Now().UnixNano())
	p := ""
	for _, part := range strings.Split(root[1:], "/") {
		p += "/" + part
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	t.Cleanup(func() {
		haZKDelete(conn, root)
		conn.Close()
	})
	return []string{addr}, root, conn
}

func haZKDelete(conn *zk.Conn, p string) {
	children, _, _ := conn.Children(p)
	for _, c := range children {
		haZKDelete(conn, p+"/"+c)
	}
	_ = conn.Delete(p, -1)
}

// haRegisterMaster registers a master as Mesos does: an ephemeral
// sequential json.info_ znode in the master's own session. Closing the
// returned connection is the master dying.
func haRegisterMaster(t *testing.T, servers []string, path, id, hostport string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect(servers, 4*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkLogger{haLog(t, "zk")}))
	if err != nil {
		t.Fatal(err)
	}
	go drainZKEvents(events)
	t.Cleanup(conn.Close)
	host, port, _ := strings.Cut(hostport, ":")
	data := fmt.Sprintf(`{"id":%q,"ip":16777343,"port":%s,"hostname":"localhost","address":{"hostname":"localhost","ip":%q,"port":%s},"version":"1.10.0"}`,
		id, port, host, port)
	if _, err := conn.Create(path+"/json.info_", []byte(data), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("register master %s: %v", id, err)
	}
	return conn
}

func TestZKDetectorFollowsLeader(t *testing.T) {
	t.Parallel()
	servers, root, conn := haZK(t)
	path := root + "/mesos"
	// The detector starts before the path exists, as Flotilla may start
	// before any master.
	det, err := NewDetector(DetectorConfig{Master: "zk://" + servers[0] + path, SessionTimeout: 4 * time.Second, Logger: haLog(t, "detector")})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, _, err = det.Leader(ctx)
	cancel()
	if !errors.Is(err, ErrNoMaster) {
		t.Fatalf("Leader with no master: %v, want ErrNoMaster", err)
	}
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	m1 := haRegisterMaster(t, servers, path, "M1", "127.0.0.1:5051")
	m2 := haRegisterMaster(t, servers, path, "M2", "127.0.0.1:5052")
	haRegisterMaster(t, servers, path, "M3", "127.0.0.1:5053")

	wait := func(want string) <-chan struct{} {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			got, changed, err := det.Leader(ctx)
			cancel()
			if err == nil && got == want {
				return changed
			}
			if time.Now().After(deadline) {
				t.Fatalf("leader %q (%v), want %q", got, err, want)
			}
			if changed != nil {
				select {
				case <-changed:
				case <-time.After(time.Until(deadline)):
				}
			}
		}
	}
	changed := wait("http://127.0.0.1:5051/api/v1/scheduler")
	m1.Close() // the leading master dies; the next lowest sequence leads
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("change not signalled")
	}
	wait("http://127.0.0.1:5052/api/v1/scheduler")
	m2.Close()
	wait("http://127.0.0.1:5053/api/v1/scheduler")
}

// Two masters on ZooKeeper: the connection subscribes to the leader, and
// when it dies follows the other, with the same framework id.
func TestConnFollowsMasterFailover(t *testing.T) {
	t.Parallel()
	servers, root, conn := haZK(t)
	path := root + "/mesos"
	if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	m1, m2 := newHAMaster(t, "M1"), newHAMaster(t, "M2")
	z1 := haRegisterMaster(t, servers, path, "M1", m1.HostPort())
	haRegisterMaster(t, servers, path, "M2", m2.HostPort())

	det, err := NewDetector(DetectorConfig{Master: "zk://" + servers[0] + path, SessionTimeout: 4 * time.Second, Logger: haLog(t, "detector")})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	store := &haIDStore{}
	c, err := NewConn(ConnConfig{Detector: det, FrameworkIDs: store, User: "tester", Codec: "json",
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Logger: haLog(t, "conn")})
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan framework.Input, 16)
	haRun(t, c, in)
	id := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed().GetFrameworkID().GetValue()
	if id != "M1-0001" {
		t.Fatalf("subscribed as %q, want M1-0001 at the leader M1", id)
	}
	// M1 loses its ZooKeeper session but its HTTP stream stays open (a
	// partitioned master): the detector alone must move us.
	z1.Close()
	haExpectDisconnected(t, in, ErrMasterChanged)
	if got := haExpectEvent(t, in, scheduler.Event_SUBSCRIBED).GetSubscribed().GetFrameworkID().GetValue(); got != id {
		t.Fatalf("re-subscribed as %q, want %q", got, id)
	}
	subs := m2.subscribeCalls()
	if len(subs) != 1 || subs[0].GetFrameworkID().GetValue() != id {
		t.Fatalf("M2 SUBSCRIBE calls %v, want one as %s", subs, id)
	}
}
