package executor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/logging"
)

// DefaultKillGrace is the grace between SIGTERM and SIGKILL when the task
// has no kill_policy and the executor itself kills it (failed health
// checks), as Mesos's command executor uses.
const DefaultKillGrace = 3 * time.Second

// ErrClosed is returned by Launch after Close.
var ErrClosed = errors.New("executor: closed")

// ProcessConfig configures a Process executor.
type ProcessConfig struct {
	// Clock drives kill grace periods and health checks; default clock.Real.
	Clock clock.Clock
	// Log is the root logger; default discards.
	Log *logrus.Logger
	// Env is the environment every task starts from, before the MESOS_*
	// variables and the task's own; default PATH and HOME of the agent.
	Env []string
}

// Process runs CommandInfo tasks as child processes in their sandbox, each
// in its own process group so that a kill reaches everything the task
// started, as Mesos's POSIX launcher does.
type Process struct {
	clock clock.Clock
	log   *logrus.Entry
	env   []string

	mu     sync.Mutex
	closed bool
	tasks  map[string]*procTask
	wg     sync.WaitGroup
}

type procTask struct {
	id     string
	cmd    *exec.Cmd
	pgid   int
	cpus   float64
	mem    uint64
	grace  time.Duration
	done   chan struct{}
	cancel context.CancelFunc // stops the health checker

	// mu orders reports: no health update after the terminal status.
	mu           sync.Mutex
	report       Report
	terminated   bool
	killed       bool
	healthKilled bool
	silent       bool // Close: end without reporting
}

var _ Executor = (*Process)(nil)

// NewProcess returns a process executor.
func NewProcess(cfg ProcessConfig) *Process {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = logging.Discard()
	}
	if cfg.Env == nil {
		path := os.Getenv("PATH")
		if path == "" {
			path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		}
		cfg.Env = []string{"PATH=" + path}
		if h := os.Getenv("HOME"); h != "" {
			cfg.Env = append(cfg.Env, "HOME="+h)
		}
	}
	return &Process{
		clock: cfg.Clock,
		log:   logging.Component(cfg.Log, "executor").WithField("executor", "process"),
		env:   cfg.Env,
		tasks: make(map[string]*procTask),
	}
}

// Launch starts the task's command and returns once TASK_RUNNING is
// reported; on failure it reports TASK_FAILED and returns the same error.
func (p *Process) Launch(ctx context.Context, t Task, report Report) error {
	id, err := launchCheck(ctx, "process", &t, report)
	if err != nil {
		return err
	}
	log := p.log.WithField("task", id)
	ci := t.Info.Command
	switch {
	case needsNamespace(&t.Info):
		return refuseNamespaced("process", id, &t.Info, report)
	case t.Group.networked():
		return refuseGroupNetwork("process", id, report)
	case ci == nil:
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: process launch %s: task has no command", id))
	case t.Info.Container != nil && t.Info.Container.GetType() == mesos.ContainerInfo_DOCKER:
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: process launch %s: docker containers need the docker executor", id))
	case t.Sandbox == "":
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: process launch %s: no sandbox directory", id))
	}
	if err := ValidateHealthCheck(t.Info.HealthCheck); err != nil {
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: process launch %s: %w", id, err))
	}
	taskEnv, err := commandEnv(ci)
	if err != nil {
		return launchFailed(id, report, mesos.REASON_TASK_INVALID, fmt.Errorf("executor: process launch %s: %w", id, err))
	}
	env := append(append(append([]string(nil), p.env...), mesosEnv(t, t.Sandbox)...), taskEnv...)

	unreserve, err := reserve(&p.mu, &p.closed, p.tasks, "process", id)
	if err != nil {
		return err
	}

	if err := Fetch(ctx, t.Sandbox, ci.URIs, http.DefaultClient); err != nil {
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: process launch %s: %w", id, err))
	}
	if err := linkVolumes(t.Info.Container, t.Sandbox, t.ParentSandbox); err != nil {
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: process launch %s: %w", id, err))
	}
	report(id, Status{State: mesos.TASK_STARTING})
	cmd, err := commandFor(ci, t.Sandbox, env)
	if err == nil {
		err = redirect(cmd, t.Sandbox)
	}
	if err == nil {
		if err = switchUser(cmd, ci.GetUser(), t.Sandbox); err == nil {
			err = cmd.Start()
		}
		closeFiles(cmd)
	}
	if err != nil {
		unreserve()
		return launchFailed(id, report, mesos.REASON_CONTAINER_LAUNCH_FAILED, fmt.Errorf("executor: process launch %s: failed to launch command: %w", id, err))
	}
	cpus, mem := taskLimits(t.Info)
	pt := &procTask{
		id: id, cmd: cmd, pgid: cmd.Process.Pid, cpus: cpus, mem: mem,
		grace: killGrace(t.Info), done: make(chan struct{}), report: report,
	}
	hctx, cancel := context.WithCancel(context.Background())
	pt.cancel = cancel

	pt.mu.Lock()
	p.mu.Lock()
	if p.closed {
		// Close ran while we were starting it: it could not see this one.
		p.mu.Unlock()
		pt.mu.Unlock()
		cancel()
		_ = syscall.Kill(-pt.pgid, syscall.SIGKILL)
		waitErr := cmd.Wait() // reaps it; killed, so it exits now
		unreserve()
		return fmt.Errorf("executor: process launch %s: %w (the started process was killed: %v)", id, ErrClosed, waitErr)
	}
	p.tasks[id] = pt
	p.wg.Add(1) // the waiter, started below
	p.mu.Unlock()
	report(id, Status{State: mesos.TASK_RUNNING})
	pt.mu.Unlock()
	log.WithField("pid", pt.pgid).Info("task running")

	go p.wait(pt, log)
	if hc := t.Info.HealthCheck; hc != nil {
		pr := networkProbe(hc, nil)
		if pr == nil {
			pr = p.commandProbe(hc.Command, t.Sandbox, env)
		}
		// Not started once Close has begun: Close kills the task.
		spawn(&p.mu, &p.closed, &p.wg, func() { p.healthLoop(hctx, pt, hc, pr, log) })
	}
	return nil
}

func killGrace(info mesos.TaskInfo) time.Duration {
	if kp := info.GetKillPolicy(); kp != nil && kp.GetGracePeriod() != nil {
		return time.Duration(kp.GetGracePeriod().GetNanoseconds())
	}
	return DefaultKillGrace
}

func commandFor(ci *mesos.CommandInfo, dir string, env []string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if ci.GetShell() {
		if ci.GetValue() == "" {
			return nil, errors.New("shell command has no value")
		}
		cmd = exec.Command("/bin/sh", "-c", ci.GetValue())
	} else {
		// Like execvp(value, arguments...): arguments include argv[0].
		if ci.GetValue() == "" {
			return nil, errors.New("command has no value")
		}
		path, err := exec.LookPath(ci.GetValue())
		if err != nil {
			return nil, err
		}
		args := ci.GetArguments()
		if len(args) == 0 {
			args = []string{ci.GetValue()}
		}
		cmd = &exec.Cmd{Path: path, Args: append([]string(nil), args...)}
	}
	cmd.Dir = dir
	cmd.Env = env
	// Pdeathsig: a task must not outlive the localmesos that started it
	// (a crashed test would otherwise leave tasks holding ports that later
	// tests are offered). Real Mesos keeps tasks across agent restarts;
	// this stand-in has nothing to recover them with.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// redirect sends the command's output to the sandbox's stdout and stderr
// files, where Mesos puts them.
func redirect(cmd *exec.Cmd, sandbox string) error {
	out, err := os.OpenFile(filepath.Join(sandbox, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	errf, err := os.OpenFile(filepath.Join(sandbox, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		out.Close()
		return err
	}
	cmd.Stdout, cmd.Stderr = out, errf
	return nil
}

// closeFiles closes the parent's copies of the sandbox files; the child
// keeps its own.
func closeFiles(cmd *exec.Cmd) {
	for _, w := range []any{cmd.Stdout, cmd.Stderr} {
		if f, ok := w.(*os.File); ok {
			f.Close()
		}
	}
}

// wait reaps the task, kills whatever is left of its process group (Mesos
// destroys the whole container when the task ends) and reports the end.
func (p *Process) wait(pt *procTask, log *logrus.Entry) {
	defer p.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			log.WithField("panic", r).WithField("stack", string(debug.Stack())).Error("process waiter panicked")
		}
	}()
	err := pt.cmd.Wait()
	_ = syscall.Kill(-pt.pgid, syscall.SIGKILL)
	if !awaitGroupGone(pt.pgid) {
		log.WithField("pgid", pt.pgid).Warn("processes of the task survive SIGKILL")
	}
	pt.cancel()
	close(pt.done)

	p.mu.Lock()
	delete(p.tasks, pt.id)
	p.mu.Unlock()

	st := exitStatus(pt.cmd.ProcessState, err)
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.terminated = true
	switch {
	case pt.healthKilled:
		st.State = mesos.TASK_KILLED
		f := false
		st.Healthy = &f
		st.Message = "Task killed after failing health checks; " + st.Message
	case pt.killed:
		st.State = mesos.TASK_KILLED
	}
	log.WithFields(logrus.Fields{"state": st.State.String(), "message": st.Message}).Info("task ended")
	if !pt.silent {
		pt.report(pt.id, st)
	}
}

// awaitGroupGone waits, briefly, until no live process is left in the
// group, so that a terminal status means the task's ports and files are
// free, as it does once Mesos has destroyed a container. It polls kernel
// state a bounded number of times rather than timing anything.
func awaitGroupGone(pgid int) bool {
	for i := 0; i < 200; i++ {
		if _, err := groupUsage(pgid); err != nil {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func exitStatus(ps *os.ProcessState, err error) Status {
	if ps == nil {
		return Status{State: mesos.TASK_FAILED, Message: fmt.Sprintf("Failed to wait for command: %v", err)}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Status{State: mesos.TASK_FAILED, Message: "Command terminated with signal " + ws.Signal().String()}
	}
	code := ps.ExitCode()
	if code == 0 {
		return Status{State: mesos.TASK_FINISHED, Message: "Command exited with status 0"}
	}
	return Status{State: mesos.TASK_FAILED, Message: "Command exited with status " + strconv.Itoa(code)}
}

// Kill sends SIGTERM to the task's process group and SIGKILL after grace.
// It returns at once; TASK_KILLED is reported when the task is gone.
func (p *Process) Kill(ctx context.Context, taskID string, grace time.Duration) error {
	p.mu.Lock()
	pt, ok := p.tasks[taskID]
	p.mu.Unlock()
	if !ok || pt == nil {
		return fmt.Errorf("executor: process kill: unknown task %q", taskID)
	}
	p.kill(pt, grace, false)
	return nil
}

func (p *Process) kill(pt *procTask, grace time.Duration, byHealth bool) {
	pt.mu.Lock()
	already := pt.killed
	pt.killed = true
	if byHealth {
		pt.healthKilled = true
	}
	pt.mu.Unlock()
	if already {
		return
	}
	_ = syscall.Kill(-pt.pgid, syscall.SIGTERM)
	if grace <= 0 {
		_ = syscall.Kill(-pt.pgid, syscall.SIGKILL)
		return
	}
	t := p.clock.NewTimer(grace)
	// After Close has begun there is no grace to time: Close kills every
	// task's group at once.
	if !spawn(&p.mu, &p.closed, &p.wg, func() {
		defer t.Stop()
		select {
		case <-t.C():
			_ = syscall.Kill(-pt.pgid, syscall.SIGKILL)
		case <-pt.done:
		}
	}) {
		t.Stop()
	}
}

func (p *Process) healthLoop(ctx context.Context, pt *procTask, hc *mesos.HealthCheck, pr probe, log *logrus.Entry) {
	defer func() {
		if r := recover(); r != nil {
			log.WithField("panic", r).WithField("stack", string(debug.Stack())).Error("health checker panicked")
		}
	}()
	h := &healthChecker{
		clock: p.clock, def: hc, probe: pr, log: log.WithField("check", hc.GetType().String()),
		report: func(healthy bool) {
			pt.mu.Lock()
			defer pt.mu.Unlock()
			if !pt.terminated && !pt.killed {
				pt.report(pt.id, healthStatus(healthy))
			}
		},
		kill: func() { p.kill(pt, pt.grace, true) },
	}
	h.run(ctx)
}

// commandProbe runs a COMMAND check in the task's sandbox with the task's
// environment plus the check's own, in its own process group so a timeout
// kills all of it.
func (p *Process) commandProbe(ci *mesos.CommandInfo, sandbox string, taskEnv []string) probe {
	return func(ctx context.Context) error {
		checkEnv, err := commandEnv(ci)
		if err != nil {
			return err
		}
		cmd, err := commandFor(ci, sandbox, append(append([]string(nil), taskEnv...), checkEnv...))
		if err != nil {
			return fmt.Errorf("executor: command health check: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("executor: command health check: %w", err)
		}
		done := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			case <-done:
			}
		}()
		err = cmd.Wait()
		close(done)
		if ctx.Err() != nil {
			return fmt.Errorf("executor: command health check: %w", ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("executor: command health check: %w", err)
		}
		return nil
	}
}

// Stats sums utime, stime, threads and RSS over the processes of the task's
// process group, as Mesos's POSIX isolators read them from /proc.
func (p *Process) Stats(ctx context.Context, taskID string) (*mesos.ResourceStatistics, error) {
	p.mu.Lock()
	pt, ok := p.tasks[taskID]
	p.mu.Unlock()
	if !ok || pt == nil {
		return nil, fmt.Errorf("executor: process stats: unknown task %q", taskID)
	}
	u, err := groupUsage(pt.pgid)
	if err != nil {
		return nil, fmt.Errorf("executor: process stats %s: %w", taskID, err)
	}
	rs := &mesos.ResourceStatistics{
		Timestamp:          unixSeconds(p.clock.Now()),
		CPUsUserTimeSecs:   &u.user,
		CPUsSystemTimeSecs: &u.sys,
		MemRSSBytes:        &u.rss,
		Processes:          &u.procs,
		Threads:            &u.threads,
	}
	setLimits(rs, pt.cpus, pt.mem)
	return rs, nil
}

type usage struct {
	user, sys      float64
	rss            uint64
	procs, threads uint32
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func groupUsage(pgid int) (usage, error) {
	var u usage
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return u, err
	}
	page := uint64(os.Getpagesize())
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		f, ok := statFields(string(b))
		if !ok {
			continue
		}
		// Zombies wait for a reaper (orphans go to pid 1) but use nothing.
		if g, _ := strconv.Atoi(f[2]); g != pgid || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		stt, _ := strconv.ParseUint(f[12], 10, 64)
		th, _ := strconv.ParseUint(f[17], 10, 32)
		rss, _ := strconv.ParseUint(f[21], 10, 64)
		u.user += float64(ut) / clockTicks
		u.sys += float64(stt) / clockTicks
		u.threads += uint32(th)
		u.rss += rss * page
		u.procs++
	}
	if u.procs == 0 {
		return u, fmt.Errorf("no process in group %d", pgid)
	}
	return u, nil
}

// statFields returns the fields of /proc/<pid>/stat after the command name
// (which may contain spaces and parentheses), starting with state.
func statFields(s string) ([]string, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(s[i+1:])
	return f, len(f) >= 22
}

// Close kills every task's process group without reporting and waits for
// them to be reaped.
func (p *Process) Close() error {
	p.mu.Lock()
	p.closed = true
	var all []*procTask
	for _, pt := range p.tasks {
		if pt != nil {
			all = append(all, pt)
		}
	}
	p.mu.Unlock()
	for _, pt := range all {
		pt.mu.Lock()
		pt.silent = true
		pt.killed = true
		pt.mu.Unlock()
		pt.cancel()
		_ = syscall.Kill(-pt.pgid, syscall.SIGKILL)
	}
	p.wg.Wait()
	return nil
}
