#!/usr/bin/env bash
# System calls, context switches and CPU per request of the gateway (its
# goroutine path and its event loops) and of nginx over one round of bench/gateway/run.sh (issue 21: what is left of
# the gap; bench/RESULTS.md). perf stat attaches to the gateway and to
# nginx's workers once the round starts and stops when it ends; per request
# divides by wrk's count plus the latency run's. Needs perf (Debian
# linux-perf) and the tracepoints of syscalls.
#   bench/gateway/syscalls.sh            a quiet round
#   BURN=2 bench/gateway/syscalls.sh     beside two busy loops
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v perf >/dev/null || { echo "syscalls.sh: needs perf (apt-get install linux-perf)"; exit 1; }
DUR=${DUR:-8}
LAT=${LAT:-2000}
OUT=$(mktemp -d /tmp/gwsyscalls.XXXXXX)
BURN=${BURN:-0} DUR=$DUR ROUNDS=1 LAT=$LAT bench/gateway/run.sh >"$OUT/run.log" 2>&1 &
run=$!
until grep -q '^round 1' "$OUT/run.log" 2>/dev/null; do
  kill -0 "$run" 2>/dev/null || { cat "$OUT/run.log"; exit 1; }
  sleep 0.2
done
gw=$(pgrep -f 'gwbench serve -event-loop=false' | head -1)
loop=$(pgrep -f 'gwbench serve -event-loop -' | head -1)
ngx=$(pgrep -f 'nginx: worker' | paste -sd,)
ev=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev
ev+=,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,context-switches,cpu-clock
perf stat -e "$ev" -p "$gw" -o "$OUT/gateway.perf" & p1=$!
perf stat -e "$ev" -p "$ngx" -o "$OUT/nginx.perf" & p2=$!
perf stat -e "$ev" -p "$loop" -o "$OUT/loop.perf" & p3=$!
wait "$run"
kill -INT "$p1" "$p2" "$p3" 2>/dev/null || true
wait "$p1" "$p2" "$p3" 2>/dev/null || true
grep -E '^1 +(gateway|loop|nginx)' "$OUT/run.log"
for t in gateway loop nginx; do
  rps=$(awk -v t="$t" '$1 == "1" && $2 == t {print $3}' "$OUT/run.log")
  awk -v t="$t" -v n="$(awk -v r="$rps" -v d="$DUR" -v l="$LAT" 'BEGIN {print r * d + l}')" '
    /syscalls:sys_enter_|context-switches/ { gsub(",", "", $1); name = $2; sub("syscalls:sys_enter_", "", name); out = out sprintf(" %s %.2f", name, $1 / n) }
    /cpu-clock/ { gsub(",", "", $1); out = out sprintf(" CPU %.1f µs", $1 * 1000 / n) }
    END { printf "%s, per request (%d requests):%s\n", t, n, out }' "$OUT/$t.perf"
done
echo "perf output and the run's log: $OUT"
