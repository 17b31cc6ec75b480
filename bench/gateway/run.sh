#!/usr/bin/env bash
# Gateway benchmark for issue 8, recorded in bench/RESULTS.md (## gateway).
# In one run, against the same 3 backends (bench/gateway backend):
#   direct  wrk straight at one backend (the baseline)
#   gateway Flotilla's gateway on its goroutine path (bench/gateway serve
#           -event-loop=false, --gateway-event-loop=false), round robin,
#           metrics on
#   loop    the same on its event loops, flotilla's default (serve
#           -event-loop, --gateway-event-loop), a second process
#   nginx   Debian nginx, upstream keepalive on, the same X-Forwarded-* work
# Each round: a throughput run per target (wrk -c CONNS, with the proxy's CPU
# per request), then a latency run (bench/gateway latency: LAT requests per
# target, one at a time, targets interleaved, so p99 is the proxy's own cost
# and not queueing or another process's spike). Medians over ROUNDS.
# Goals (issue 21): gateway ≥ 1.0× nginx requests/s in every round of a quiet
# run, ≥ 0.9× under the same background load; added p99 vs direct < 0.2 ms.
# Loopback only. Needs nginx and wrk (installed when missing, Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/gateway/lib.sh
source bench/gateway/lib.sh

DUR=${DUR:-10}          # seconds per wrk run
# GATEWAY_FLAGS          extra flags for `bench/gateway serve`, e.g. "-balance least-conn"
# GATEWAY_ENV            environment for the gateway alone, e.g. "GOMAXPROCS=1"
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-64}      # connections of the throughput runs
THREADS=${THREADS:-2}
LAT=${LAT:-20000}       # requests per target in each latency run
WARM=${WARM:-2}         # seconds of unmeasured wrk load per proxy before the rounds
BASE=${BASE:-19100}     # backends BASE+1..3, gateway BASE+80 (+82 internal), nginx BASE+81, loop BASE+83 (+84)
# BURN=N runs N busy loops beside the rounds, at the niceness of everything
# measured here: "the same background load for both" of the loaded goal,
# repeatable (a shared machine's load is not). 0: a quiet run.
BURN=${BURN:-0}

# shellcheck source=bench/install.sh
source bench/install.sh
install_missing nginx:nginx wrk:wrk
OUT=$(mktemp -d /tmp/gwbench.XXXXXX)
go build -o "$OUT/gwbench" ./bench/gateway

trap gw_cleanup EXIT
start_backends
GW=127.0.0.1:$((BASE + 80))
NGX=127.0.0.1:$((BASE + 81))
# shellcheck disable=SC2086 # GATEWAY_FLAGS is a list, e.g. "-balance least-conn"
# shellcheck disable=SC2086 # GATEWAY_ENV is a list of NAME=value
env ${GATEWAY_ENV:-} nice "$OUT/gwbench" serve -event-loop=false -external "$GW" -internal "127.0.0.1:$((BASE + 82))" ${GATEWAY_FLAGS:-} \
  -backends "$(IFS=,; echo "${BACKENDS[*]}")" >"$OUT/gateway.log" 2>&1 &
GWPID=$!
pids+=("$GWPID")
LOOP=127.0.0.1:$((BASE + 83))
# shellcheck disable=SC2086
env ${GATEWAY_ENV:-} nice "$OUT/gwbench" serve -event-loop -external "$LOOP" -internal "127.0.0.1:$((BASE + 84))" ${GATEWAY_FLAGS:-} \
  -backends "$(IFS=,; echo "${BACKENDS[*]}")" >"$OUT/loop.log" 2>&1 &
LOOPPID=$!
pids+=("$LOOPPID")

nginx_conf "$OUT" "" "    listen $NGX;" "${BACKENDS[@]}"
nice nginx -p "$OUT/nginx" -c "$OUT/nginx.conf" >"$OUT/nginx.log" 2>&1 &
pids+=($!)

# Same answers from all three before measuring anything.
for target in "${BACKENDS[0]}" "$GW" "$LOOP" "$NGX"; do
  ok=
  for _ in $(seq 100); do
    if curl -sf -H 'Host: bench.example.com' "http://$target/" | grep -q '^bench\.[123]$'; then ok=1; break; fi
    sleep 0.1
  done
  [[ -n $ok ]] || { echo "$target does not answer"; cat "$OUT"/*.log "$OUT/nginx.err" 2>/dev/null; exit 1; }
done

# ms converts wrk's latency (850.00us, 1.20ms, 1.01s) to milliseconds.
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# ticks sums user+system CPU clock ticks of the given processes.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
procs() { # name → pids whose CPU a run is charged to (the proxy, not the backends)
  case $1 in
    gateway) echo "$GWPID" ;;
    loop) echo "$LOOPPID" ;;
    nginx) echo "$(cat "$OUT/nginx.pid") $(pgrep -P "$(cat "$OUT/nginx.pid")" | tr '\n' ' ')" ;;
    *) echo "$BPID" ;;
  esac
}

bench() { # name target conns → "rps p50 p99 cpu-µs-per-request"
  local f="$OUT/wrk.$1.$3.$RANDOM"
  local threads=$THREADS
  [[ $3 -lt $threads ]] && threads=$3
  local pids t0
  pids=$(procs "$1")
  # shellcheck disable=SC2086 # pids is a list
  t0=$(ticks $pids)
  nice wrk -t "$threads" -c "$3" -d "${DUR}s" --latency -H 'Host: bench.example.com' "http://$2/" >"$f" 2>&1
  # shellcheck disable=SC2086
  local used=$(( $(ticks $pids) - t0 ))
  if grep -q 'Non-2xx\|Socket errors' "$f"; then echo "wrk errors against $1:" >&2; cat "$f" >&2; fi
  local rps p50 p99 n
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  n=$(awk '/requests in/ {print $1}' "$f")
  p50=$(ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(ms "$(awk '$1 == "99%" {print $2}' "$f")")
  echo "$rps $p50 $p99 $(awk -v u="$used" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", u / hz * 1e6 / n }')"
}

# Warm both proxies alike (connection pools, the Go heap's pacing) so the
# first round does not measure start-up.
for addr in "$GW" "$LOOP" "$NGX"; do
  nice wrk -t "$THREADS" -c "$CONNS" -d "${WARM}s" -H 'Host: bench.example.com' "http://$addr/" >/dev/null 2>&1
done

for _ in $(seq "$BURN"); do
  nice sh -c 'while :; do :; done' &
  pids+=($!)
done
[[ $BURN -gt 0 ]] && echo "background load: $BURN busy loops (nice, like the proxies, wrk and the backends)"

declare -A RPS P99 P50 CPU
TARGETS=(direct gateway loop nginx)
[[ -n ${GATEWAY_ENV:-} ]] && echo "gateway environment: $GATEWAY_ENV"
echo "wrk ${DUR}s per throughput run at $CONNS connections; latency: $LAT requests per target, one at a time, targets interleaved; $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
printf '%-6s %-8s %14s %16s %12s %12s\n' round target "req/s(c=$CONNS)" "CPU µs/req" "p50 ms" "p99 ms"
for r in $(seq "$ROUNDS"); do
  echo "round $r load average $(cut -d' ' -f1-3 /proc/loadavg)"
  # Each round starts one target later, so that no target always runs
  # right after the same one (its closing connections, its heap's work).
  k=$(( (r - 1) % ${#TARGETS[@]} ))
  for t in "${TARGETS[@]:k}" "${TARGETS[@]:0:k}"; do
    case $t in direct) addr=${BACKENDS[0]} ;; gateway) addr=$GW ;; loop) addr=$LOOP ;; nginx) addr=$NGX ;; esac
    read -r rps _ _ cpu <<<"$(bench "$t" "$addr" "$CONNS")"
    RPS[$t]="${RPS[$t]:-} $rps"; CPU[$t]="${CPU[$t]:-} $cpu"
  done
  # Interleaved single requests: a load spike on the shared machine hits
  # all three alike, so their p99s can be compared where wrk's cannot.
  nice "$OUT/gwbench" latency -n "$LAT" -targets "direct=${BACKENDS[0]},gateway=$GW,loop=$LOOP,nginx=$NGX" >"$OUT/latency.$r"
  for t in "${TARGETS[@]}"; do
    read -r p50 p99 <<<"$(awk -v t="$t" '$1 == t {print $3, $7}' "$OUT/latency.$r")"
    P50[$t]="${P50[$t]:-} $p50"; P99[$t]="${P99[$t]:-} $p99"
    printf '%-6s %-8s %14s %16s %12s %12s\n' "$r" "$t" "$(awk '{print $NF}' <<<"${RPS[$t]}")" "$(awk '{print $NF}' <<<"${CPU[$t]}")" "$p50" "$p99"
  done
done

# Medians, because a shared machine's background load spikes single runs.
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for t in "${TARGETS[@]}"; do
  printf 'median %-8s req/s %10.0f  CPU %5.1f µs/req  p50 %.3f ms  p99 %.3f ms\n' "$t" \
    "$(median "${RPS[$t]}")" "$(median "${CPU[$t]}")" "$(median "${P50[$t]}")" "$(median "${P99[$t]}")"
done
# Round by round, since the goal is every round, not the median; for the
# goroutine path (gateway) and the event loops (loop) alike.
for g in gateway loop; do
  paste -d' ' <(tr ' ' '\n' <<<"${RPS[$g]}" | grep .) <(tr ' ' '\n' <<<"${RPS[nginx]}" | grep .) | awk -v burn="$BURN" -v g="$g" '
    { r = $1 / $2; rs = rs sprintf(" %.2f", r); if (NR == 1 || r < w) w = r }
    END { printf "%s/nginx requests/s by round:%s; worst %.2fx: %s\n", g, rs, w,
      (burn > 0 ? "loaded goal (>= 0.9x) " : "quiet goal (>= 1.0x) ") ((burn > 0 ? w >= 0.9 : w >= 1.0) ? "met" : "NOT met") }'
  awk -v g="$(median "${RPS[$g]}")" -v n="$(median "${RPS[nginx]}")" -v name="$g" \
    'BEGIN { printf "%s/nginx requests/s, median: %.2fx\n", name, g / n }'
  awk -v gc="$(median "${CPU[$g]}")" -v nc="$(median "${CPU[nginx]}")" -v name="$g" \
    'BEGIN { printf "proxy CPU per request: %s %.1f µs, nginx %.1f µs (%.2fx)\n", name, gc, nc, gc / nc }'
  awk -v g5="$(median "${P50[$g]}")" -v n5="$(median "${P50[nginx]}")" -v d5="$(median "${P50[direct]}")" \
      -v g9="$(median "${P99[$g]}")" -v n9="$(median "${P99[nginx]}")" -v d9="$(median "${P99[direct]}")" -v name="$g" 'BEGIN {
    printf "added latency vs direct: p50 %s %+.3f ms, nginx %+.3f ms; p99 %s %+.3f ms (goal < 0.2 ms): %s, nginx %+.3f ms\n",
      name, g5 - d5, n5 - d5, name, g9 - d9, (g9 - d9 < 0.2 ? "met" : "NOT met"), n9 - d9 }'
done
echo "logs and wrk output: $OUT"
