package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/framework"
)

// AgentSource reads cpu or mem utilisation (0..1 of the task's limit) from
// each agent's GET /monitor/statistics.
type AgentSource struct {
	kind     string
	agentURL func(agentID string) (string, bool)
	client   *http.Client
	timeout  time.Duration

	mu sync.Mutex
	// prev holds each app's last CPU counters per task: utilisation is a
	// rate, so a task's first sample yields no value.
	prev map[string]map[string]cpuPoint
}

type cpuPoint struct{ ts, secs float64 }

// NewAgentSource returns the source for kind appspec.AutoscaleCPU or
// appspec.AutoscaleMem. agentURL maps an agent id to its HTTP endpoint; a
// nil client means a fresh one, a zero timeout DefaultTimeout per request.
func NewAgentSource(kind string, agentURL func(agentID string) (string, bool), client *http.Client, timeout time.Duration) (*AgentSource, error) {
	if kind != appspec.AutoscaleCPU && kind != appspec.AutoscaleMem {
		return nil, fmt.Errorf("autoscale: agent source: kind must be cpu or mem (got %q)", kind)
	}
	if agentURL == nil {
		return nil, errors.New("autoscale: agent source: no agent URL lookup")
	}
	return &AgentSource{kind: kind, agentURL: agentURL, client: clientOr(client), timeout: timeoutOr(timeout),
		prev: make(map[string]map[string]cpuPoint)}, nil
}

// agentEntry is one executor of /monitor/statistics (MESOS.md, "Agent
// statistics"); for a command task executor_id is the task id.
type agentEntry struct {
	ExecutorID string `json:"executor_id"`
	Statistics struct {
		Timestamp     float64 `json:"timestamp"`
		CPUsUser      float64 `json:"cpus_user_time_secs"`
		CPUsSystem    float64 `json:"cpus_system_time_secs"`
		CPUsLimit     float64 `json:"cpus_limit"`
		MemRSSBytes   float64 `json:"mem_rss_bytes"`
		MemLimitBytes float64 `json:"mem_limit_bytes"`
	} `json:"statistics"`
}

// Sample implements Source. Agents are asked concurrently, each once.
func (s *AgentSource) Sample(ctx context.Context, app *appspec.App, tasks []framework.Task) (Sample, error) {
	byAgent := make(map[string][]string)
	var errs []error
	for _, t := range tasks {
		byAgent[t.AgentID] = append(byAgent[t.AgentID], t.ID)
	}
	type result struct {
		entries []agentEntry
		err     error
	}
	results := make(map[string]*result, len(byAgent))
	var wg sync.WaitGroup
	for agentID := range byAgent {
		r := &result{}
		results[agentID] = r
		url, ok := s.agentURL(agentID)
		if !ok {
			r.err = fmt.Errorf("%w: %s", ErrNoAgent, agentID)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := get(ctx, s.client, s.timeout, strings.TrimSuffix(url, "/")+"/monitor/statistics")
			if err != nil {
				r.err = err
				return
			}
			if err := json.Unmarshal(body, &r.entries); err != nil {
				r.err = fmt.Errorf("autoscale: agent %s statistics: %w", agentID, err)
			}
		}()
	}
	wg.Wait()

	out := Sample{Values: make(map[string]float64, len(tasks))}
	points := make(map[string]cpuPoint, len(tasks))
	s.mu.Lock()
	prev := s.prev[app.ID]
	failed := make(map[string]bool)
	for agentID, ids := range byAgent {
		r := results[agentID]
		if r.err != nil {
			errs = append(errs, r.err)
			for _, id := range ids {
				failed[id] = true
			}
			continue
		}
		// A command task's executor is the task; a pod instance's is the
		// default executor "instance-<instance id>", reporting the
		// instance's containers together.
		want := make(map[string]string, 2*len(ids))
		for _, id := range ids {
			want[id], want["instance-"+id] = id, id
		}
		for _, e := range r.entries {
			id, ok := want[e.ExecutorID]
			if !ok {
				continue
			}
			e.ExecutorID = id
			st := e.Statistics
			switch s.kind {
			case appspec.AutoscaleMem:
				if st.MemLimitBytes > 0 {
					out.Values[e.ExecutorID] = st.MemRSSBytes / st.MemLimitBytes
				}
			case appspec.AutoscaleCPU:
				p := cpuPoint{ts: st.Timestamp, secs: st.CPUsUser + st.CPUsSystem}
				points[e.ExecutorID] = p
				q, seen := prev[e.ExecutorID]
				// A reset counter or an unchanged timestamp gives no rate;
				// the next sample will.
				if seen && p.ts > q.ts && p.secs >= q.secs && st.CPUsLimit > 0 {
					out.Values[e.ExecutorID] = (p.secs - q.secs) / (p.ts - q.ts) / st.CPUsLimit
				}
			}
		}
	}
	if s.kind == appspec.AutoscaleCPU {
		// Keep the points of tasks whose agent failed this time, so one
		// failed fetch does not cost two intervals.
		for id, q := range prev {
			if _, ok := points[id]; !ok && failed[id] {
				points[id] = q
			}
		}
		s.prev[app.ID] = points
	}
	s.mu.Unlock()
	return out, errors.Join(errs...)
}

// Forget drops what the source remembers of an app (removed, or no longer
// autoscaled on this metric).
func (s *AgentSource) Forget(appID string) {
	s.mu.Lock()
	delete(s.prev, appID)
	s.mu.Unlock()
}
