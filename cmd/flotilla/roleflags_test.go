package main

import (
	"flag"
	"io"
	"testing"

	"github.com/flotilla-sched/flotilla/framework"
)

func TestRoleFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args    []string
		role    string
		accept  string
		gpus    bool
		wantErr bool
	}{
		{args: nil, role: "*", accept: framework.AcceptAny},
		{args: []string{"--mesos-role", "slave_public", "--accepted-resource-roles-default-behavior", "reserved"}, role: "slave_public", accept: framework.AcceptReserved},
		{args: []string{"--role", "web", "--default-accepted-resource-roles", "*"}, role: "web", accept: framework.AcceptUnreserved},
		{args: []string{"--mesos-role", "web", "--default-accepted-resource-roles", "*,web"}, role: "web", accept: framework.AcceptAny},
		{args: []string{"--mesos-role", "web", "--default-accepted-resource-roles", "batch"}, wantErr: true},
		{args: []string{"--accepted-resource-roles-default-behavior", "some"}, wantErr: true},
		{args: []string{"--enable-features", "gpu_resources"}, role: "*", accept: framework.AcceptAny, gpus: true},
		{args: []string{"--enable-features", "teleport"}, wantErr: true},
	}
	for _, tc := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var c platformConfig
		commonFlags(fs, &c, "127.0.0.1:0")
		err := fs.Parse(tc.args)
		var accept string
		if err == nil {
			accept, err = c.acceptedRolesDefault()
		}
		if tc.wantErr {
			if err == nil {
				t.Errorf("%v: accepted", tc.args)
			}
			continue
		}
		if err != nil || c.Role != tc.role || accept != tc.accept || c.Roles.GPUResources != tc.gpus || c.Roles.MesosUser == "" {
			t.Errorf("%v: role %q accept %q gpus %v user %q err %v; want %q %q %v", tc.args, c.Role, accept, c.Roles.GPUResources, c.Roles.MesosUser, err, tc.role, tc.accept, tc.gpus)
		}
	}
}

func TestDevShape(t *testing.T) {
	t.Parallel()
	specs := devAgents(3)
	var c platformConfig
	if err := (&devShape{public: 1, gpus: 2}).apply(specs, &c); err != nil {
		t.Fatal(err)
	}
	if specs[2].DefaultRole != "slave_public" || specs[2].Attributes["public_ip"] != "true" || specs[0].DefaultRole != "" || specs[1].DefaultRole != "" {
		t.Fatalf("public agents: %+v", specs)
	}
	if specs[0].GPUs != 2 || !c.Roles.GPUResources {
		t.Fatalf("gpus %d, feature %v: GPU agents are offered only to GPU_RESOURCES frameworks, so --agent-gpus turns it on", specs[0].GPUs, c.Roles.GPUResources)
	}
	if err := (&devShape{public: 4}).apply(devAgents(3), &c); err == nil {
		t.Fatal("more public agents than agents accepted")
	}
}
