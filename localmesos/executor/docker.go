package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/internal/portfwd"
)

// Mesos's docker containerizer floors (src/slave/constants.hpp).
const (
	cpuSharesPerCPU = 1024
	minCPUShares    = 2
	minMemoryBytes  = 32 << 20
)

// DockerSandbox is where a task's sandbox is mounted inside its container,
// as Mesos's docker containerizer mounts it.
const DockerSandbox = "/mnt/mesos/sandbox"

// ownerLabel marks the containers of one Docker executor so Close can find
// every one of them, even those whose launch was interrupted.
const ownerLabel = "localmesos.executor"

// DockerConfig configures a Docker executor.
type DockerConfig struct {
	// Clock drives kill grace periods and health checks; default clock.Real.
	Clock clock.Clock
	// Log is the root logger; default discards.
	Log *logrus.Logger
	// Host is the engine's address (unix:///var/run/docker.sock); default
	// DOCKER_HOST, else the engine's default socket.
	Host string
	// Forwarding is how BRIDGE/USER host ports reach their containers:
	// ForwardAuto ("" too) uses the kernel (a veth pair and nftables DNAT,
	// Docker's --userland-proxy=false) for each task where it can be set
	// up and the user-space forwarder where not; ForwardKernel is the same
	// but NewDocker fails if this machine cannot do kernel forwarding at
	// all (no ip, nsenter or nft, or no permission); ForwardUserland
	// always uses the user-space forwarder. See internal/portfwd.
	Forwarding string
}

// Docker runs tasks as Docker containers the way Mesos's docker
// containerizer does: the task's network (HOST and NONE as asked; BRIDGE
// and USER in a namespace of their own with mapped host ports forwarded
// into it by the kernel or in user space, see DockerConfig.Forwarding and
// internal/portfwd), CPU shares and memory limit from the
// task's resources, the sandbox mounted at /mnt/mesos/sandbox, container
// name mesos-<uuid>.
type Docker struct {
	cli   *client.Client
	clock clock.Clock
	log   *logrus.Entry
	owner string
	// forwarding is ForwardAuto, ForwardKernel or ForwardUserland.
	forwarding string
	// fellBack is set once a task fell back to the user-space forwarder,
	// so that the reason is logged as a warning once, then at debug.
	fellBack atomic.Bool
	// forwardKernel is portfwd.ForwardKernel; tests make it fail.
	forwardKernel func(context.Context, string, []portfwd.Mapping, *portfwd.NetNS, portfwd.KernelConfig) (*portfwd.Kernel, error)

	mu     sync.Mutex
	closed bool
	// used records that a container was ever created, so that Close of an
	// unused executor (engine down) does not wait on the engine.
	used  bool
	tasks map[string]*dockerTask
	// groups are the network namespaces of task groups on a network of
	// their own, by executor id (docker_group.go).
	groups map[string]*dockerGroup
	wg     sync.WaitGroup
}

type dockerTask struct {
	id        string
	group     string // the task group whose network this task's container holds; "" if none
	container string // id
	name      string
	cpus      float64
	mem       uint64
	grace     time.Duration
	sandbox   string
	fwd       *portfwd.Forwarder // BRIDGE/USER with port mappings: forwarding, or only holding the ports for kern
	kern      *portfwd.Kernel    // kernel forwarding, when set up
	ns        *portfwd.NetNS     // BRIDGE/USER
	done      chan struct{}
	cancel    context.CancelFunc // ends waiter and health checker (Close)
	logsDone  chan struct{}      // closed when the output follower ends; nil without a sandbox
	stopLogs  context.CancelFunc

	mu           sync.Mutex
	report       Report
	terminated   bool
	killed       bool
	healthKilled bool
	silent       bool
}

var _ Executor = (*Docker)(nil)

// NewDocker connects to the Docker engine, negotiating the API version (the
// test bed's engine is 20.10, API 1.41). It does not contact the engine;
// call Ping to find out whether it answers.
func NewDocker(cfg DockerConfig) (*Docker, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = logging.Discard()
	}
	if err := CheckForwarding(cfg.Forwarding); err != nil {
		return nil, err
	}
	if cfg.Forwarding == "" {
		cfg.Forwarding = ForwardAuto
	}
	if cfg.Forwarding == ForwardKernel {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := portfwd.KernelSupported(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("executor: port forwarding %q: %w", ForwardKernel, err)
		}
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("executor: docker client: %w", err)
	}
	owner := newUUID()
	return &Docker{
		cli:   cli,
		clock: cfg.Clock,
		log:   logging.Component(cfg.Log, "executor").WithFields(logrus.Fields{"executor": "docker", "owner": owner}),
		owner: owner,
		tasks: make(map[string]*dockerTask),

		forwarding:    cfg.Forwarding,
		forwardKernel: portfwd.ForwardKernel,
	}, nil
}

// Ping reports whether the engine answers.
func (d *Docker) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return fmt.Errorf("executor: docker engine does not answer: %w", err)
	}
	return nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// dockerCommand follows Mesos's Docker::RunOptions::create: shell=true
// overrides the entrypoint with /bin/sh and passes "-c value"; shell=false
// keeps the image's entrypoint and passes value (if any) then arguments,
// so an empty value runs the image's default command.
func dockerCommand(ci *mesos.CommandInfo) (entrypoint, cmd []string, err error) {
	if ci.GetShell() {
		if ci.GetValue() == "" {
			return nil, nil, errors.New("shell specified but no command value provided")
		}
		return []string{"/bin/sh"}, []string{"-c", ci.GetValue()}, nil
	}
	if ci.Value != nil && *ci.Value != "" {
		cmd = append(cmd, *ci.Value)
	}
	cmd = append(cmd, ci.GetArguments()...)
	return nil, cmd, nil
}

// Launch creates and starts the task's container and returns once
// TASK_RUNNING is reported; on failure (missing image included) it reports
// TASK_FAILED and returns the same error.
func (d *Docker) Launch(ctx context.Context, t Task, report Report) error {
	if !t.Group.networked() {
		return d.launch(ctx, t, report, nil)
	}
	g := d.group(t.Group.ID)
	if !t.Group.Leader {
		return d.launch(ctx, t, report, g)
	}
	t.name = "mesos-" + newUUID()
	err := d.launch(ctx, t, report, g)
	g.settle(t.name, err)
	return err
}

// launch is Launch of one task; g is its group's network, if it has one.
func (d *Docker) launch(ctx context.Context, t Task, report Report, g *dockerGroup) error {
	id, err := launchCheck(ctx, "docker", &t, report)
	if err != nil {
		return err
	}
	t.Info = asDockerTask(t.Info)
	ci := t.Info.Command
	di := t.Info.GetContainer().GetDocker()
	switch {
	case ci == nil:
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: docker launch %s: task has no command", id))
	case di == nil || di.GetImage() == "":
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: docker launch %s: task has no docker image", id))
	}
	if err := ValidateHealthCheck(t.Info.HealthCheck); err != nil {
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: docker launch %s: %w", id, err))
	}
	nw, err := d.planNetwork(ctx, &t, g)
	if err != nil {
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: docker launch %s: Failed to create docker run options: %w", id, err))
	}
	entrypoint, cmd, err := dockerCommand(ci)
	if err != nil {
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: docker launch %s: %w", id, err))
	}
	taskEnv, err := commandEnv(ci)
	if err != nil {
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: docker launch %s: %w", id, err))
	}
	name := t.name
	if name == "" {
		name = "mesos-" + newUUID()
	}
	env := append(append(mesosEnv(t, DockerSandbox), "MESOS_CONTAINER_NAME="+name), taskEnv...)
	log := d.log.WithFields(logrus.Fields{"task": id, "container": name, "image": di.GetImage(), "network": di.GetNetwork().String()})

	unreserve, err := reserve(&d.mu, &d.closed, d.tasks, "docker", id)
	if err != nil {
		return err
	}

	report(id, Status{State: mesos.TASK_STARTING})
	if _, err := d.cli.ImageInspect(ctx, di.GetImage()); err != nil {
		unreserve()
		if cerrdefs.IsNotFound(err) {
			err = fmt.Errorf("image %s not found on this agent and there is no registry to pull from", di.GetImage())
		}
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: failed to launch container: %w", id, err))
	}
	if err := checkUserNetwork(nw, t.Networks); err != nil {
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: failed to launch container: %w", id, err))
	}
	binds, err := dockerBinds(t.Info.Container, t.Sandbox, t.ParentSandbox)
	if err != nil {
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: %w", id, err))
	}
	if len(ci.URIs) > 0 {
		if t.Sandbox == "" {
			unreserve()
			return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: the task has uris to fetch but this agent keeps no sandbox", id))
		}
		if err := Fetch(ctx, t.Sandbox, ci.URIs, http.DefaultClient); err != nil {
			unreserve()
			return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: %w", id, err))
		}
	}
	fwd, err := d.bindPorts(t, nw, log)
	if err != nil {
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: failed to launch container: %w", id, err))
	}

	cpus, mem := taskLimits(t.Info)
	labels := map[string]string{ownerLabel: d.owner}
	for _, l := range t.Info.GetLabels().GetLabels() {
		labels[l.GetKey()] = l.GetValue()
	}
	hostCfg := &container.HostConfig{NetworkMode: container.NetworkMode(nw.mode)}
	if cpus > 0 {
		hostCfg.CPUShares = max(int64(cpus*cpuSharesPerCPU), minCPUShares)
	}
	if mem > 0 {
		hostCfg.Memory = max(int64(mem), minMemoryBytes)
	}
	hostCfg.Binds = append(hostCfg.Binds, binds...)
	if t.Sandbox != "" {
		hostCfg.Binds = append([]string{t.Sandbox + ":" + DockerSandbox}, hostCfg.Binds...)
	}
	cfg := &container.Config{Image: di.GetImage(), Env: env, Labels: labels, Entrypoint: entrypoint, Cmd: cmd}
	// CommandInfo.user becomes docker run --user: a name the image's
	// /etc/passwd knows, or uid[:gid]; Docker fails the start otherwise.
	cfg.User = t.Info.GetCommand().GetUser()
	if t.Sandbox != "" {
		// Mesos's docker containerizer runs the command in the sandbox
		// (docker run -w /mnt/mesos/sandbox), where fetched files are.
		cfg.WorkingDir = DockerSandbox
	}
	d.mu.Lock()
	d.used = true
	d.mu.Unlock()
	created, err := d.cli.ContainerCreate(ctx, cfg, hostCfg, nil, nil, name)
	if err != nil {
		closeNetwork(fwd, nil, nil, log)
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: failed to create container: %w", id, err))
	}
	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		closeNetwork(fwd, nil, nil, log)
		d.remove(created.ID, log)
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: failed to start container: %w", id, err))
	}
	var ns *portfwd.NetNS
	var kern *portfwd.Kernel
	if nw.isolated {
		ns, err = d.openNamespace(ctx, created.ID)
		if err != nil {
			closeNetwork(fwd, nil, nil, log)
			d.remove(created.ID, log)
			unreserve()
			return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: docker launch %s: failed to launch container: %w", id, err))
		}
		kern = d.forward(ctx, t, nw, fwd, ns, log)
	}

	wctx, cancel := context.WithCancel(context.Background())
	dt := &dockerTask{
		id: id, container: created.ID, name: name, cpus: cpus, mem: mem, grace: killGrace(t.Info),
		sandbox: t.Sandbox, fwd: fwd, kern: kern, ns: ns, done: make(chan struct{}), cancel: cancel, report: report,
	}
	if g != nil && t.Group.Leader {
		dt.group = t.Group.ID
	}
	dt.mu.Lock()
	d.mu.Lock()
	if d.closed {
		// Close ran while we were creating: it could not see this one.
		d.mu.Unlock()
		dt.mu.Unlock()
		cancel()
		closeNetwork(fwd, kern, ns, log)
		d.remove(created.ID, log)
		return fmt.Errorf("executor: docker launch %s: %w", id, ErrClosed)
	}
	d.tasks[id] = dt
	d.wg.Add(1) // the waiter, started below
	if t.Sandbox != "" {
		// Under d.mu with the task stored, so Close waits for it; the
		// engine's log stream starts at the container's first line.
		lctx, stop := context.WithCancel(context.Background())
		dt.logsDone, dt.stopLogs = make(chan struct{}), stop
		d.wg.Add(1)
		go d.followLogs(lctx, dt, log)
	}
	d.mu.Unlock()
	report(id, Status{State: mesos.TASK_RUNNING})
	dt.mu.Unlock()
	log.Info("task running")

	go d.wait(wctx, dt, log)
	if hc := t.Info.HealthCheck; hc != nil {
		var dial dialer
		if ns != nil {
			dial = nsDialer(ns)
		}
		pr := networkProbe(hc, dial)
		if pr == nil {
			pr = d.execProbe(created.ID, hc.Command)
		}
		// Not started once Close has begun: Close stops the container.
		spawn(&d.mu, &d.closed, &d.wg, func() {
			defer func() {
				if r := recover(); r != nil {
					log.WithField("panic", r).WithField("stack", string(debug.Stack())).Error("health checker panicked")
				}
			}()
			h := &healthChecker{
				clock: d.clock, def: hc, probe: pr, log: log.WithField("check", hc.GetType().String()),
				report: func(healthy bool) {
					dt.mu.Lock()
					defer dt.mu.Unlock()
					if !dt.terminated && !dt.killed {
						dt.report(dt.id, healthStatus(healthy))
					}
				},
				kill: func() { d.kill(dt, dt.grace, true, log) },
			}
			h.run(wctx)
		})
	}
	return nil
}

// wait follows the container to its end, lets the last of its output
// reach the sandbox (followLogs), removes it and reports.
func (d *Docker) wait(ctx context.Context, dt *dockerTask, log *logrus.Entry) {
	defer d.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			log.WithField("panic", r).WithField("stack", string(debug.Stack())).Error("docker waiter panicked")
		}
	}()
	var st Status
	okc, errc := d.cli.ContainerWait(ctx, dt.container, container.WaitConditionNotRunning)
	select {
	case res := <-okc:
		st = d.exitStatus(dt, res, log)
	case err := <-errc:
		st = Status{State: mesos.TASK_FAILED, Message: fmt.Sprintf("Failed to wait for container: %v", err)}
	}
	dt.cancel()
	// Before the terminal status: once a scheduler hears of the end, the
	// host ports may be offered and bound again.
	closeNetwork(dt.fwd, dt.kern, dt.ns, log)
	d.forget(dt.group)
	close(dt.done)
	d.drainLogs(dt, log)
	d.remove(dt.container, log)

	d.mu.Lock()
	delete(d.tasks, dt.id)
	d.mu.Unlock()

	dt.mu.Lock()
	defer dt.mu.Unlock()
	dt.terminated = true
	switch {
	case dt.healthKilled:
		st = Status{State: mesos.TASK_KILLED, Message: "Task killed after failing health checks; " + st.Message}
		f := false
		st.Healthy = &f
	case dt.killed:
		st = Status{State: mesos.TASK_KILLED, Message: st.Message}
	}
	log.WithFields(logrus.Fields{"state": st.State.String(), "message": st.Message}).Info("task ended")
	if !dt.silent {
		dt.report(dt.id, st)
	}
}

func (d *Docker) exitStatus(dt *dockerTask, res container.WaitResponse, log *logrus.Entry) Status {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ins, err := d.cli.ContainerInspect(ctx, dt.container); err == nil && ins.State != nil && ins.State.OOMKilled {
		r := mesos.REASON_CONTAINER_LIMITATION_MEMORY
		return Status{State: mesos.TASK_FAILED, Reason: &r, Message: "Memory limit exceeded"}
	} else if err != nil {
		log.WithError(err).Debug("inspecting the ended container")
	}
	if res.Error != nil && res.Error.Message != "" {
		return Status{State: mesos.TASK_FAILED, Message: "Container failed: " + res.Error.Message}
	}
	if res.StatusCode == 0 {
		return Status{State: mesos.TASK_FINISHED, Message: "Container exited with status 0"}
	}
	return Status{State: mesos.TASK_FAILED, Message: fmt.Sprintf("Container exited with status %d", res.StatusCode)}
}

func (d *Docker) remove(containerID string, log *logrus.Entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.cli.ContainerRemove(ctx, containerID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		log.WithError(err).Warn("removing container")
	}
}

// Kill sends SIGTERM to the container and SIGKILL after grace (what docker
// stop does, timed by the injected clock). It returns at once; TASK_KILLED
// is reported when the container is gone.
func (d *Docker) Kill(ctx context.Context, taskID string, grace time.Duration) error {
	d.mu.Lock()
	dt, ok := d.tasks[taskID]
	d.mu.Unlock()
	if !ok || dt == nil {
		return fmt.Errorf("executor: docker kill: unknown task %q", taskID)
	}
	if err := d.kill(dt, grace, false, d.log.WithField("task", taskID)); err != nil {
		return fmt.Errorf("executor: docker kill %s: %w", taskID, err)
	}
	return nil
}

func (d *Docker) kill(dt *dockerTask, grace time.Duration, byHealth bool, log *logrus.Entry) error {
	dt.mu.Lock()
	already := dt.killed
	dt.killed = true
	if byHealth {
		dt.healthKilled = true
	}
	dt.mu.Unlock()
	if already {
		return nil
	}
	signal := func(sig string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := d.cli.ContainerKill(ctx, dt.container, sig)
		if err != nil && !cerrdefs.IsNotFound(err) && !isNotRunning(err) {
			log.WithError(err).WithField("signal", sig).Warn("signalling container")
			return err
		}
		return nil
	}
	if grace <= 0 {
		return signal("SIGKILL")
	}
	if err := signal("SIGTERM"); err != nil {
		// Still try to make it stop.
		return signal("SIGKILL")
	}
	t := d.clock.NewTimer(grace)
	// After Close has begun there is no grace to time: Close removes the
	// container by force.
	if !spawn(&d.mu, &d.closed, &d.wg, func() {
		defer t.Stop()
		select {
		case <-t.C():
			_ = signal("SIGKILL")
		case <-dt.done:
		}
	}) {
		t.Stop()
	}
	return nil
}

// isNotRunning recognises the engine's 409 answer to a kill of a container
// that has already exited; the waiter reports that end.
func isNotRunning(err error) bool {
	return strings.Contains(err.Error(), "is not running")
}

// execProbe runs a COMMAND check inside the container with docker exec, as
// Mesos's docker executor does: sh -c value for shell commands.
func (d *Docker) execProbe(containerID string, ci *mesos.CommandInfo) probe {
	return func(ctx context.Context) error {
		var cmd []string
		if ci.GetShell() {
			cmd = []string{"sh", "-c", ci.GetValue()}
		} else {
			cmd = append([]string{ci.GetValue()}, ci.GetArguments()...)
		}
		env, err := commandEnv(ci)
		if err != nil {
			return err
		}
		ex, err := d.cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true})
		if err != nil {
			return fmt.Errorf("executor: command health check: %w", err)
		}
		att, err := d.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
		if err != nil {
			return fmt.Errorf("executor: command health check: %w", err)
		}
		go func() {
			<-ctx.Done()
			att.Close()
		}()
		_, _ = io.Copy(io.Discard, att.Reader)
		att.Close()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("executor: command health check: %w", err)
		}
		ins, err := d.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return fmt.Errorf("executor: command health check: %w", err)
		}
		if ins.Running {
			return errors.New("executor: command health check: still running after its output closed")
		}
		if ins.ExitCode != 0 {
			return fmt.Errorf("executor: command health check exited with status %d", ins.ExitCode)
		}
		return nil
	}
}

// Stats reads one sample of the docker stats API and reshapes it as
// Mesos's ResourceStatistics; limits come from the task's resources, as
// Mesos reports them.
func (d *Docker) Stats(ctx context.Context, taskID string) (*mesos.ResourceStatistics, error) {
	d.mu.Lock()
	dt, ok := d.tasks[taskID]
	d.mu.Unlock()
	if !ok || dt == nil {
		return nil, fmt.Errorf("executor: docker stats: unknown task %q", taskID)
	}
	resp, err := d.cli.ContainerStatsOneShot(ctx, dt.container)
	if err != nil {
		return nil, fmt.Errorf("executor: docker stats %s: %w", taskID, err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("executor: docker stats %s: decoding: %w", taskID, err)
	}
	return dockerStats(&s, d.clock.Now(), dt.cpus, dt.mem), nil
}

func dockerStats(s *container.StatsResponse, now time.Time, cpus float64, mem uint64) *mesos.ResourceStatistics {
	user := float64(s.CPUStats.CPUUsage.UsageInUsermode) / 1e9
	sys := float64(s.CPUStats.CPUUsage.UsageInKernelmode) / 1e9
	ms := s.MemoryStats
	// cgroup v1 names anonymous memory "rss", v2 "anon"; Mesos's
	// mem_rss_bytes is anonymous memory since 0.23.
	rss, ok := ms.Stats["rss"]
	if !ok {
		rss = ms.Stats["anon"]
	}
	total := ms.Usage
	rs := &mesos.ResourceStatistics{
		Timestamp:          unixSeconds(now),
		CPUsUserTimeSecs:   &user,
		CPUsSystemTimeSecs: &sys,
		MemRSSBytes:        &rss,
		MemTotalBytes:      &total,
	}
	if c, ok := ms.Stats["cache"]; ok {
		rs.MemCacheBytes = &c
	} else if c, ok := ms.Stats["file"]; ok {
		rs.MemCacheBytes = &c
	}
	if p := s.PidsStats.Current; p > 0 {
		n := uint32(p)
		rs.Processes = &n
	}
	if t := s.CPUStats.ThrottlingData; t.Periods > 0 {
		np, nt := uint32(t.Periods), uint32(t.ThrottledPeriods)
		secs := float64(t.ThrottledTime) / 1e9
		rs.CPUsNrPeriods, rs.CPUsNrThrottled, rs.CPUsThrottledTimeSecs = &np, &nt, &secs
	}
	setLimits(rs, cpus, mem)
	return rs
}

// Close removes every container of this executor without reporting, and
// closes the client.
func (d *Docker) Close() error {
	d.mu.Lock()
	d.closed = true
	used := d.used
	var all []*dockerTask
	for _, dt := range d.tasks {
		if dt != nil {
			all = append(all, dt)
		}
	}
	d.mu.Unlock()
	for _, dt := range all {
		dt.mu.Lock()
		dt.silent = true
		dt.killed = true
		dt.mu.Unlock()
	}
	var errs []error
	if !used {
		if err := d.cli.Close(); err != nil {
			return fmt.Errorf("executor: docker close: %w", err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", ownerLabel+"="+d.owner))})
	if err != nil {
		errs = append(errs, fmt.Errorf("executor: docker close: listing containers: %w", err))
	}
	for _, c := range list {
		if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("executor: docker close: removing %s: %w", c.ID, err))
		}
	}
	for _, dt := range all {
		dt.cancel()
	}
	d.wg.Wait()
	if err := d.cli.Close(); err != nil {
		errs = append(errs, fmt.Errorf("executor: docker close: %w", err))
	}
	return errors.Join(errs...)
}
