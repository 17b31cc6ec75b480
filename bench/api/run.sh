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
# The peer: nginx (sendfile on) serving each answer's very bytes from a file,
# read by the same client request after request with Flotilla (all variants
# but churn). It does no work per request but send a file, so its p99 is the
# floor the client and the machine put under any server's; each goal's line
# gives the peer's figure beside Flotilla's.
#   bench/api/run.sh [ROUNDS] [REQS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
reqs=${2:-100}
port=${PEER_PORT:-19290}
# shellcheck source=bench/install.sh
source bench/install.sh
install_missing nginx:nginx curl:curl
dir=$(mktemp -d /tmp/apibench.XXXXXX)
mkdir -p "$dir/www" "$dir/nginx"
chmod a+rx "$dir" "$dir/www" # nginx's workers run as nobody
cleanup() {
  [[ -f $dir/nginx.pid ]] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
{
  echo "daemon on; worker_processes auto; pid $dir/nginx.pid; error_log $dir/nginx.err warn;"
  echo "events { worker_connections 64; }"
  echo "http {"
  echo "  access_log off; sendfile on; tcp_nopush on; default_type application/json;"
  for d in client_body proxy fastcgi uwsgi scgi; do echo "  ${d}_temp_path $dir/nginx/$d;"; done
  echo "  server { listen 127.0.0.1:$port; root $dir/www; }"
  echo "}"
} >"$dir/nginx.conf"
nginx -p "$dir/nginx" -c "$dir/nginx.conf" || { cat "$dir/nginx.err"; exit 1; }
go test -c -o "$dir/api.test" ./api/
(cd api && FLOTILLA_BENCH_UPDATE_BUDGET=${FLOTILLA_BENCH_UPDATE_BUDGET:-300s} \
  FLOTILLA_BENCH_PEER_URL="http://127.0.0.1:$port" FLOTILLA_BENCH_PEER_DIR="$dir/www" "$dir/api.test" -test.run '^$' \
  -test.bench 'BenchmarkListApps$' -test.benchtime "${reqs}x" -test.count "$rounds" -test.timeout 90m) >"$dir/out" 2>&1 ||
  { cat "$dir/out"; exit 1; }
# One line per variant and round: name p50 p99 load peer-p50 peer-p99 ("-"
# for churn, which has no peer).
awk '/^BenchmarkListApps\// {
  name = $1; sub(/^BenchmarkListApps\//, "", name); sub(/-[0-9]+$/, "", name)
  pp50 = "-"; pp99 = "-"
  for (i = 2; i <= NF; i++) {
    if ($i == "p50-ms") p50 = $(i-1); if ($i == "p99-ms") p99 = $(i-1); if ($i == "load1") load = $(i-1)
    if ($i == "peer-p50-ms") pp50 = $(i-1); if ($i == "peer-p99-ms") pp99 = $(i-1) }
  print name, p50, p99, load, pp50, pp99 }' "$dir/out" >"$dir/rows"
grep -q . "$dir/rows" || { cat "$dir/out"; exit 1; }
while read -r name p50 p99 load pp50 pp99; do
  printf '%-26s p50 %8s ms  p99 %8s ms  nginx p50 %8s ms  p99 %8s ms  load %s\n' "$name" "$p50" "$p99" "$pp50" "$pp99" "$load"
done <"$dir/rows"
goal() { # label bound variant-regexp
  awk -v label="$1" -v bound="$2" -v re="$3" '$1 ~ re {
      n[$1]++; if ($3 + 0 >= bound) bad[$1]++; if ($3 + 0 > worst[$1]) worst[$1] = $3 + 0
      if ($6 != "-") { peer[$1] = 1; if ($6 + 0 >= bound) pbad[$1]++; if ($6 + 0 > pworst[$1]) pworst[$1] = $6 + 0 } }
    END { for (v in n) {
      printf "%s: %s p99 < %s ms in %d of %d rounds (worst %.1f ms): %s", label, v, bound, n[v] - bad[v], n[v], worst[v], bad[v] ? "NOT met" : "met"
      if (peer[v]) printf "; nginx, the same bytes from a file: %d of %d (worst %.1f ms)", n[v] - pbad[v], n[v], pworst[v]
      printf "\n" } }' "$dir/rows" | sort
}
goal "GET /v2/apps fresh" 10 '^plain'
goal "GET /v2/apps under churn" 20 '^churn$'
goal "GET /v2/groups with tasks" 50 '^groupsEmbedTasks'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
