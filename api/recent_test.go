package api

import (
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/framework"
)

// TestRecentTasksBounded: the record of ended tasks keeps the newest
// recentTasksMax across apps and forgets those past recentTaskMaxAge.
func TestRecentTasksBounded(t *testing.T) {
	var r recentTasks
	now := t0
	for i := 0; i < recentTasksMax+500; i++ {
		app := "/a"
		if i%2 == 1 {
			app = "/b"
		}
		r.add(&framework.Task{ID: fmt.Sprintf("t%d", i), AppID: app, AgentID: "agent", State: mesos.TASK_KILLED}, now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(r.tasks); n != recentTasksMax {
		t.Fatalf("%d tasks recorded, want the cap %d", n, recentTasksMax)
	}
	a := r.of("/a", now.Add(time.Minute))
	if len(a) != recentTasksMax/2 || a[0].ID != fmt.Sprintf("t%d", recentTasksMax+498) {
		t.Fatalf("/a: %d ended tasks, newest %+v; want %d, newest t%d", len(a), a[0], recentTasksMax/2, recentTasksMax+498)
	}
	if _, ok := r.find("/a", "t0", now.Add(time.Minute)); ok {
		t.Errorf("t0 is still found after %d newer tasks ended", recentTasksMax+499)
	}
	if e, ok := r.find("/b", "t1499", now.Add(time.Minute)); !ok || e.SlaveID != "agent" || e.State != "TASK_KILLED" {
		t.Errorf("t1499: %+v %v, want its agent and state", e, ok)
	}
	if got := r.of("/a", now.Add(recentTaskMaxAge+2*time.Second)); len(got) != 0 {
		t.Errorf("%d tasks of /a remembered past %v, want none", len(got), recentTaskMaxAge)
	}
}
