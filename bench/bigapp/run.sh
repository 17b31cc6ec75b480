#!/usr/bin/env bash
# The 10^9-instance request of issue 22 against `flotilla dev --executor
# simulated`: the process's RSS before the request, after it is answered,
# and after the scheduler has had offers for it. Prints the queue entry.
# Usage: bench/bigapp/run.sh [max-instances]   (default: the server's default)
set -euo pipefail
cd "$(dirname "$0")/../.."
max=${1:-}
go build -o bin/ ./cmd/flotilla
dir=$(mktemp -d)
args=(dev --executor simulated --api-addr 127.0.0.1:18080 --mesos-addr 127.0.0.1:15050
	--dns-addr "" --gateway-addr "" --internal-gateway-addr "")
[ -n "$max" ] && args+=(--max-instances "$max")
bin/flotilla "${args[@]}" >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
api=http://127.0.0.1:18080
for _ in $(seq 300); do curl -fs "$api/ping" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
sleep 3 # let the leader settle its first offers before the baseline
before=$(rss)
code=$(curl -s -o "$dir/answer" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
	-d '{"id":"/big","cmd":"x","instances":1000000000,"cpus":0.001,"mem":1}' "$api/v2/apps")
echo "POST /v2/apps instances=1e9: HTTP $code $(head -c 300 "$dir/answer")"
# Offers come every second or so; give the scheduler ten cycles.
sleep 10
after=$(rss)
echo "queue: $(curl -s "$api/v2/queue" | head -c 600)"
echo "tasks running: $(curl -s "$api/v2/apps/big" | grep -o '"tasksRunning":[0-9]*' || true)"
echo "RSS before ${before} KiB, after ${after} KiB, delta $(((after - before) / 1024)) MiB, peak (VmHWM) $(hwm) KiB"
