package framework

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flotilla-sched/flotilla/appspec"
)

// BenchmarkE2EPods is BenchmarkE2ESimulated for pods: FLOTILLA_BENCH_E2E's
// agents, apps × perApp pod instances of 3 containers each, each instance
// one LAUNCH_GROUP, timed until every instance runs (all 3 containers
// RUNNING). Reported as instances/s; containers/s is 3×.
func BenchmarkE2EPods(b *testing.B) {
	agents, pods, perPod := e2eBenchSize()
	benchE2E(b, nil, agents, pods*perPod, "instances/s", func(s *Scheduler) {
		for i := 0; i < pods; i++ {
			p, err := appspec.DecodePod(strings.NewReader(fmt.Sprintf(`{"id": "/bench/pod%d",
				"containers": [
					{"name": "app", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.01, "mem": 1}},
					{"name": "proxy", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.01, "mem": 1}},
					{"name": "logs", "exec": {"command": {"shell": "sleep 1000"}}, "resources": {"cpus": 0.01, "mem": 1}}],
				"executorResources": {"cpus": 0.01, "mem": 32, "disk": 1},
				"scaling": {"kind": "fixed", "instances": %d}}`, i, perPod)))
			if err != nil {
				b.Fatal(err)
			}
			p.Version = "v1"
			if err := p.Validate(); err != nil {
				b.Fatal(err)
			}
			s.PutApp(*p.App())
		}
	})
}
