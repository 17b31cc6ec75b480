package localmesos

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

func TestAgentStatistics(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Unix(1700000000, 0))
	m, sims := startMaster(t, Config{Clock: fc, Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	a := m.Agents()[0]
	f.launchRunning(f.offer(a.ID), "t")
	if err := sims[a.ID].SetUsage("t", 0.5, 10<<20); err != nil {
		t.Fatal(err)
	}
	fc.Step(10 * time.Second)
	var got []struct {
		ExecutorID  string `json:"executor_id"`
		FrameworkID string `json:"framework_id"`
		Source      string `json:"source"`
		Statistics  struct {
			Timestamp   float64 `json:"timestamp"`
			CPUsUser    float64 `json:"cpus_user_time_secs"`
			CPUsSystem  float64 `json:"cpus_system_time_secs"`
			CPUsLimit   float64 `json:"cpus_limit"`
			MemRSSBytes uint64  `json:"mem_rss_bytes"`
			MemLimit    uint64  `json:"mem_limit_bytes"`
		} `json:"statistics"`
	}
	if err := json.Unmarshal([]byte(getBody(t, a.URL+"/monitor/statistics")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d entries, want 1", len(got))
	}
	s := got[0]
	if s.ExecutorID != "t" || s.FrameworkID != f.id || s.Source != "t" {
		t.Fatalf("entry ids %+v, want executor t of %s", s, f.id)
	}
	if cpu := s.Statistics.CPUsUser + s.Statistics.CPUsSystem; cpu < 4.9 || cpu > 5.1 || s.Statistics.CPUsLimit != 0.1 || s.Statistics.MemRSSBytes != 10<<20 || s.Statistics.MemLimit != 16<<20 {
		t.Fatalf("statistics %+v, want 5 cpu secs over 10 s, limit 0.1, rss 10 MiB of 16 MiB", s.Statistics)
	}
	resp, err := http.Post(a.URL+"/monitor/statistics", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST statistics: %d, want 405", resp.StatusCode)
	}
}

func TestMasterStateRedactsSecrets(t *testing.T) {
	t.Parallel()
	m, _ := startMaster(t, Config{Agents: 1})
	f := subscribeRaw(t, m, paInfo)
	o := f.offer("")
	task := `{"name":"s","task_id":{"value":"s"},"agent_id":{"value":"` + o.AgentID.Value + `"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}}],` +
		`"command":{"value":"true","environment":{"variables":[{"name":"PLAIN","value":"visible-value"},{"name":"DB","type":"SECRET","secret":{"type":"VALUE","value":{"data":"aHVudGVyMg=="}}}]}},` +
		`"labels":{"labels":[{"key":"app","value":"/web"}]}}`
	f.call(acceptJSON(o.ID.Value, 0, task))
	f.ack(f.update("s"))
	state := getBody(t, m.URL()+"/master/state")
	for _, leak := range []string{"aHVudGVyMg==", "hunter2"} {
		if strings.Contains(state, leak) {
			t.Fatalf("/master/state contains the secret %q", leak)
		}
	}
	var st struct {
		ID         string `json:"id"`
		Leader     string `json:"leader"`
		Frameworks []struct {
			ID    string `json:"id"`
			Tasks []struct {
				ID       string         `json:"id"`
				State    string         `json:"state"`
				SlaveID  string         `json:"slave_id"`
				Res      map[string]any `json:"resources"`
				Statuses []any          `json:"statuses"`
			} `json:"tasks"`
		} `json:"frameworks"`
		Slaves []struct {
			ID         string            `json:"id"`
			Attributes map[string]string `json:"attributes"`
		} `json:"slaves"`
	}
	if err := json.Unmarshal([]byte(state), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != m.ID() || !strings.HasPrefix(st.Leader, "master@") || len(st.Frameworks) != 1 || len(st.Frameworks[0].Tasks) != 1 || len(st.Slaves) != 1 {
		t.Fatalf("state %s lacks the master, leader, framework, task or agent", state)
	}
	tk := st.Frameworks[0].Tasks[0]
	if tk.ID != "s" || tk.SlaveID != o.AgentID.Value || tk.Res["cpus"] != 0.1 || len(tk.Statuses) == 0 {
		t.Fatalf("task in state %+v", tk)
	}
	if st.Slaves[0].Attributes["rack"] != "r1" {
		t.Fatalf("agent attributes %v", st.Slaves[0].Attributes)
	}
	for _, p := range []string{"/health", "/version"} {
		getBody(t, m.URL()+p)
	}
}
