package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestTaskDirLeftBehindIsLogged: the empty task-record node of a deleted
// app is dropped (by DeleteApp when the app had no records left, by
// DeleteTask when its last record goes); a failure other than "not empty"
// or "no node" leaves the node behind and is logged naming the app (both
// places dropped the error). ZooKeeper refuses the delete here because
// the tasks directory's ACL grants no DELETE.
func TestTaskDirLeftBehindIsLogged(t *testing.T) {
	env := newZKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, hook := logtest.NewNullLogger()
	s, err := NewZK(ctx, ZKConfig{Servers: []string{env.addr}, Root: env.root, Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)

	// /a keeps a task record past its delete; /b's only record goes while
	// the app still exists, leaving its node empty.
	for _, id := range []string{"/a", "/b"} {
		if _, err := s.PutApp(ctx, testApp(id), CreateOnly); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTask(ctx, TaskRecord{TaskID: strings.TrimPrefix(id, "/") + ".1", AppID: id, AgentID: "s1", State: "TASK_RUNNING"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTask(ctx, "/b", "b.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp(ctx, "/a", AnyRevision); err != nil {
		t.Fatal(err)
	}
	if e := dirWarning(hook, "/a"); e != nil {
		t.Fatalf("records still there is an expected answer, yet logged: %v %v", e.Message, e.Data)
	}

	tasks := env.root + "/tasks"
	_, st, err := env.raw.Get(tasks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.raw.SetACL(tasks, zk.WorldACL(zk.PermAll&^zk.PermDelete), st.Aversion); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before newZKEnv's cleanup deletes the tree
		if _, err := env.raw.SetACL(tasks, zk.WorldACL(zk.PermAll), -1); err != nil {
			t.Errorf("restore the ACL of %s: %v", tasks, err)
		}
	})

	if err := s.DeleteTask(ctx, "/a", "a.1"); err != nil {
		t.Fatalf("delete the last record of a deleted app: %v", err)
	}
	if err := s.DeleteApp(ctx, "/b", AnyRevision); err != nil {
		t.Fatalf("delete an app whose record node is empty: %v", err)
	}
	for _, id := range []string{"/a", "/b"} {
		e := dirWarning(hook, id)
		if e == nil {
			var logged []string
			for _, e := range hook.AllEntries() {
				logged = append(logged, e.Message)
			}
			t.Errorf("%s: the record node left behind is not logged; logged %q", id, logged)
			continue
		}
		if err, _ := e.Data[logrus.ErrorKey].(error); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: error field %v, want ZooKeeper's refusal (%v)", id, e.Data[logrus.ErrorKey], zk.ErrNoAuth)
		}
		if ok, _, err := env.raw.Exists(tasks + "/" + appKey(id)); err != nil || !ok {
			t.Errorf("%s: the node the log says stays: exists %v, %v", id, ok, err)
		}
	}
}

func dirWarning(hook *logtest.Hook, app string) *logrus.Entry {
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "task record node") && e.Data["app"] == app {
			return e
		}
	}
	return nil
}
