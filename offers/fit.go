package offers

import (
	"fmt"
	"math"
	"slices"
)

// PerOfferCap bounds how many copies of a request that needs nothing
// countable (no cpus, mem, disk, gpus or ports) one offer is counted as
// holding, so Fits stays finite.
const PerOfferCap = 10000

// Fits returns at most how many copies of r the offers could hold between
// them, judging resources only: roles as Place judges them, no constraints,
// no other requests. It is an upper bound, so a caller that asks Place for
// min(wanted, Fits) loses no placement Place could make, and the requests it
// builds are bounded by what the offers hold rather than by what is wanted
// (an app asking for 10^9 instances on three agents builds a few thousand).
func Fits(ofs []Offer, r *Request) int {
	need := [5]int64{toMilli(r.CPUs), toMilli(r.Mem), toMilli(r.Disk), int64(max(r.GPUs, 0)),
		int64(max(r.Ports, 0)) + int64(len(r.HostPorts))}
	total := 0
	for i := range ofs {
		var free [5]int64
		for _, rr := range ofs[i].Resources {
			if !roleUsable(rr.Role, r) {
				continue
			}
			free[0] = satAdd(free[0], toMilli(rr.CPUs))
			free[1] = satAdd(free[1], toMilli(rr.Mem))
			free[2] = satAdd(free[2], toMilli(rr.Disk))
			free[3] = satAdd(free[3], int64(max(rr.GPUs, 0)))
			for _, pr := range rr.Ports {
				if pr.End >= pr.Begin {
					free[4] = satAdd(free[4], int64(min(pr.End-pr.Begin+1, math.MaxInt32)))
				}
			}
		}
		n := int64(PerOfferCap)
		for d := range need {
			if need[d] > 0 {
				n = min(n, free[d]/need[d])
			}
		}
		// Fixed host ports can be taken once per offer.
		if len(r.HostPorts) > 0 {
			n = min(n, 1)
		}
		total += int(n)
	}
	return total
}

// roleUsable: a request may use the roles it accepts, by default
// unreserved resources and those reserved to its own role ("" means "*"),
// as Place's usable does.
func roleUsable(resRole string, r *Request) bool {
	if resRole == "" {
		resRole = "*"
	}
	if len(r.AcceptedRoles) > 0 {
		return slices.Contains(r.AcceptedRoles, resRole)
	}
	reqRole := r.Role
	if reqRole == "" {
		reqRole = "*"
	}
	return resRole == "*" || resRole == reqRole
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Capacity is the most of each resource a single offer has held, usable by
// any role: what the scheduler knows of its biggest agent without asking
// the master. A request beyond it cannot be placed on anything seen so far.
type Capacity struct {
	CPUs, Mem, Disk float64
	GPUs, Ports     int
}

// Grow raises c to cover o.
func (c *Capacity) Grow(o *Offer) {
	var t Capacity
	for _, rr := range o.Resources {
		t.CPUs += max(rr.CPUs, 0)
		t.Mem += max(rr.Mem, 0)
		t.Disk += max(rr.Disk, 0)
		t.GPUs += max(rr.GPUs, 0)
		for _, pr := range rr.Ports {
			if pr.End >= pr.Begin {
				t.Ports += int(min(pr.End-pr.Begin+1, math.MaxInt32))
			}
		}
	}
	c.CPUs, c.Mem, c.Disk = max(c.CPUs, t.CPUs), max(c.Mem, t.Mem), max(c.Disk, t.Disk)
	c.GPUs, c.Ports = max(c.GPUs, t.GPUs), max(c.Ports, t.Ports)
}

// Lacks names the first resource r needs more of than any offer in c has
// held ("" when none): Marathon accepts cpus: 1e308, and the queue should
// say why such an app waits for ever rather than only that offers refused it.
func (c Capacity) Lacks(r *Request) string {
	ports := max(r.Ports, 0) + len(r.HostPorts)
	switch {
	case r.CPUs > c.CPUs:
		return fmt.Sprintf("cpus: needs %g, the largest offer seen had %g", r.CPUs, c.CPUs)
	case r.Mem > c.Mem:
		return fmt.Sprintf("mem: needs %g MiB, the largest offer seen had %g MiB", r.Mem, c.Mem)
	case r.Disk > c.Disk:
		return fmt.Sprintf("disk: needs %g MiB, the largest offer seen had %g MiB", r.Disk, c.Disk)
	case r.GPUs > c.GPUs:
		return fmt.Sprintf("gpus: needs %d, the largest offer seen had %d", r.GPUs, c.GPUs)
	case ports > c.Ports:
		return fmt.Sprintf("ports: needs %d, the largest offer seen had %d", ports, c.Ports)
	}
	return ""
}
