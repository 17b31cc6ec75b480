package localmesos

import (
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/events/*.json from the master's output")

var uuidField = regexp.MustCompile(`"uuid":"[^"]*"`)

// TestGoldenEvents pins the exact JSON of every event shape the master
// sends (testdata/events/*.json), produced by a scripted session on a fake
// clock. Each golden also decodes with mesos-go, the decoder Flotilla uses.
func TestGoldenEvents(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Unix(1700000000, 0).UTC())
	m, sims := startMaster(t, Config{Clock: fc, Agents: 1, Seed: 42,
		AgentSpecs: []AgentSpec{{Hostname: "agent1.local", Attributes: map[string]string{"rack": "r1", "zone": "a"}}}})
	agent := m.Agents()[0]
	_, agentPort, _ := strings.Cut(strings.TrimPrefix(agent.URL, "http://"), ":")
	masterPort := strconv.Itoa(m.ln.Addr().(*net.TCPAddr).Port)
	normalize := func(b []byte) []byte {
		s := string(b)
		s = strings.ReplaceAll(s, `"port":`+agentPort, `"port":1`)
		s = strings.ReplaceAll(s, `"port":`+masterPort, `"port":5050`)
		s = strings.ReplaceAll(s, ":"+masterPort+`"`, `:5050"`)
		s = uuidField.ReplaceAllString(s, `"uuid":"AAAAAAAAAAAAAAAAAAAAAA=="`)
		return []byte(s)
	}
	got := map[string][]byte{}
	keep := func(name string, b []byte) { got[name] = normalize(b) }

	s := rawSubscribe(t, m, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"golden","failover_timeout":60,"capabilities":[{"type":"PARTITION_AWARE"}]}}}`)
	b, ev := s.next(t)
	keep("subscribed", b)
	fw := ev.Subscribed.FrameworkID.Value
	call := func(body string) {
		t.Helper()
		if code, out := s.call(t, m, `{"framework_id":{"value":"`+fw+`"},`+body+`}`); code != 202 {
			t.Fatalf("call %s: %d %s", body, code, out)
		}
	}
	b, ev = s.nextType(t, scheduler.Event_OFFERS)
	keep("offers", b)
	offer := ev.Offers.Offers[0]
	call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + offer.ID.Value + `"}],"filters":{"refuse_seconds":0},"operations":[{"type":"LAUNCH","launch":{"task_infos":[` +
		`{"name":"t1","task_id":{"value":"t1"},"agent_id":{"value":"` + agent.ID + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}],"command":{"value":"sleep 1"}},` +
		`{"name":"bad","task_id":{"value":"bad"},"agent_id":{"value":"` + agent.ID + `"},"resources":[],"command":{"value":"true"}}]}}]}`)
	var starting *scheduler.Event
	for starting == nil {
		b, ev = s.nextType(t, scheduler.Event_UPDATE)
		switch ev.Update.Status.GetState() {
		case mesos.TASK_ERROR:
			keep("update_task_error", b)
		case mesos.TASK_STARTING:
			keep("update_executor", b)
			starting = ev
		}
	}
	st := starting.Update.Status
	ack := func(st mesos.TaskStatus) {
		u, _ := json.Marshal(st.UUID)
		call(`"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"` + agent.ID + `"},"task_id":{"value":"` + st.TaskID.Value + `"},"uuid":` + string(u) + `}`)
	}
	ack(st)
	_, ev = s.nextType(t, scheduler.Event_UPDATE)
	ack(ev.Update.Status)
	if err := sims[agent.ID].SetHealthy("t1", true); err != nil {
		t.Fatal(err)
	}
	b, ev = s.nextType(t, scheduler.Event_UPDATE)
	keep("update_healthy", b)
	ack(ev.Update.Status)

	call(`"type":"ACCEPT","accept":{"offer_ids":[{"value":"` + offer.ID.Value + `"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[` +
		`{"name":"t2","task_id":{"value":"t2"},"agent_id":{"value":"` + agent.ID + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5}}],"command":{"value":"true"}}]}}]}`)
	b, _ = s.nextType(t, scheduler.Event_UPDATE)
	keep("update_invalid_offers", b)

	call(`"type":"RECONCILE","reconcile":{"tasks":[{"task_id":{"value":"t1"}}]}`)
	b, _ = s.nextType(t, scheduler.Event_UPDATE)
	keep("update_reconciliation", b)

	call(`"type":"RECONCILE_OPERATIONS","reconcile_operations":{"operations":[{"operation_id":{"value":"op1"}}]}`)
	b, _ = s.nextType(t, scheduler.Event_UPDATE_OPERATION_STATUS)
	keep("update_operation_status", b)

	// The leftover of the accepted offer came back (refuse_seconds 0).
	waitFor(t, func() bool { return len(m.Offers()) == 1 })
	if err := m.RescindOffer(m.Offers()[0]); err != nil {
		t.Fatal(err)
	}
	b, _ = s.nextType(t, scheduler.Event_RESCIND)
	keep("rescind", b)

	fc.Step(15 * time.Second)
	b, _ = s.nextType(t, scheduler.Event_HEARTBEAT)
	keep("heartbeat", b)

	if err := m.SetAgentReachable(agent.ID, false); err != nil {
		t.Fatal(err)
	}
	b, _ = s.nextType(t, scheduler.Event_FAILURE)
	keep("failure", b)
	b, _ = s.nextType(t, scheduler.Event_UPDATE)
	keep("update_unreachable", b)

	s2 := rawSubscribe(t, m, `{"type":"SUBSCRIBE","framework_id":{"value":"`+fw+`"},"subscribe":{"framework_info":{"id":{"value":"`+fw+`"},"user":"root","name":"golden","failover_timeout":60}}}`)
	b, _ = s.nextType(t, scheduler.Event_ERROR)
	keep("error", b)
	s2.next(t)

	dir := filepath.Join("testdata", "events")
	if *updateGolden {
		os.MkdirAll(dir, 0o755)
		for name, b := range got {
			if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range got {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(bytes.TrimSpace(want), b) {
				t.Fatalf("event differs from golden\n got: %s\nwant: %s", b, bytes.TrimSpace(want))
			}
			var ev scheduler.Event
			if err := json.Unmarshal(want, &ev); err != nil {
				t.Fatalf("mesos-go cannot decode the golden: %v", err)
			}
		})
	}
	if len(got) != 13 {
		t.Fatalf("captured %d event shapes, want 13", len(got))
	}
}
