#!/usr/bin/env bash
# Idle cost of a leading scheduler: starts `flotilla dev --executor simulated`,
# creates N one-instance apps (default 1000) plus one app that can never be
# placed (hostname UNIQUE, more instances than agents), waits until the
# N tasks run, then at each stage reads over SECS seconds (default 20):
#   - the process's CPU time from /proc/<pid>/stat, as percent of one core;
#   - its allocation rate, from go_memstats_alloc_bytes_total on /metrics
#     (the allocations of one /metrics scrape, measured by two back-to-back
#     scrapes, are subtracted).
# Then, with the N apps running, it takes a CPU profile and an allocation
# profile of SECS seconds of the idle process (/debug/pprof through dev's
# --pprof-addr) and prints their top entries; the files are kept in
# bench/idle/out/. The process is the whole dev stack: the scheduler, the
# API, DNS, and the in-process Mesos master with its simulated agents.
#   bench/idle/run.sh [N] [SECS]
# Ports: IDLE_PORT_BASE (default 18480) for the API, +1 the Mesos master,
# +2 DNS, +3 pprof.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000}
secs=${2:-20}
base=${IDLE_PORT_BASE:-18480}
api=127.0.0.1:$base
pprof=127.0.0.1:$((base + 3))
out=bench/idle/out
mkdir -p "$out"
go build -o bin/ ./cmd/flotilla
./bin/flotilla dev --executor simulated --agents 3 --api-addr "$api" --mesos-addr "127.0.0.1:$((base + 1))" \
  --dns-addr "127.0.0.1:$((base + 2))" --pprof-addr "$pprof" \
  --gateway-addr "" --internal-gateway-addr "" --log-level warn >/tmp/flotilla-idle.log 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$api/ping" >/dev/null && break; sleep 0.1; done

allocated() { # bytes allocated since the process started
  curl -sf "http://$api/metrics" | awk '$1=="go_memstats_alloc_bytes_total"{printf "%.0f\n", $2}'
}
measure() { # "X % of a core, Y MB/s allocated" over $secs
  local tck a b m0 m1 m2
  tck=$(getconf CLK_TCK)
  allocated >/dev/null # the first scrape of a process allocates more than the next ones
  m0=$(allocated)
  m1=$(allocated)
  a=$(awk '{print $14+$15}' "/proc/$pid/stat")
  sleep "$secs"
  b=$(awk '{print $14+$15}' "/proc/$pid/stat")
  m2=$(allocated)
  echo "$(echo "($b-$a)*100/$tck/$secs" | bc -l | xargs printf '%.2f') % of a core," \
    "$(echo "(($m2-$m1)-($m1-$m0))/$secs/1000000" | bc -l | xargs printf '%.3f') MB/s allocated" \
    "(one /metrics scrape: $((m1 - m0)) B; load average $(cut -d' ' -f1 /proc/loadavg))"
}
running() {
  curl -sf "http://$api/v2/tasks" | python3 -c 'import json,sys; print(sum(1 for t in json.load(sys.stdin)["tasks"] if t["state"]=="TASK_RUNNING"))'
}

echo "no app: $(measure)"
for i in $(seq "$n"); do
  curl -sf -o /dev/null -XPOST -H 'Content-Type: application/json' "http://$api/v2/apps" \
    -d "{\"id\":\"/idle/a$i\",\"cmd\":\"sleep 1000\",\"cpus\":0.001,\"mem\":1,\"instances\":1,\"portDefinitions\":[]}"
done
for _ in $(seq 600); do [ "$(running)" -ge "$n" ] && break; sleep 0.5; done
echo "$n apps running, nothing changing ($(running) tasks running): $(measure)"
go tool pprof -proto "http://$pprof/debug/pprof/profile?seconds=$secs" >"$out/cpu.pb.gz" 2>/dev/null
go tool pprof -proto "http://$pprof/debug/pprof/allocs?seconds=$secs" >"$out/allocs.pb.gz" 2>/dev/null
echo "--- CPU profile of the idle process ($n apps running), $secs s: go tool pprof -top $out/cpu.pb.gz"
go tool pprof -top -nodecount=25 "$out/cpu.pb.gz" 2>/dev/null | sed -n '1,32p'
echo "--- allocations of the idle process, $secs s: go tool pprof -sample_index=alloc_space -top $out/allocs.pb.gz"
go tool pprof -sample_index=alloc_space -top -nodecount=20 "$out/allocs.pb.gz" 2>/dev/null | sed -n '1,27p'
curl -sf -o /dev/null -XPOST -H 'Content-Type: application/json' "http://$api/v2/apps" \
  -d '{"id":"/idle/wait","cmd":"sleep 1000","cpus":0.001,"mem":1,"instances":5,"portDefinitions":[],"constraints":[["hostname","UNIQUE"]]}'
sleep 2
echo "$n apps + one waiting for an offer that never fits: $(measure)"
