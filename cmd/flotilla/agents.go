package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// agentsHandler serves GET /flotilla/v1/agents for the UI's cluster page:
// each Mesos agent with its resources total, used and free, as the leading
// master reports them. The page cannot ask the master itself (its CSP lets
// it talk to its own origin only, and the master may not be reachable from
// an operator's browser), so the replica reads it for the page: read-only,
// through the master URL the detector follows, never from Flotilla's own
// view of offers (which only sees what is offered to it).
//
// master gives the leading master's URL (the scheduler API's, or its
// base); it must not wait long for one.
func agentsHandler(master func(ctx context.Context) (string, error), client *http.Client) http.Handler {
	// A real master's /master/state carries every task (tens of MiB with
	// 100,000); /master/slaves has the agents alone. Masters that lack it
	// (localmesos) answer 404, and are asked for /master/state from then on.
	var noSlaves atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/flotilla/v1/agents" {
			writeMessage(w, http.StatusNotFound, "no such resource; the agents are at /flotilla/v1/agents")
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			writeMessage(w, http.StatusMethodNotAllowed, "only GET is allowed here")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		// A replica that knows no master yet says so soon rather than
		// holding the page.
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		base, err := master(lctx)
		lcancel()
		if err != nil {
			writeMessage(w, http.StatusBadGateway, fmt.Sprintf("no leading Mesos master is known: %v", err))
			return
		}
		u, err := url.Parse(base)
		if err != nil || u.Host == "" {
			writeMessage(w, http.StatusBadGateway, fmt.Sprintf("the Mesos master's URL %q cannot be used: %v", base, err))
			return
		}
		root := u.Scheme + "://" + u.Host
		var state masterAgents
		path := "/master/slaves"
		if noSlaves.Load() {
			path = "/master/state"
		}
		code, err := getJSON(ctx, client, root+path, &state)
		if code == http.StatusNotFound && path == "/master/slaves" {
			noSlaves.Store(true)
			path = "/master/state"
			_, err = getJSON(ctx, client, root+path, &state)
		}
		if err != nil {
			writeMessage(w, http.StatusBadGateway, fmt.Sprintf("the Mesos master at %s did not answer GET %s: %v", root, path, err))
			return
		}
		out := agentsView{Master: root, Source: path, Agents: make([]agentView, 0, len(state.Slaves)), Frameworks: []frameworkView{}}
		for _, a := range state.Slaves {
			out.Agents = append(out.Agents, a.view())
		}
		// The frameworks' health: /master/state has them beside the
		// agents; after /master/slaves they are one more read
		// (/master/frameworks), whose failure costs the page that table
		// only.
		fws := state.Frameworks
		if path == "/master/slaves" {
			var f masterAgents
			if _, ferr := getJSON(ctx, client, root+"/master/frameworks", &f); ferr != nil {
				out.FrameworksError = fmt.Sprintf("the Mesos master at %s did not answer GET /master/frameworks: %v", root, ferr)
			}
			fws = f.Frameworks
		}
		for _, f := range fws {
			out.Frameworks = append(out.Frameworks, frameworkView{ID: f.ID, Name: f.Name, Active: f.Active, Connected: f.Connected,
				Role: f.Role, Tasks: len(f.Tasks), Unreachable: len(f.UnreachableTasks)})
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(out) // the client's loss alone
	})
}

// getJSON GETs u into v; an error says what went wrong (status and the
// start of the body, or the transport's error). code is the HTTP status,
// 0 when there was none.
func getJSON(ctx context.Context, client *http.Client, u string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 200))
		if rerr != nil {
			return resp.StatusCode, fmt.Errorf("%s (and reading its body: %v)", resp.Status, rerr)
		}
		return resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("its answer is not the JSON expected: %v", err)
	}
	return resp.StatusCode, nil
}

func writeMessage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg}) // the client's loss alone
}

// masterAgents is the part of Mesos's /master/state (and /master/slaves)
// read here: per agent, "resources" (its total), "used_resources" (held by
// tasks and executors) and "unreserved_resources" (the total minus
// reservations), each {"cpus":1,"mem":128,"disk":0,"ports":"[31000-31099]"}.
type masterAgents struct {
	Slaves     []masterAgent     `json:"slaves"`
	Frameworks []masterFramework `json:"frameworks"`
}

// masterFramework is one framework of /master/state (or
// /master/frameworks): whether it is subscribed, and its tasks.
type masterFramework struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Role             string            `json:"role"`
	Active           bool              `json:"active"`
	Connected        bool              `json:"connected"`
	Tasks            []json.RawMessage `json:"tasks"`
	UnreachableTasks []json.RawMessage `json:"unreachable_tasks"`
}

// frameworkView is a framework's health as the cluster page shows it.
type frameworkView struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Role        string `json:"role"`
	Active      bool   `json:"active"`
	Connected   bool   `json:"connected"`
	Tasks       int    `json:"tasks"`
	Unreachable int    `json:"unreachableTasks"`
}

type masterAgent struct {
	ID        string        `json:"id"`
	Hostname  string        `json:"hostname"`
	Active    bool          `json:"active"`
	Resources mesosResource `json:"resources"`
	Used      mesosResource `json:"used_resources"`
	// Unreserved is absent from masters that do not send it.
	Unreserved *mesosResource `json:"unreserved_resources"`
}

type mesosResource struct {
	CPUs  float64 `json:"cpus"`
	Mem   float64 `json:"mem"`
	Disk  float64 `json:"disk"`
	Ports string  `json:"ports"`
}

type agentsView struct {
	Master     string          `json:"master"`
	Source     string          `json:"source"` // the master's endpoint read
	Agents     []agentView     `json:"agents"`
	Frameworks []frameworkView `json:"frameworks"`
	// FrameworksError says why the frameworks are missing, when they are.
	FrameworksError string `json:"frameworksError,omitempty"`
}

type agentView struct {
	ID       string         `json:"id"`
	Hostname string         `json:"hostname"`
	Active   bool           `json:"active"`
	Total    resourceCounts `json:"total"`
	Used     resourceCounts `json:"used"`
	Free     resourceCounts `json:"free"`
	// Reserved is the total minus the unreserved part: what roles hold
	// (absent when the master does not say).
	Reserved *resourceCounts `json:"reserved,omitempty"`
	// Ports as Mesos prints them: "[31000-31099]".
	Ports     string `json:"ports"`
	UsedPorts string `json:"usedPorts"`
}

// resourceCounts: CPUs, MiB of memory and disk, and a number of ports.
type resourceCounts struct {
	CPUs  float64 `json:"cpus"`
	Mem   float64 `json:"mem"`
	Disk  float64 `json:"disk"`
	Ports int     `json:"ports"`
}

func counts(r mesosResource) resourceCounts {
	return resourceCounts{CPUs: r.CPUs, Mem: r.Mem, Disk: r.Disk, Ports: portCount(r.Ports)}
}

func (a resourceCounts) minus(b resourceCounts) resourceCounts {
	// Rounded as Mesos rounds scalars (to thousandths): 1 - 0.95 must
	// read 0.05, not 0.050000000000000044.
	round := func(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
	return resourceCounts{CPUs: round(max(0, a.CPUs-b.CPUs)), Mem: round(max(0, a.Mem-b.Mem)), Disk: round(max(0, a.Disk-b.Disk)), Ports: max(0, a.Ports-b.Ports)}
}

func (a masterAgent) view() agentView {
	total, used := counts(a.Resources), counts(a.Used)
	v := agentView{ID: a.ID, Hostname: a.Hostname, Active: a.Active, Total: total, Used: used, Free: total.minus(used),
		Ports: a.Resources.Ports, UsedPorts: a.Used.Ports}
	if a.Unreserved != nil {
		r := total.minus(counts(*a.Unreserved))
		v.Reserved = &r
	}
	return v
}

// portCount is how many ports Mesos's "[31000-31099, 31200-31200]" holds;
// a range it cannot read counts none.
func portCount(s string) int {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "["), "]"))
	n := 0
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			continue
		}
		b, err1 := strconv.ParseUint(lo, 10, 32)
		e, err2 := strconv.ParseUint(hi, 10, 32)
		if err1 != nil || err2 != nil || e < b {
			continue
		}
		n += int(e-b) + 1
	}
	return n
}

// replicasHandler serves GET /flotilla/v1/replicas for the cluster page:
// every Flotilla replica in the leader election, leader first, with the
// address it advertises.
func replicasHandler(candidates func(ctx context.Context) ([]string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/flotilla/v1/replicas" || r.Method != http.MethodGet {
			writeMessage(w, http.StatusNotFound, "GET /flotilla/v1/replicas lists the replicas")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		addrs, err := candidates(ctx)
		if err != nil {
			writeMessage(w, http.StatusBadGateway, fmt.Sprintf("the replicas cannot be listed: %v", err))
			return
		}
		type replica struct {
			Address string `json:"address"`
			Leader  bool   `json:"leader"`
		}
		out := make([]replica, len(addrs))
		for i, a := range addrs {
			out[i] = replica{Address: a, Leader: i == 0}
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"replicas": out}) // the client's loss alone
	})
}
