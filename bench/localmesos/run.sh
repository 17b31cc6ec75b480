#!/bin/sh
# Scale benchmark of localmesos (issue 3): 1,000 simulated agents, a bare
# mesos-go framework (httpsched + controller) launching 100,000 tasks and
# acknowledging every update until all are TASK_RUNNING.
#
# The master runs as its own process (cmd/localmesos) so that its CPU time
# can be told apart from the framework's; the framework is
# BenchmarkLaunch100k in localmesos/bench_test.go.
#
#   bench/localmesos/run.sh [json|protobuf ...]     (default: json protobuf)
set -eu
cd "$(dirname "$0")/../.."
port=${LOCALMESOS_BENCH_PORT:-15050}
bin=$(mktemp -d)/localmesos
go build -o "$bin" ./cmd/localmesos
go test -c -o "$bin.test" ./localmesos/
codecs=${*:-json protobuf}
ticks=$(getconf CLK_TCK)
for codec in $codecs; do
	"$bin" --listen "127.0.0.1:$port" --agents 1000 --executor simulated --same-ports --no-agent-http --log-level warn &
	pid=$!
	trap 'kill $pid 2>/dev/null || true' EXIT
	for _ in $(seq 50); do
		curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
	before=$(awk '{print $14+$15}' /proc/$pid/stat)
	(cd localmesos && LOCALMESOS_BENCH_URL="http://127.0.0.1:$port/api/v1/scheduler" \
		"$bin.test" -test.run '^$' -test.bench "BenchmarkLaunch100k/$codec\$" -test.benchtime 1x) | grep -E 'Benchmark|FAIL|ok'
	after=$(awk '{print $14+$15}' /proc/$pid/stat)
	echo "master CPU for 100,000 tasks ($codec): $(echo "($after - $before) / $ticks" | bc -l | cut -c1-6) s," \
		"$(echo "($after - $before) * 1000000 / $ticks / 100000" | bc -l | cut -c1-5) µs/task"
	kill $pid
	wait $pid 2>/dev/null || true
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
