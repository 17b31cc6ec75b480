package localmesos

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// graceRecorder is a simulated executor that remembers the grace period
// of each kill.
type graceRecorder struct {
	*executor.Simulated
	mu    sync.Mutex
	grace map[string]time.Duration
}

func (g *graceRecorder) Kill(ctx context.Context, id string, grace time.Duration) error {
	g.mu.Lock()
	g.grace[id] = grace
	g.mu.Unlock()
	return g.Simulated.Kill(ctx, id, grace)
}

func TestKillPolicyGrace(t *testing.T) {
	t.Parallel()
	rec := &graceRecorder{Simulated: executor.NewSimulated(clock.Real{}), grace: map[string]time.Duration{}}
	m, _ := startMaster(t, Config{Agents: 1, NoSandbox: true, Executor: func(string) (executor.Executor, error) { return rec, nil }})
	f := subscribeRaw(t, m, paInfo)
	cases := []struct {
		name, id, taskPolicy, callPolicy string
		call                             string
		want                             time.Duration
	}{
		{name: "default grace", id: "d", want: defaultKillGrace},
		{name: "task kill_policy", id: "tp", taskPolicy: `,"kill_policy":{"grace_period":{"nanoseconds":2000000000}}`, want: 2 * time.Second},
		{name: "call kill_policy overrides", id: "cp", taskPolicy: `,"kill_policy":{"grace_period":{"nanoseconds":2000000000}}`, callPolicy: `,"kill_policy":{"grace_period":{"nanoseconds":1000000000}}`, want: time.Second},
		{name: "shutdown of the command executor", id: "sd", call: "shutdown", want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := f.offer("")
			task := `{"name":"k","task_id":{"value":"` + tc.id + `"},"agent_id":{"value":"` + o.AgentID.Value + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],"command":{"value":"sleep 100"}` + tc.taskPolicy + `}`
			f.call(acceptJSON(o.ID.Value, 0, task))
			f.ack(f.updateIn(tc.id, mesos.TASK_STARTING))
			f.ack(f.updateIn(tc.id, mesos.TASK_RUNNING))
			if tc.call == "shutdown" {
				f.call(`"type":"SHUTDOWN","shutdown":{"executor_id":{"value":"` + tc.id + `"},"agent_id":{"value":"` + o.AgentID.Value + `"}}`)
			} else {
				f.call(`"type":"KILL","kill":{"task_id":{"value":"` + tc.id + `"}` + tc.callPolicy + `}`)
			}
			f.ack(f.updateIn(tc.id, mesos.TASK_KILLED))
			rec.mu.Lock()
			got, ok := rec.grace[tc.id]
			rec.mu.Unlock()
			if !ok || got != tc.want {
				t.Fatalf("executor killed with grace %v (called %v), want %v", got, ok, tc.want)
			}
		})
	}
}

// TestSecretsNeverLogged runs a task with a SECRET variable, and an
// invalid one, with debug logging on, and searches the log.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	log := logrus.New()
	log.SetLevel(logrus.TraceLevel)
	log.Out = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	m, _ := startMaster(t, Config{Agents: 1, Log: log})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	env := `"environment":{"variables":[{"name":"DB","type":"SECRET","secret":{"type":"VALUE","value":{"data":"aHVudGVyMg=="}}}]}`
	good := `{"name":"s","task_id":{"value":"s"},"agent_id":{"value":"` + o.AgentID.Value + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],"command":{"value":"true",` + env + `}}`
	bad := `{"name":"b","task_id":{"value":"b"},"agent_id":{"value":"` + o.AgentID.Value + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":9999}}],"command":{"value":"true",` + env + `}}`
	f.call(acceptJSON(o.ID.Value, 0, good, bad))
	st := f.updateIn("b", mesos.TASK_ERROR)
	f.ack(f.updateIn("s", mesos.TASK_STARTING))
	f.call(`"type":"KILL","kill":{"task_id":{"value":"s"}}`)
	for _, leak := range []string{"aHVudGVyMg==", "hunter2"} {
		mu.Lock()
		logged := bytes.Contains(buf.Bytes(), []byte(leak))
		mu.Unlock()
		if logged || bytes.Contains([]byte(st.GetMessage()), []byte(leak)) {
			t.Fatalf("secret %q appears in the log or the TASK_ERROR message", leak)
		}
	}
	mu.Lock()
	empty := buf.Len() == 0
	mu.Unlock()
	if empty {
		t.Fatal("nothing was logged; the test proves nothing")
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// TestOffersChunked: 1,200 agents' offers reach one framework in OFFERS
// events of at most 500 offers, far below the 4 MiB frame cap.
func TestOffersChunked(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1200, NoAgentHTTP: true, SamePorts: true})
	s := rawSubscribe(t, m, subscribeJSON)
	n := 0
	for n < 1200 {
		b, ev := s.nextType(t, scheduler.Event_OFFERS)
		if len(ev.Offers.Offers) > offersPerEvent || len(b) >= maxFrame {
			t.Fatalf("OFFERS with %d offers, %d bytes", len(ev.Offers.Offers), len(b))
		}
		n += len(ev.Offers.Offers)
	}
}

// TestSuppressedAtSubscribe: suppressed_roles in SUBSCRIBE mean no offers
// until REVIVE.
func TestSuppressedAtSubscribe(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	s := rawSubscribe(t, m, `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"s"},"suppressed_roles":["*"]}}`)
	_, ev := s.next(t)
	m.allocate()
	if len(m.Offers()) != 0 {
		t.Fatal("suppressed framework got an offer")
	}
	if code, body := s.call(t, m, `{"framework_id":{"value":"`+ev.Subscribed.FrameworkID.Value+`"},"type":"REVIVE","revive":{}}`); code != 202 {
		t.Fatalf("revive: %d %s", code, body)
	}
	s.nextType(t, scheduler.Event_OFFERS)
}
