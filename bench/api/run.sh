#!/usr/bin/env bash
# The API's large answers against their goals (issues 17 and 21): api's
# BenchmarkListApps (10,000 apps, 100,000 RUNNING tasks, loopback HTTP),
# REQS requests (default 100) per variant and round, ROUNDS rounds (default
# 3). Per variant and round: p50 and p99 in ms and the load average; then
# each goal's verdict over every round and client:
#   GET /v2/apps fresh               p99 < 10 ms   (plain, plainRead1MiB, plainCurl)
#   GET /v2/apps, an update / 10 ms  p99 < 20 ms   (churn)
#   GET /v2/groups with tasks        p99 < 50 ms   (groupsEmbedTasks*)
# The clients: Go's net/http reading 8 KiB at a time, the same reading
# 1 MiB at a time (Read1MiB), and curl (Curl).
#   bench/api/run.sh [ROUNDS] [REQS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
reqs=${2:-100}
dir=$(mktemp -d /tmp/apibench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/api.test" ./api/
(cd api && FLOTILLA_BENCH_UPDATE_BUDGET=${FLOTILLA_BENCH_UPDATE_BUDGET:-300s} "$dir/api.test" -test.run '^$' \
  -test.bench 'BenchmarkListApps$' -test.benchtime "${reqs}x" -test.count "$rounds" -test.timeout 60m) >"$dir/out" 2>&1 ||
  { cat "$dir/out"; exit 1; }
# One line per variant and round: name p50 p99 load.
awk '/^BenchmarkListApps\// {
  name = $1; sub(/^BenchmarkListApps\//, "", name); sub(/-[0-9]+$/, "", name)
  for (i = 2; i <= NF; i++) { if ($i == "p50-ms") p50 = $(i-1); if ($i == "p99-ms") p99 = $(i-1); if ($i == "load1") load = $(i-1) }
  print name, p50, p99, load }' "$dir/out" >"$dir/rows"
grep -q . "$dir/rows" || { cat "$dir/out"; exit 1; }
while read -r name p50 p99 load; do
  printf '%-26s p50 %8s ms  p99 %8s ms  load %s\n' "$name" "$p50" "$p99" "$load"
done <"$dir/rows"
goal() { # label bound variant-regexp
  awk -v label="$1" -v bound="$2" -v re="$3" '$1 ~ re {
      n[$1]++; if ($3 + 0 >= bound) bad[$1]++; if ($3 + 0 > worst[$1]) worst[$1] = $3 + 0 }
    END { for (v in n) printf "%s: %s p99 < %s ms in %d of %d rounds (worst %.1f ms): %s\n",
      label, v, bound, n[v] - bad[v], n[v], worst[v], bad[v] ? "NOT met" : "met" }' "$dir/rows" | sort
}
goal "GET /v2/apps fresh" 10 '^plain'
goal "GET /v2/apps under churn" 20 '^churn$'
goal "GET /v2/groups with tasks" 50 '^groupsEmbedTasks'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
