#!/usr/bin/env bash
# Memory of a leading `flotilla serve` (in-memory state, task records on)
# with APPS apps × INSTANCES instances running on a localmesos master of
# simulated agents in its own process, so the RSS is Flotilla's alone
# (issue 21: 10,000 apps and 100,000 tasks, < 500 MiB steady, < 1 GiB peak).
# Prints RSS after setup, every 10 s over STEADY seconds, and VmHWM (peak).
# Usage: bench/memory/run.sh [apps] [instances] [steady-seconds]
# Ports: MEM_PORT_BASE (default 20150): master +0, API +30, pprof +40.
# MEM_PROFILE_DIR: write a heap profile (heap.pb.gz) there at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
apps=${1:-10000}
inst=${2:-10}
steady=${3:-60}
base=${MEM_PORT_BASE:-20150}
master=127.0.0.1:$base
apiaddr=127.0.0.1:$((base + 30))
pprofaddr=127.0.0.1:$((base + 40))
api=http://$apiaddr
want=$((apps * inst))
agents=$(((want + 5999) / 6000)) # 64 cpus each at 0.01 per task, with room
go build -o bin/ ./cmd/flotilla ./cmd/localmesos
dir=$(mktemp -d)
bin/localmesos --listen "$master" --agents "$agents" --executor simulated --same-ports --no-agent-http \
	--resources 'cpus:64;mem:1048576;disk:1048576;ports:[31000-32000]' --log-level warn >"$dir/mesos.log" 2>&1 &
mpid=$!
bin/flotilla serve --master "http://$master" --api-addr "$apiaddr" --dns-addr "" --gateway-addr "" \
	--internal-gateway-addr "" --max-instances 100000 --pprof-addr "$pprofaddr" --log-level warn >"$dir/flotilla.log" 2>&1 &
pid=$!
trap 'kill $pid $mpid 2>/dev/null; wait $pid $mpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do curl -fs "$api/ping" >/dev/null 2>&1 && break; sleep 0.1; done
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
mib() { echo $(( $(kib "$1") / 1024 )); }
echo "load $(cut -d' ' -f1-3 /proc/loadavg); idle RSS $(mib VmRSS) MiB; $agents agents"
t0=$(date +%s)
go run ./bench/memory -api "$api" -apps "$apps" -instances "$inst"
echo "apps put in $(($(date +%s) - t0)) s; RSS $(mib VmRSS) MiB"
running() { curl -s "http://$master/master/state" | grep -o '"state":"TASK_RUNNING","statuses"' | wc -l; }
t1=$(date +%s)
for i in $(seq 900); do
	n=$(running)
	[ "$n" -ge "$want" ] && break
	[ $((i % 6)) -eq 0 ] && echo "  $(($(date +%s) - t0)) s: $n running, RSS $(mib VmRSS) MiB, load $(cut -d' ' -f1 /proc/loadavg)"
	sleep 5
done
t2=$(date +%s)
echo "running $n of $want after $((t2 - t0)) s ($((t2 - t1)) s after the last PUT); load $(cut -d' ' -f1-3 /proc/loadavg)"
# Deployments must have succeeded, not run into their progress deadline
# (then they roll back and the tasks go again).
deps() { curl -s "$api/metrics" | awk '/^flotilla_api_deployments_ended_total/ {sub(/^flotilla_api_deployments_ended_total/, "ended"); printf "%s; ", $0} /^flotilla_api_deployments / {printf "running %s", $2}'; echo; }
heap() { curl -s "$api/metrics" | awk '/^go_memstats_heap_inuse_bytes/ {printf "%d MiB", $2 / 1048576}'; }
echo "deployments: $(deps)"
echo "after setup: RSS $(mib VmRSS) MiB (heap in use $(heap)), peak (VmHWM) $(mib VmHWM) MiB"
for i in $(seq 10 10 "$steady"); do
	sleep 10
	echo "steady +${i}s: RSS $(mib VmRSS) MiB (heap in use $(heap))"
done
echo "deployments: $(deps)"
echo "peak (VmHWM) $(mib VmHWM) MiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${MEM_PROFILE_DIR:-}" ]; then
	curl -fs "http://$pprofaddr/debug/pprof/heap" -o "$MEM_PROFILE_DIR/heap.pb.gz" && echo "heap profile: $MEM_PROFILE_DIR/heap.pb.gz"
fi
grep -ciE 'level=(error|fatal)' "$dir/flotilla.log" | sed 's/^/flotilla log errors: /' || true
