#!/usr/bin/env bash
# Framework cost per task against a bare mesos-go framework (issue 21):
# alternates, ROUNDS times (default 3), the framework's
# BenchmarkE2ESimulated/records (Flotilla's scheduler with task records on,
# through the real connection, FLOTILLA_BENCH_E2E's shape, default 1,000
# agents and 100 apps x 1,000) and localmesos's BenchmarkLaunch100k/protobuf
# (a bare mesos-go framework that accepts and acknowledges, no placement and
# no records: 1,000 agents, 100,000 tasks). Both run the master and the
# agents in their own process, so the CPU per task is the whole process's.
# Both are timed from the start until every task is RUNNING and every status
# update acknowledged (the master holds none unacknowledged): a framework
# that has not acknowledged its updates has not finished, and the bare
# framework's acknowledgements of the RUNNING updates, queued behind its
# handler, used to fall outside its figures. The figures at the last
# RUNNING are printed beside (@running, with how many updates were still
# unacknowledged then).
# Per round: tasks/s and CPU-µs per task of each, their ratio and the load
# average; then the median and worst ratio against the goal (>= 0.9x).
#   bench/framework/run.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
shape=${FLOTILLA_BENCH_E2E:-1000,100,1000}
dir=$(mktemp -d /tmp/fwbench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/mesosconn.test" ./framework/mesosconn/
go test -c -o "$dir/localmesos.test" ./localmesos/

metric() { # file unit → the value printed before unit on the Benchmark line
  awk -v u="$2" '/^Benchmark/ {for (i = 2; i <= NF; i++) if ($i == u) print $(i - 1)}' "$1"
}
ratios=() rratios=()
for r in $(seq "$rounds"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  (cd framework/mesosconn && FLOTILLA_BENCH_E2E=$shape "$dir/mesosconn.test" -test.run '^$' \
    -test.bench 'BenchmarkE2ESimulated/^records$' -test.benchtime 1x) >"$dir/flotilla.$r" 2>&1 ||
    { cat "$dir/flotilla.$r"; exit 1; }
  (cd localmesos && "$dir/localmesos.test" -test.run '^$' -test.bench 'BenchmarkLaunch100k/protobuf$' \
    -test.benchtime 1x) >"$dir/bare.$r" 2>&1 || { cat "$dir/bare.$r"; exit 1; }
  f=$(metric "$dir/flotilla.$r" tasks/s) fc=$(metric "$dir/flotilla.$r" cpu-µs/tasks)
  b=$(metric "$dir/bare.$r" tasks/s) bc=$(metric "$dir/bare.$r" cpu-µs/task)
  [[ -n $f && -n $b ]] || { echo "round $r: no figure"; cat "$dir/flotilla.$r" "$dir/bare.$r"; exit 1; }
  fr=$(metric "$dir/flotilla.$r" tasks/s@running) br=$(metric "$dir/bare.$r" tasks/s@running)
  fu=$(metric "$dir/flotilla.$r" unacked@running) bu=$(metric "$dir/bare.$r" unacked@running)
  ratio=$(awk -v a="$f" -v b="$b" 'BEGIN {printf "%.2f", a / b}')
  rratio=$(awk -v a="$fr" -v b="$br" 'BEGIN {printf "%.2f", a / b}')
  ratios+=("$ratio")
  rratios+=("$rratio")
  echo "round $r (load $load): flotilla $f tasks/s ($fc CPU-µs/task), bare $b tasks/s ($bc CPU-µs/task):" \
    "ratio ${ratio}x, CPU $(awk -v a="$fc" -v b="$bc" 'BEGIN {printf "%.2f", a / b}')x;" \
    "at the last RUNNING: flotilla $fr, bare $br tasks/s, ratio ${rratio}x (unacknowledged then: $fu and $bu)"
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
worst() { printf '%s\n' "$@" | sort -n | head -1; }
verdict() { awk -v v="$1" 'BEGIN {print (v >= 0.9) ? "met" : "NOT met"}'; }
median=$(median "${ratios[@]}") worst=$(worst "${ratios[@]}")
echo "flotilla/bare tasks/s, every update acknowledged: median ${median}x ($(verdict "$median")), worst ${worst}x ($(verdict "$worst")); goal >= 0.9x"
echo "flotilla/bare tasks/s at the last RUNNING: median $(median "${rratios[@]}")x, worst $(worst "${rratios[@]}")x"
