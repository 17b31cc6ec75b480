package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// counts are Marathon's tasksStaged, tasksRunning, tasksHealthy, tasksUnhealthy.
type counts struct{ staged, running, healthy, unhealthy int }

func countTasks(ts []framework.Task) counts {
	var c counts
	for i := range ts {
		t := &ts[i]
		switch t.State {
		case mesos.TASK_STAGING, mesos.TASK_STARTING:
			c.staged++
		case mesos.TASK_RUNNING:
			c.running++
		}
		if t.Healthy != nil && t.Active() {
			if *t.Healthy {
				c.healthy++
			} else {
				c.unhealthy++
			}
		}
	}
	return c
}

// embed is what a response carries beyond the spec (Marathon's
// AppInfo.Embed). Counts and deployments are in every answer, as
// Marathon's GET /v2/apps always adds them, so they need no flag.
type embed struct {
	tasks, lastTaskFailure, readiness, taskStats bool
}

func (e embed) or(o embed) embed {
	return embed{tasks: e.tasks || o.tasks, lastTaskFailure: e.lastTaskFailure || o.lastTaskFailure,
		readiness: e.readiness || o.readiness, taskStats: e.taskStats || o.taskStats}
}

// parseEmbed reads Marathon's app embeds, with or without their prefix
// (apps., app., group.apps.), as Marathon's InfoEmbedResolver does, and
// returns the ones it does not know: Marathon ignores them with a
// warning in its log, and so does Flotilla (the caller logs them).
func parseEmbed(values []string) (embed, []string) {
	var e embed
	var unknown []string
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			name := f
			for _, p := range []string{"group.apps.", "apps.", "app."} {
				if n, ok := strings.CutPrefix(f, p); ok {
					name = n
					break
				}
			}
			switch name {
			case "tasks":
				e.tasks = true
			case "lastTaskFailure":
				e.lastTaskFailure = true
			case "failures": // Marathon's deprecated tasks + lastTaskFailure
				e.tasks, e.lastTaskFailure = true, true
			case "readiness":
				e.readiness = true
			case "taskStats":
				e.taskStats = true
			case "counts", "deployments":
				// Always present, as in Marathon's GET /v2/apps.
			case "":
			default:
				unknown = append(unknown, f)
			}
		}
	}
	return e, unknown
}

// taskFailure is Marathon's lastTaskFailure.
type taskFailure struct {
	AppID     string `json:"appId"`
	Host      string `json:"host"`
	Message   string `json:"message"`
	State     string `json:"state"`
	TaskID    string `json:"taskId"`
	Timestamp string `json:"timestamp"`
	Version   string `json:"version"`
	SlaveID   string `json:"slaveId"`
}

type lastFailures struct {
	mu sync.RWMutex
	m  map[string][]byte // app id → JSON of its taskFailure
}

func (l *lastFailures) init() { l.m = map[string][]byte{} }

func (l *lastFailures) set(f taskFailure) {
	b, err := json.Marshal(f)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[f.AppID] = b
}

func (l *lastFailures) get(appID string) []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.m[appID]
}

func (l *lastFailures) forget(appID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, appID)
}

// appendApp appends one app in Marathon's GET /v2/apps shape. Only the
// status part is encoded here, by hand, from the snapshot; the spec is
// the bytes rendered when the app was written.
func (s *Server) appendApp(b []byte, m *deploy.Record, ts []framework.Task, e embed, depID string) []byte {
	var tf []byte
	if e.lastTaskFailure {
		tf = s.lastTF.get(m.App.ID)
	}
	return s.appendAppFailure(b, m, ts, e, depID, tf)
}

// appendAppFailure is appendApp with the app's last failure (JSON) read
// by the caller, so that a kept fragment records the one it holds.
func (s *Server) appendAppFailure(b []byte, m *deploy.Record, ts []framework.Task, e embed, depID string, tf []byte) []byte {
	c := countTasks(ts)
	b = append(b, m.Spec...)
	b = append(b, `,"version":`...)
	b = appendString(b, m.App.Version)
	b = append(b, `,"versionInfo":{"lastScalingAt":`...)
	b = appendString(b, m.LastScalingAt)
	b = append(b, `,"lastConfigChangeAt":`...)
	b = appendString(b, m.ConfigVersion)
	b = append(b, `},"tasksStaged":`...)
	b = strconv.AppendInt(b, int64(c.staged), 10)
	b = append(b, `,"tasksRunning":`...)
	b = strconv.AppendInt(b, int64(c.running), 10)
	b = append(b, `,"tasksHealthy":`...)
	b = strconv.AppendInt(b, int64(c.healthy), 10)
	b = append(b, `,"tasksUnhealthy":`...)
	b = strconv.AppendInt(b, int64(c.unhealthy), 10)
	b = append(b, `,"deployments":[`...)
	if depID != "" {
		b = append(b, `{"id":`...)
		b = appendString(b, depID)
		b = append(b, '}')
	}
	b = append(b, ']')
	if e.tasks {
		b = append(b, `,"tasks":[`...)
		for i := range ts {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTask(b, &ts[i], m)
		}
		b = append(b, ']')
	}
	if e.lastTaskFailure && tf != nil {
		b = append(b, `,"lastTaskFailure":`...)
		b = append(b, tf...)
	}
	if e.readiness {
		b = appendReadiness(b, m, ts)
	}
	if e.taskStats {
		b = appendTaskStats(b, m, ts, s.now())
	}
	return append(b, '}')
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, store.VersionFormat)
	return append(b, '"')
}

// instanceID is Marathon's instance id of a task: its id without the
// "._app.<incarnation>" suffix.
func instanceID(taskID string) string {
	if i := strings.LastIndex(taskID, "._app."); i > 0 {
		return taskID[:i]
	}
	return taskID
}

// appendTask appends one task in Marathon's shape.
// m is the task's app, or nil when the app is gone.
func appendTask(b []byte, t *framework.Task, m *deploy.Record) []byte {
	health := m != nil && m.Health
	b = append(b, `{"id":`...)
	b = appendString(b, t.ID)
	b = append(b, `,"appId":`...)
	b = appendString(b, t.AppID)
	b = append(b, `,"slaveId":`...)
	b = appendString(b, t.AgentID)
	b = append(b, `,"host":`...)
	b = appendString(b, t.Host)
	b = append(b, `,"state":`...)
	b = appendString(b, t.State.String())
	b = append(b, `,"stagedAt":`...)
	b = appendTime(b, t.StagedAt)
	b = append(b, `,"startedAt":`...)
	b = appendTime(b, t.StartedAt)
	b = append(b, `,"version":`...)
	b = appendString(b, t.AppVersion)
	b = append(b, `,"ports":[`...)
	for i, p := range t.Ports {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, p, 10)
	}
	b = append(b, `],"servicePorts":[`...)
	if m != nil {
		for i, p := range m.ServicePorts {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(p), 10)
		}
	}
	b = append(b, `],"ipAddresses":[],"healthCheckResults":[`...)
	if health {
		b = appendHealthResults(b, t) // health.go
	}
	b = append(b, ']')
	if m != nil && m.App != nil && m.App.IsResident() {
		b = appendLocalVolumes(b, m.App, t.ID) // resident.go
	}
	if t.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, t.Message)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Ids, hosts and versions are
// plain ASCII, which is copied as is; anything else goes through
// encoding/json so the escaping is exactly JSON's.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// renderApp renders one app (GET /v2/apps/{id}, POST's answer).
func (s *Server) renderApp(m *deploy.Record, snap *framework.Snapshot, e embed) []byte {
	var buf bytes.Buffer
	buf.Grow(len(m.Spec) + 512)
	return s.appendApp(buf.Bytes(), m, snap.TasksOf(m.App.ID), e, s.depIDFor(m.App.ID))
}
