package api

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// unknownEmbeds logs embeds the request asked for and Flotilla does not
// know: Marathon ignores them with a warning, and clients send embeds of
// other Marathon versions (pods, …) that must not fail the request. Each
// is logged once (up to maxLoggedEmbeds of them): a UI polling with one
// every second would otherwise fill the log.
func (s *Server) unknownEmbeds(r *http.Request, unknown []string) {
	for _, u := range unknown {
		if _, seen := s.loggedEmbeds.Load(u); seen || s.loggedEmbedsN.Load() >= maxLoggedEmbeds {
			continue
		}
		if _, seen := s.loggedEmbeds.LoadOrStore(u, true); !seen {
			s.loggedEmbedsN.Add(1)
			s.log.WithFields(logrus.Fields{"path": r.URL.Path, "embed": u}).Warn("unknown embed argument ignored (logged once)")
		}
	}
}

const maxLoggedEmbeds = 100

// readinessResult is one of Marathon's readinessCheckResults. Flotilla
// does not keep the last HTTP response, so lastResponse is absent
// (Marathon leaves it out too unless preserveLastResponse is set).
type readinessResult struct {
	Name   string `json:"name"`
	TaskID string `json:"taskId"`
	Ready  bool   `json:"ready"`
}

// readinessResults is, per active task of an app with a readiness check,
// whether it passed.
func readinessResults(m *deploy.Record, ts []framework.Task) []readinessResult {
	out := []readinessResult{}
	if m == nil || len(m.App.ReadinessChecks) == 0 {
		return out
	}
	for i := range ts {
		if t := &ts[i]; t.Ready != nil && t.Active() {
			out = append(out, readinessResult{Name: m.App.ReadinessChecks[0].Name, TaskID: t.ID, Ready: *t.Ready})
		}
	}
	return out
}

// appendReadiness appends the app's readinessCheckResults.
func appendReadiness(b []byte, m *deploy.Record, ts []framework.Task) []byte {
	b = append(b, `,"readinessCheckResults":[`...)
	for i, r := range readinessResults(m, ts) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, r.Name)
		b = append(b, `,"taskId":`...)
		b = appendString(b, r.TaskID)
		b = append(b, `,"ready":`...)
		b = strconv.AppendBool(b, r.Ready)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendTaskStats appends Marathon's taskStats (TaskStatsByVersion) over
// the app's active tasks: startedAfterLastScaling (staged at or after
// versionInfo.lastScalingAt), withLatestConfig and withOutdatedConfig (the
// task's version against lastConfigChangeAt), totalSummary. As in
// Marathon, a category without tasks is left out, and so is lifeTime
// when no task of it has started.
func appendTaskStats(b []byte, m *deploy.Record, ts []framework.Task, now time.Time) []byte {
	scaledAt, _ := time.Parse(store.VersionFormat, m.LastScalingAt) // zero (every task) if unset
	var afterScaling, latest, outdated, all []framework.Task
	for _, t := range ts {
		if !t.Active() {
			continue
		}
		all = append(all, t)
		if !t.StagedAt.Before(scaledAt) {
			afterScaling = append(afterScaling, t)
		}
		if t.AppVersion >= m.ConfigVersion {
			latest = append(latest, t)
		} else {
			outdated = append(outdated, t)
		}
	}
	b = append(b, `,"taskStats":{`...)
	n := 0
	for _, c := range []struct {
		name  string
		tasks []framework.Task
	}{{"startedAfterLastScaling", afterScaling}, {"withLatestConfig", latest}, {"withOutdatedConfig", outdated}, {"totalSummary", all}} {
		if len(c.tasks) == 0 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, '"')
		b = append(b, c.name...)
		b = append(b, `":{"stats":`...)
		b = appendStats(b, c.tasks, now)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendStats is Marathon's TaskStats: counts, and the life time of the
// tasks that started (now − startedAt), average and median, in seconds.
func appendStats(b []byte, ts []framework.Task, now time.Time) []byte {
	c := countTasks(ts)
	b = append(b, `{"counts":{"staged":`...)
	b = strconv.AppendInt(b, int64(c.staged), 10)
	b = append(b, `,"running":`...)
	b = strconv.AppendInt(b, int64(c.running), 10)
	b = append(b, `,"healthy":`...)
	b = strconv.AppendInt(b, int64(c.healthy), 10)
	b = append(b, `,"unhealthy":`...)
	b = strconv.AppendInt(b, int64(c.unhealthy), 10)
	b = append(b, '}')
	var lives []float64
	for i := range ts {
		if !ts[i].StartedAt.IsZero() && ts[i].State != mesos.TASK_STAGING {
			lives = append(lives, now.Sub(ts[i].StartedAt).Seconds())
		}
	}
	if len(lives) > 0 {
		slices.Sort(lives)
		sum := 0.0
		for _, l := range lives {
			sum += l
		}
		median := lives[len(lives)/2]
		if len(lives)%2 == 0 {
			median = (lives[len(lives)/2-1] + median) / 2
		}
		b = append(b, `,"lifeTime":{"averageSeconds":`...)
		b = strconv.AppendFloat(b, sum/float64(len(lives)), 'f', -1, 64)
		b = append(b, `,"medianSeconds":`...)
		b = strconv.AppendFloat(b, median, 'f', -1, 64)
		b = append(b, '}')
	}
	return append(b, '}')
}
