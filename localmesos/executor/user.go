package executor

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// switchUser prepares cmd to run as CommandInfo.user, as a Mesos agent
// with --switch_user does: the user must exist on the agent, the sandbox
// becomes theirs (Mesos chowns the executor directory), and the process
// gets their uid, primary gid and supplementary groups. An agent that is
// not root can only run tasks as its own user. name "" leaves cmd alone.
//
// The framework's user (FrameworkInfo.user), which Mesos applies to tasks
// without CommandInfo.user, is not applied here: localmesos runs tests
// whose frameworks name users that do not exist on this machine.
func switchUser(cmd *exec.Cmd, name, sandbox string) error {
	if name == "" {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("failed to get user information for '%s': %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("user '%s' has a non-numeric uid or gid (%s:%s)", name, u.Uid, u.Gid)
	}
	if os.Geteuid() != 0 {
		if uint64(os.Geteuid()) == uid {
			return nil
		}
		return fmt.Errorf("failed to switch to user '%s': the agent does not run as root", name)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	if sandbox != "" {
		if err := chownTree(sandbox, int(uid), int(gid)); err != nil {
			return fmt.Errorf("failed to chown sandbox to user '%s': %w", name, err)
		}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	return nil
}

// chownTree gives dir and everything in it (fetched files, stdout and
// stderr) to uid:gid, without following symbolic links (a host volume
// linked into the sandbox stays its owner's).
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
