package main

import (
	"flag"
	"fmt"
	"os/user"
	"strings"

	"github.com/flotilla-sched/flotilla/framework"
	"github.com/flotilla-sched/flotilla/localmesos"
)

// roleConfig is what the role, user and GPU flags set (Marathon's
// --mesos_role, --mesos_user, --accepted_resource_roles_default_behavior,
// --default_accepted_resource_roles and --enable_features gpu_resources).
type roleConfig struct {
	MesosUser            string // FrameworkInfo.user; default the user running Flotilla
	AcceptedRolesDefault string // framework.AcceptAny (default), AcceptUnreserved, AcceptReserved
	// DefaultAcceptedRoles is the deprecated list form; when set it
	// overrides AcceptedRolesDefault (resolved against Role at start).
	DefaultAcceptedRoles []string
	GPUResources         bool
}

// roleFlags registers the role, user and feature flags on fs.
func roleFlags(fs *flag.FlagSet, c *platformConfig) {
	fs.StringVar(&c.Role, "mesos-role", "*", "Mesos role Flotilla subscribes with (Marathon's --mesos_role; same as --role): apps may use resources reserved to it")
	current := "root"
	if u, err := user.Current(); err == nil && u.Username != "" {
		current = u.Username
	}
	fs.StringVar(&c.Roles.MesosUser, "mesos-user", current, "Mesos user of the framework (FrameworkInfo.user, Marathon's --mesos_user): tasks without a user run as it on agents that switch users")
	c.Roles.AcceptedRolesDefault = framework.AcceptAny
	fs.Func("accepted-resource-roles-default-behavior", "resources an app without acceptedResourceRoles takes: any (unreserved and reserved to --mesos-role), unreserved, or reserved (default any)", func(v string) error {
		b, err := framework.ParseAcceptedRolesDefault(v)
		c.Roles.AcceptedRolesDefault = b
		return err
	})
	fs.Func("default-accepted-resource-roles", "deprecated list form of --accepted-resource-roles-default-behavior: \"*\", the --mesos-role, or both, comma-separated", func(v string) error {
		c.Roles.DefaultAcceptedRoles = splitComma(v)
		if len(c.Roles.DefaultAcceptedRoles) == 0 {
			return fmt.Errorf("want \"*\", the --mesos-role, or both")
		}
		return nil
	})
	fs.Func("enable-features", "optional features, comma-separated: gpu_resources (register GPU_RESOURCES with Mesos; apps may ask for gpus)", func(v string) error {
		for _, f := range splitComma(v) {
			switch strings.ToLower(f) {
			case "gpu_resources":
				c.Roles.GPUResources = true
			default:
				return fmt.Errorf("unknown feature %q (known: gpu_resources)", f)
			}
		}
		return nil
	})
}

// acceptedRolesDefault resolves the default behaviour once the role is
// known: the deprecated list form wins when given.
func (c *platformConfig) acceptedRolesDefault() (string, error) {
	if len(c.Roles.DefaultAcceptedRoles) > 0 {
		return framework.DefaultAcceptedRolesBehavior(c.Roles.DefaultAcceptedRoles, c.Role)
	}
	return framework.ParseAcceptedRolesDefault(c.Roles.AcceptedRolesDefault)
}

// devShape is what `flotilla dev` adds to its local agents: DC/OS-style
// public agents and simulated GPUs.
type devShape struct {
	public int // the last n agents reserve everything to slave_public
	gpus   int // simulated GPUs on every agent
}

func devShapeFlags(fs *flag.FlagSet) *devShape {
	d := &devShape{}
	fs.IntVar(&d.public, "public-agents", 0, "make the last n agents public, as on DC/OS: their resources reserved to slave_public (run with --mesos-role slave_public and acceptedResourceRoles [\"slave_public\"] to use them)")
	fs.IntVar(&d.gpus, "agent-gpus", 0, "give every agent this many simulated GPUs (turns on --enable-features gpu_resources)")
	return d
}

// apply shapes the agents and the platform's config.
func (d *devShape) apply(specs []localmesos.AgentSpec, c *platformConfig) error {
	if d.public < 0 || d.public > len(specs) {
		return fmt.Errorf("--public-agents must be from 0 to --agents (%d), got %d", len(specs), d.public)
	}
	if d.gpus < 0 {
		return fmt.Errorf("--agent-gpus must be 0 or more, got %d", d.gpus)
	}
	for i := len(specs) - d.public; i < len(specs); i++ {
		specs[i].DefaultRole = "slave_public"
		specs[i].Attributes["public_ip"] = "true"
	}
	for i := range specs {
		specs[i].GPUs = d.gpus
	}
	if d.gpus > 0 {
		c.Roles.GPUResources = true
	}
	return nil
}

// roleInfo is what /v2/info's marathon_config says of roles, user and
// features, under Marathon's names.
func (c *platformConfig) roleInfo(acceptDefault string) map[string]any {
	features := []string{}
	if c.Roles.GPUResources {
		features = append(features, "gpu_resources")
	}
	return map[string]any{
		"mesos_role": c.Role, "mesos_user": c.Roles.MesosUser, "features": features,
		"accepted_resource_roles_default_behavior": acceptDefault,
	}
}
