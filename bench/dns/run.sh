#!/usr/bin/env bash
# DNS benchmark for issue 6, recorded in bench/RESULTS.md (## mesosdns).
#  1. qps: Flotilla's DNS (mesosdns, via ./bench/dns serve) and CoreDNS (built
#     from the Go module proxy, `file` plugin on a zone file written from the
#     very same record set) answer the same dnsperf query file, one after the
#     other, ROUNDS times each, alternating so background load hits both.
#  2. freshness: ./bench/dns churn applies 1,000 task changes to a serving
#     mesosdns and reports p50/p99 from event to swap.
# Loopback only. Needs dnsperf (apt-get install -y dnsperf).
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${DUR:-10}              # seconds per dnsperf run
ROUNDS=${ROUNDS:-5}         # runs per server
APPS=${APPS:-200}
INST=${INST:-5}
FPORT=${FPORT:-18653}
CPORT=${CPORT:-18654}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}

command -v dnsperf >/dev/null || { echo "dnsperf not found: apt-get install -y dnsperf" >&2; exit 1; }
OUT=$(mktemp -d /tmp/dnsbench.XXXXXX)
COREDNS=$(bench/dns/build-coredns.sh)
go build -o "$OUT/dnsbench" ./bench/dns

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$OUT/dnsbench" serve -addr "127.0.0.1:$FPORT" -apps "$APPS" -instances "$INST" -out "$OUT" >"$OUT/flotilla.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$OUT/queries.txt" ]] && grep -q serving "$OUT/flotilla.log" && break; sleep 0.1; done
grep -q serving "$OUT/flotilla.log" || { cat "$OUT/flotilla.log"; exit 1; }

cat >"$OUT/Corefile" <<CF
mesos:$CPORT {
    bind 127.0.0.1
    file $OUT/mesos.zone
}
CF
"$COREDNS" -conf "$OUT/Corefile" -quiet >"$OUT/coredns.log" 2>&1 &
pids+=($!)
sleep 1

# Same answers from both before measuring anything.
for q in "app0001.flotilla.mesos A" "_app0002._tcp.flotilla.mesos SRV" "nope.flotilla.mesos A"; do
  set -- $q
  f=$(dig +short +tcp @127.0.0.1 -p "$FPORT" "$1" "$2" | sort)
  c=$(dig +short +tcp @127.0.0.1 -p "$CPORT" "$1" "$2" | sort)
  [[ "$f" == "$c" ]] || { echo "answers differ for $q:"; echo "flotilla: $f"; echo "coredns: $c"; exit 1; }
done
echo "records: $(grep -c . "$OUT/mesos.zone") zone lines, $(wc -l <"$OUT/queries.txt") queries in the mix; answers identical on spot checks"

perf() { # port → qps
  dnsperf -s 127.0.0.1 -p "$1" -d "$OUT/queries.txt" -l "$DUR" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 >"$OUT/perf.$1.$2" 2>&1
  awk '/Queries per second/ {print $4}' "$OUT/perf.$1.$2"
}
# The machine is shared, so load changes between runs: each round measures
# both servers back to back (order alternating) and the ratio is taken per
# round; the median of those ratios is the headline.
declare -a F C R
for r in $(seq "$ROUNDS"); do
  if (( r % 2 )); then f=$(perf "$FPORT" "$r"); c=$(perf "$CPORT" "$r"); else c=$(perf "$CPORT" "$r"); f=$(perf "$FPORT" "$r"); fi
  F+=("$f"); C+=("$c"); R+=("$(awk -v f="$f" -v c="$c" 'BEGIN {printf "%.2f", f/c}')")
  echo "round $r: flotilla $f qps, coredns $c qps, ratio ${R[-1]}x (lost: $(awk '/Queries lost/ {print $3}' "$OUT/perf.$FPORT.$r") / $(awk '/Queries lost/ {print $3}' "$OUT/perf.$CPORT.$r")), load $(cut -d' ' -f1 /proc/loadavg)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "median: flotilla $(median "${F[@]}") qps, coredns $(median "${C[@]}") qps; median per-round ratio $(median "${R[@]}")x (goal >= 2x)"
cleanup; pids=()

"$OUT/dnsbench" churn -apps "$APPS" -instances "$INST" -changes 1000 -interval 1ms
"$OUT/dnsbench" churn -apps "$APPS" -instances "$INST" -changes 1000 -interval 0
rm -rf "$OUT"
