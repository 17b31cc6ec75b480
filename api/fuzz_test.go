package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzQuery sends one raw query string to GET /v2/apps, /v2/tasks and
// /v2/events, the endpoints whose query parameters are parsed (embed, id,
// cmd, label; status; event_type). None may answer 5xx or panic, and each
// answer must agree with what the query asked for:
//   - /v2/apps: 400 with a "label" detail exactly when the selector does
//     not parse; otherwise 200, a JSON list holding exactly the fixture's
//     apps that pass the id, cmd and label filters, with tasks embedded
//     exactly when asked, and a selector that prints and parses back the same;
//   - /v2/tasks: 200, JSON, exactly the tasks in the asked state;
//   - /v2/events: 200, an event stream that opens with
//     event_stream_attached exactly when the event_type filter lets it through.
//
// Seeds are in testdata/fuzz/FuzzQuery.
func FuzzQuery(f *testing.F) {
	e := newEnvFor(f, nil, 365*24*time.Hour)
	for _, a := range []string{
		`{"id": "/prod/shop/web", "cmd": "sleep 1", "cpus": 0.1, "mem": 32, "instances": 2, "labels": {"tier": "web", "a b": "c,d", "": "empty"}}`,
		`{"id": "/prod/db", "cmd": "sleep 2", "cpus": 0.1, "mem": 32, "instances": 1, "labels": {"tier": "db", "in": "(x)"}}`,
		`{"id": "/huge", "cmd": "sleep 3", "cpus": 1000, "mem": 32}`,
		`{"id": "/staging/web", "cmd": "sleep 4", "cpus": 0.1, "mem": 32, "instances": 1}`,
	} {
		e.mustDo("POST", "/v2/apps", a, 201)
		if strings.Contains(a, "/prod/") {
			e.launch(nil)
		}
	}
	e.offer() // /staging/web stays staging; /huge never fits
	snap := e.sched.Snapshot()
	all := map[string]map[string]string{} // app id → labels
	cmds := map[string]string{}
	for _, m := range e.dep.Apps() {
		all[m.App.ID], cmds[m.App.ID] = m.App.Labels, m.App.Cmd
	}
	states := map[string]int{}
	for _, t := range snap.Tasks {
		states[strings.ToLower(strings.TrimPrefix(t.State.String(), "TASK_"))]++
	}
	if len(all) != 4 || states["running"] != 3 || states["staging"] != 1 {
		f.Fatalf("fixture: apps %v, task states %v", all, states)
	}

	serve := func(path, raw string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.URL.RawQuery = raw
		if path == "/v2/events" {
			// Cancelled at once: the stream writes its opening and returns.
			ctx, cancel := context.WithCancel(req.Context())
			cancel()
			req = req.WithContext(ctx)
		}
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		return w
	}

	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // as r.URL.Query() reads it: bad pairs dropped

		// /v2/apps
		w := serve("/v2/apps", raw)
		sel, selErr := parseLabelSelector(q.Get("label"))
		if selErr != nil {
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"path":"label"`) {
				t.Fatalf("bad selector %q (%v) answered %d: %s", q.Get("label"), selErr, w.Code, w.Body)
			}
		} else {
			if w.Code != http.StatusOK {
				t.Fatalf("/v2/apps?%s answered %d: %s", raw, w.Code, w.Body)
			}
			var body struct {
				Apps []map[string]any `json:"apps"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("/v2/apps?%s: not JSON: %v: %s", raw, err, w.Body)
			}
			want := map[string]bool{}
			for id, labels := range all {
				if strings.Contains(id, q.Get("id")) && strings.Contains(cmds[id], q.Get("cmd")) && sel.matches(labels) {
					want[id] = true
				}
			}
			if len(body.Apps) != len(want) {
				t.Fatalf("/v2/apps?%s: %d apps, want %v", raw, len(body.Apps), want)
			}
			pe, _ := parseEmbed(q["embed"])
			embedTasks := pe.tasks
			for _, a := range body.Apps {
				id, _ := a["id"].(string)
				if !want[id] {
					t.Fatalf("/v2/apps?%s listed %q, want %v", raw, id, want)
				}
				if _, has := a["tasks"]; has != embedTasks {
					t.Fatalf("/v2/apps?%s: tasks embedded %v, asked %v", raw, has, embedTasks)
				}
			}
			if sel != nil {
				back, err := parseLabelSelector(sel.String())
				if err != nil || back.String() != sel.String() {
					t.Fatalf("selector %q printed as %q parses to %q (%v)", q.Get("label"), sel.String(), back.String(), err)
				}
			}
		}

		// /v2/tasks
		w = serve("/v2/tasks", raw)
		if w.Code != http.StatusOK {
			t.Fatalf("/v2/tasks?%s answered %d: %s", raw, w.Code, w.Body)
		}
		var tasks struct {
			Tasks []struct {
				State string `json:"state"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &tasks); err != nil {
			t.Fatalf("/v2/tasks?%s: not JSON: %v: %s", raw, err, w.Body)
		}
		status := strings.ToLower(q.Get("status"))
		want := len(snap.Tasks)
		if status != "" {
			want = states[status]
		}
		if len(tasks.Tasks) != want {
			t.Fatalf("/v2/tasks?%s: %d tasks, want %d", raw, len(tasks.Tasks), want)
		}
		for _, tk := range tasks.Tasks {
			if status != "" && "task_"+status != strings.ToLower(tk.State) {
				t.Fatalf("/v2/tasks?%s listed a task in %s", raw, tk.State)
			}
		}

		// /v2/events
		w = serve("/v2/events", raw)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/event-stream" {
			t.Fatalf("/v2/events?%s answered %d %q: %s", raw, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		filtered, attached := false, false
		for _, v := range q["event_type"] {
			for _, typ := range strings.Split(v, ",") {
				typ = strings.TrimSpace(typ)
				filtered = filtered || typ != ""
				attached = attached || typ == eventStreamAttached
			}
		}
		opened := strings.HasPrefix(w.Body.String(), "event: "+eventStreamAttached+"\ndata: {")
		if opened != (!filtered || attached) {
			t.Fatalf("/v2/events?%s: stream opened with attached %v, filter %v: %q", raw, opened, q["event_type"], w.Body)
		}
	})
}
