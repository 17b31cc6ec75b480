#!/usr/bin/env bash
# DNS benchmark (issues 6 and 21), recorded in bench/RESULTS.md (## mesosdns).
#  1. qps: Flotilla's DNS (mesosdns, via ./bench/dns serve), Knot DNS and NSD
#     (Debian packages, installed here when missing) and CoreDNS (built from
#     the Go module proxy, `file` plugin) serve the very same record set (the
#     zone file is written from mesosdns's own records) and answer the same
#     dnsperf query file, one after the other, ROUNDS times each, the order
#     rotating every round so background load hits all of them. Each round
#     prints the load average, qps, lost queries and CPU per answered query
#     per server and Flotilla's ratio to each peer within that round; the
#     last lines give the medians and the worst round.
#  2. freshness: ./bench/dns churn applies 1,000 task changes to a serving
#     mesosdns and reports p50/p99 from event to swap.
# Loopback only. Peers run with one worker per core (UDP workers/server-count
# = nproc), each with SO_REUSEPORT sockets as they do by default. Needs root
# or sudo only to install dnsperf/knot/nsd when they are missing; the
# servers themselves run as the calling user on unprivileged ports.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/dns/knot.sh
source bench/dns/knot.sh

DUR=${DUR:-10}              # seconds per dnsperf run
ROUNDS=${ROUNDS:-5}         # runs per server
WARM=${WARM:-2}             # seconds of unmeasured dnsperf per server before the rounds
APPS=${APPS:-200}
INST=${INST:-5}
FPORT=${FPORT:-18653}
CPORT=${CPORT:-18654}
KPORT=${KPORT:-18655}
NPORT=${NPORT:-18656}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
WORKERS=${WORKERS:-$(nproc)} # Knot UDP workers and NSD server processes

# shellcheck source=bench/install.sh
source bench/install.sh
install_missing dnsperf:dnsperf knotd:knot nsd:nsd dig:bind9-dnsutils
OUT=$(mktemp -d /tmp/dnsbench.XXXXXX)
COREDNS=$(bench/dns/build-coredns.sh)
go build -o "$OUT/dnsbench" ./bench/dns

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

declare -A PID
"$OUT/dnsbench" serve -addr "127.0.0.1:$FPORT" -apps "$APPS" -instances "$INST" -out "$OUT" >"$OUT/flotilla.log" 2>&1 &
pids+=($!) PID[flotilla]=$!
for _ in $(seq 100); do [[ -s "$OUT/queries.txt" ]] && grep -q serving "$OUT/flotilla.log" && break; sleep 0.1; done
grep -q serving "$OUT/flotilla.log" || { cat "$OUT/flotilla.log"; exit 1; }

cat >"$OUT/Corefile" <<CF
mesos:$CPORT {
    bind 127.0.0.1
    file $OUT/mesos.zone
}
CF
"$COREDNS" -conf "$OUT/Corefile" -quiet >"$OUT/coredns.log" 2>&1 &
pids+=($!) PID[coredns]=$!

# Knot: one UDP worker per core (each its own SO_REUSEPORT socket), the zone
# loaded once from the file, no journal or zone-file writes while serving.
knot_conf "$OUT" "$KPORT" "$WORKERS"
knotd -c "$OUT/knot.conf" >"$OUT/knot.log" 2>&1 &
pids+=($!) PID[knot]=$!

# NSD: one server process per core, SO_REUSEPORT so each has its own socket
# (without it the processes contend on one socket), no database file, and
# response rate limiting off: Debian's NSD limits each /24 to 200 answers/s
# by default, which with dnsperf on 127.0.0.1 measured 4.8k qps and 600
# lost per 5 s.
mkdir -p "$OUT/nsd"
cat >"$OUT/nsd.conf" <<NC
server:
    ip-address: 127.0.0.1@$NPORT
    server-count: $WORKERS
    reuseport: yes
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$OUT"
    zonelistfile: "$OUT/nsd/zone.list"
    xfrdfile: "$OUT/nsd/xfrd.state"
    xfrdir: "$OUT/nsd"
    pidfile: "$OUT/nsd/nsd.pid"
    logfile: "$OUT/nsd.log"
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: mesos
    zonefile: "$OUT/mesos.zone"
NC
nsd -d -c "$OUT/nsd.conf" >>"$OUT/nsd.log" 2>&1 &
pids+=($!) PID[nsd]=$!

declare -A PORT=([flotilla]=$FPORT [knot]=$KPORT [nsd]=$NPORT [coredns]=$CPORT)
SERVERS=(flotilla knot nsd coredns)
for s in "${SERVERS[@]}"; do
  for _ in $(seq 100); do dig +short +time=1 +tries=1 @127.0.0.1 -p "${PORT[$s]}" mesos SOA 2>/dev/null | grep -q . && break; sleep 0.1; done
  dig +short +time=1 +tries=1 @127.0.0.1 -p "${PORT[$s]}" mesos SOA | grep -q . || { echo "$s does not answer on ${PORT[$s]}:"; cat "$OUT/$s.log"; exit 1; }
done

# Same answers from every server before measuring anything: rcode, TC bit,
# and the records of every section (order aside) except NS records in the
# authority section and the address of ns1.mesos. in the additional one,
# which NSD adds to every answer (its minimal-responses option would also
# drop the SRV glue the others send). Then over UDP
# without EDNS (what dnsperf sends) the same records again and each reply's
# size.
answer() { # port name type [dig options] → rcode, flags tc, sorted records
  dig +noall +comments +answer +authority +additional @127.0.0.1 -p "$1" "$2" "$3" "${@:4}" |
    awk '/status:/ {sub(",", "", $6); print "status", $6} /^;; flags:/ {print ($0 ~ / tc[ ;]/) ? "tc" : "no-tc"}
         /^[^;]/ && NF && $4 != "NS" && tolower($1) != "ns1.mesos." {print tolower($1), $2, $4, $5, $6, $7, $8}' | sort
}
size() { dig +noedns +ignore @127.0.0.1 -p "$1" "$2" "$3" | awk '/MSG SIZE/ {print $NF}'; }
for q in "app0001.flotilla.mesos A" "_app0002._tcp.flotilla.mesos SRV" "nope.flotilla.mesos A" "APP0003.Flotilla.MESOS A" "app0001.flotilla.slave.mesos A"; do
  set -- $q
  want=$(answer "$FPORT" "$1" "$2" +tcp)
  for s in knot nsd coredns; do
    got=$(answer "${PORT[$s]}" "$1" "$2" +tcp)
    [[ "$want" == "$got" ]] || { echo "answers differ for $q over TCP:"; echo "flotilla: $want"; echo "$s: $got"; exit 1; }
  done
  sizes=""
  for s in "${SERVERS[@]}"; do
    # Over UDP with no EDNS, the answer records must match too (no TC here).
    got=$(answer "${PORT[$s]}" "$1" "$2" +noedns +ignore | grep -v '^\(status\|tc\|no-tc\)' | awk '$3 != "SOA"' | sort)
    exp=$(grep -v '^\(status\|tc\|no-tc\)' <<<"$want" | awk '$3 != "SOA"' | sort)
    [[ "$exp" == "$got" ]] || { echo "answers differ for $q over UDP (no EDNS) from $s:"; echo "want: $exp"; echo "got: $got"; exit 1; }
    sizes+=" $s $(size "${PORT[$s]}" "$1" "$2")B"
  done
  echo "check $q: same records and rcode from all servers;$sizes"
done
echo "records: $(grep -c . "$OUT/mesos.zone") zone lines, $(wc -l <"$OUT/queries.txt") queries in the mix; $WORKERS workers for knot and nsd; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

# CPU time of a server (all its processes and threads), in clock ticks: with
# the machine shared, CPU per answered query is the figure that load moves
# least (qps also depends on how much CPU the scheduler gives each server).
descendants() { local p; for p in "$@"; do echo "$p"; descendants $(pgrep -P "$p"); done; }
cputicks() {
  local t=0 q v
  for q in $(descendants "${PID[$1]}"); do
    v=$(sed 's/^.*) //' "/proc/$q/stat" 2>/dev/null | awk '{print $12 + $13}') && t=$((t + ${v:-0}))
  done
  echo "$t"
}
TICK=$(getconf CLK_TCK)
# dnsperf's own CPU per answered query is printed too: it shares the two
# cores with the server, so what a server makes its client spend (how its
# replies arrive: in bursts or one by one) moves the qps as well.
perf() { # server round → "qps lost µs-CPU-per-query dnsperf-µs-CPU-per-query"
  local f="$OUT/perf.$1.$2" c0 c1 TIMEFORMAT='%U %S'
  c0=$(cputicks "$1")
  { time dnsperf -s 127.0.0.1 -p "${PORT[$1]}" -d "$OUT/queries.txt" -l "$DUR" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 >"$f" 2>&1; } 2>"$f.time"
  c1=$(cputicks "$1")
  echo "$(awk '/Queries per second/ {print $4}' "$f") $(awk '/Queries lost/ {print $3}' "$f")" \
    "$(awk -v c=$((c1 - c0)) -v t="$TICK" '/Queries completed/ {printf "%.2f", c / t * 1e6 / $3}' "$f")" \
    "$(read -r u s <"$f.time"; awk -v c="$u" -v s="$s" '/Queries completed/ {printf "%.2f", (c + s) * 1e6 / $3}' "$f")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a/b : 0}'; }
# The machine may be shared, so load changes between runs: each round
# measures every server back to back (order rotating) and the ratios are
# taken within the round; the medians and the worst round are the headline.
# Warm every server alike (heaps, caches, the answers a server builds on
# first use) so that the first round, whichever server it starts with,
# does not measure start-up; as bench/gateway/run.sh warms its proxies.
for s in "${SERVERS[@]}"; do
  dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$OUT/queries.txt" -l "$WARM" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 >/dev/null 2>&1
done
declare -A Q L U D
RK=() RN=() RC=()
for r in $(seq "$ROUNDS"); do
  order=("${SERVERS[@]:$(((r - 1) % 4))}" "${SERVERS[@]:0:$(((r - 1) % 4))}")
  load0=$(cut -d' ' -f1 /proc/loadavg)
  for s in "${order[@]}"; do read -r Q[$s,$r] L[$s,$r] U[$s,$r] D[$s,$r] < <(perf "$s" "$r"); done
  f=${Q[flotilla,$r]}
  RK+=("$(ratio "$f" "${Q[knot,$r]}")"); RN+=("$(ratio "$f" "${Q[nsd,$r]}")"); RC+=("$(ratio "$f" "${Q[coredns,$r]}")")
  line="round $r (order ${order[*]}; load ${load0}→$(cut -d' ' -f1 /proc/loadavg)):"
  for s in "${SERVERS[@]}"; do line+=" $s $(printf '%.0f' "${Q[$s,$r]}") qps (lost ${L[$s,$r]}, ${U[$s,$r]} µs CPU/query, dnsperf ${D[$s,$r]}),"; done
  echo "$line flotilla/knot ${RK[-1]}x, flotilla/nsd ${RN[-1]}x, flotilla/coredns ${RC[-1]}x"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
minimum() { printf '%s\n' "$@" | sort -g | head -1; }
line="median:"
for s in "${SERVERS[@]}"; do
  v=(); u=(); d=(); lost=0
  for r in $(seq "$ROUNDS"); do v+=("${Q[$s,$r]}"); u+=("${U[$s,$r]}"); d+=("${D[$s,$r]}"); lost=$((lost + L[$s,$r])); done
  line+=" $s $(printf '%.0f' "$(median "${v[@]}")") qps, $(median "${u[@]}") µs CPU/query, dnsperf $(median "${d[@]}") (lost $lost in all rounds),"
done
echo "$line"
echo "per-round ratio flotilla/knot: median $(median "${RK[@]}")x, worst $(minimum "${RK[@]}")x (goal >= 1.0x every round)"
echo "per-round ratio flotilla/nsd: median $(median "${RN[@]}")x, worst $(minimum "${RN[@]}")x"
cpu=(); for r in $(seq "$ROUNDS"); do cpu+=("$(ratio "${U[knot,$r]}" "${U[flotilla,$r]}")"); done
echo "CPU per query, knot/flotilla (above 1: flotilla cheaper): median $(median "${cpu[@]}")x, worst $(minimum "${cpu[@]}")x"
echo "per-round ratio flotilla/coredns: median $(median "${RC[@]}")x, worst $(minimum "${RC[@]}")x (goal >= 4x)"
cleanup; pids=()

"$OUT/dnsbench" churn -apps "$APPS" -instances "$INST" -changes 1000 -interval 1ms
"$OUT/dnsbench" churn -apps "$APPS" -instances "$INST" -changes 1000 -interval 0
rm -rf "$OUT"
