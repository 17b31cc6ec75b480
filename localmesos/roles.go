package localmesos

import (
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Static reservations, as a Mesos agent started with
// --resources='cpus:2;cpus(slave_public):2;ports(slave_public):[80-80]' has
// them. The master's accounting (rset) keys a reserved resource by
// "name(role)" and an unreserved one by its bare name, so that contains,
// sub and add keep working unchanged: a task that uses cpus(slave_public)
// takes them from the reserved pool only, and a framework is offered only
// the pools of "*" and of the role the offer is allocated to (Mesos's
// allocator: reserved resources go to their role alone).

// resKey is the accounting key of resource name reserved to role ("*" or
// "" = unreserved).
func resKey(name, role string) string {
	if role == "" || role == "*" {
		return name
	}
	return name + "(" + role + ")"
}

// splitKey undoes resKey: the resource name and its role ("*" when unreserved).
func splitKey(k string) (name, role string) {
	k = stripMeta(k)
	if i := strings.IndexByte(k, '('); i > 0 && strings.HasSuffix(k, ")") {
		return k[:i], k[i+1 : len(k)-1]
	}
	return k, "*"
}

// reservationRole is the role a task's resource is reserved to, in either
// format Mesos accepts: the post-refinement stack (the last entry is the
// role that holds it) or the pre-refinement Resource.role.
func reservationRole(r *mesos.Resource) string {
	if n := len(r.Reservations); n > 0 {
		return r.Reservations[n-1].GetRole()
	}
	if r.Role != nil && *r.Role != "" {
		return *r.Role
	}
	return "*"
}

// forRole is the part of s an offer allocated to role may carry: the
// unreserved resources and those reserved to role.
func (s rset) forRole(role string) rset {
	out := newRset()
	for k, v := range s.scalars {
		if _, r := splitKey(k); r == "*" || r == role {
			out.scalars[k] = v
		}
	}
	for k, v := range s.ranges {
		if _, r := splitKey(k); r == "*" || r == role {
			out.ranges[k] = append([]PortRange(nil), v...)
		}
	}
	return out
}

// reservedTo reports whether s holds anything reserved to role.
func (s rset) reservedTo(role string) bool {
	for k, v := range s.scalars {
		if _, r := splitKey(k); r == role && r != "*" && v > epsilon {
			return true
		}
	}
	for k, v := range s.ranges {
		if _, r := splitKey(k); r == role && r != "*" && len(v) > 0 {
			return true
		}
	}
	return false
}

// byRole splits s into one set per role ("*" included when present), for
// /master/state's reserved_resources and unreserved_resources.
func (s rset) byRole() map[string]rset {
	out := map[string]rset{}
	get := func(role string) rset {
		r, ok := out[role]
		if !ok {
			r = newRset()
			out[role] = r
		}
		return r
	}
	for k, v := range s.scalars {
		n, role := splitKey(k)
		get(role).scalars[n] += v
	}
	for k, v := range s.ranges {
		n, role := splitKey(k)
		r := get(role)
		r.ranges[n] = normRanges(append(r.ranges[n], v...))
	}
	return out
}

// merged is s with the roles dropped: the agent's whole capacity per name.
func (s rset) merged() rset {
	out := newRset()
	for _, r := range s.byRole() {
		out.add(r)
	}
	return out
}

// offerRole picks the role an offer of agent a to fw is allocated to, and
// what the offer holds under it (the unreserved resources and that
// role's); ok is false when that is not worth an offer. A framework of
// several roles (MULTI_ROLE) gets the agent under the first of its roles
// that holds a reservation there, else under its first role; the local
// master keeps one outstanding offer per agent, so one role at a time.
// An agent with GPUs is offered only to frameworks with the GPU_RESOURCES
// capability (Mesos's --filter_gpu_resources, on by default), so that a
// framework that cannot use GPUs does not hold a GPU machine's cpus.
func offerRole(fw *framework, a *agent) (role string, res rset, ok bool) {
	if a.total.hasGPUs() && !hasCapability(&fw.info, mesos.FrameworkInfo_Capability_GPU_RESOURCES) {
		return "", rset{}, false
	}
	roles := fw.roles()
	role = roles[0]
	for _, r := range roles {
		if !fw.suppressed[r] && a.free.reservedTo(r) {
			role = r
			break
		}
	}
	if fw.suppressed[role] {
		for _, r := range roles {
			if !fw.suppressed[r] {
				role = r
				break
			}
		}
	}
	res = a.free.forRole(role)
	return role, res, res.offerable()
}

func (s rset) hasGPUs() bool {
	for k, v := range s.scalars {
		if n, _ := splitKey(k); n == "gpus" && v > epsilon {
			return true
		}
	}
	return false
}

// reservedJSON is /master/state's reserved_resources: role -> resources.
func reservedJSON(s rset) map[string]any {
	out := map[string]any{}
	for role, r := range s.byRole() {
		if role != "*" {
			out[role] = r.stateJSON()
		}
	}
	return out
}

// splitReservedPorts gives agent i of n its share of each role's reserved
// ports, as splitPorts does for the unreserved ones (agents share a host).
func splitReservedPorts(reserved map[string]Resources, i, n int) map[string]Resources {
	if len(reserved) == 0 {
		return reserved
	}
	out := make(map[string]Resources, len(reserved))
	for role, r := range reserved {
		r.Ports = splitPorts(r.Ports, i, n)
		out[role] = r
	}
	return out
}

// shape applies the spec's GPUs and default role to the agent's resources.
func (spec AgentSpec) shape(res Resources) Resources {
	if spec.GPUs > 0 {
		res.GPUs += float64(spec.GPUs)
	}
	if spec.DefaultRole == "" || spec.DefaultRole == "*" {
		return res
	}
	reserved := make(map[string]Resources, len(res.Reserved)+1)
	for role, r := range res.Reserved {
		reserved[role] = r
	}
	mine := reserved[spec.DefaultRole]
	mine.CPUs += res.CPUs
	mine.Mem += res.Mem
	mine.Disk += res.Disk
	mine.GPUs += res.GPUs
	mine.Ports = append(append([]PortRange(nil), mine.Ports...), res.Ports...)
	reserved[spec.DefaultRole] = mine
	return Resources{Reserved: reserved}
}
