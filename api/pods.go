package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/appspec"
	"github.com/flotilla-sched/flotilla/deploy"
	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/store"
)

// Pods (/v2/pods) with Marathon's RAML semantics. A pod is stored and
// scheduled as an app carrying its pod (appspec.Pod.App), so writes go
// through the same deploy.Service as apps' (deployments, rollback,
// locking, versions); this file turns pod JSON into those writes and
// renders pods and their instances as Marathon does.

const (
	eventPodCreated = "pod_created_event"
	eventPodUpdated = "pod_updated_event"
	eventPodDeleted = "pod_deleted_event"
)

func (s *Server) podRoutes() []*route {
	return []*route{
		{method: "", pattern: "/v2/pods", serve: func(w http.ResponseWriter, r *http.Request, _ routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.podsRoot(w, r) })
		}},
		{method: "", pattern: "/v2/pods/{rest...}", serve: func(w http.ResponseWriter, r *http.Request, _ routeArgs) {
			s.do(w, r, func(w http.ResponseWriter, r *http.Request) error { return s.podsPath(w, r) })
		}},
	}
}

func (s *Server) podsRoot(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		out := []*appspec.Pod{}
		for _, m := range s.dep.Apps() {
			if p := m.App.PodSpec(); p != nil {
				out = append(out, p)
			}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	case http.MethodPost:
		return s.writePod(w, r, "", deploy.OpCreate)
	}
	methodNotAllowed(w, http.MethodGet, http.MethodPost)
	return nil
}

// podsPath serves /v2/pods/<id>[::status|::versions[/<v>]|::instances[/<instance>]]
// and /v2/pods/::status.
func (s *Server) podsPath(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/pods"), "/")
	id, suffix, _ := strings.Cut(rest, "::")
	id = appspec.CanonicalID(id)
	sub, arg, _ := strings.Cut(suffix, "/")
	allow := func(ms ...string) error { methodNotAllowed(w, ms...); return nil }
	if id == "/" {
		if suffix != "status" {
			return errorf(http.StatusNotFound, "no such endpoint %s %s; use /v2/pods, /v2/pods/::status or /v2/pods/<id>", r.Method, r.URL.Path)
		}
		if r.Method != http.MethodGet {
			return allow(http.MethodGet)
		}
		snap := s.sched.Snapshot()
		out := []podStatusJSON{}
		for _, m := range s.dep.Apps() {
			if m.App.Pod != nil {
				out = append(out, s.podStatus(m, snap))
			}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	switch sub {
	case "":
		if suffix != "" {
			break
		}
		switch r.Method {
		case http.MethodGet:
			m, err := s.podRecord(id)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, m.App.PodSpec())
			return nil
		case http.MethodPut:
			return s.writePod(w, r, id, deploy.OpUpdate)
		case http.MethodDelete:
			if _, err := s.podRecord(id); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			res, err := s.dep.Apply(ctx, deploy.Op{Kind: deploy.OpStop, ID: id, Force: forced(r)})
			if err != nil {
				return err
			}
			s.publishPod(eventPodDeleted, r, id)
			w.Header().Set("Marathon-Deployment-Id", res.Deployment.ID)
			w.WriteHeader(http.StatusAccepted)
			return nil
		}
		return allow(http.MethodDelete, http.MethodGet, http.MethodPut)
	case "status":
		if r.Method != http.MethodGet {
			return allow(http.MethodGet)
		}
		m, err := s.podRecord(id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, s.podStatus(m, s.sched.Snapshot()))
		return nil
	case "versions":
		if r.Method != http.MethodGet {
			return allow(http.MethodGet)
		}
		return s.podVersions(w, r, id, arg)
	case "instances":
		if r.Method != http.MethodDelete {
			return allow(http.MethodDelete)
		}
		return s.killPodInstances(w, r, id, arg)
	}
	return errorf(http.StatusNotFound, "no such endpoint %s %s; a pod has ::status, ::versions and ::instances", r.Method, r.URL.Path)
}

// podRecord is the pod's record, or Marathon's 404.
func (s *Server) podRecord(id string) (*deploy.Record, error) {
	m := s.dep.App(id)
	if m == nil || m.App.Pod == nil {
		if it, bad := s.dep.BrokenApp(id); bad {
			return nil, deploy.UnreadableApp(id, it)
		}
		return nil, errorf(http.StatusNotFound, "Pod '%s' does not exist; list the pods with GET /v2/pods", id)
	}
	return m, nil
}

// writePod serves POST /v2/pods (create) and PUT /v2/pods/{id} (create or
// replace; a pod differing only in instances is a scale).
func (s *Server) writePod(w http.ResponseWriter, r *http.Request, pathID string, kind deploy.OpKind) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	pod, err := appspec.DecodePod(bytes.NewReader(body))
	if err != nil {
		return err
	}
	if bid, ok := bodyID(body); !ok && pathID == "" {
		return invalid("/id", "is required: give the pod an id such as /prod/shop/web")
	} else if ok && pathID != "" && appspec.CanonicalID(bid) != pathID {
		return invalid("/id", fmt.Sprintf("the body's id %q differs from the id in the path %q; remove it from the body or make them equal", bid, pathID))
	}
	if pathID != "" {
		pod.ID = pathID
	}
	if err := pod.ValidateWith(s.dep.Limits()); err != nil {
		return err
	}
	if cur := s.dep.App(pod.ID); cur != nil && cur.App.Pod == nil {
		return errorf(http.StatusConflict, "An app with id [%s] already exists; pods and apps share one id space", pod.ID)
	}
	app := pod.App()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.checkApp(ctx, app); err != nil {
		return err
	}
	res, err := s.dep.Apply(ctx, deploy.Op{Kind: kind, ID: pod.ID, App: app, Force: forced(r)})
	if err != nil {
		var de *deploy.Error
		if errors.As(err, &de) && de.Kind == deploy.Conflict && kind == deploy.OpCreate {
			return errorf(http.StatusConflict, "Pod %s already exists; change it with PUT /v2/pods%s", pod.ID, pod.ID)
		}
		return err
	}
	w.Header().Set("Marathon-Deployment-Id", res.Deployment.ID)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v2/pods"+pod.ID)
		s.publishPod(eventPodCreated, r, pod.ID)
	} else {
		s.publishPod(eventPodUpdated, r, pod.ID)
	}
	writeJSON(w, status, res.Record.App.PodSpec())
	return nil
}

func (s *Server) publishPod(typ string, r *http.Request, id string) {
	s.publish(typ, struct {
		eventHeader
		ClientIP string `json:"clientIp"`
		URI      string `json:"uri"`
	}{s.header(typ), clientIP(r), "/v2/pods" + id})
}

func (s *Server) podVersions(w http.ResponseWriter, r *http.Request, id, version string) error {
	if _, err := s.podRecord(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if version == "" {
		vs, err := s.st.ListVersions(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("api: list versions of pod %s: %w", id, err)
		}
		if vs == nil {
			vs = []string{}
		}
		// Marathon answers a pod's versions as a bare array.
		writeJSON(w, http.StatusOK, vs)
		return nil
	}
	app, err := s.st.GetVersion(ctx, id, version)
	if errors.Is(err, store.ErrNotFound) || (err == nil && app.Pod == nil) {
		return errorf(http.StatusNotFound, "Pod '%s' has no version '%s'; list them with GET /v2/pods%s::versions", id, version, id)
	}
	if err != nil {
		return fmt.Errorf("api: read version %s of pod %s: %w", version, id, err)
	}
	writeJSON(w, http.StatusOK, app.PodSpec())
	return nil
}

// killPodInstances serves DELETE ::instances (a JSON array of instance
// ids) and DELETE ::instances/{instanceId}: the instances are killed and
// replaced, as Marathon does (the pod's instance count is unchanged).
func (s *Server) killPodInstances(w http.ResponseWriter, r *http.Request, id, one string) error {
	m, err := s.podRecord(id)
	if err != nil {
		return err
	}
	ids := []string{one}
	if one == "" {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		ids = nil
		if err := json.Unmarshal(body, &ids); err != nil {
			return &httpError{Status: http.StatusBadRequest, Message: "Invalid JSON",
				Details: []appspec.Detail{{Path: "/", Errors: []string{"want a JSON array of instance ids: " + err.Error()}}}}
		}
	}
	snap := s.sched.Snapshot()
	byID := map[string]framework.Task{}
	for _, t := range snap.TasksOf(id) {
		byID[t.ID] = t
	}
	var out []podInstanceJSON
	for _, iid := range ids {
		t, ok := byID[iid]
		if !ok {
			return errorf(http.StatusNotFound, "Pod '%s' has no instance '%s'; see GET /v2/pods%s::status", id, iid, id)
		}
		out = append(out, instanceStatus(m, t))
	}
	if err := s.sched.KillTasks(id, ids); err != nil {
		return fmt.Errorf("api: kill instances of pod %s: %w", id, err)
	}
	if one != "" {
		writeJSON(w, http.StatusOK, out[0])
		return nil
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// podStatusJSON is Marathon's PodStatus (pod-status.raml).
type podStatusJSON struct {
	ID          string            `json:"id"`
	Spec        *appspec.Pod      `json:"spec"`
	Status      string            `json:"status"` // DEPLOYING | STABLE | DEGRADED
	StatusSince string            `json:"statusSince"`
	Message     string            `json:"message,omitempty"`
	Instances   []podInstanceJSON `json:"instances"`
	LastUpdated string            `json:"lastUpdated"`
	LastChanged string            `json:"lastChanged"`
}

// podInstanceJSON is Marathon's PodInstanceStatus.
type podInstanceJSON struct {
	ID            string          `json:"id"`
	Status        string          `json:"status"` // PENDING | STAGING | STABLE | DEGRADED | TERMINAL
	StatusSince   string          `json:"statusSince"`
	AgentHostname string          `json:"agentHostname,omitempty"`
	AgentID       string          `json:"agentId,omitempty"`
	Resources     podResources    `json:"resources"`
	Containers    []containerJSON `json:"containers"`
	SpecReference string          `json:"specReference"`
	LastUpdated   string          `json:"lastUpdated"`
	LastChanged   string          `json:"lastChanged"`
}

type podResources struct {
	CPUs float64 `json:"cpus"`
	Mem  float64 `json:"mem"`
	Disk float64 `json:"disk"`
	GPUs int     `json:"gpus"`
}

// containerJSON is Marathon's ContainerStatus.
type containerJSON struct {
	Name        string          `json:"name"`
	Status      string          `json:"status"`
	StatusSince string          `json:"statusSince"`
	Message     string          `json:"message,omitempty"`
	Conditions  []conditionJSON `json:"conditions"`
	ContainerID string          `json:"containerId,omitempty"`
	Endpoints   []endpointJSON  `json:"endpoints"`
	Resources   podResources    `json:"resources"`
	LastUpdated string          `json:"lastUpdated"`
	LastChanged string          `json:"lastChanged"`
}

type conditionJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type endpointJSON struct {
	Name              string `json:"name"`
	AllocatedHostPort uint64 `json:"allocatedHostPort,omitempty"`
}

func (s *Server) podStatus(m *deploy.Record, snap *framework.Snapshot) podStatusJSON {
	spec := m.App.PodSpec()
	now := timestamp(snap.At)
	st := podStatusJSON{ID: m.App.ID, Spec: spec, Instances: []podInstanceJSON{}, LastUpdated: now, LastChanged: now, StatusSince: now}
	stable := 0
	for _, t := range snap.TasksOf(m.App.ID) {
		in := instanceStatus(m, t)
		if in.Status == "STABLE" && t.AppVersion == m.ConfigVersion {
			stable++
		}
		st.Instances = append(st.Instances, in)
	}
	switch {
	case s.dep.DeploymentOf(m.App.ID) != nil:
		st.Status = "DEPLOYING"
	case stable >= m.App.Instances:
		st.Status = "STABLE"
	default:
		st.Status = "DEGRADED"
		st.Message = fmt.Sprintf("%d of %d instances are stable", stable, m.App.Instances)
	}
	return st
}

func instanceStatus(m *deploy.Record, t framework.Task) podInstanceJSON {
	pod := m.App.Pod
	since := t.StagedAt
	if !t.StartedAt.IsZero() {
		since = t.StartedAt
	}
	in := podInstanceJSON{ID: t.ID, AgentHostname: t.Host, AgentID: t.AgentID, StatusSince: timestamp(since),
		SpecReference: "/v2/pods" + m.App.ID + "::versions/" + t.AppVersion,
		LastUpdated:   timestamp(since), LastChanged: timestamp(since), Containers: []containerJSON{}}
	switch {
	case t.State == mesos.TASK_STAGING || t.State == mesos.TASK_STARTING:
		in.Status = "STAGING"
	case t.IsHealthy():
		in.Status = "STABLE"
	case t.State == mesos.TASK_RUNNING:
		in.Status = "DEGRADED"
	case !t.Active():
		in.Status = "TERMINAL"
	default:
		in.Status = "PENDING"
	}
	hostPorts := map[string]uint64{}
	for _, e := range pod.HostEndpoints() {
		if e.Index < len(t.Ports) {
			hostPorts[e.Endpoint.Name] = t.Ports[e.Index]
		}
	}
	if er := pod.ExecutorResources; er != nil {
		in.Resources = podResources{CPUs: er.CPUs, Mem: er.Mem, Disk: er.Disk, GPUs: er.GPUs}
	}
	for _, cs := range t.Containers {
		c := containerJSON{Name: cs.Name, Status: cs.State.String(), StatusSince: timestamp(since), Message: cs.Message,
			Conditions: []conditionJSON{}, Endpoints: []endpointJSON{}, LastUpdated: timestamp(since), LastChanged: timestamp(since)}
		if cs.Healthy != nil {
			c.Conditions = append(c.Conditions, conditionJSON{Name: "healthy", Value: fmt.Sprint(*cs.Healthy)})
		}
		for _, ct := range pod.Containers {
			if ct.Name != cs.Name {
				continue
			}
			r := ct.Resources
			c.Resources = podResources{CPUs: r.CPUs, Mem: r.Mem, Disk: r.Disk, GPUs: r.GPUs}
			in.Resources.CPUs += r.CPUs
			in.Resources.Mem += r.Mem
			in.Resources.Disk += r.Disk
			in.Resources.GPUs += r.GPUs
			for _, e := range ct.Endpoints {
				c.Endpoints = append(c.Endpoints, endpointJSON{Name: e.Name, AllocatedHostPort: hostPorts[e.Name]})
			}
		}
		in.Containers = append(in.Containers, c)
	}
	sort.Slice(in.Containers, func(i, j int) bool { return in.Containers[i].Name < in.Containers[j].Name })
	return in
}

// isPod refuses an app write (/v2/apps) to an id that is a pod's.
func isPod(m *deploy.Record) error {
	if m != nil && m.App.Pod != nil {
		return errorf(http.StatusConflict, "%s is a pod; change it through /v2/pods%s", m.App.ID, m.App.ID)
	}
	return nil
}
