package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Task logs: GET /v2/apps/{id}/tasks/{taskId}/logs reads a task's stdout
// or stderr from its sandbox through the agent's own HTTP endpoint —
// Mesos's /files/read with the sandbox's virtual path
// /frameworks/<fw>/executors/<task>/runs/latest — at the URL the agent's
// offers carried, as Marathon's UI and `dcos task log` do. The API never
// reads a sandbox any other way, so it works the same against real Mesos
// agents and localmesos's.
//
// Query: stream=stdout|stderr (default stdout); offset=N bytes (default
// 0); tail=N lines (start N lines before the end instead); follow=true
// keeps the response open and sends what the task writes, until the task
// has ended and everything is sent or the client goes. The body is the
// raw bytes (text/plain, chunked), or with Accept: text/event-stream one
// "log" event per chunk, {"offset","data"}, and an "end" event. The header
// X-Flotilla-Log-Offset gives the offset the body starts at.

const (
	// logPage is what one /files/read returns at most (Mesos caps a read
	// at 16 pages).
	logPage = 16 * 4096
	// logMaxBody bounds a response without follow: a client pages on
	// from X-Flotilla-Log-Offset + the bytes it got.
	logMaxBody = 4 << 20
	// logTailMaxBytes bounds how far back tail=N looks for N lines.
	logTailMaxBytes = 1 << 20
	// logPoll is how often a follow asks the agent for more.
	logPoll = 500 * time.Millisecond
)

// logsOffsetHeader gives the offset of the body's first byte.
const logsOffsetHeader = "X-Flotilla-Log-Offset"

// agentLocator is the part of framework.Scheduler that maps an agent id
// to the HTTP endpoint its offers named. A Scheduler without it (a test
// fake) serves no logs.
type agentLocator interface {
	AgentURL(agentID string) (string, bool)
}

// logTarget is where one task's log file is.
type logTarget struct {
	appID, taskID, agentID, agentURL, path string
	active                                 bool
}

// errLogGone marks the answer of an agent that no longer serves (Mesos
// and localmesos answer 503 for an agent that is not registered).
var errLogGone = errors.New("the agent is gone")

// findLogTask finds the task (a running one in the snapshot, one that
// ended recently, or the app's last failed one) and the agent URL to read
// it through.
func (s *Server) findLogTask(appID, taskID, stream string) (*logTarget, error) {
	if stream != "stdout" && stream != "stderr" {
		return nil, errorf(http.StatusBadRequest, "stream must be stdout or stderr, got %q", stream)
	}
	t := &logTarget{appID: appID, taskID: taskID}
	for _, task := range s.sched.SnapshotByApp().TasksOf(appID) {
		if task.ID == taskID {
			t.agentID, t.active = task.AgentID, task.Active()
			break
		}
	}
	if t.agentID == "" {
		// A failed task has left the snapshot; the app's last failure
		// still names its agent, and its sandbox outlives it.
		if raw := s.lastTF.get(appID); raw != nil {
			var f taskFailure
			if err := json.Unmarshal(raw, &f); err == nil && f.TaskID == taskID {
				t.agentID = f.SlaveID
			}
		}
	}
	if t.agentID == "" {
		// Any task that ended within the hour (recent.go).
		if e, ok := s.recent.find(appID, taskID, s.now()); ok {
			t.agentID = e.SlaveID
		}
	}
	if t.agentID == "" {
		return nil, errorf(http.StatusNotFound, "app '%s' has no task '%s' (running, ended within the hour, or its last failure); list them with GET /v2/apps%s/tasks and /v2/apps%s/tasks/ended", appID, taskID, appID, appID)
	}
	loc, ok := s.sched.(agentLocator)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, "this scheduler cannot locate agents, so task logs cannot be read")
	}
	u, ok := loc.AgentURL(t.agentID)
	if !ok {
		return nil, errorf(http.StatusGone, "task '%s' ran on agent %s, which is gone (no offer from it names its address any more); its logs cannot be read", taskID, t.agentID)
	}
	fw := ""
	if s.cfg.FrameworkID != nil {
		fw = s.cfg.FrameworkID()
	}
	if fw == "" {
		return nil, errorf(http.StatusServiceUnavailable, "the framework id is not known yet (not subscribed to Mesos); retry in a moment")
	}
	t.agentURL = strings.TrimSuffix(u, "/")
	// The task id came from the scheduler, not the request, and Mesos
	// task ids have no "/": the path stays inside the sandbox either way.
	t.path = "/frameworks/" + fw + "/executors/" + taskID + "/runs/latest/" + stream
	return t, nil
}

// readLog is one /files/read: data from offset, and the file's size when
// offset is -1. A 404 (no such file: the sandbox was collected, or the
// task has not started writing) is reported as found false.
func (s *Server) readLog(ctx context.Context, t *logTarget, offset, length int64) (data []byte, at int64, found bool, err error) {
	q := url.Values{"path": {t.path}, "offset": {strconv.FormatInt(offset, 10)}, "length": {strconv.FormatInt(length, 10)}}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.agentURL+"/files/read?"+q.Encode(), nil)
	if err != nil {
		return nil, 0, false, err
	}
	resp, err := logClient.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" && ctx.Err() == nil {
			// Nothing listens at the agent's address any more: the agent
			// was removed or its host is down.
			return nil, 0, false, fmt.Errorf("agent %s at %s does not answer (%v): %w", t.agentID, t.agentURL, op.Err, errLogGone)
		}
		return nil, 0, false, fmt.Errorf("agent %s at %s did not answer: %w", t.agentID, t.agentURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4*logPage))
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading from agent %s: %w", t.agentID, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, 0, false, nil
	case http.StatusServiceUnavailable:
		return nil, 0, false, fmt.Errorf("agent %s at %s answered %s: %w", t.agentID, t.agentURL, resp.Status, errLogGone)
	default:
		return nil, 0, false, fmt.Errorf("agent %s answered %s: %s", t.agentID, resp.Status, bytes.TrimSpace(body))
	}
	var rr struct {
		Offset int64  `json:"offset"`
		Data   string `json:"data"`
	}
	if err := json.Unmarshal(body, &rr); err != nil {
		return nil, 0, false, fmt.Errorf("agent %s answered /files/read with %.100q, not {offset,data}: %w", t.agentID, body, err)
	}
	return []byte(rr.Data), rr.Offset, true, nil
}

// logClient reads agents' /files; each request has its own deadline.
var logClient = &http.Client{Transport: http.DefaultTransport}

// logError turns a failed read into the answer: 410 when the agent is
// gone, 502 when it did not answer or answered nonsense.
func logError(t *logTarget, err error) error {
	if errors.Is(err, errLogGone) {
		return errorf(http.StatusGone, "task '%s' ran on agent %s, which is gone or unreachable, so its logs cannot be read: %v", t.taskID, t.agentID, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return errorf(http.StatusBadGateway, "reading the logs of task '%s': %v", t.taskID, err)
}

// tailOffset finds where the last n lines of the file begin, reading
// backwards a page at a time up to logTailMaxBytes.
func (s *Server) tailOffset(ctx context.Context, t *logTarget, n int) (int64, bool, error) {
	_, size, found, err := s.readLog(ctx, t, -1, -1)
	if err != nil || !found {
		return 0, found, err
	}
	end := size
	// A final newline ends the last line; it does not start another.
	lines := -1
	for end > 0 && size-end < logTailMaxBytes {
		start := max(0, end-logPage)
		data, _, found, err := s.readLog(ctx, t, start, end-start)
		if err != nil || !found {
			return 0, found, err
		}
		for i := len(data) - 1; i >= 0; i-- {
			if data[i] == '\n' {
				lines++
				if lines == n {
					return start + int64(i) + 1, true, nil
				}
			}
		}
		end = start
	}
	return end, true, nil
}

// taskLogs serves GET /v2/apps/{id}/tasks/{taskId}/logs.
func (s *Server) taskLogs(w http.ResponseWriter, r *http.Request, appID, taskID string) error {
	if s.dep.App(appID) == nil {
		return notFoundApp(appID)
	}
	q := r.URL.Query()
	stream := q.Get("stream")
	if stream == "" {
		stream = "stdout"
	}
	t, err := s.findLogTask(appID, taskID, stream)
	if err != nil {
		return err
	}
	var offset int64
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
			return errorf(http.StatusBadRequest, "offset must be a byte offset >= 0, got %q", v)
		}
	}
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, "tail must be a number of lines >= 0, got %q", v)
		}
		off, found, err := s.tailOffset(r.Context(), t, n)
		if err != nil {
			return logError(t, err)
		}
		if found {
			offset = off
		}
	}
	if follow {
		// Counted before the first read, so a burst of clients cannot
		// overshoot the cap while their reads are in flight.
		max := int64(s.cfg.ClientLimits.MaxLogFollows)
		if n := s.logFollows.Add(1); max > 0 && n > max {
			s.logFollows.Add(-1)
			w.Header().Set("Retry-After", "10")
			return errorf(http.StatusServiceUnavailable,
				"%d task log follows are open, the most this server takes (--api-max-log-follows); retry later, or read without follow=true and page on with offset", max)
		}
		defer s.logFollows.Add(-1)
	}
	// The first read before any header: a bad agent or a collected
	// sandbox is a clean error status, not a broken stream.
	data, _, found, err := s.readLog(r.Context(), t, offset, logPage)
	if err != nil {
		return logError(t, err)
	}
	if !found && !(follow && t.active) {
		return errorf(http.StatusNotFound, "task '%s' has no %s on agent %s: its sandbox was removed (finished tasks' sandboxes are kept for a while) or it wrote nothing there", taskID, stream, t.agentID)
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	lw := &logWriter{w: w, rc: http.NewResponseController(w), sse: sse, offset: offset, timeout: s.cfg.RequestTimeout}
	h := w.Header()
	h.Set(logsOffsetHeader, strconv.FormatInt(offset, 10))
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if sse {
		h.Set("Content-Type", "text/event-stream")
		h.Set("X-Accel-Buffering", "no")
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(http.StatusOK)
	if !lw.write(data) {
		return nil
	}
	log := s.log.WithFields(logrus.Fields{"app": appID, "task": taskID, "stream": stream})
	// Without follow: page on to the end (or the body cap).
	for !follow && len(data) > 0 && lw.offset-offset < logMaxBody {
		if data, _, _, err = s.readLog(r.Context(), t, lw.offset, logPage); err != nil {
			log.WithError(err).Info("task log read stopped")
			return nil // the header went out; the client sees a short body
		}
		if !lw.write(data) {
			return nil
		}
	}
	if !follow {
		return nil
	}
	if !lw.flush() {
		return nil
	}
	tick := s.clk.NewTicker(logPoll)
	defer tick.Stop()
	ended := false
	for {
		if len(data) < logPage {
			if ended {
				lw.end()
				return nil
			}
			// The task's end is checked before the read that may be the
			// last, so nothing written before the end is lost.
			ended = !s.taskActive(appID, taskID)
			select {
			case <-tick.C():
			case <-r.Context().Done():
				return nil
			}
		}
		data, _, _, err = s.readLog(r.Context(), t, lw.offset, logPage)
		if err != nil {
			if r.Context().Err() == nil {
				log.WithError(err).Info("task log follow stopped")
			}
			return nil
		}
		if !lw.write(data) || !lw.flush() {
			return nil
		}
	}
}

// taskActive reports whether the task is still in the scheduler's view
// and not terminal.
func (s *Server) taskActive(appID, taskID string) bool {
	for _, t := range s.sched.SnapshotByApp().TasksOf(appID) {
		if t.ID == taskID {
			return t.Active()
		}
	}
	return false
}

// logWriter writes log data as raw bytes or as SSE events, each write
// under its own deadline so that a stalled client cannot hold a follow
// forever.
type logWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	sse     bool
	offset  int64
	timeout time.Duration
}

func (l *logWriter) write(data []byte) bool {
	if len(data) == 0 {
		return true
	}
	// A write deadline is not supported by every ResponseWriter (tests'
	// recorders); the write itself still fails on a gone client.
	_ = l.rc.SetWriteDeadline(time.Now().Add(l.timeout))
	var err error
	if l.sse {
		var b []byte
		b, err = json.Marshal(struct {
			Offset int64  `json:"offset"`
			Data   string `json:"data"`
		}{l.offset, string(data)})
		if err == nil {
			_, err = fmt.Fprintf(l.w, "event: log\nid: %d\ndata: %s\n\n", l.offset+int64(len(data)), b)
		}
	} else {
		_, err = l.w.Write(data)
	}
	l.offset += int64(len(data))
	return err == nil
}

func (l *logWriter) flush() bool {
	_ = l.rc.SetWriteDeadline(time.Now().Add(l.timeout))
	return l.rc.Flush() == nil
}

// end tells an SSE client the task ended and everything was sent (a
// plain-text client sees the body end).
func (l *logWriter) end() {
	if l.sse {
		_ = l.rc.SetWriteDeadline(time.Now().Add(l.timeout))
		if _, err := fmt.Fprintf(l.w, "event: end\ndata: {\"offset\":%d}\n\n", l.offset); err == nil {
			_ = l.flush() // the last write: a client gone now has all it needs
		}
	}
}

// failureTailLines is how many lines of a failed task's stderr its app's
// lastTaskFailure message carries.
const failureTailLines = 10

// failureTails bounds the reads of failed tasks' stderr in flight: a crash
// loop of many apps must not start a goroutine per failure unbounded.
var failureTails = make(chan struct{}, 8)

// addFailureTail appends the last lines of the failed task's stderr to its
// app's lastTaskFailure message, so `GET /v2/apps/{id}` says why a task
// failed and not only "exited with status 1". It reads through the agent
// like the logs endpoint, off the event loop; a failure recorded later
// for the same app wins.
func (s *Server) addFailureTail(f taskFailure) {
	select {
	case failureTails <- struct{}{}:
	default:
		return // too many in flight: the message stays as Mesos gave it
	}
	go func() {
		defer func() { <-failureTails }()
		defer s.recoverLoop("read a failed task's stderr")
		t, err := s.findLogTask(f.AppID, f.TaskID, "stderr")
		if err != nil {
			return // the agent is gone or the task forgotten: nothing to add
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		defer cancel()
		tail, err := s.stderrTail(ctx, t, failureTailLines)
		if err != nil {
			s.log.WithError(err).WithFields(logrus.Fields{"app": f.AppID, "task": f.TaskID}).Info("cannot read the failed task's stderr")
			return
		}
		if tail == "" {
			return
		}
		if cur := s.lastTF.get(f.AppID); cur != nil {
			var c taskFailure
			if json.Unmarshal(cur, &c) != nil || c.TaskID != f.TaskID {
				return // a newer failure replaced it meanwhile
			}
		}
		f.Message += "\nstderr (last lines):\n" + tail
		s.lastTF.set(f)
	}()
}

// stderrTail is the last n lines of a task's log, without a final newline.
func (s *Server) stderrTail(ctx context.Context, t *logTarget, n int) (string, error) {
	off, found, err := s.tailOffset(ctx, t, n)
	if err != nil || !found {
		return "", err
	}
	var b strings.Builder
	for b.Len() < logTailMaxBytes {
		data, _, _, err := s.readLog(ctx, t, off+int64(b.Len()), logPage)
		if err != nil {
			return "", err
		}
		if len(data) == 0 {
			break
		}
		b.Write(data)
	}
	return strings.TrimRight(b.String(), "\n"), nil
}
