package appspec

import "fmt"

// Marathon's default service port range (--local_port_min/--local_port_max).
const (
	DefaultServicePortMin = 10000
	DefaultServicePortMax = 20000
)

// PortRange is the range service ports are assigned from, inclusive.
type PortRange struct{ Min, Max uint32 }

// WithDefaults fills an unset range with Marathon's.
func (r PortRange) WithDefaults() PortRange {
	if r.Min == 0 && r.Max == 0 {
		return PortRange{DefaultServicePortMin, DefaultServicePortMax}
	}
	return r
}

// servicePortPath is where the service port of index i is written.
func (a *App) servicePortPath(i int) string {
	if a.NetworkMode() == NetworkHost {
		return fmt.Sprintf("/portDefinitions/%d/port", i)
	}
	return fmt.Sprintf("/container/portMappings/%d/servicePort", i)
}

// AssignServicePorts gives every port of app a service port, as Marathon
// does: a port the user asked for is kept unless another app holds it
// (refused with Marathon's message, naming the holder); a port left at 0
// keeps the one the previous version of the app had at that index, so
// load balancers in front keep their frontends across updates; otherwise
// it gets the lowest free port of r. holder names the app holding a port
// (other than app itself), or "". Pure, so it is table-tested; the caller
// owns the set of ports in use.
func AssignServicePorts(app, prev *App, holder func(port uint32) string, r PortRange) error {
	if app.Pod != nil {
		return nil // Marathon tracks and allocates no service ports for pods
	}
	r = r.WithDefaults()
	ports := app.PortList()
	v := &ValidationError{}
	mine := map[uint32]bool{}
	for _, p := range ports {
		if p.ServicePort == 0 {
			continue
		}
		if h := holder(p.ServicePort); h != "" {
			v.addf(app.servicePortPath(p.Index), "Requested service port %d conflicts with a service port in app %s", p.ServicePort, h)
		}
		mine[p.ServicePort] = true
	}
	if len(v.Details) > 0 {
		return v
	}
	var old []uint32
	if prev != nil {
		old = prev.ServicePorts()
	}
	next := r.Min
	for _, p := range ports {
		if p.ServicePort != 0 {
			continue
		}
		if p.Index < len(old) && old[p.Index] != 0 && !mine[old[p.Index]] && holder(old[p.Index]) == "" {
			app.SetServicePort(p.Index, old[p.Index])
			mine[old[p.Index]] = true
			continue
		}
		for next <= r.Max && (mine[next] || holder(next) != "") {
			next++
		}
		if next > r.Max || next == 0 {
			v.addf(app.servicePortPath(p.Index), "no free service port left in %d-%d (--local-port-min/--local-port-max); free one or widen the range", r.Min, r.Max)
			return v
		}
		app.SetServicePort(p.Index, next)
		mine[next] = true
	}
	return nil
}
