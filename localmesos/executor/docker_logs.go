package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/sirupsen/logrus"
)

// logDrainTimeout bounds how long a waiter waits, after the container
// ended, for the last of its output to reach the sandbox: the engine ends
// a follow stream at once when the container stops, so this is only hit
// by an engine that hangs.
const logDrainTimeout = 10 * time.Second

// followLogs copies the container's output into the sandbox's stdout and
// stderr files while it runs, as Mesos's docker executor does (it runs
// `docker run` with its output redirected there), so a task's logs can be
// read through the agent's /files while it runs and after it ended. The
// follow starts from the container's first byte, so nothing written
// before it attached is lost. It closes dt.logsDone when the stream ends.
func (d *Docker) followLogs(ctx context.Context, dt *dockerTask, log *logrus.Entry) {
	defer d.wg.Done()
	defer close(dt.logsDone)
	defer func() {
		if r := recover(); r != nil {
			log.WithField("panic", r).WithField("stack", string(debug.Stack())).Error("docker log follower panicked")
		}
	}()
	out, err1 := os.OpenFile(filepath.Join(dt.sandbox, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	errf, err2 := os.OpenFile(filepath.Join(dt.sandbox, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err := errors.Join(err1, err2); err != nil {
		log.WithError(err).Warn("cannot write container output to the sandbox; the task's logs will be missing")
		closeQuietly(out, errf)
		return
	}
	defer func() {
		if err := errors.Join(out.Close(), errf.Close()); err != nil {
			log.WithError(err).Warn("closing the sandbox's output files")
		}
	}()
	rc, err := d.cli.ContainerLogs(ctx, dt.container, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		log.WithError(err).Warn("following container output; the task's logs will be missing")
		return
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(out, errf, rc); err != nil && ctx.Err() == nil {
		log.WithError(err).Warn("copying container output to the sandbox")
	}
}

// drainLogs waits for the follower to write the container's last output,
// then stops it.
func (d *Docker) drainLogs(dt *dockerTask, log *logrus.Entry) {
	if dt.logsDone == nil {
		return
	}
	tm := d.clock.NewTimer(logDrainTimeout)
	defer tm.Stop()
	select {
	case <-dt.logsDone:
	case <-tm.C():
		log.Warn("the container's output did not end with it; its last lines may be missing from the sandbox")
	}
	dt.stopLogs()
}

func closeQuietly(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close() // opened for writing, nothing written: nothing to lose
		}
	}
}
