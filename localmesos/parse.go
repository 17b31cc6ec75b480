package localmesos

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseResources reads a Mesos agent's --resources text form:
// "cpus:4;mem:8192;ports:[31000-32000];cpus(slave_public):2;gpus:2".
// name(role):value reserves the amount statically to role; "*" or no role
// means unreserved.
func ParseResources(s string) (Resources, error) {
	var all Resources
	for _, part := range strings.Split(s, ";") {
		kv := strings.SplitN(strings.TrimSpace(part), ":", 2)
		if len(kv) != 2 {
			return Resources{}, fmt.Errorf("bad --resources entry %q (want name:value)", part)
		}
		name, val, role := kv[0], strings.TrimSpace(kv[1]), "*"
		if i := strings.IndexByte(name, '('); i > 0 && strings.HasSuffix(name, ")") {
			name, role = name[:i], name[i+1:len(name)-1]
			if err := validRole(role); err != nil {
				return Resources{}, fmt.Errorf("bad --resources entry %q: %w", part, err)
			}
		}
		r := all
		if role != "*" {
			r = all.Reserved[role]
		}
		if err := r.set(name, val); err != nil {
			return Resources{}, err
		}
		if role == "*" {
			r.Reserved = all.Reserved
			all = r
			continue
		}
		if all.Reserved == nil {
			all.Reserved = map[string]Resources{}
		}
		all.Reserved[role] = r
	}
	return all, nil
}

// set parses one name:value entry into r.
func (r *Resources) set(name, val string) error {
	if name == "ports" {
		val = strings.TrimSuffix(strings.TrimPrefix(val, "["), "]")
		for _, rg := range strings.Split(val, ",") {
			be := strings.SplitN(strings.TrimSpace(rg), "-", 2)
			if len(be) != 2 {
				return fmt.Errorf("bad ports range %q in --resources (want [begin-end])", rg)
			}
			b, err1 := strconv.ParseUint(be[0], 10, 16)
			e, err2 := strconv.ParseUint(be[1], 10, 16)
			if err := errors.Join(err1, err2); err != nil || b > e {
				return fmt.Errorf("bad ports range %q in --resources", rg)
			}
			r.Ports = append(r.Ports, PortRange{Begin: b, End: e})
		}
		return nil
	}
	v, err := strconv.ParseFloat(val, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("bad value %q for %s in --resources", val, name)
	}
	switch name {
	case "cpus":
		r.CPUs = v
	case "mem":
		r.Mem = v
	case "disk":
		r.Disk = v
	case "gpus":
		if v != float64(int64(v)) {
			return fmt.Errorf("bad value %q for gpus in --resources (GPUs are whole)", val)
		}
		r.GPUs = v
	default:
		return fmt.Errorf("unknown resource %q in --resources (cpus, mem, disk, gpus, ports)", name)
	}
	return nil
}
