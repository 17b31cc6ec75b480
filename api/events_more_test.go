package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
)

// waitFor reads the stream until an event of typ for which match holds;
// the failure names what was seen instead.
func waitFor(t *testing.T, ch <-chan sseEv, typ string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var seen []string
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %s; saw %v", typ, seen)
			}
			if ev.typ == typ && match(ev.data) {
				return ev.data
			}
			if len(seen) < 40 {
				seen = append(seen, fmt.Sprintf("%s %v", ev.typ, ev.data))
			}
		case <-deadline:
			t.Fatalf("no %s; saw %v", typ, seen)
		}
	}
}

// TestInstanceChangedEvents: instance_changed_event over the real stream
// in Marathon's shape, once per condition a task goes through (Staging,
// Running, Killing, Killed), never twice for the same one.
func TestInstanceChangedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ch, closeStream := openStream(t, e, "?event_type=instance_changed_event")
	defer closeStream()
	e.eventually("the stream client", func() bool { return e.srv.hub.count() == 1 })
	e.mustDo("POST", "/v2/apps", `{"id": "/ic", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16}`, 201)
	ids := e.launch(nil)
	e.update(ids[0], mesos.TASK_RUNNING, ptr(true)) // a health result alone is no condition change
	e.mustDo("DELETE", "/v2/apps/ic/tasks/"+ids[0], "", 200)
	e.confirmKills()
	var conds []string
	for len(conds) < 4 {
		ev := waitFor(t, ch, eventInstanceChanged, func(m map[string]any) bool { return m["instanceId"] == instanceID(ids[0]) })
		conds = append(conds, ev["condition"].(string))
		if ev["runSpecId"] != "/ic" || ev["agentId"] != "a-1" || ev["host"] != "host-1" || ev["runSpecVersion"] == "" || ev["timestamp"] == nil || ev["eventType"] != eventInstanceChanged {
			t.Errorf("instance_changed_event %v", ev)
		}
	}
	if got := strings.Join(conds, ","); got != "Staging,Running,Killing,Killed" {
		t.Errorf("conditions %s, want Staging,Running,Killing,Killed", got)
	}
}

// TestGroupChangeEvents: a group write that starts a deployment is
// group_change_success with its group and version; one refused by
// deploy (a lock) is group_change_failed with the reason.
func TestGroupChangeEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ch, closeStream := openStream(t, e, "?event_type=group_change_success,group_change_failed")
	defer closeStream()
	e.eventually("the stream client", func() bool { return e.srv.hub.count() == 1 })
	r := e.mustDo("POST", "/v2/groups", `{"id": "/gc", "apps": [{"id": "a", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}]}`, 201)
	version := r.json(t)["version"]
	waitFor(t, ch, eventGroupChangeSuccess, func(m map[string]any) bool { return m["groupId"] == "/gc" && m["version"] == version })
	e.do("PUT", "/v2/groups/gc", `{"apps": [{"id": "a", "cmd": "sleep 2", "cpus": 0.1, "mem": 16}]}`)
	ev := waitFor(t, ch, eventGroupChangeFailed, func(m map[string]any) bool { return m["groupId"] == "/gc" })
	if !strings.Contains(ev["reason"].(string), "locked") || ev["version"] == "" {
		t.Errorf("group_change_failed %v", ev)
	}
	// An app's change is a change of its group, as in Marathon.
	e.mustDo("PUT", "/v2/apps/gc/a?force=true", `{"instances": 2}`, 200)
	waitFor(t, ch, eventGroupChangeSuccess, func(m map[string]any) bool { return m["groupId"] == "/gc" })
}

// TestEventStreamDetached: the clients still attached hear
// event_stream_detached with the address of one that closed its stream,
// and of one that stopped reading and was dropped.
func TestEventStreamDetached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config, _ *framework.Config, _ *deploy.Config) {
		// A stalled write gives up after this: the dropped client's
		// handler then ends.
		c.RequestTimeout = time.Second
	})
	watcher, closeWatcher := openStream(t, e, "")
	defer closeWatcher()
	waitEv(t, watcher) // its own event_stream_attached

	// One client closes its stream.
	c1 := rawStream(t, e, 0)
	e.eventually("two clients", func() bool { return e.srv.hub.count() == 2 })
	addr1 := c1.LocalAddr().String()
	c1.Close()
	waitFor(t, watcher, eventStreamDetached, func(m map[string]any) bool { return m["remoteAddress"] == addr1 })

	// One stops reading: paced batches of events (the watcher keeps up)
	// fill its socket, then its buffer, and it is dropped.
	c2 := rawStream(t, e, 4096)
	defer c2.Close()
	e.eventually("two clients", func() bool { return e.srv.hub.count() == 2 })
	addr2 := c2.LocalAddr().String()
	pad := strings.Repeat("x", 1024)
	deadline := time.Now().Add(60 * time.Second)
	for batch := 0; ; batch++ {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled client was never dropped (%d batches; %d clients)", batch, e.srv.hub.count())
		}
		for i := 0; i < 200; i++ {
			e.srv.publish("test", map[string]any{"batch": batch, "i": i, "pad": pad})
		}
		detached := false
		for last := false; !last; {
			ev := waitEv(t, watcher)
			switch {
			case ev.typ == eventStreamLagged:
				t.Fatalf("the reading client was dropped too: %v", ev.data)
			case ev.typ == eventStreamDetached && ev.data["remoteAddress"] == addr2:
				detached = true
			case ev.typ == "test" && ev.data["batch"] == float64(batch) && ev.data["i"] == float64(199):
				last = true
			}
		}
		if detached {
			break
		}
		if e.srv.hub.count() == 1 {
			// Dropped; its handler ends once its stalled write times out.
			waitFor(t, watcher, eventStreamDetached, func(m map[string]any) bool { return m["remoteAddress"] == addr2 })
			break
		}
	}
}

// rawStream opens /v2/events on a bare connection that reads nothing
// past the response header (rcvbuf > 0 shrinks its receive buffer).
func rawStream(t *testing.T, e *env, rcvbuf int) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	if rcvbuf > 0 {
		if err := tc.SetReadBuffer(rcvbuf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fmt.Fprintf(c, "GET /v2/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReaderSize(c, 16), nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("events: %v %v", res, err)
	}
	return tc
}
