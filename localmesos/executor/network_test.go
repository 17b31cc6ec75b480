package executor

import (
	"context"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/clock"
	"github.com/flotilla-sched/flotilla/internal/portfwd"
)

func netTask(nw mesos.ContainerInfo_DockerInfo_Network, nets []string, maps ...mesos.ContainerInfo_DockerInfo_PortMapping) *mesos.TaskInfo {
	info := taskInfo("n", 0.1, 32)
	info.Resources = append(info.Resources, mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(),
		Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31000, End: 31001}}}})
	info.Command = &mesos.CommandInfo{Shell: boolPtr(false)}
	info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(),
		Docker: &mesos.ContainerInfo_DockerInfo{Image: "x", Network: nw.Enum(), PortMappings: maps}}
	for _, n := range nets {
		info.Container.NetworkInfos = append(info.Container.NetworkInfos, mesos.NetworkInfo{Name: strPtr(n)})
	}
	return &info
}

func TestPlanDockerNetwork(t *testing.T) {
	t.Parallel()
	const (
		bridge = mesos.ContainerInfo_DockerInfo_BRIDGE
		user   = mesos.ContainerInfo_DockerInfo_USER
		host   = mesos.ContainerInfo_DockerInfo_HOST
		none   = mesos.ContainerInfo_DockerInfo_NONE
	)
	cases := []struct {
		name    string
		info    *mesos.TaskInfo
		mode    string
		maps    []portfwd.Mapping
		wantErr string
	}{
		{"host", netTask(host, nil), "host", nil, ""},
		{"none", netTask(none, nil), "none", nil, ""},
		{"bridge, protocol defaults to tcp and is lower-cased", netTask(bridge, nil, pm(31000, 80, ""), pm(31001, 53, "UDP")), "none",
			[]portfwd.Mapping{{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 31001, ContainerPort: 53, Protocol: "udp"}}, ""},
		// Marathon's "udp,tcp" arrives as two mappings on one host port.
		{"udp,tcp on one host port", netTask(bridge, nil, pm(31000, 53, "udp"), pm(31000, 53, "tcp")), "none",
			[]portfwd.Mapping{{HostPort: 31000, ContainerPort: 53, Protocol: "udp"}, {HostPort: 31000, ContainerPort: 53, Protocol: "tcp"}}, ""},
		{"user", netTask(user, []string{"dcos"}, pm(31000, 80, "tcp")), "none", []portfwd.Mapping{{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"}}, ""},
		{"mappings on host", netTask(host, nil, pm(31000, 80, "tcp")), "", nil, "only supported for bridge and user-defined networks"},
		{"mappings on none", netTask(none, nil, pm(31000, 80, "tcp")), "", nil, "only supported for bridge and user-defined networks"},
		{"host port outside ports", netTask(bridge, nil, pm(31005, 80, "tcp")), "", nil, "host port 31005 is not included"},
		{"container port 0", netTask(bridge, nil, pm(31000, 0, "tcp")), "", nil, "container port 0, outside 1-65535"},
		{"container port too big", netTask(bridge, nil, pm(31000, 70000, "tcp")), "", nil, "container port 70000"},
		{"sctp", netTask(bridge, nil, pm(31000, 80, "sctp")), "", nil, `protocol "sctp"`},
		{"user without network info", netTask(user, nil), "", nil, "No network info found in container info"},
		{"user with two networks", netTask(user, []string{"a", "b"}), "", nil, "Only a single network"},
		{"user with an unnamed network", netTask(user, []string{""}), "", nil, "No network name found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := planDockerNetwork(tc.info)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if ValidateDockerNetwork(tc.info) == nil {
					t.Fatal("ValidateDockerNetwork accepted what the plan refuses")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.mode != tc.mode || len(n.mappings) != len(tc.maps) {
				t.Fatalf("plan = %+v, want mode %s mappings %v", n, tc.mode, tc.maps)
			}
			for i := range tc.maps {
				if n.mappings[i] != tc.maps[i] {
					t.Errorf("mapping %d = %v, want %v", i, n.mappings[i], tc.maps[i])
				}
			}
		})
	}
}

func TestCheckUserNetwork(t *testing.T) {
	t.Parallel()
	if err := checkUserNetwork(dockerNet{user: "dcos"}, nil); err != nil {
		t.Errorf("default networks refuse dcos: %v", err)
	}
	if err := checkUserNetwork(dockerNet{user: "dcos"}, []string{}); err == nil || !strings.Contains(err.Error(), "Unknown CNI network 'dcos' (this agent's networks: none)") {
		t.Errorf("an agent without networks: %v", err)
	}
	if err := checkUserNetwork(dockerNet{user: "x"}, []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "networks: a, b") {
		t.Errorf("unknown network: %v", err)
	}
}

// TestBridgeTasksNeedDocker: the process and simulated executors answer a
// BRIDGE or USER Docker task with TASK_ERROR, as an agent without Docker.
func TestBridgeTasksNeedDocker(t *testing.T) {
	t.Parallel()
	for _, nw := range []mesos.ContainerInfo_DockerInfo_Network{mesos.ContainerInfo_DockerInfo_BRIDGE, mesos.ContainerInfo_DockerInfo_USER} {
		for name, ex := range map[string]Executor{"process": newTestProcess(t), "simulated": NewSimulated(clock.Real{})} {
			t.Run(name+"/"+nw.String(), func(t *testing.T) {
				rec := newRecorder()
				tk := Task{Info: *netTask(nw, []string{"dcos"}, pm(31000, 80, "tcp")), Sandbox: t.TempDir()}
				id := tk.Info.TaskID.Value
				if err := ex.Launch(context.Background(), tk, rec.report); err == nil {
					t.Fatal("launched")
				}
				ss := rec.statuses(id)
				if len(ss) != 1 || ss[0].State != mesos.TASK_ERROR || ss[0].Reason == nil || *ss[0].Reason != mesos.REASON_TASK_INVALID ||
					!strings.Contains(ss[0].Message, "needs the docker executor") {
					t.Fatalf("statuses %s, want one TASK_ERROR REASON_TASK_INVALID saying the docker executor is needed", fmtStatuses(ss))
				}
			})
		}
	}
}
