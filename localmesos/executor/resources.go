package executor

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// taskLimits sums the task's scalar cpus and mem (MB) resources, the way
// Mesos's containerizers derive cpus_limit and mem_limit_bytes.
func taskLimits(info mesos.TaskInfo) (cpus float64, memBytes uint64) {
	var memMB float64
	for i := range info.Resources {
		r := &info.Resources[i]
		sc := r.GetScalar()
		if sc == nil {
			continue
		}
		switch r.GetName() {
		case "cpus":
			cpus += sc.GetValue()
		case "mem":
			memMB += sc.GetValue()
		}
	}
	if memMB > 0 {
		memBytes = uint64(memMB * 1024 * 1024)
	}
	return cpus, memBytes
}

func setLimits(rs *mesos.ResourceStatistics, cpus float64, mem uint64) {
	if cpus > 0 {
		c := cpus
		rs.CPUsLimit = &c
	}
	if mem > 0 {
		m := mem
		rs.MemLimitBytes = &m
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

func healthStatus(healthy bool) Status {
	r := mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
	h := healthy
	return Status{State: mesos.TASK_RUNNING, Reason: &r, Healthy: &h}
}
