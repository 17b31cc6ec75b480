#!/usr/bin/env bash
# Idle CPU of a leading scheduler: starts `flotilla dev --executor simulated`,
# creates N one-instance apps (default 1000) plus one app that can never be
# placed (hostname UNIQUE, more instances than agents), waits until the
# N tasks run, then reads the process's CPU time from /proc/<pid>/stat over
# SECS seconds (default 20) at each stage. Prints percent of one core.
#   bench/idle/run.sh [N] [SECS]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000}
secs=${2:-20}
api=127.0.0.1:18480
go build -o bin/ ./cmd/flotilla
./bin/flotilla dev --executor simulated --agents 3 --api-addr "$api" --dns-addr 127.0.0.1:18653 \
  --gateway-addr "" --internal-gateway-addr "" --log-level warn >/tmp/flotilla-idle.log 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$api/ping" >/dev/null && break; sleep 0.1; done

cpu() { # percent of one core over $secs
  local tck a b
  tck=$(getconf CLK_TCK)
  a=$(awk '{print $14+$15}' "/proc/$pid/stat")
  sleep "$secs"
  b=$(awk '{print $14+$15}' "/proc/$pid/stat")
  echo "scale=2; ($b-$a)*100/$tck/$secs" | bc
}
running() {
  curl -sf "http://$api/v2/tasks" | python3 -c 'import json,sys; print(sum(1 for t in json.load(sys.stdin)["tasks"] if t["state"]=="TASK_RUNNING"))'
}

echo "no app: $(cpu) % of a core"
for i in $(seq "$n"); do
  curl -sf -o /dev/null -XPOST -H 'Content-Type: application/json' "http://$api/v2/apps" \
    -d "{\"id\":\"/idle/a$i\",\"cmd\":\"sleep 1000\",\"cpus\":0.001,\"mem\":1,\"instances\":1,\"portDefinitions\":[]}"
done
for _ in $(seq 600); do [ "$(running)" -ge "$n" ] && break; sleep 0.5; done
echo "$n apps running, nothing changing ($(running) tasks running): $(cpu) % of a core"
curl -sf -o /dev/null -XPOST -H 'Content-Type: application/json' "http://$api/v2/apps" \
  -d '{"id":"/idle/wait","cmd":"sleep 1000","cpus":0.001,"mem":1,"instances":5,"portDefinitions":[],"constraints":[["hostname","UNIQUE"]]}'
sleep 2
echo "$n apps + one waiting for an offer that never fits: $(cpu) % of a core"
