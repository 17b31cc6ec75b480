package localmesos

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"

	"github.com/flotilla-sched/flotilla/internal/testbed"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// filesGet asks an agent's /files endpoint; it returns status and body.
func filesGet(t *testing.T, agentURL, endpoint string, q url.Values) (int, string) {
	t.Helper()
	resp, err := http.Get(agentURL + "/files/" + endpoint + "?" + q.Encode())
	if err != nil {
		t.Fatalf("GET /files/%s?%s: %v", endpoint, q.Encode(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /files/%s: read body: %v", endpoint, err)
	}
	return resp.StatusCode, string(b)
}

type readResult struct {
	Offset int64  `json:"offset"`
	Data   string `json:"data"`
}

func filesRead(t *testing.T, agentURL, path string, offset, length int64) readResult {
	t.Helper()
	code, body := filesGet(t, agentURL, "read", url.Values{"path": {path}, "offset": {fmt.Sprint(offset)}, "length": {fmt.Sprint(length)}})
	if code != http.StatusOK {
		t.Fatalf("/files/read %s offset %d length %d: %d %s", path, offset, length, code, body)
	}
	var rr readResult
	if err := json.Unmarshal([]byte(body), &rr); err != nil {
		t.Fatalf("/files/read answered %q, not Mesos's {offset,data}: %v", body, err)
	}
	return rr
}

// readAll pages through a file with /files/read as a pager does.
func readAll(t *testing.T, agentURL, path string) (int, string) {
	t.Helper()
	var all strings.Builder
	for {
		code, body := filesGet(t, agentURL, "read", url.Values{"path": {path}, "offset": {fmt.Sprint(all.Len())}})
		if code != http.StatusOK {
			return code, body
		}
		var rr readResult
		if err := json.Unmarshal([]byte(body), &rr); err != nil {
			t.Fatalf("/files/read answered %.200q: %v", body, err)
		}
		if rr.Data == "" {
			return code, all.String()
		}
		all.WriteString(rr.Data)
	}
}

// waitRead waits until the file at path holds want, and returns it.
func waitRead(t *testing.T, agentURL, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		code, body := readAll(t, agentURL, path)
		if code == http.StatusOK && strings.Contains(body, want) {
			return body
		}
		last = fmt.Sprintf("%d, %d bytes ending %q", code, len(body), body[max(0, len(body)-200):])
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never held %q within 60 s; last answer: %s", path, want, last)
	return ""
}

// TestAgentFiles launches a task that writes to stdout and stderr through
// the docker executor (the real engine) and the process executor, and
// reads its sandbox the way a framework does: through the agent's URL and
// Mesos's virtual path, while it runs and after it was killed; paths that
// leave the sandbox are refused with 400.
func TestAgentFiles(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"docker", "process"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			factory := func(string) (executor.Executor, error) { return executor.NewProcess(executor.ProcessConfig{}), nil }
			if kind == "docker" {
				sock := testbed.DockerSocket(t)
				factory = func(string) (executor.Executor, error) {
					return executor.NewDocker(executor.DockerConfig{Host: "unix://" + sock})
				}
			}
			m, _ := startMaster(t, Config{Agents: 1, Executor: factory})
			f := startFramework(t, m, fwOpts{})
			f.next(5*time.Second, scheduler.Event_SUBSCRIBED)
			o := f.offers(5 * time.Second)[0]
			if o.URL == nil || o.URL.Address.Port == 0 {
				t.Fatalf("offer has no agent url: %+v", o.URL)
			}
			agentURL := fmt.Sprintf("http://%s:%d", o.URL.Address.GetIP(), o.URL.Address.Port)
			id := "logs." + kind
			ti := cmdTask(id, o, `echo out-line-1; echo err-line-1 >&2; i=0; while [ $i -lt 8000 ]; do echo filler-$i; i=$((i+1)); done; echo out-done; sleep 1000`)
			if kind == "docker" {
				ti.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(), Docker: &mesos.ContainerInfo_DockerInfo{
					Image: "flotilla/busybox:dev", Network: mesos.ContainerInfo_DockerInfo_HOST.Enum()}}
			}
			if err := f.call(launch(o, ti)); err != nil {
				t.Fatalf("accept: %v", err)
			}
			f.update(60*time.Second, id, mesos.TASK_RUNNING)
			dir := "/frameworks/" + f.ID() + "/executors/" + id + "/runs/latest"

			// Live: the output is there while the task runs.
			waitRead(t, agentURL, dir+"/stderr", "err-line-1")
			waitRead(t, agentURL, dir+"/stdout", "out-done")
			// offset -1: the size, no data (how a pager finds the end).
			end := filesRead(t, agentURL, dir+"/stdout", -1, -1)
			if end.Data != "" || end.Offset < int64(8000*len("filler-0\n")) {
				t.Fatalf("offset=-1 gave offset %d data %q, want the file's size and no data", end.Offset, end.Data)
			}
			// One read is capped at 16 pages, as Mesos's.
			if rr := filesRead(t, agentURL, dir+"/stdout", 0, -1); len(rr.Data) != maxReadLength || !strings.HasPrefix(rr.Data, "out-line-1\n") {
				t.Fatalf("read from 0 gave %d bytes starting %.20q, want %d starting out-line-1", len(rr.Data), rr.Data, maxReadLength)
			}
			if rr := filesRead(t, agentURL, dir+"/stdout", 4, 6); rr.Data != "line-1" || rr.Offset != 4 {
				t.Fatalf("read offset 4 length 6 = %+v, want offset 4 data line-1", rr)
			}
			if rr := filesRead(t, agentURL, dir+"/stdout", end.Offset+100, 10); rr.Offset != end.Offset || rr.Data != "" {
				t.Fatalf("read past the end = %+v, want offset %d (the size) and no data", rr, end.Offset)
			}

			code, body := filesGet(t, agentURL, "browse", url.Values{"path": {dir}})
			var ls []fileInfo
			if code != http.StatusOK || json.Unmarshal([]byte(body), &ls) != nil {
				t.Fatalf("browse %s: %d %s", dir, code, body)
			}
			names := map[string]bool{}
			for _, e := range ls {
				names[e.Path] = true
				if e.Mode == "" || e.Mtime == 0 {
					t.Fatalf("browse entry lacks mode or mtime: %+v", e)
				}
			}
			if !names[dir+"/stdout"] || !names[dir+"/stderr"] {
				t.Fatalf("browse %s lists %v, want stdout and stderr under that path", dir, names)
			}
			code, body = filesGet(t, agentURL, "download", url.Values{"path": {dir + "/stderr"}})
			if code != http.StatusOK || !strings.HasPrefix(body, "err-line-1") {
				t.Fatalf("download stderr: %d %.100q", code, body)
			}

			// Bad input: outside the sandbox, not there, a directory, no path.
			for _, tc := range []struct {
				endpoint, path string
				want           int
			}{
				{"read", dir + "/../../../../../../../../etc/passwd", http.StatusBadRequest},
				{"read", dir + "/../../../../../../../../nonexistent", http.StatusBadRequest},
				{"download", dir + "/../../../../../../../../etc/passwd", http.StatusBadRequest},
				{"browse", dir + "/../../..", http.StatusBadRequest},
				{"read", dir + "/nonexistent", http.StatusNotFound},
				{"read", "/etc/passwd", http.StatusNotFound},
				{"read", dir, http.StatusBadRequest},
				{"read", "", http.StatusBadRequest},
			} {
				q := url.Values{"path": {tc.path}, "offset": {"0"}}
				if code, body := filesGet(t, agentURL, tc.endpoint, q); code != tc.want || strings.Contains(body, "root:") {
					t.Errorf("%s %q: %d %.200q, want %d and nothing from outside the sandbox", tc.endpoint, tc.path, code, body, tc.want)
				}
			}
			if code, body := filesGet(t, agentURL, "read", url.Values{"path": {dir + "/stdout"}, "offset": {"x"}}); code != http.StatusBadRequest {
				t.Errorf("offset=x: %d %s, want 400", code, body)
			}

			// Kept after the task ended.
			if err := f.call(calls.Kill(id, o.AgentID.Value)); err != nil {
				t.Fatalf("kill: %v", err)
			}
			f.update(60*time.Second, id, mesos.TASK_KILLED)
			if rr := filesRead(t, agentURL, dir+"/stderr", 0, -1); !strings.HasPrefix(rr.Data, "err-line-1") {
				t.Fatalf("after the kill, stderr reads %q, want the task's output kept", rr.Data)
			}
		})
	}
}

// TestSandboxGC: a finished task's sandbox goes once it is older than
// SandboxMaxAge, or at once when finished sandboxes exceed SandboxMaxBytes;
// a running task's sandbox stays.
func TestSandboxGC(t *testing.T) {
	t.Parallel()
	// One GC pass is run as of a chosen time (the loop runs the same pass
	// on its ticker), so the test needs no waiting for the ticker.
	for _, tc := range []struct {
		name  string
		cfg   Config
		after time.Duration // how long after now the pass runs
	}{
		{"age", Config{SandboxMaxAge: time.Hour}, time.Hour + time.Minute},
		{"bytes", Config{SandboxMaxBytes: 1, SandboxMaxAge: time.Hour}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Agents = 1
			cfg.Executor = func(string) (executor.Executor, error) { return executor.NewProcess(executor.ProcessConfig{}), nil }
			m, _ := startMaster(t, cfg)
			f := startFramework(t, m, fwOpts{})
			f.next(5*time.Second, scheduler.Event_SUBSCRIBED)
			o := f.offers(5 * time.Second)[0]
			agentURL := m.Agents()[0].URL
			res := []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 16)}
			if err := f.call(launch(o, cmdTask("gc.done", o, "echo bye", res...), cmdTask("gc.runs", o, "echo hi; sleep 1000", res...))); err != nil {
				t.Fatalf("accept: %v", err)
			}
			// The agent marks a sandbox ended before it sends the
			// terminal update, so it is collectable once this arrives.
			f.update(30*time.Second, "gc.done", mesos.TASK_FINISHED)
			base := "/frameworks/" + f.ID() + "/executors/"
			waitRead(t, agentURL, base+"gc.done/runs/latest/stdout", "bye")
			m.collectSandboxes(time.Now().Add(tc.after))
			if code, body := filesGet(t, agentURL, "read", url.Values{"path": {base + "gc.done/runs/latest/stdout"}, "offset": {"0"}}); code != http.StatusNotFound {
				t.Fatalf("the finished task's sandbox is still served after a GC pass: %d %s", code, body)
			}
			waitRead(t, agentURL, base+"gc.runs/runs/latest/stdout", "hi")
		})
	}
}
