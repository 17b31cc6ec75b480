package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-sched/flotilla/api"
	"github.com/flotilla-sched/flotilla/internal/testbed"
)

// logsSpec is an app whose instances print a greeting to stdout and a
// complaint to stderr, then a tick every 200 ms.
func logsSpec(id string, instances int, docker bool) string {
	spec := map[string]any{
		"id": id, "instances": instances, "cpus": 0.05, "mem": 16,
		"cmd": `echo "hello from $MESOS_TASK_ID"; echo "oops-$MESOS_TASK_ID" >&2; while true; do echo tick; sleep 0.2; done`,
	}
	if docker {
		spec["container"] = map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "flotilla/busybox:dev", "network": "HOST"}}
	}
	b, _ := json.Marshal(spec)
	return string(b)
}

// TestDevTaskLogs reads tasks' stdout and stderr through the API and the
// CLI on flotilla dev with real Docker containers and real processes:
// whole files, tails, follows (chunked and SSE), all instances
// interleaved, a failed task's stderr in lastTaskFailure, and clean 4xx
// answers for bad input and a task whose agent is gone.
func TestDevTaskLogs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		executor string
		ports    [2]uint64
	}{
		{"docker", [2]uint64{31400, 31499}},
		{"process", [2]uint64{31500, 31599}},
	} {
		t.Run(tc.executor, func(t *testing.T) {
			t.Parallel()
			docker := tc.executor == "docker"
			if docker {
				testbed.DockerSocket(t) // fails under CI=true when the engine is missing
			}
			env := startDev(t, devOpts{executor: tc.executor, upstream: fakeUpstream(t), ports: tc.ports})
			env.deploy(t, logsSpec("/logs-web", 3, docker))
			var a appView
			waitFor(t, 120*time.Second, "3 running tasks of /logs-web", func() bool {
				a = env.app(t, "/logs-web")
				return a.TasksRunning == 3 && len(a.Tasks) == 3
			})
			task := a.Tasks[0].ID
			logsPath := "/v2/apps/logs-web/tasks/" + task + "/logs"

			var body string
			waitFor(t, 60*time.Second, "the task's greeting on stdout", func() bool {
				code, b := env.do(t, "GET", logsPath, "")
				body = string(b)
				return code == http.StatusOK && strings.Contains(body, "hello from "+task)
			})
			if code, b := env.do(t, "GET", logsPath+"?stream=stderr", ""); code != http.StatusOK || !strings.Contains(string(b), "oops-"+task) || strings.Contains(string(b), "tick") {
				t.Fatalf("stderr: %d %.300q, want only the complaint", code, b)
			}
			waitFor(t, 30*time.Second, "tail=2 to give two ticks", func() bool {
				code, b := env.do(t, "GET", logsPath+"?tail=2", "")
				return code == http.StatusOK && string(b) == "tick\ntick\n"
			})
			if code, b := env.do(t, "GET", logsPath+"?offset=6&tail=", ""); code != http.StatusOK || !strings.HasPrefix(string(b), "from "+task) {
				t.Fatalf("offset=6: %d %.100q, want the greeting from its 7th byte", code, b)
			}

			// follow=true streams: ticks keep coming on one response.
			followN(t, env, logsPath+"?follow=true&tail=0", "", 5)
			// And as SSE, one "log" event per chunk.
			followN(t, env, logsPath+"?follow=true&tail=0", "text/event-stream", 3)

			// The CLI: every instance, each line prefixed with its task.
			var out, errOut syncBuffer
			cliArgs := []string{"--api", env.api, "logs", "/logs-web", "--tail", "1", "--stderr"}
			if err := runAppIO(context.Background(), cliArgs, &out, &errOut, func(string) string { return "" }, nil); err != nil {
				t.Fatalf("flotilla app logs: %v (stderr %s)", err, errOut.String())
			}
			for _, tk := range a.Tasks {
				if want := tk.ID + " | oops-" + tk.ID + "\n"; !strings.Contains(out.String(), want) {
					t.Fatalf("flotilla app logs --stderr --tail 1 printed %q, want a line %q", out.String(), want)
				}
			}
			// -f follows all three until interrupted.
			ctx, cancel := context.WithCancel(context.Background())
			var fout syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- runAppIO(ctx, []string{"--api", env.api, "logs", "/logs-web", "-f", "--tail", "0"}, &fout, &errOut, func(string) string { return "" }, nil)
			}()
			waitFor(t, 60*time.Second, "ticks from all three instances on 'flotilla app logs -f'", func() bool {
				s := fout.String()
				for _, tk := range a.Tasks {
					if !strings.Contains(s, tk.ID+" | tick\n") {
						return false
					}
				}
				return true
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("flotilla app logs -f ended with %v after an interrupt, want nil", err)
			}

			// Bad input.
			for _, bad := range []struct {
				path string
				want int
			}{
				{"/v2/apps/logs-web/tasks/nosuchtask/logs", http.StatusNotFound},
				{"/v2/apps/nosuchapp/tasks/" + task + "/logs", http.StatusNotFound},
				{logsPath + "?stream=../../../../etc/passwd", http.StatusBadRequest},
				{logsPath + "?stream=stdout/../../../../../etc/passwd", http.StatusBadRequest},
				{"/v2/apps/logs-web/tasks/..%2F..%2F..%2Fetc%2Fpasswd/logs", http.StatusNotFound},
				{logsPath + "?offset=-5", http.StatusBadRequest},
				{logsPath + "?tail=x", http.StatusBadRequest},
			} {
				code, b := env.do(t, "GET", bad.path, "")
				if code != bad.want || strings.Contains(string(b), "root:") || !strings.Contains(string(b), `"message"`) {
					t.Errorf("GET %s: %d %.200s, want %d with a message", bad.path, code, b, bad.want)
				}
			}

			// A failing app: its stderr's last lines in lastTaskFailure.
			env.deploy(t, `{"id":"/logs-fail","instances":1,"cpus":0.05,"mem":16,"cmd":"echo starting; echo 'fatal: DB_URL is not set' >&2; exit 1"`+
				map[bool]string{true: `,"container":{"type":"DOCKER","docker":{"image":"flotilla/busybox:dev","network":"HOST"}}`, false: ""}[docker]+`}`)
			var failure struct {
				TaskID  string `json:"taskId"`
				Message string `json:"message"`
			}
			waitFor(t, 120*time.Second, "lastTaskFailure with the task's stderr", func() bool {
				code, b := env.do(t, "GET", "/v2/apps/logs-fail", "")
				var v struct {
					App struct {
						LastTaskFailure *json.RawMessage `json:"lastTaskFailure"`
					} `json:"app"`
				}
				if code != http.StatusOK || json.Unmarshal(b, &v) != nil || v.App.LastTaskFailure == nil {
					return false
				}
				return json.Unmarshal(*v.App.LastTaskFailure, &failure) == nil && strings.Contains(failure.Message, "fatal: DB_URL is not set")
			})
			if !strings.Contains(failure.Message, "exited with status 1") && !strings.Contains(failure.Message, "Command exited with status 1") {
				t.Errorf("lastTaskFailure message %q lost Mesos's own message", failure.Message)
			}
			if code, b := env.do(t, "GET", "/v2/apps/logs-fail/tasks/"+failure.TaskID+"/logs?stream=stderr", ""); code != http.StatusOK || !strings.Contains(string(b), "fatal: DB_URL") {
				t.Errorf("the failed task's stderr: %d %.200s", code, b)
			}

			// A task whose agent is gone: a 4xx that says so.
			gone := a.Tasks[1]
			var agentID string
			code, b := env.do(t, "GET", "/v2/apps/logs-web/tasks", "")
			var ts struct {
				Tasks []struct {
					ID      string `json:"id"`
					SlaveID string `json:"slaveId"`
				} `json:"tasks"`
			}
			if code != http.StatusOK || json.Unmarshal(b, &ts) != nil {
				t.Fatalf("GET tasks: %d %s", code, b)
			}
			for _, tk := range ts.Tasks {
				if tk.ID == gone.ID {
					agentID = tk.SlaveID
				}
			}
			resp, err := http.Post(env.mesos+"/admin/agents/"+agentID+"/remove", "application/json", nil)
			if err != nil {
				t.Fatalf("remove agent %s: %v", agentID, err)
			}
			resp.Body.Close()
			waitFor(t, 60*time.Second, "a 4xx for the logs of a task on the removed agent", func() bool {
				code, b := env.do(t, "GET", "/v2/apps/logs-web/tasks/"+gone.ID+"/logs", "")
				return code >= 400 && code < 500 && strings.Contains(string(b), "message")
			})
		})
	}
}

// followN reads a follow=true response until n more ticks arrived, and
// checks it is streamed (no Content-Length) in the format asked for.
func followN(t *testing.T, env *devEnv, path, accept string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", env.api+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET %s: %s length %d %s, want 200 streamed", path, resp.Status, resp.ContentLength, b)
	}
	sc := bufio.NewScanner(resp.Body)
	seen := 0
	var got []string
	for seen < n && sc.Scan() {
		line := sc.Text()
		got = append(got, line)
		if accept == "text/event-stream" {
			if strings.HasPrefix(line, "data: ") && strings.Contains(line, `tick\n`) {
				seen++
			}
			continue
		}
		if line == "tick" {
			seen++
		}
	}
	if seen < n {
		t.Fatalf("GET %s: %d of %d ticks before the stream ended (%v); got %q", path, seen, n, sc.Err(), got[max(0, len(got)-10):])
	}
	if accept == "text/event-stream" && !strings.Contains(strings.Join(got, "\n"), "event: log") {
		t.Fatalf("SSE follow sent no 'event: log': %q", got)
	}
}

// TestDevLogsFollowNewAndCap: "flotilla app logs ID -f" follows an
// instance that starts after it, from its first line; follows beyond
// --api-max-log-follows get a 503 that names the flag, until one ends; a
// task killed by a scale-down is listed as ended and its logs still read.
func TestDevLogsFollowNewAndCap(t *testing.T) {
	t.Parallel()
	env := startDev(t, devOpts{executor: "process", upstream: fakeUpstream(t), ports: [2]uint64{31800, 31899},
		clientLimits: api.ClientLimits{MaxLogFollows: 2}})
	env.deploy(t, logsSpec("/follow-new", 1, false))
	var first string
	waitFor(t, 60*time.Second, "/follow-new running", func() bool {
		a := env.app(t, "/follow-new")
		if a.TasksRunning == 1 && len(a.Tasks) == 1 {
			first = a.Tasks[0].ID
		}
		return first != ""
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runAppIO(ctx, []string{"--api", env.api, "logs", "/follow-new", "-f", "--tail", "0"}, &out, &errOut, func(string) string { return "" }, nil)
	}()
	waitFor(t, 60*time.Second, "ticks of the first instance on 'logs -f'", func() bool { return strings.Contains(out.String(), first+" | tick\n") })

	if code, b := env.do(t, "PUT", "/v2/apps/follow-new", `{"instances":2}`); code != http.StatusOK {
		t.Fatalf("scale to 2: %d %s", code, b)
	}
	var second string
	waitFor(t, 60*time.Second, "a second instance", func() bool {
		for _, tk := range env.app(t, "/follow-new").Tasks {
			if tk.ID != first && tk.State == "TASK_RUNNING" {
				second = tk.ID
			}
		}
		return second != ""
	})
	// From its first byte: the greeting it printed before any tick.
	waitFor(t, 60*time.Second, "the new instance's greeting and ticks on the same 'logs -f'", func() bool {
		s := out.String()
		return strings.Contains(s, second+" | hello from "+second+"\n") && strings.Contains(s, second+" | tick\n")
	})

	// The CLI holds two follows, the cap: a third is refused, clearly.
	follow := func() (int, http.Header, string) {
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		req, err := http.NewRequestWithContext(rctx, "GET", env.api+"/v2/apps/follow-new/tasks/"+first+"/logs?follow=true&tail=0", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET a third follow: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if err != nil {
				t.Fatalf("read the refusal: %v", err)
			}
			return resp.StatusCode, resp.Header, string(b)
		}
		return resp.StatusCode, resp.Header, ""
	}
	code, h, body := follow()
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "--api-max-log-follows") {
		t.Fatalf("a follow beyond the cap: %d Retry-After %q %s, want 503 with Retry-After naming --api-max-log-follows", code, h.Get("Retry-After"), body)
	}
	// Reads without follow are not counted.
	if code, b := env.do(t, "GET", "/v2/apps/follow-new/tasks/"+first+"/logs?tail=1", ""); code != http.StatusOK {
		t.Fatalf("a read without follow at the cap: %d %s, want 200", code, b)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("flotilla app logs -f ended with %v after an interrupt, want nil (stderr %s)", err, errOut.String())
	}
	// The CLI's follows end with it (once the server sees them gone).
	waitFor(t, 30*time.Second, "a follow to be taken again once the CLI stopped", func() bool {
		code, _, _ := follow()
		return code == http.StatusOK
	})

	// A task that ended (killed by a scale-down) is listed as ended and its
	// logs are still read from its sandbox.
	if code, b := env.do(t, "PUT", "/v2/apps/follow-new", `{"instances":1}`); code != http.StatusOK {
		t.Fatalf("scale to 1: %d %s", code, b)
	}
	var ended string
	waitFor(t, 60*time.Second, "a task of /follow-new listed as ended", func() bool {
		code, b := env.do(t, "GET", "/v2/apps/follow-new/tasks/ended", "")
		var v struct {
			Tasks []struct {
				ID, State, EndedAt string
			} `json:"tasks"`
		}
		if code != http.StatusOK || json.Unmarshal(b, &v) != nil || len(v.Tasks) == 0 {
			return false
		}
		if v.Tasks[0].State != "TASK_KILLED" || v.Tasks[0].EndedAt == "" {
			t.Fatalf("ended tasks: %s, want the killed one with its end time", b)
		}
		ended = v.Tasks[0].ID
		return true
	})
	if code, b := env.do(t, "GET", "/v2/apps/follow-new/tasks/"+ended+"/logs", ""); code != http.StatusOK || !strings.Contains(string(b), "hello from "+ended) {
		t.Fatalf("the logs of ended task %s: %d %.300s, want its greeting", ended, code, b)
	}
}
