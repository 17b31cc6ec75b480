package localmesos

import "math"

// Simulated GPUs. An agent configured with gpus:N (Resources.GPUs, or
// reserved to a role) advertises N GPUs with ids 0..N-1; no device exists.
// A task that takes gpus gets the lowest ids no live task holds, and the
// executor hands them to it as NVIDIA_VISIBLE_DEVICES, the variable the
// NVIDIA container runtime reads, so a task can see which "devices" it was
// given and two tasks never share one. Nothing isolates them: there are
// no device cgroups to restrict.

// assignGPUs picks the GPU ids for a task that takes res on a.
func (a *agent) assignGPUs(res rset) []int {
	n := 0
	for k, v := range res.scalars {
		if name, _ := splitKey(k); name == "gpus" {
			n += int(math.Round(v))
		}
	}
	if n == 0 {
		return nil
	}
	held := map[int]bool{}
	for _, t := range a.tasks {
		if !t.recovered {
			for _, id := range t.gpus {
				held[id] = true
			}
		}
	}
	total := 0
	for k, v := range a.total.scalars {
		if name, _ := splitKey(k); name == "gpus" {
			total += int(math.Round(v))
		}
	}
	var ids []int
	for id := 0; id < total && len(ids) < n; id++ {
		if !held[id] {
			ids = append(ids, id)
		}
	}
	return ids
}
