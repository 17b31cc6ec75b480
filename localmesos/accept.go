//lint:file-ignore ST1005 task validation messages are Mesos's own, word for word (master/validation.cpp), so frameworks see the same text

package localmesos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

// acceptLocked validates the offers, then each operation's tasks in order,
// launching the valid ones. Unused resources count as declined under the
// call's filters.
func (m *Master) acceptLocked(fw *framework, acc *scheduler.Call_Accept, log *logrus.Entry) {
	var offs []*offer
	invalid := ""
	seen := map[string]bool{}
	if len(acc.OfferIDs) == 0 {
		invalid = "No offers specified"
	}
	for _, id := range acc.OfferIDs {
		o := m.offers[id.Value]
		switch {
		case seen[id.Value]:
			invalid = "Offers contain a duplicate offer: " + id.Value
		case o == nil:
			invalid = "Offer " + id.Value + " is no longer valid"
		case o.fw != fw:
			invalid = "Offer " + id.Value + " has invalid framework"
		case len(offs) > 0 && offs[0].agent != o.agent:
			invalid = "Aggregated offers must belong to one single agent"
		}
		seen[id.Value] = true
		if o != nil && o.fw == fw {
			offs = append(offs, o)
		}
	}
	for _, o := range offs {
		m.removeOffer(o)
	}
	defer m.kickAllocator()
	if invalid != "" {
		log.WithField("reason", invalid).Info("accept with invalid offers")
		for _, ti := range launchedTasks(acc.Operations) {
			fw.send(updateEvent(m.masterStatus(fw, ti.TaskID.Value, ti.AgentID.Value, mesos.TASK_DROPPED, mesos.REASON_INVALID_OFFERS, invalid)))
		}
		return
	}
	a := offs[0].agent
	avail := newRset()
	for _, o := range offs {
		avail.add(o.res)
	}
	ids := map[string]bool{}
	taskError := func(ti *mesos.TaskInfo, reason mesos.TaskStatus_Reason, msg string) {
		log.WithFields(logrus.Fields{"task": ti.TaskID.Value, "reason": msg}).Info("task invalid")
		fw.send(updateEvent(m.masterStatus(fw, ti.TaskID.Value, ti.AgentID.Value, mesos.TASK_ERROR, reason, msg)))
	}
	for _, op := range acc.Operations {
		switch op.Type {
		case mesos.Offer_Operation_LAUNCH:
			if op.Launch == nil {
				continue
			}
			for i := range op.Launch.TaskInfos {
				ti := &op.Launch.TaskInfos[i]
				res, err := m.validateTask(fw, a, ti, nil, avail, ids)
				if err != nil {
					taskError(ti, mesos.REASON_TASK_INVALID, err.Error())
					continue
				}
				avail.sub(res)
				ids[ti.TaskID.Value] = true
				m.launchLocked(fw, a, *ti, res, ti.TaskID.Value, nil)
			}
		case mesos.Offer_Operation_LAUNCH_GROUP:
			if op.LaunchGroup == nil {
				continue
			}
			lg := op.LaunchGroup
			tis := lg.TaskGroup.Tasks
			groupErr := ""
			if lg.Executor.ExecutorID.Value == "" {
				groupErr = "ExecutorInfo must have an executor_id"
			} else if len(tis) == 0 {
				groupErr = "Task group is empty"
			}
			trial := avail.clone()
			var resList []rset
			groupExecRes := newRset()
			if groupErr == "" {
				execRes, err := fromMesos(lg.Executor.Resources)
				groupExecRes = execRes
				if err != nil {
					groupErr = "Executor has invalid resources: " + err.Error()
				} else if !trial.contains(execRes) {
					groupErr = "Executor uses more resources than available"
				} else {
					trial.sub(execRes)
				}
			}
			for i := range tis {
				if groupErr != "" {
					break
				}
				res, err := m.validateTask(fw, a, &tis[i], &lg.Executor, trial, ids)
				if err == nil {
					err = validateGroupTask(&tis[i])
				}
				if err != nil {
					groupErr = "Task '" + tis[i].TaskID.Value + "' is invalid: " + err.Error()
					break
				}
				trial.sub(res)
				resList = append(resList, res)
			}
			if groupErr == "" {
				groupErr = validateGroupExecutor(&lg.Executor, groupExecRes)
			}
			if groupErr != "" {
				for i := range tis {
					taskError(&tis[i], mesos.REASON_TASK_GROUP_INVALID, groupErr)
				}
				continue
			}
			avail = trial
			m.launchGroupLocked(fw, a, lg, groupExecRes, resList, ids)
		case mesos.Offer_Operation_RESERVE, mesos.Offer_Operation_UNRESERVE, mesos.Offer_Operation_CREATE, mesos.Offer_Operation_DESTROY:
			avail = m.operationLocked(fw, a, offs[0].role, &op, avail, log)
		default:
			m.dropOperation(fw, &op, "operation "+op.Type.String()+" is not supported by localmesos", log)
		}
	}
	m.addFilterLocked(fw, a, avail, acc.Filters)
}

func launchedTasks(ops []mesos.Offer_Operation) []*mesos.TaskInfo {
	var out []*mesos.TaskInfo
	for i := range ops {
		switch {
		case ops[i].Launch != nil:
			for j := range ops[i].Launch.TaskInfos {
				out = append(out, &ops[i].Launch.TaskInfos[j])
			}
		case ops[i].LaunchGroup != nil:
			for j := range ops[i].LaunchGroup.TaskGroup.Tasks {
				out = append(out, &ops[i].LaunchGroup.TaskGroup.Tasks[j])
			}
		}
	}
	return out
}

// validateTask follows Mesos's validation::task: id, uniqueness, agent,
// command xor executor, resources within the offer, container rules. groupExec
// is set for LAUNCH_GROUP tasks, which carry no executor of their own. The
// messages never include environment values (secrets live there).
func (m *Master) validateTask(fw *framework, a *agent, ti *mesos.TaskInfo, groupExec *mesos.ExecutorInfo, avail rset, ids map[string]bool) (rset, error) {
	id := ti.TaskID.Value
	if err := validateID(id); err != nil {
		return rset{}, fmt.Errorf("Task ID is invalid: %w", err)
	}
	if fw.tasks[id] != nil || ids[id] {
		return rset{}, fmt.Errorf("Task has duplicate ID: %s", id)
	}
	if ti.AgentID.Value != a.id {
		return rset{}, fmt.Errorf("Task uses invalid agent: %s", ti.AgentID.Value)
	}
	if groupExec == nil && (ti.Command == nil) == (ti.Executor == nil) {
		return rset{}, fmt.Errorf("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present")
	}
	if groupExec != nil && ti.Executor != nil {
		return rset{}, fmt.Errorf("'TaskInfo.executor' must not be set in a task group")
	}
	res, err := fromMesos(ti.Resources)
	if err != nil {
		return rset{}, fmt.Errorf("Task uses invalid resources: %w", err)
	}
	if res.empty() {
		return rset{}, fmt.Errorf("Task uses no resources")
	}
	if ti.Executor != nil {
		er, err := fromMesos(ti.Executor.Resources)
		if err != nil {
			return rset{}, fmt.Errorf("Executor uses invalid resources: %w", err)
		}
		res.add(er)
	}
	if !avail.contains(res) {
		return rset{}, fmt.Errorf("Task uses more resources %s than available %s", res, avail)
	}
	if c := ti.Container; c != nil {
		if err := validateContainer(ti); err != nil {
			return rset{}, err
		}
	}
	if err := executor.ValidateHealthCheck(ti.HealthCheck); err != nil {
		return rset{}, fmt.Errorf("Task's health check is invalid: %w", err)
	}
	return res, nil
}

func validateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("ID must not be empty")
	case id == "." || id == "..":
		return fmt.Errorf("'.' and '..' are reserved")
	case strings.ContainsRune(id, '/'):
		return fmt.Errorf("'/' is not allowed")
	}
	for _, c := range id {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("contains invalid characters")
		}
	}
	return nil
}

func validateContainer(ti *mesos.TaskInfo) error {
	c := ti.Container
	if c.Type == nil {
		return fmt.Errorf("ContainerInfo has no type")
	}
	switch *c.Type {
	case mesos.ContainerInfo_DOCKER:
		d := c.Docker
		if d == nil {
			return fmt.Errorf("DockerInfo 'docker' is not set for DOCKER typed ContainerInfo")
		}
		if d.Image == "" {
			return fmt.Errorf("DockerInfo 'image' is not set")
		}
		// Network mode, network_infos and port mappings: one owner, the
		// docker executor's reading of Docker::RunOptions::create.
		if err := executor.ValidateDockerNetwork(ti); err != nil {
			return err
		}
	case mesos.ContainerInfo_MESOS:
		if c.Docker != nil {
			return fmt.Errorf("DockerInfo 'docker' is set for MESOS typed ContainerInfo")
		}
	default:
		return fmt.Errorf("ContainerInfo type %s is not supported", c.Type.String())
	}
	return nil
}

// launchLocked records the task as STAGING on the agent and starts it
// outside the lock. Mesos sends no update for STAGING.
func (m *Master) launchLocked(fw *framework, a *agent, ti mesos.TaskInfo, res rset, executorID string, grp *executor.Group) {
	t := &task{id: ti.TaskID.Value, info: ti, fw: fw, agent: a, res: res, executorID: executorID,
		state: mesos.TASK_STAGING, agentState: mesos.TASK_STAGING}
	t.gpus = a.assignGPUs(res)
	a.free.sub(res)
	fw.tasks[t.id] = t
	a.tasks[t.id] = t
	sandbox := ""
	if a.workDir != "" {
		sandbox = filepath.Join(a.workDir, "frameworks", fw.id, "executors", executorID, "runs", "latest")
		if executorID != t.id {
			// A task of a group: its own directory inside the executor's
			// sandbox, as Mesos lays out nested containers.
			sandbox = filepath.Join(sandbox, "tasks", t.id)
		}
	}
	et := executor.Task{Info: a.volumeMounts(ti, res), FrameworkID: fw.id, AgentID: a.id, Hostname: a.hostname, Sandbox: sandbox, Networks: m.cfg.Networks, GPUs: t.gpus}
	if sandbox != "" && executorID != t.id {
		et.ParentSandbox = filepath.Dir(filepath.Dir(sandbox))
	}
	et.Group = grp
	m.wg.Add(1)
	go m.runLaunch(a, t, et)
}

func (m *Master) runLaunch(a *agent, t *task, et executor.Task) {
	defer m.wg.Done()
	log := m.log.WithFields(logrus.Fields{"task": t.id, "agent": a.id, "framework": et.FrameworkID})
	if et.Sandbox != "" {
		if err := os.MkdirAll(et.Sandbox, 0o755); err != nil {
			log.WithError(err).Error("create sandbox")
			m.enqueue(func() {
				t.launched = true
				a.reportLocked(t.id, executor.Status{State: mesos.TASK_FAILED, Reason: mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum(),
					Message: "Failed to create sandbox: " + err.Error()})
			})
			return
		}
		// Attached before the launch, so its output can be read from
		// the first byte (the Mesos agent attaches before it starts the
		// executor, too).
		dir := et.Sandbox
		if t.executorID != t.id {
			// The group's executor sandbox is what /files serves under
			// the executor's virtual path; the task's is inside it.
			dir = filepath.Dir(filepath.Dir(dir))
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			real = dir
		}
		a.files.attach(&sandbox{dir: real, virtual: sandboxVirtual(et.FrameworkID, t.executorID)})
	}
	err := a.exec.Launch(m.ctx, et, a.report)
	if err != nil {
		log.WithError(err).Info("launch failed")
	}
	m.enqueue(func() {
		t.launched = true
		if t.killPend != nil && err == nil {
			grace := *t.killPend
			t.killPend = nil
			m.killLocked(t, grace)
		}
	})
}
