#!/usr/bin/env bash
# A/B of Flotilla DNS builds against Knot DNS (issue 21): each NAME=BINARY
# (a `go build ./bench/dns` binary, extra serve flags after commas, e.g.
# one=/tmp/dnsbench,-udp-workers,1) serves bench/dns's zone on its own port
# and Knot (2 UDP workers, as run.sh) the same zone; every round runs
# dnsperf (run.sh's flags) against each server in a random order and prints
# qps, lost queries, the server's CPU per answered query (all its threads,
# from /proc) and dnsperf's own CPU per answered query.
#   bench/dns/ab.sh DUR ROUNDS main=/tmp/dns-main new=/tmp/dns-new
# Loopback only; ports BASEPORT.. (default 25510) and BASEPORT+20 for Knot.
set -uo pipefail
DUR=$1 ROUNDS=$2
shift 2
BASEPORT=${BASEPORT:-25510}
# shellcheck source=bench/dns/knot.sh
source "$(dirname "$0")/knot.sh"
OUT=$(mktemp -d /tmp/dnsab.XXXXXX)
declare -A PORT PID
port=$BASEPORT
cleanup() { for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
for spec in "$@"; do
  n=${spec%%=*} b=${spec#*=}
  IFS=, read -r -a cmd <<<"$b"
  PORT[$n]=$port
  "${cmd[0]}" serve -addr "127.0.0.1:$port" -apps 200 -instances 5 -out "$OUT" "${cmd[@]:1}" >"$OUT/$n.log" 2>&1 &
  PID[$n]=$!
  port=$((port + 1))
done
for _ in $(seq 100); do [[ -s "$OUT/queries.txt" && -s "$OUT/mesos.zone" ]] && break; sleep 0.1; done
knot_conf "$OUT" "$((BASEPORT + 20))" "$(nproc)"
knotd -c "$OUT/knot.conf" >"$OUT/knot.log" 2>&1 &
PID[knot]=$! PORT[knot]=$((BASEPORT + 20))
for s in "${!PORT[@]}"; do
  for _ in $(seq 100); do dig +short +time=1 +tries=1 @127.0.0.1 -p "${PORT[$s]}" mesos SOA 2>/dev/null | grep -q . && break; sleep 0.1; done
done
TICK=$(getconf CLK_TCK)
cpu() { local t=0 q v; for q in $1 $(pgrep -P "$1"); do v=$(sed 's/^.*) //' "/proc/$q/stat" | awk '{print $12 + $13}') && t=$((t + v)); done; echo "$t"; }
for r in $(seq "$ROUNDS"); do
  line="round $r load $(cut -d' ' -f1 /proc/loadavg):"
  for s in $(printf '%s\n' "${!PORT[@]}" | shuf); do
    f="$OUT/perf.$s" TIMEFORMAT='%U %S'
    c0=$(cpu "${PID[$s]}")
    { time dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$OUT/queries.txt" -l "$DUR" -c 4 -q 200 -t 2 >"$f" 2>&1; } 2>"$f.time"
    c1=$(cpu "${PID[$s]}")
    read -r du ds <"$f.time"
    line+=" $s $(awk '/Queries per second/ {printf "%.0f", $4}' "$f")"
    line+=" (lost $(awk '/Queries lost/ {print $3}' "$f"),"
    line+=" $(awk -v c=$((c1 - c0)) -v t="$TICK" '/Queries completed/ {printf "%.2f", c / t * 1e6 / $3}' "$f") µs CPU/query,"
    line+=" dnsperf $(awk -v u="$du" -v s="$ds" '/Queries completed/ {printf "%.2f", (u + s) * 1e6 / $3}' "$f") µs)"
  done
  echo "$line"
done
