package framework

import (
	"maps"
	"slices"

	"github.com/flotilla-sched/flotilla/appspec"
)

// cloneApp deep-copies an App so that the scheduler's copy, shared
// read-only through snapshots and events, cannot change under it when the
// caller reuses its value. Fields added to App later are copied shallowly
// until listed here.
func cloneApp(a *appspec.App) *appspec.App {
	c := *a
	c.Args = slices.Clone(a.Args)
	c.Pod = a.Pod.Clone()
	if a.Container != nil {
		ct := *a.Container
		ct.PortMappings = clonePortMappings(a.Container.PortMappings)
		if a.Container.Docker != nil {
			d := *a.Container.Docker
			d.PortMappings = clonePortMappings(d.PortMappings)
			d.Parameters = slices.Clone(d.Parameters)
			ct.Docker = &d
		}
		c.Container = &ct
	}
	if a.PortDefinitions != nil {
		c.PortDefinitions = make([]appspec.PortDefinition, len(a.PortDefinitions))
		for i, pd := range a.PortDefinitions {
			pd.Labels = maps.Clone(pd.Labels)
			c.PortDefinitions[i] = pd
		}
	}
	c.Env = maps.Clone(a.Env)
	c.Secrets = maps.Clone(a.Secrets)
	c.Labels = maps.Clone(a.Labels)
	if a.Constraints != nil {
		c.Constraints = make([][]string, len(a.Constraints))
		for i, x := range a.Constraints {
			c.Constraints[i] = slices.Clone(x)
		}
	}
	if a.HealthChecks != nil {
		c.HealthChecks = make([]appspec.HealthCheck, len(a.HealthChecks))
		for i, h := range a.HealthChecks {
			if h.PortIndex != nil {
				v := *h.PortIndex
				h.PortIndex = &v
			}
			if h.Port != nil {
				v := *h.Port
				h.Port = &v
			}
			if h.Command != nil {
				v := *h.Command
				h.Command = &v
			}
			c.HealthChecks[i] = h
		}
	}
	if a.ReadinessChecks != nil {
		c.ReadinessChecks = make([]appspec.ReadinessCheck, len(a.ReadinessChecks))
		for i, r := range a.ReadinessChecks {
			r.HTTPStatusCodesForReady = slices.Clone(r.HTTPStatusCodesForReady)
			c.ReadinessChecks[i] = r
		}
	}
	if a.Exposure != nil {
		e := *a.Exposure
		e.VHosts = slices.Clone(e.VHosts)
		e.Paths = slices.Clone(e.Paths)
		c.Exposure = &e
	}
	if a.Autoscale != nil {
		as := *a.Autoscale
		if as.Prometheus != nil {
			p := *as.Prometheus
			p.Labels = maps.Clone(p.Labels)
			as.Prometheus = &p
		}
		c.Autoscale = &as
	}
	return &c
}

func clonePortMappings(pms []appspec.PortMapping) []appspec.PortMapping {
	if pms == nil {
		return nil
	}
	out := make([]appspec.PortMapping, len(pms))
	for i, pm := range pms {
		pm.Labels = maps.Clone(pm.Labels)
		out[i] = pm
	}
	return out
}
