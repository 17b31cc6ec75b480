package executor

import (
	"context"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/clock"
)

// TestGroupNetworkNeedsDocker: a task of a group with a network of its
// own (a pod on container/bridge) cannot run as a process or a
// simulation: TASK_ERROR saying so, as for a BRIDGE Docker task.
func TestGroupNetworkNeedsDocker(t *testing.T) {
	t.Parallel()
	name := "mesos-bridge"
	grp := &Group{ID: "instance-x", Leader: true, Container: &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(),
		NetworkInfos: []mesos.NetworkInfo{{Name: &name, PortMappings: []mesos.NetworkInfo_PortMapping{{HostPort: 31000, ContainerPort: 8080}}}}}}
	for kind, ex := range map[string]Executor{"process": newTestProcess(t), "simulated": NewSimulated(clock.Real{})} {
		rec := newRecorder()
		tk := processTask(t, "g-"+kind, shellCmd("true"))
		tk.Group = grp
		if err := ex.Launch(context.Background(), tk, rec.report); err == nil {
			t.Errorf("%s launched a task of a networked group", kind)
		}
		st := rec.waitTerminal(t, "g-"+kind, 10*time.Second)
		if st.State != mesos.TASK_ERROR || !strings.Contains(st.Message, "needs the docker executor") {
			t.Errorf("%s: %s %q, want TASK_ERROR naming the docker executor", kind, st.State, st.Message)
		}
	}
	// A group on the host's network runs anywhere.
	host := &Group{ID: "instance-y", Leader: true, Container: &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}}
	if host.networked() || (*Group)(nil).networked() {
		t.Fatal("a group without network infos counts as networked")
	}
}
