package localmesos

import (
	"fmt"
	"math"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Resources is an agent's capacity in the units Mesos uses (cpus, MB, MB).
type Resources struct {
	CPUs  float64
	Mem   float64
	Disk  float64
	GPUs  float64
	Ports []PortRange
	// Reserved are the agent's statically reserved resources by role, on
	// top of the unreserved ones above (Mesos's --resources entries such
	// as cpus(slave_public):2): offered only to frameworks of that role.
	// The entries' own Reserved are ignored.
	Reserved map[string]Resources
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Begin, End uint64 }

// DefaultResources are a Mesos agent's defaults on a small machine; the
// ports range is Mesos's default [31000-32000].
func DefaultResources() Resources {
	return Resources{CPUs: 4, Mem: 8192, Disk: 10240, Ports: []PortRange{{31000, 32000}}}
}

// rset is the master's own resource accounting: scalars and ranges keyed by
// name, "name(role)" for a reserved resource (roles.go). It ignores
// allocation_info on purpose: a task echoing the offer's allocation_info
// must subtract cleanly from the agent's free resources.
type rset struct {
	scalars map[string]float64
	ranges  map[string][]PortRange
}

// scalar values are compared with Mesos's fixed-point precision (3 decimals).
const epsilon = 0.0005

func newRset() rset {
	return rset{scalars: map[string]float64{}, ranges: map[string][]PortRange{}}
}

func fromConfig(r Resources) rset {
	s := newRset()
	s.addConfig(r, "*")
	for role, rr := range r.Reserved {
		s.addConfig(rr, role)
	}
	return s
}

func (s rset) addConfig(r Resources, role string) {
	add := func(n string, v float64) {
		if v > 0 {
			s.scalars[resKey(n, role)] = v
		}
	}
	add("cpus", r.CPUs)
	add("mem", r.Mem)
	add("disk", r.Disk)
	add("gpus", r.GPUs)
	if len(r.Ports) > 0 {
		s.ranges[resKey("ports", role)] = normRanges(append([]PortRange(nil), r.Ports...))
	}
}

// fromMesos converts a task's resources, rejecting shapes the local master
// cannot account for (sets, negative or non-finite scalars, bad ranges).
func fromMesos(rs []mesos.Resource) (rset, error) {
	s := newRset()
	for i := range rs {
		r := &rs[i]
		if r.Name == "" {
			return s, fmt.Errorf("resource has no name")
		}
		pr, err := parseResource(r)
		if err != nil {
			return s, err
		}
		key := pr.key
		if r.Type == nil {
			return s, fmt.Errorf("resource %q has no type", r.Name)
		}
		switch *r.Type {
		case mesos.SCALAR:
			if r.Scalar == nil {
				return s, fmt.Errorf("scalar resource %q has no scalar value", r.Name)
			}
			v := r.Scalar.Value
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return s, fmt.Errorf("scalar resource %q has invalid value %v", r.Name, v)
			}
			if r.Name == "gpus" && v != math.Trunc(v) {
				// Mesos's validateGpus: whole GPUs only.
				return s, fmt.Errorf("invalid 'gpus' resource: the 'gpus' resource must be an unsigned integer")
			}
			s.scalars[key] += v
		case mesos.RANGES:
			if r.Ranges == nil {
				return s, fmt.Errorf("ranges resource %q has no ranges", r.Name)
			}
			for _, rg := range r.Ranges.Range {
				if rg.Begin > rg.End {
					return s, fmt.Errorf("ranges resource %q has invalid range [%d-%d]", r.Name, rg.Begin, rg.End)
				}
				if overlaps(s.ranges[key], PortRange{rg.Begin, rg.End}) {
					return s, fmt.Errorf("ranges resource %q has overlapping ranges", r.Name)
				}
				s.ranges[key] = append(s.ranges[key], PortRange{rg.Begin, rg.End})
			}
			s.ranges[key] = normRanges(s.ranges[key])
		default:
			return s, fmt.Errorf("resource %q has unsupported type %s", r.Name, r.Type.String())
		}
	}
	return s, nil
}

func overlaps(rs []PortRange, x PortRange) bool {
	for _, r := range rs {
		if x.Begin <= r.End && r.Begin <= x.End {
			return true
		}
	}
	return false
}

func normRanges(rs []PortRange) []PortRange {
	if len(rs) < 2 {
		return rs
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Begin < rs[j].Begin })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Begin <= last.End+1 {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func (s rset) clone() rset {
	c := newRset()
	for k, v := range s.scalars {
		c.scalars[k] = v
	}
	for k, v := range s.ranges {
		c.ranges[k] = append([]PortRange(nil), v...)
	}
	return c
}

func (s rset) empty() bool {
	for _, v := range s.scalars {
		if v > epsilon {
			return false
		}
	}
	for _, v := range s.ranges {
		if len(v) > 0 {
			return false
		}
	}
	return true
}

// offerable says whether free resources are worth an offer: Mesos offers
// only when some cpus or mem are left.
func (s rset) offerable() bool {
	for k, v := range s.scalars {
		if n, _ := splitKey(k); (n == "cpus" || n == "mem") && v > epsilon {
			return true
		}
	}
	return false
}

func rangeContains(outer []PortRange, x PortRange) bool {
	for _, r := range outer {
		if r.Begin <= x.Begin && x.End <= r.End {
			return true
		}
	}
	return false
}

// contains reports whether every resource in o fits in s.
func (s rset) contains(o rset) bool {
	for k, v := range o.scalars {
		if v > s.scalars[k]+epsilon {
			return false
		}
	}
	for k, rs := range o.ranges {
		for _, r := range rs {
			if !rangeContains(s.ranges[k], r) {
				return false
			}
		}
	}
	return true
}

// sub removes o from s; the caller has checked s.contains(o).
func (s rset) sub(o rset) {
	for k, v := range o.scalars {
		n := s.scalars[k] - v
		if n < epsilon {
			n = 0
		}
		s.scalars[k] = n
	}
	for k, rs := range o.ranges {
		cur := s.ranges[k]
		for _, x := range rs {
			var next []PortRange
			for _, r := range cur {
				if x.End < r.Begin || x.Begin > r.End {
					next = append(next, r)
					continue
				}
				if r.Begin < x.Begin {
					next = append(next, PortRange{r.Begin, x.Begin - 1})
				}
				if x.End < r.End {
					next = append(next, PortRange{x.End + 1, r.End})
				}
			}
			cur = next
		}
		s.ranges[k] = cur
	}
}

func (s rset) add(o rset) {
	for k, v := range o.scalars {
		s.scalars[k] += v
	}
	for k, rs := range o.ranges {
		s.ranges[k] = normRanges(append(append([]PortRange(nil), s.ranges[k]...), rs...))
	}
}

// toMesos renders the set as offer resources, in a stable order, each with
// allocation_info when allocRole is set (offers carry it, agent totals do
// not). Unreserved resources carry role "*"; reserved ones their role, in
// the format the framework reads: the reservations stack with
// RESERVATION_REFINEMENT, else the pre-refinement Resource.role, as the
// Mesos master downgrades offers for frameworks without it.
func (s rset) toMesos(allocRole string, refinement bool) []mesos.Resource {
	names := make([]string, 0, len(s.scalars)+len(s.ranges))
	for k, v := range s.scalars {
		if v > epsilon {
			names = append(names, k)
		}
	}
	for k, v := range s.ranges {
		if len(v) > 0 {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := make([]mesos.Resource, 0, len(names))
	for _, n := range names {
		name, role := splitKey(n)
		r := mesos.Resource{Name: name, Role: strPtr("*")}
		if role != "*" {
			r.Role = strPtr(role)
			if refinement {
				r.Role = nil
				r.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: strPtr(role)}}
			}
		}
		withIdentity(&r, n, refinement)
		if allocRole != "" {
			r.AllocationInfo = &mesos.Resource_AllocationInfo{Role: strPtr(allocRole)}
		}
		if rs, ok := s.ranges[n]; ok && len(rs) > 0 {
			r.Type = mesos.RANGES.Enum()
			vr := make([]mesos.Value_Range, len(rs))
			for i, x := range rs {
				vr[i] = mesos.Value_Range{Begin: x.Begin, End: x.End}
			}
			r.Ranges = &mesos.Value_Ranges{Range: vr}
		} else {
			r.Type = mesos.SCALAR.Enum()
			r.Scalar = &mesos.Value_Scalar{Value: round3(s.scalars[n])}
		}
		out = append(out, r)
	}
	return out
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// stateJSON renders the set the way Mesos's /master/state does:
// {"cpus":1,"mem":128,"ports":"[31000-31001]"}.
func (s rset) stateJSON() map[string]any {
	s = s.merged()
	out := map[string]any{"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
	for k, v := range s.scalars {
		out[k] = round3(v)
	}
	for k, rs := range s.ranges {
		if len(rs) == 0 {
			continue
		}
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = fmt.Sprintf("%d-%d", r.Begin, r.End)
		}
		out[k] = "[" + strings.Join(parts, ", ") + "]"
	}
	return out
}

// String renders the set the way Mesos prints resources:
// "cpus:0.1; mem:16; ports:[31000-31001]".
func (s rset) String() string {
	var names []string
	for k := range s.scalars {
		names = append(names, k)
	}
	for k := range s.ranges {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if rs, ok := s.ranges[n]; ok {
			rp := make([]string, len(rs))
			for i, r := range rs {
				rp[i] = fmt.Sprintf("%d-%d", r.Begin, r.End)
			}
			parts = append(parts, keyString(n)+":["+strings.Join(rp, ", ")+"]")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s:%v", keyString(n), round3(s.scalars[n])))
	}
	return strings.Join(parts, "; ")
}

func strPtr(s string) *string { return &s }
