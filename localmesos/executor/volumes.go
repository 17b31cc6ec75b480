package executor

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// dockerBinds turns a task's host volumes into docker run -v binds, as
// Mesos's docker containerizer does: a relative container path is inside
// the sandbox (/mnt/mesos/sandbox/<path>), RO mounts read-only.
func dockerBinds(c *mesos.ContainerInfo, sandbox, parent string) ([]string, error) {
	var out []string
	for _, v := range c.GetVolumes() {
		hp := v.GetHostPath()
		if sp := v.GetSource().GetSandboxPath(); sp != nil && v.GetSource().GetType() == mesos.Volume_Source_SANDBOX_PATH {
			src, err := sandboxSource(v.ContainerPath, sp, sandbox, parent)
			if err != nil {
				return nil, err
			}
			hp = src
		}
		if hp == "" || !filepath.IsAbs(hp) {
			return nil, fmt.Errorf("volume %s: only host volumes with an absolute host_path are supported (got %q)", v.ContainerPath, hp)
		}
		cp := v.ContainerPath
		if !path.IsAbs(cp) {
			cp = path.Join(DockerSandbox, cp)
		}
		b := hp + ":" + cp
		if v.GetMode() == mesos.RO {
			b += ":ro"
		}
		out = append(out, b)
	}
	return out, nil
}

// linkVolumes gives a process task its host volumes the one way a process
// without a mount namespace can have them: a relative container path is a
// symbolic link in the sandbox to the host path, as the Mesos
// containerizer's volumes appear in the sandbox. An absolute container
// path, or a read-only mode, needs a mount namespace, which this executor
// does not create: refused with that reason rather than half done.
func linkVolumes(c *mesos.ContainerInfo, sandbox, parent string) error {
	for _, v := range c.GetVolumes() {
		hp, cp := v.GetHostPath(), v.ContainerPath
		if sp := v.GetSource().GetSandboxPath(); sp != nil && v.GetSource().GetType() == mesos.Volume_Source_SANDBOX_PATH {
			src, err := sandboxSource(cp, sp, sandbox, parent)
			if err != nil {
				return err
			}
			hp = src
		}
		switch {
		case hp == "" || !filepath.IsAbs(hp):
			return fmt.Errorf("volume %s: only host volumes with an absolute host_path are supported (got %q)", cp, hp)
		case path.IsAbs(cp):
			return fmt.Errorf("volume %s: an absolute container path needs a mount namespace, which the process executor does not create; use a path relative to the sandbox", cp)
		case v.GetMode() == mesos.RO:
			return fmt.Errorf("volume %s: read-only needs a mount namespace, which the process executor does not create", cp)
		}
		dst, err := inside(sandbox, cp)
		if err != nil {
			return fmt.Errorf("volume %s: %w", cp, err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(hp, dst); err != nil {
			return fmt.Errorf("volume %s: %w", cp, err)
		}
	}
	return nil
}

// sandboxSource is a SANDBOX_PATH volume's directory, created: in the
// executor's sandbox (PARENT: a task group's ephemeral volume, shared by
// its tasks) or the task's own (SELF).
func sandboxSource(cp string, sp *mesos.Volume_Source_SandboxPath, sandbox, parent string) (string, error) {
	base := sandbox
	if sp.GetType() == mesos.Volume_Source_SandboxPath_PARENT {
		if parent == "" {
			return "", fmt.Errorf("volume %s: a PARENT sandbox path needs a task group's executor sandbox; this task has none", cp)
		}
		base = parent
	}
	if base == "" {
		return "", fmt.Errorf("volume %s: a sandbox path needs a sandbox, and this agent keeps none", cp)
	}
	src, err := inside(base, sp.GetPath())
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", cp, err)
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", fmt.Errorf("volume %s: %w", cp, err)
	}
	return src, nil
}

// asDockerTask is how the docker executor runs a task of the Mesos
// containerizer with a Docker image (a pod's container, or an app's
// container of type MESOS): a Docker container of that image on the
// host's network, which is the Mesos containerizer's default (a task
// group's containers share it, and so reach each other on localhost).
// Any other task is returned as it is.
func asDockerTask(info mesos.TaskInfo) mesos.TaskInfo {
	c := info.GetContainer()
	name := c.GetMesos().GetImage().GetDocker().GetName()
	if c.GetType() != mesos.ContainerInfo_MESOS || name == "" || len(c.NetworkInfos) > 0 {
		return info
	}
	cc := *c
	typ, netw := mesos.ContainerInfo_DOCKER, mesos.ContainerInfo_DockerInfo_HOST
	di := &mesos.ContainerInfo_DockerInfo{Image: name, Network: &netw}
	if cached := c.GetMesos().GetImage().Cached; cached != nil && !*cached {
		force := true
		di.ForcePullImage = &force
	}
	cc.Type, cc.Docker, cc.Mesos = &typ, di, nil
	info.Container = &cc
	return info
}
