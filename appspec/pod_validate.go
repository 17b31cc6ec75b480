package appspec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Marathon's PodsValidation (api/v2/validation/PodsValidation.scala),
// with Mesos's own limits where Mesos would refuse the launch: every
// problem named by its JSON pointer, in Marathon's words where it has
// them.

// Validate checks the pod against Marathon's PodsValidation and
// Flotilla's limits; problems are named by JSON pointer, as for apps.
func (p *Pod) Validate() error {
	v := &ValidationError{}
	if err := CheckID(p.ID); err != nil {
		v.add("/id", strings.Replace(strings.TrimPrefix(err.Error(), "appspec: "), "app id", "pod id", 1))
	}
	p.validateNetworks(v)
	mode := p.NetworkMode()
	if len(p.Containers) == 0 {
		v.add("/containers", "must not be empty: a pod has at least one container")
	}
	names := map[string]int{}
	endpoints := map[string]string{}
	hostPorts := map[uint32]string{}
	containerPorts := map[uint32]string{}
	volumes := map[string]bool{}
	for i, vol := range p.Volumes {
		path := fmt.Sprintf("/volumes/%d", i)
		if !portName.MatchString(vol.Name) {
			v.add(path+"/name", "must be a name of lowercase letters, digits and '-', starting and ending with a letter or digit")
		}
		if volumes[vol.Name] {
			v.addf(path+"/name", "volume names are not unique: %q is defined twice", vol.Name)
		}
		volumes[vol.Name] = true
	}
	mounted := map[string]bool{}
	for i := range p.Containers {
		c := &p.Containers[i]
		cp := fmt.Sprintf("/containers/%d", i)
		if !portName.MatchString(c.Name) || len(c.Name) > 63 {
			v.add(cp+"/name", "must be a name of lowercase letters, digits and '-' (at most 63), starting and ending with a letter or digit")
		}
		if j, ok := names[c.Name]; ok {
			v.addf(cp+"/name", "container names are not unique: %q is also container %d", c.Name, j)
		} else {
			names[c.Name] = i
		}
		r := c.Resources
		switch {
		case !finite(r.CPUs) || r.CPUs < 0:
			v.add(cp+"/resources/cpus", "must be 0 or more")
		case !finite(r.Mem) || r.Mem < 0:
			v.add(cp+"/resources/mem", "must be 0 or more")
		case !finite(r.Disk) || r.Disk < 0:
			v.add(cp+"/resources/disk", "must be 0 or more")
		case r.GPUs < 0:
			v.add(cp+"/resources/gpus", "must be 0 or more")
		}
		if c.Exec == nil && c.Image == nil {
			v.add(cp, "needs exec (a command) or an image to run")
		}
		if c.Exec != nil {
			if (c.Exec.Command.Shell == "") == (len(c.Exec.Command.Argv) == 0) {
				v.add(cp+"/exec/command", "give exactly one of shell or argv")
			}
		}
		if im := c.Image; im != nil {
			if im.Kind != "DOCKER" {
				v.addf(cp+"/image/kind", "%q is not supported: only DOCKER images run here", im.Kind)
			}
			if im.ID == "" || len(im.ID) > 1024 {
				v.add(cp+"/image/id", "must be 1 to 1024 characters")
			}
		}
		for j, e := range c.Endpoints {
			ep := fmt.Sprintf("%s/endpoints/%d", cp, j)
			if !portName.MatchString(e.Name) || len(e.Name) > 63 {
				v.add(ep+"/name", "must be a name of lowercase letters, digits and '-' (at most 63), starting and ending with a letter or digit")
			}
			if other, ok := endpoints[e.Name]; ok {
				v.addf(ep+"/name", "endpoint names are not unique: %q is also an endpoint of container %s", e.Name, other)
			} else {
				endpoints[e.Name] = c.Name
			}
			switch mode {
			case PodNetworkHost:
				if e.HostPort == nil {
					v.add(ep+"/hostPort", "is required when using host-mode networking (0: any port from the offer)")
				}
				if e.ContainerPort != nil {
					v.add(ep+"/containerPort", "is not allowed when using host-mode networking")
				}
			default:
				if e.ContainerPort == nil {
					v.add(ep+"/containerPort", "is required when using container-mode networking")
				}
			}
			if e.ContainerPort != nil {
				if *e.ContainerPort < 1 || *e.ContainerPort > 65535 {
					v.add(ep+"/containerPort", "must be 1 to 65535")
				} else if other, ok := containerPorts[*e.ContainerPort]; ok {
					v.addf(ep+"/containerPort", "container ports are not unique: %d is also endpoint %q's", *e.ContainerPort, other)
				} else {
					containerPorts[*e.ContainerPort] = e.Name
				}
			}
			if e.HostPort != nil && *e.HostPort != 0 {
				if *e.HostPort > 65535 {
					v.add(ep+"/hostPort", "must be 0 to 65535")
				} else if other, ok := hostPorts[*e.HostPort]; ok {
					v.addf(ep+"/hostPort", "host ports are not unique: %d is also endpoint %q's", *e.HostPort, other)
				} else {
					hostPorts[*e.HostPort] = e.Name
				}
			}
			seen := map[string]bool{}
			for k, proto := range e.Protocol {
				pp := fmt.Sprintf("%s/protocol/%d", ep, k)
				if proto != "tcp" && proto != "udp" {
					v.addf(pp, "%q is not a protocol: use tcp or udp", proto)
				}
				if seen[proto] {
					v.add(pp, "Duplicate protocols within the same endpoint are not allowed")
				}
				seen[proto] = true
			}
		}
		p.validateHealth(v, cp, c)
		for j, m := range c.VolumeMounts {
			mp := fmt.Sprintf("%s/volumeMounts/%d", cp, j)
			if !volumes[m.Name] {
				v.addf(mp+"/name", "Referenced Volume in VolumeMount should exist: no volume %q in /volumes", m.Name)
			}
			mounted[m.Name] = true
			if m.MountPath == "" || len(m.MountPath) > 1024 {
				v.add(mp+"/mountPath", "must be 1 to 1024 characters")
			}
		}
		for j, a := range c.Artifacts {
			if a.URI == "" {
				v.add(fmt.Sprintf("%s/artifacts/%d/uri", cp, j), "must not be empty")
			}
		}
		if lc := c.Lifecycle; lc != nil && lc.KillGracePeriodSeconds != nil && !(*lc.KillGracePeriodSeconds > 0) {
			v.add(cp+"/lifecycle/killGracePeriodSeconds", "must be more than 0")
		}
		checkPodEnv(v, cp+"/environment", c.Environment, p.Secrets)
	}
	for i, vol := range p.Volumes {
		if !mounted[vol.Name] {
			v.addf(fmt.Sprintf("/volumes/%d", i), "volume must be referenced by at least one container: %q is mounted nowhere", vol.Name)
		}
	}
	checkPodEnv(v, "/environment", p.Environment, p.Secrets)
	for _, name := range slices.Sorted(maps.Keys(p.Secrets)) {
		if err := CheckSecretSource(p.Secrets[name].Source); err != nil {
			v.add("/secrets/"+pointerToken(name)+"/source", strings.TrimPrefix(err.Error(), "appspec: "))
		}
	}
	p.validateScheduling(v)
	if p.Autoscale != nil {
		p.App().validateAutoscale(v) // the same paths: /autoscale/…
	}
	if len(v.Details) > 0 {
		return v
	}
	return nil
}

func (p *Pod) validateNetworks(v *ValidationError) {
	if len(p.Networks) > 1 {
		v.add("/networks", "only one network is supported: all containers share one network stack")
	}
	for i, n := range p.Networks {
		np := fmt.Sprintf("/networks/%d", i)
		switch n.Mode {
		case PodNetworkHost:
			if n.Name != "" {
				v.add(np+"/name", "is not allowed for host networking")
			}
		case PodNetworkBridge:
			if n.Name != "" {
				v.add(np+"/name", "is not allowed for container/bridge networking")
			}
		case PodNetworkContainer:
			v.addf(np+"/mode", "%q networking of pods (a named CNI network) is not supported yet: use host or container/bridge networking", n.Mode)
		default:
			v.addf(np+"/mode", "%q is not a network mode: use host, container or container/bridge", n.Mode)
		}
	}
}

func (p *Pod) validateHealth(v *ValidationError, cp string, c *PodContainer) {
	hc := c.HealthCheck
	if hc == nil {
		return
	}
	hp := cp + "/healthCheck"
	n := 0
	for _, set := range []bool{hc.HTTP != nil, hc.TCP != nil, hc.Exec != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.add(hp, "Only one of http, tcp, or command may be specified")
	}
	endpoint := func(path, name string) {
		for _, e := range c.Endpoints {
			if e.Name == name {
				return
			}
		}
		v.addf(path, "%q is not contained in the container endpoints", name)
	}
	if hc.HTTP != nil {
		endpoint(hp+"/http/endpoint", hc.HTTP.Endpoint)
		if s := hc.HTTP.Scheme; s != "" && s != "HTTP" && s != "HTTPS" {
			v.addf(hp+"/http/scheme", "%q is not a scheme: use HTTP or HTTPS", s)
		}
	}
	if hc.TCP != nil {
		endpoint(hp+"/tcp/endpoint", hc.TCP.Endpoint)
	}
	if hc.Exec != nil && hc.Exec.Command.Shell == "" && len(hc.Exec.Command.Argv) == 0 {
		v.add(hp+"/exec/command", "give a shell command or an argv")
	}
	switch {
	case hc.GracePeriodSeconds < 0 || !finite(hc.GracePeriodSeconds):
		v.add(hp+"/gracePeriodSeconds", "must be 0 or more")
	case hc.DelaySeconds < 0 || !finite(hc.DelaySeconds):
		v.add(hp+"/delaySeconds", "must be 0 or more")
	case !(hc.IntervalSeconds > 0) || !finite(hc.IntervalSeconds):
		v.add(hp+"/intervalSeconds", "must be more than 0")
	case hc.TimeoutSeconds < 0 || hc.TimeoutSeconds >= hc.IntervalSeconds:
		v.add(hp+"/timeoutSeconds", "must be 0 or more and less than intervalSeconds")
	case hc.MaxConsecutiveFailures < 0:
		v.add(hp+"/maxConsecutiveFailures", "must be 0 or more")
	}
}

func (p *Pod) validateScheduling(v *ValidationError) {
	if s := p.Scaling; s != nil {
		if s.Kind != "fixed" {
			v.addf("/scaling/kind", "%q is not supported: Marathon's only scaling policy is fixed", s.Kind)
		}
		if s.Instances < 0 {
			v.add("/scaling/instances", "must be 0 or more")
		}
		if s.MaxInstances != nil && *s.MaxInstances < s.Instances {
			v.add("/scaling/maxInstances", "must be at least instances")
		}
	}
	if er := p.ExecutorResources; er != nil {
		// Mesos refuses a task group whose executor has less
		// (validation.cpp: MIN_CPUS, MIN_MEM, and some disk).
		if !(er.CPUs >= MinExecutorCPUs) || !finite(er.CPUs) {
			v.addf("/executorResources/cpus", "must be at least %v, Mesos's minimum for an executor (got %v)", MinExecutorCPUs, er.CPUs)
		}
		if !(er.Mem >= MinExecutorMem) || !finite(er.Mem) {
			v.addf("/executorResources/mem", "must be at least %v MiB, Mesos's minimum for an executor (got %v)", MinExecutorMem, er.Mem)
		}
		if !(er.Disk > 0) || !finite(er.Disk) {
			v.addf("/executorResources/disk", "must be more than 0: Mesos refuses an executor without disk (got %v)", er.Disk)
		}
		if er.GPUs < 0 {
			v.add("/executorResources/gpus", "must be 0 or more")
		}
	}
	s := p.Scheduling
	if s == nil {
		return
	}
	if b := s.Backoff; b != nil {
		if b.Backoff < 0 {
			v.add("/scheduling/backoff/backoff", "must be 0 or more")
		}
		if b.BackoffFactor < 1 {
			v.add("/scheduling/backoff/backoffFactor", "must be 1 or more")
		}
		if b.MaxLaunchDelay < 0 {
			v.add("/scheduling/backoff/maxLaunchDelay", "must be 0 or more")
		}
	}
	if u := s.Upgrade; u != nil {
		if u.MinimumHealthCapacity < 0 || u.MinimumHealthCapacity > 1 {
			v.add("/scheduling/upgrade/minimumHealthCapacity", "must be between 0 and 1")
		}
		if u.MaximumOverCapacity < 0 || u.MaximumOverCapacity > 1 {
			v.add("/scheduling/upgrade/maximumOverCapacity", "must be between 0 and 1")
		}
	}
	if s.KillSelection != "YOUNGEST_FIRST" && s.KillSelection != "OLDEST_FIRST" {
		v.addf("/scheduling/killSelection", "%q is not a kill selection: use YOUNGEST_FIRST or OLDEST_FIRST", s.KillSelection)
	}
	if pl := s.Placement; pl != nil {
		for i, c := range pl.Constraints {
			cp := fmt.Sprintf("/scheduling/placement/constraints/%d", i)
			if c.FieldName == "" {
				v.add(cp+"/fieldName", "must not be empty")
			}
			if !constraintOps[c.Operator] {
				v.addf(cp+"/operator", "%q is not an operator: use UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS", c.Operator)
			}
		}
	}
}

func checkPodEnv(v *ValidationError, path string, env map[string]EnvValue, secrets map[string]Secret) {
	for _, k := range slices.Sorted(maps.Keys(env)) {
		p := path + "/" + pointerToken(k)
		if !envName.MatchString(k) {
			v.add(p, "environment variable names use letters, digits and '_', and do not start with a digit")
		}
		if s := env[k].Secret; s != "" {
			if _, ok := secrets[s]; !ok {
				v.addf(p, "references secret %q, which is not defined in secrets; add \"secrets\": {%q: {\"source\": \"<vault path>#<field>\"}}", s, s)
			}
		}
	}
}

// ValidateWith is Validate plus the rules that depend on the server (l):
// acceptedResourceRoles against its Mesos role, GPUs against its
// features, as for apps.
func (p *Pod) ValidateWith(l Limits) error {
	v := &ValidationError{}
	if err := p.Validate(); err != nil {
		ve, ok := err.(*ValidationError)
		if !ok {
			return err
		}
		v = ve
	}
	rv := &ValidationError{}
	p.App().validateRoles(rv, l.WithDefaults())
	for _, d := range rv.Details {
		path := strings.Replace(d.Path, "/acceptedResourceRoles", "/scheduling/placement/acceptedResourceRoles", 1)
		for _, e := range d.Errors {
			v.add(path, e)
		}
	}
	if len(v.Details) > 0 {
		return v
	}
	return nil
}
