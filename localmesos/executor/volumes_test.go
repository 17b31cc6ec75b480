package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func hostVolume(containerPath, hostPath string, mode mesos.Volume_Mode) mesos.Volume {
	return mesos.Volume{ContainerPath: containerPath, HostPath: &hostPath, Mode: &mode}
}

// TestDockerHostVolumes: host volumes are mounted into the container as
// Mesos's docker containerizer mounts them: an absolute container path
// as given, a relative one inside the sandbox, RO read-only.
func TestDockerHostVolumes(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t, nil)
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "in"), []byte("config"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	tk := dockerTaskInfo(t, "vol", busybox, shellCmd(
		"cp /conf/in /data/copied && echo rel > data2/rel && (echo x > /conf/denied 2>/dev/null && echo WROTE-RO || echo ro-held)"))
	os.MkdirAll(filepath.Join(rw, "sub"), 0o755)
	tk.Info.Container.Volumes = []mesos.Volume{hostVolume("/data", rw, mesos.RW), hostVolume("/conf", ro, mesos.RO), hostVolume("data2", filepath.Join(rw, "sub"), mesos.RW)}
	if err := d.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatal(err)
	}
	st := rec.waitTerminal(t, "vol", 30*time.Second)
	if st.State != mesos.TASK_FINISHED {
		t.Fatalf("task %s %q", st.State, st.Message)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "copied")); err != nil || string(b) != "config" {
		t.Errorf("the RW volume did not get the file copied from the RO one: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "sub", "rel")); err != nil || string(b) != "rel\n" {
		t.Errorf("the relative volume (inside the sandbox): %q %v", b, err)
	}
	if out, _ := os.ReadFile(filepath.Join(tk.Sandbox, "stdout")); !strings.Contains(string(out), "ro-held") {
		t.Errorf("the RO volume was writable: stdout %q", out)
	}
	if _, err := os.Stat(filepath.Join(ro, "denied")); err == nil {
		t.Error("a file was written through the RO volume")
	}
}

// TestProcessVolumes: the process executor links a relative container
// path into the sandbox, and refuses what needs a mount namespace.
func TestProcessVolumes(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t)
	host := t.TempDir()
	rec := newRecorder()
	tk := processTask(t, "pvol", shellCmd("echo from-task > data/out"))
	tk.Info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Volumes: []mesos.Volume{hostVolume("data", host, mesos.RW)}}
	if err := p.Launch(context.Background(), tk, rec.report); err != nil {
		t.Fatal(err)
	}
	if st := rec.waitTerminal(t, "pvol", 20*time.Second); st.State != mesos.TASK_FINISHED {
		t.Fatalf("task %s %q", st.State, st.Message)
	}
	if b, err := os.ReadFile(filepath.Join(host, "out")); err != nil || string(b) != "from-task\n" {
		t.Errorf("host path: %q %v", b, err)
	}
	for name, vol := range map[string]mesos.Volume{
		"abs": hostVolume("/data", host, mesos.RW),
		"ro":  hostVolume("data", host, mesos.RO),
	} {
		rec := newRecorder()
		tk := processTask(t, "pvol-"+name, shellCmd("true"))
		tk.Info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Volumes: []mesos.Volume{vol}}
		_ = p.Launch(context.Background(), tk, rec.report)
		st := rec.waitTerminal(t, "pvol-"+name, 20*time.Second)
		if st.State != mesos.TASK_FAILED || !strings.Contains(st.Message, "mount namespace") {
			t.Errorf("%s: %s %q, want TASK_FAILED naming the mount namespace", name, st.State, st.Message)
		}
	}
}

// TestProcessGroupEphemeralVolume: two tasks of a group share an
// ephemeral volume (SANDBOX_PATH of type PARENT, a directory of the
// executor's sandbox), as a pod's containers do: what one writes the
// other reads, each under its own mount path.
func TestProcessGroupEphemeralVolume(t *testing.T) {
	t.Parallel()
	p := newTestProcess(t)
	parent := t.TempDir()
	vol := func(cp string) mesos.Volume {
		st, typ := mesos.Volume_Source_SANDBOX_PATH, mesos.Volume_Source_SandboxPath_PARENT
		return mesos.Volume{ContainerPath: cp, Mode: mesos.RW.Enum(),
			Source: &mesos.Volume_Source{Type: st, SandboxPath: &mesos.Volume_Source_SandboxPath{Type: typ, Path: "volumes/v1"}}}
	}
	task := func(id, cmd, cp string) Task {
		tk := processTask(t, id, shellCmd(cmd))
		tk.Sandbox = filepath.Join(parent, "tasks", id)
		if err := os.MkdirAll(tk.Sandbox, 0o755); err != nil {
			t.Fatal(err)
		}
		tk.ParentSandbox = parent
		tk.Info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Volumes: []mesos.Volume{vol(cp)}}
		return tk
	}
	rec := newRecorder()
	if err := p.Launch(context.Background(), task("writer", "echo shared > jdef-v1/clock", "jdef-v1"), rec.report); err != nil {
		t.Fatal(err)
	}
	if st := rec.waitTerminal(t, "writer", 20*time.Second); st.State != mesos.TASK_FINISHED {
		t.Fatalf("writer %s %q", st.State, st.Message)
	}
	if err := p.Launch(context.Background(), task("reader", "test \"$(cat etc/clock)\" = shared", "etc"), rec.report); err != nil {
		t.Fatal(err)
	}
	if st := rec.waitTerminal(t, "reader", 20*time.Second); st.State != mesos.TASK_FINISHED {
		t.Fatalf("reader %s %q: it did not read what the writer wrote", st.State, st.Message)
	}
	if b, err := os.ReadFile(filepath.Join(parent, "volumes", "v1", "clock")); err != nil || string(b) != "shared\n" {
		t.Fatalf("the volume lives in the executor's sandbox: %q %v", b, err)
	}
	// Without a group there is no parent sandbox to share.
	lone := task("lone", "true", "x")
	lone.ParentSandbox = ""
	_ = p.Launch(context.Background(), lone, rec.report)
	if st := rec.waitTerminal(t, "lone", 20*time.Second); st.State != mesos.TASK_FAILED || !strings.Contains(st.Message, "PARENT") {
		t.Fatalf("lone %s %q, want TASK_FAILED naming PARENT", st.State, st.Message)
	}
}

// TestAsDockerTask: the docker executor runs a Mesos-containerizer task
// with a Docker image (a pod's container) as a Docker container of that
// image on the host's network; volumes, command and everything else stay.
func TestAsDockerTask(t *testing.T) {
	t.Parallel()
	it, cached := mesos.Image_DOCKER, false
	info := taskInfo("c", 0.1, 32)
	info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(),
		Mesos:   &mesos.ContainerInfo_MesosInfo{Image: &mesos.Image{Type: &it, Docker: &mesos.Image_Docker{Name: "flotilla/testapp:dev"}, Cached: &cached}},
		Volumes: []mesos.Volume{hostVolume("data", "/tmp", mesos.RW)}}
	got := asDockerTask(info)
	c := got.GetContainer()
	if c.GetType() != mesos.ContainerInfo_DOCKER || c.GetDocker().GetImage() != "flotilla/testapp:dev" ||
		c.GetDocker().GetNetwork() != mesos.ContainerInfo_DockerInfo_HOST || !c.GetDocker().GetForcePullImage() || len(c.Volumes) != 1 || c.Mesos != nil {
		t.Fatalf("converted container %+v", c)
	}
	if info.GetContainer().GetType() != mesos.ContainerInfo_MESOS {
		t.Fatal("the task's own ContainerInfo was changed")
	}
	plain := taskInfo("p", 0.1, 32)
	if out := asDockerTask(plain); out.Container != nil {
		t.Fatalf("a task without a container got %+v", out.Container)
	}
}
