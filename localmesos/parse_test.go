package localmesos

import (
	"reflect"
	"testing"

	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

func TestParseResources(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want Resources
		bad  bool
	}{
		{in: "cpus:2;mem:1024;disk:100;ports:[31000-31010]", want: Resources{CPUs: 2, Mem: 1024, Disk: 100, Ports: []PortRange{{Begin: 31000, End: 31010}}}},
		{in: "ports:[1-2,5-6]; gpus:1", want: Resources{GPUs: 1, Ports: []PortRange{{Begin: 1, End: 2}, {Begin: 5, End: 6}}}},
		{in: "cpus:1;cpus(slave_public):2;ports(slave_public):[80-80,443-443];mem(*):64;mem(slave_public):32", want: Resources{
			CPUs: 1, Mem: 64,
			Reserved: map[string]Resources{"slave_public": {CPUs: 2, Mem: 32, Ports: []PortRange{{80, 80}, {443, 443}}}},
		}},
		{in: "cpus:x", bad: true},
		{in: "cpus:-1", bad: true},
		{in: "gpus:1.5", bad: true},
		{in: "ports:[10-1]", bad: true},
		{in: "ports:[1-70000]", bad: true},
		{in: "widgets:3", bad: true},
		{in: "cpus(a b):1", bad: true},
		{in: "cpus(-x):1", bad: true},
		{in: "cpus", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseResources(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseResources(%q) accepted it: %+v", tc.in, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseResources(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestReservedPortsSplitBetweenAgents(t *testing.T) {
	t.Parallel()
	res, err := ParseResources("cpus:1;mem:64;ports:[25300-25303];cpus(slave_public):1;ports(slave_public):[25310-25313]")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := startMaster(t, Config{Agents: 2, Resources: res})
	m.mu.Lock()
	defer m.mu.Unlock()
	var got []string
	for _, a := range m.agentList {
		got = append(got, a.total.String())
	}
	want := []string{
		"cpus:1; cpus(slave_public):1; mem:64; ports:[25300-25301]; ports(slave_public):[25310-25311]",
		"cpus:1; cpus(slave_public):1; mem:64; ports:[25302-25303]; ports(slave_public):[25312-25313]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("agents' resources:\n%q\nwant\n%q", got, want)
	}
}

func TestAgentDefaultRoleAndGPUs(t *testing.T) {
	t.Parallel()
	res := Resources{CPUs: 2, Mem: 64, Ports: []PortRange{{25320, 25321}}, Reserved: map[string]Resources{"slave_public": {CPUs: 1}}}
	m, _ := startMaster(t, Config{Resources: res, SamePorts: true, AgentSpecs: []AgentSpec{{DefaultRole: "slave_public"}, {GPUs: 2}}})
	m.mu.Lock()
	got := []string{m.agentList[0].total.String(), m.agentList[1].total.String()}
	m.mu.Unlock()
	want := []string{
		"cpus(slave_public):3; mem(slave_public):64; ports(slave_public):[25320-25321]", // --default_role: all reserved
		"cpus:2; cpus(slave_public):1; gpus:2; mem:64; ports:[25320-25321]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("agents' resources:\n%q\nwant\n%q", got, want)
	}
	if _, err := Start(t.Context(), Config{AgentSpecs: []AgentSpec{{DefaultRole: "-bad"}}, Executor: func(string) (executor.Executor, error) { return nil, nil }, NoSandbox: true, Log: logging.Discard()}); err == nil {
		t.Fatal("an agent with an invalid default role started")
	}
}
