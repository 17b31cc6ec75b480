package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/secrets"
	"github.com/flotilla-sched/flotilla/store"
)

// listApps streams GET /v2/apps: the response for 10,000 apps is written
// app by app from pre-rendered specs, never built whole in memory.
func (s *Server) listApps(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	e, unknown := parseEmbed(q["embed"])
	s.unknownEmbeds(r, unknown)
	idFilter, cmdFilter := q.Get("id"), q.Get("cmd")
	sel, err := parseLabelSelector(q.Get("label"))
	if err != nil {
		return &httpError{Status: http.StatusBadRequest, Message: "Invalid label selector",
			Details: []appspec.Detail{{Path: "label", Errors: []string{err.Error()}}}}
	}
	tasks := s.appsSnapshot().Cursor() // metas are sorted by id
	metas := s.dep.Apps()
	deps := s.dep.DeploymentsByApp()
	listed := func(m *deploy.Record) bool {
		return m.App.Pod == nil && // pods.go: /v2/pods
			(idFilter == "" || strings.Contains(m.App.ID, idFilter)) &&
			(cmdFilter == "" || strings.Contains(m.App.Cmd, cmdFilter)) &&
			sel.matches(m.App.Labels)
	}
	if !e.taskStats && !s.noFragments.Load() && !s.streamedLists.Load() {
		// Every app's fragment is kept (or rendered and kept): the answer
		// is written from them as they are (pieces.go); unfiltered, from
		// the kept chunks of 64 apps (chunks.go).
		if idFilter == "" && cmdFilter == "" && len(sel) == 0 && !s.lists.off.Load() {
			s.listChunked(w, metas, tasks, deps, e)
			return nil
		}
		p := pieces{bufs: make(net.Buffers, 0, 2*len(metas)+2)}
		var scratch []byte
		p.add([]byte(`{"apps":[`))
		for _, m := range metas {
			if !listed(m) {
				continue
			}
			if len(p.bufs) > 1 {
				p.add(comma)
			}
			p.add(s.keptListed(&scratch, tasks, m, e, deps[m.App.ID]))
		}
		p.add([]byte("]}\n"))
		_ = p.write(w, false) // an error is the client gone; nothing more can be said to it
		return nil
	}

	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"apps":[`)
	buf := make([]byte, 0, 8<<10)
	first := true
	for _, m := range metas {
		if !listed(m) {
			continue
		}
		if !first {
			_ = bw.WriteByte(',') // an error comes back from the Write below
		}
		first = false
		depID := ""
		if len(deps) > 0 {
			depID = deps[m.App.ID]
		}
		// A kept fragment is written as it is (fragments.go).
		f, rendered := s.listedApp(buf, tasks, m, e, depID)
		if rendered {
			buf = f
		}
		if _, err := bw.Write(f); err != nil {
			return nil // the client went away; nothing more can be said to it
		}
	}
	_, _ = bw.WriteString("]}\n")
	_ = bw.Flush()
	return nil
}

// listChunked writes every app of metas but the pods (/v2/pods) from the
// kept chunks of the app list.
func (s *Server) listChunked(w http.ResponseWriter, metas []*deploy.Record, tasks *framework.TaskCursor, deps map[string]string, e embed) {
	apps := metas[:0] // metas is the caller's own copy
	for _, m := range metas {
		if m.App.Pod == nil {
			apps = append(apps, m)
		}
	}
	n := (len(apps) + chunkApps - 1) / chunkApps
	p := pieces{bufs: make(net.Buffers, 0, 2*n+2)}
	p.add([]byte(`{"apps":[`))
	var in chunkInputs
	for i := range n {
		if i > 0 {
			p.add(comma)
		}
		p.add(s.keptChunk(&s.lists, chunkKey{listChunks, i, e}, apps[i*chunkApps:min(len(apps), (i+1)*chunkApps)], tasks, deps, &in))
	}
	s.lists.dropFrom(listChunks, e, n)
	p.add([]byte("]}\n"))
	_ = p.write(w, false) // an error is the client gone; nothing more can be said to it
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request, id string) error {
	id = appspec.CanonicalID(id)
	m := s.dep.App(id)
	if m == nil || m.App.Pod != nil {
		return s.appMissing(id)
	}
	// Marathon's GET /v2/apps/{id} always has the tasks and the last
	// failure; readiness and taskStats when asked for.
	e, unknown := parseEmbed(r.URL.Query()["embed"])
	s.unknownEmbeds(r, unknown)
	b := []byte(`{"app":`)
	b = s.appendApp(b, m, s.sched.SnapshotByApp().TasksOf(id), e.or(embed{tasks: true, lastTaskFailure: true}), s.depIDFor(id))
	b = append(b, '}')
	writeRaw(w, http.StatusOK, b)
	return nil
}

// readBody reads at most one app definition's worth of body.
func readBody(r *http.Request) ([]byte, error) { return readBodyLimit(r, appspec.MaxBodyBytes) }

// readBodyLimit reads at most limit bytes of body (a group holds many apps).
func readBodyLimit(r *http.Request, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return nil, errorf(http.StatusRequestTimeout, "the request body did not arrive in time (--api-body-timeout); send it whole and promptly")
	}
	if err != nil {
		return nil, fmt.Errorf("api: read request body: %w", err)
	}
	if len(b) > limit {
		return nil, appspec.ErrTooLarge
	}
	return b, nil
}

// bodyID returns the "id" of a JSON object body, if it has one.
func bodyID(body []byte) (string, bool) {
	var probe struct {
		ID *string `json:"id"`
	}
	if json.Unmarshal(body, &probe) != nil || probe.ID == nil {
		return "", false
	}
	return *probe.ID, true
}

// rollbackVersion recognises Marathon's rollback: a PUT whose body holds
// "version" and nothing but "id" besides (Marathon's updateOrRollback).
// A body with other fields is an update; its "version", as in every body
// read from GET, is status and ignored.
func rollbackVersion(body []byte) (string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return "", false
	}
	raw, ok := m["version"]
	if !ok {
		return "", false
	}
	for k := range m {
		if k != "id" && k != "version" {
			return "", false
		}
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

// rollbackApp serves PUT /v2/apps/{id} {"version": V}: the app as it was
// at version V becomes the app again, as a new deployment (a scale when
// only instances differ, otherwise a restart onto that config).
func (s *Server) rollbackApp(w http.ResponseWriter, r *http.Request, id, version string) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	app, err := s.versionApp(ctx, id, version)
	if err != nil {
		return err
	}
	// The old version is judged by today's rules, like any write.
	if err := s.checkApp(ctx, app); err != nil {
		return err
	}
	res, err := s.dep.Apply(ctx, deploy.Op{Kind: deploy.OpUpdate, ID: id, App: app, Force: forced(r), URI: r.URL.Path, ClientIP: clientIP(r)})
	if err != nil {
		return err
	}
	writeDeployment(w, http.StatusOK, res.Deployment)
	return nil
}

// versionApp is app id as it was at version, to become the app again: 404
// with the path /version when the app or that version is not kept.
func (s *Server) versionApp(ctx context.Context, id, version string) (*appspec.App, error) {
	if s.dep.App(id) == nil {
		return nil, s.appMissing(id)
	}
	old, err := s.st.GetVersion(ctx, id, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &httpError{Status: http.StatusNotFound, Message: fmt.Sprintf("App '%s' has no version '%s'; list them with GET /v2/apps%s/versions", id, version, id),
			Details: []appspec.Detail{{Path: "/version", Errors: []string{"no such version of this app"}}}}
	}
	if err != nil {
		return nil, fmt.Errorf("api: read version %s of %s: %w", version, id, err)
	}
	app := *old
	app.Version = ""
	return &app, nil
}

func invalid(path string, errs ...string) *httpError {
	return &httpError{Status: http.StatusUnprocessableEntity, Message: "Object is not valid",
		Details: []appspec.Detail{{Path: path, Errors: errs}}}
}

// checkApp runs ValidateWith the server's limits and the submit-time
// secret check. Vault being
// unavailable does not refuse the app: the references were checked, and
// launches wait for Vault with a reason in /v2/queue.
func (s *Server) checkApp(ctx context.Context, app *appspec.App) error {
	if app.Pod == nil { // a pod is validated as a pod (pods.go)
		if err := app.ValidateWith(s.dep.Limits()); err != nil {
			return err
		}
	}
	if len(app.Env) == 0 && len(app.Secrets) == 0 {
		return nil
	}
	problems, err := s.secrets.Check(ctx, app)
	if err != nil {
		if !errors.Is(err, secrets.ErrUnavailable) {
			return fmt.Errorf("api: check the secrets of %s: %w", app.ID, err)
		}
		s.log.WithError(err).WithField("app", app.ID).Warn("vault unavailable at submit time; only the secret references were checked")
	}
	if len(problems) == 0 {
		return nil
	}
	he := &httpError{Status: http.StatusUnprocessableEntity, Message: "Object is not valid"}
	for _, p := range problems {
		// Problem errors name the secret and the reason, never a value.
		he.Details = append(he.Details, appspec.Detail{Path: p.Path, Errors: []string{p.Err.Error()}})
	}
	return he
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	app, err := appspec.Decode(bytes.NewReader(body))
	if err != nil {
		return err
	}
	if _, ok := bodyID(body); !ok {
		return invalid("/id", "is required: give the app an id such as /prod/shop/web")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.checkApp(ctx, app); err != nil {
		return err
	}
	res, err := s.dep.Apply(ctx, deploy.Op{Kind: deploy.OpCreate, ID: app.ID, App: app, Force: forced(r), URI: r.URL.Path, ClientIP: clientIP(r)})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v2/apps"+res.Record.App.ID)
	w.Header().Set("Marathon-Deployment-Id", res.Deployment.ID)
	// The new app's tasks only: a snapshot of every app per POST held the
	// scheduler's lock for a third of its time while 10,000 apps were put.
	writeRaw(w, http.StatusCreated, s.renderApp(res.Record, s.sched.SnapshotOf([]string{res.Record.App.ID}), embed{}))
	return nil
}

func forced(r *http.Request) bool { return r.URL.Query().Get("force") == "true" }

// putApp serves PUT and PATCH. PATCH merges the body's top-level fields
// into the app; so does PUT unless partialUpdate=false, which is
// Marathon's documented default (clients scale with PUT {"instances": 3}).
func (s *Server) putApp(w http.ResponseWriter, r *http.Request, id string, patch bool) error {
	id = appspec.CanonicalID(id)
	if err := appspec.CheckID(id); err != nil {
		return invalid("/id", strings.TrimPrefix(err.Error(), "appspec: "))
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if v, ok := rollbackVersion(body); ok {
		return s.rollbackApp(w, r, id, v)
	}
	app, err := s.updatedApp(id, body, patch || r.URL.Query().Get("partialUpdate") != "false", !patch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.checkApp(ctx, app); err != nil {
		return err
	}
	res, err := s.dep.Apply(ctx, deploy.Op{Kind: deploy.OpUpdate, ID: id, App: app, Force: forced(r), URI: r.URL.Path, ClientIP: clientIP(r)})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v2/apps"+id)
	}
	writeDeployment(w, status, res.Deployment)
	return nil
}

// updatedApp is app id after the update body: with partial, the body's
// top-level fields over the current app (Marathon's partialUpdate, and
// every PATCH); otherwise the body is the whole app. Without create, an
// app that does not exist is 404 (PATCH). Every error's path refers to
// what the client sent.
func (s *Server) updatedApp(id string, body []byte, partial, create bool) (*appspec.App, error) {
	app, err := appspec.Decode(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if bid, ok := bodyID(body); ok && appspec.CanonicalID(bid) != id {
		return nil, invalid("/id", fmt.Sprintf("the body's id %q differs from the id in the path %q; remove it from the body or make them equal", bid, id))
	}
	cur := s.dep.App(id)
	if !create && cur == nil {
		return nil, notFoundApp(id)
	}
	if err := isPod(cur); err != nil {
		return nil, err
	}
	if cur != nil && partial {
		if app, err = mergeApp(cur.App, body); err != nil {
			return nil, err
		}
	}
	app.ID = id
	return app, nil
}

// mergeApp overlays the body's top-level fields on the current app.
func mergeApp(cur *appspec.App, body []byte) (*appspec.App, error) {
	base, err := json.Marshal(cur)
	if err != nil {
		return nil, fmt.Errorf("api: encode the current app %s: %w", cur.ID, err)
	}
	var m, patch map[string]json.RawMessage
	if err := json.Unmarshal(base, &m); err != nil {
		return nil, fmt.Errorf("api: decode the current app %s: %w", cur.ID, err)
	}
	if err := json.Unmarshal(body, &patch); err != nil {
		return nil, fmt.Errorf("api: decode the patch of %s: %w", cur.ID, err) // Decode accepted it, so unreachable
	}
	for k, v := range patch {
		m[k] = v
	}
	delete(m, "version")
	merged, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("api: encode the merged app %s: %w", cur.ID, err)
	}
	return appspec.Decode(bytes.NewReader(merged))
}

// writeDeployment answers a write with the deployment it started, in the
// body and, as Marathon does, in the Marathon-Deployment-Id header.
func writeDeployment(w http.ResponseWriter, status int, d *deploy.Deployment) {
	w.Header().Set("Marathon-Deployment-Id", d.ID)
	writeJSON(w, status, deploymentResult{Version: d.Version, DeploymentID: d.ID})
}

type deploymentResult struct {
	Version      string `json:"version"`
	DeploymentID string `json:"deploymentId"`
}

func (s *Server) restartApp(w http.ResponseWriter, r *http.Request, id string) error {
	return s.appDeployment(w, r, id, deploy.OpRestart)
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request, id string) error {
	return s.appDeployment(w, r, id, deploy.OpStop)
}

// appDeployment runs a write that takes no body (restart, delete) and
// answers with the deployment it started.
func (s *Server) appDeployment(w http.ResponseWriter, r *http.Request, id string, kind deploy.OpKind) error {
	id = appspec.CanonicalID(id)
	if err := isPod(s.dep.App(id)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	res, err := s.dep.Apply(ctx, deploy.Op{Kind: kind, ID: id, Force: forced(r), URI: r.URL.Path, ClientIP: clientIP(r)})
	if err != nil {
		return err
	}
	if kind == deploy.OpStop {
		s.lastTF.forget(id)
	}
	writeDeployment(w, http.StatusOK, res.Deployment)
	return nil
}

func (s *Server) appTasks(w http.ResponseWriter, r *http.Request, id string) error {
	id = appspec.CanonicalID(id)
	m := s.dep.App(id)
	if m == nil {
		return notFoundApp(id)
	}
	ts := s.sched.SnapshotByApp().TasksOf(id)
	b := []byte(`{"tasks":[`)
	for i := range ts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTask(b, &ts[i], m)
	}
	if m.App.IsResident() {
		for i, sp := range s.sched.SuspendedOf(id) {
			if i > 0 || len(ts) > 0 {
				b = append(b, ',')
			}
			b = appendSuspended(b, sp, m.App)
		}
	}
	b = append(b, "]}"...)
	writeRaw(w, http.StatusOK, b)
	return nil
}

// killTasks serves DELETE /v2/apps/{id}/tasks (every task, or those on
// ?host=) and DELETE /v2/apps/{id}/tasks/{taskId}. With scale=true the
// app's instances shrink by the tasks killed, as a scale deployment;
// otherwise the scheduler replaces them.
func (s *Server) killTasks(w http.ResponseWriter, r *http.Request, id string, ids []string) error {
	id = appspec.CanonicalID(id)
	m := s.dep.App(id)
	if m == nil {
		return notFoundApp(id)
	}
	single := ids != nil
	wipe := r.URL.Query().Get("wipe") == "true"
	ts := s.sched.SnapshotByApp().TasksOf(id)
	var killed []framework.Task
	if single {
		for _, t := range ts {
			if t.ID == ids[0] {
				killed = append(killed, t)
			}
		}
		if len(killed) == 0 && wipe {
			return s.wipeSuspended(w, id, ids[0])
		}
		if len(killed) == 0 {
			return errorf(http.StatusNotFound, "Task '%s' does not exist in app %s; list its tasks with GET /v2/apps%s/tasks", ids[0], id, id)
		}
	} else {
		host := r.URL.Query().Get("host")
		for _, t := range ts {
			if t.Active() && (host == "" || t.Host == host) {
				killed = append(killed, t)
				ids = append(ids, t.ID)
			}
		}
	}
	if wipe && len(ids) > 0 {
		// Marked first, killed below: the reservations go once the tasks
		// ended, and their replacements (unless scaled) are new instances.
		if err := s.sched.WipeTasks(id, ids); err != nil {
			if errors.Is(err, framework.ErrUnknownTask) {
				return errorf(http.StatusNotFound, "%v; the task ended meanwhile, list the tasks again", err)
			}
			return fmt.Errorf("api: wipe tasks of %s: %w", id, err)
		}
	}
	if r.URL.Query().Get("scale") == "true" {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		res, err := s.dep.Apply(ctx, deploy.Op{Kind: deploy.OpKillScale, ID: id, TaskIDs: ids, Force: forced(r), URI: r.URL.Path, ClientIP: clientIP(r)})
		if err != nil {
			return err
		}
		writeDeployment(w, http.StatusOK, res.Deployment)
		return nil
	}
	if len(ids) > 0 {
		if err := s.sched.KillTasks(id, ids); err != nil {
			if errors.Is(err, framework.ErrUnknownTask) {
				return errorf(http.StatusNotFound, "%v; the task ended meanwhile, list the tasks again", err)
			}
			return fmt.Errorf("api: kill tasks of %s: %w", id, err)
		}
	}
	s.log.WithFields(logrus.Fields{"app": id, "tasks": len(ids)}).Info("tasks killed on request")
	var b []byte
	if single {
		b = append(b, `{"task":`...)
		b = appendTask(b, &killed[0], m)
		b = append(b, '}')
	} else {
		b = append(b, `{"tasks":[`...)
		for i := range killed {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTask(b, &killed[i], m)
		}
		b = append(b, "]}"...)
	}
	writeRaw(w, http.StatusOK, b)
	return nil
}

func (s *Server) appVersions(w http.ResponseWriter, r *http.Request, id string) error {
	id = appspec.CanonicalID(id)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	vs, err := s.st.ListVersions(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundApp(id)
	}
	if err != nil {
		return fmt.Errorf("api: list versions of %s: %w", id, err)
	}
	if vs == nil {
		vs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"versions": vs})
	return nil
}

func (s *Server) appVersion(w http.ResponseWriter, r *http.Request, id, version string) error {
	id = appspec.CanonicalID(id)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	app, err := s.st.GetVersion(ctx, id, version)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "App '%s' has no version '%s'; list them with GET /v2/apps%s/versions", id, version, id)
	}
	if err != nil {
		return fmt.Errorf("api: read version %s of %s: %w", version, id, err)
	}
	writeJSON(w, http.StatusOK, app)
	return nil
}

// listTasks serves GET /v2/tasks (?status=running|staging|…).
func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) error {
	// Marathon takes ?status=running and ?status[]=running&status[]=staging.
	q := r.URL.Query()
	statuses := map[string]bool{}
	for _, v := range append(q["status"], q["status[]"]...) {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			statuses[v] = true
		}
	}
	snap := s.listSnapshot()
	keep := func(t *framework.Task) bool {
		return len(statuses) == 0 || statuses[strings.ToLower(strings.TrimPrefix(t.State.String(), "TASK_"))]
	}
	if wantsPlainText(r) {
		return s.plainTasks(w, snap, keep)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"tasks":[`)
	buf := make([]byte, 0, 1024)
	first := true
	var m *deploy.Record
	for i := range snap.Tasks {
		t := &snap.Tasks[i]
		if !keep(t) {
			continue
		}
		if m == nil || m.App.ID != t.AppID {
			m = s.dep.App(t.AppID)
		}
		buf = buf[:0]
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendTask(buf, t, m)
		if _, err := bw.Write(buf); err != nil {
			return nil
		}
	}
	_, _ = bw.WriteString("]}\n")
	_ = bw.Flush()
	return nil
}

// wantsPlainText: the client asked for Marathon's text/plain task list
// (Accept: text/plain without application/json), as old service-discovery
// scripts (haproxy-marathon-bridge) do.
func wantsPlainText(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "text/plain") && !strings.Contains(a, "application/json")
}

// plainTasks writes Marathon's text/plain task list: per app and service
// port, a line "<app id with / as _>\t<service port>\t<host:port>…" of its
// running tasks (the format haproxy-marathon-bridge reads).
func (s *Server) plainTasks(w http.ResponseWriter, snap *framework.Snapshot, keep func(*framework.Task) bool) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, m := range s.dep.Apps() {
		ts := snap.TasksOf(m.App.ID)
		name := strings.ReplaceAll(strings.TrimPrefix(m.App.ID, "/"), "/", "_")
		for i, sp := range m.ServicePorts {
			line := name + "\t" + strconv.FormatUint(uint64(sp), 10) + "\t"
			for j := range ts {
				t := &ts[j]
				if t.State != mesos.TASK_RUNNING || !keep(t) || i >= len(t.Ports) {
					continue
				}
				line += t.Host + ":" + strconv.FormatUint(t.Ports[i], 10) + "\t"
			}
			if _, err := bw.WriteString(line + "\n"); err != nil {
				return nil // the client went away
			}
		}
	}
	_ = bw.Flush()
	return nil
}

// clientIP is the caller's address without the port, as Marathon's
// api_post_event has it.
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
