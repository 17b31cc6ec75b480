#!/usr/bin/env bash
# Gateway TCP-mode benchmark for issue 15, recorded in bench/RESULTS.md
# ("Gateway TCP mode and marathon-lb labels (issue 15)"). In one run,
# against the same 3 backends (bench/gateway-tcp backend):
#   gateway  Flotilla's gateway, one TCP-mode service port, round robin
#   haproxy  Debian haproxy, mode tcp, balance roundrobin, the same backends
# Per round and target: conns (short connections, 64 bytes echoed each,
# CONNS clients) then bytes (STREAMS long streams read for DUR seconds).
# Targets alternate within each round; medians over ROUNDS.
# Goal: gateway ≥ 0.9× haproxy on both. Loopback only.
# Needs haproxy (installed when missing, Debian package).
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-8}
BASE=${BASE:-19200}   # backends BASE+1..3, gateway BASE+80, haproxy BASE+81

# shellcheck source=bench/install.sh
source bench/install.sh
install_missing haproxy:haproxy
OUT=$(mktemp -d /tmp/gwtcpbench.XXXXXX)
go build -o "$OUT/bench" ./bench/gateway-tcp

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

BACKENDS=()
for i in 1 2 3; do
  addr=127.0.0.1:$((BASE + i))
  nice "$OUT/bench" backend -addr "$addr" >"$OUT/backend$i.log" 2>&1 &
  pids+=($!)
  BACKENDS+=("$addr")
done
GW=127.0.0.1:$((BASE + 80))
HAP=127.0.0.1:$((BASE + 81))
"$OUT/bench" serve -port $((BASE + 80)) -backends "$(IFS=,; echo "${BACKENDS[*]}")" >"$OUT/gateway.log" 2>&1 &
pids+=($!)
{
  echo "global"
  echo "  maxconn 4000"
  echo "defaults"
  echo "  mode tcp"
  echo "  timeout connect 5s"
  echo "  timeout client 50s"
  echo "  timeout server 50s"
  echo "frontend fe"
  echo "  bind $HAP"
  echo "  default_backend be"
  echo "backend be"
  echo "  balance roundrobin"
  i=0
  for a in "${BACKENDS[@]}"; do i=$((i + 1)); echo "  server s$i $a"; done
} >"$OUT/haproxy.cfg"
haproxy -f "$OUT/haproxy.cfg" -db >"$OUT/haproxy.log" 2>&1 &
pids+=($!)
for a in "$GW" "$HAP"; do
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null; then break; fi
    sleep 0.1
  done
done
echo "haproxy: $(haproxy -v | head -1)"
echo "cpus: $(nproc); conns clients $CONNS, streams $STREAMS, ${DUR}s per run, $ROUNDS rounds"

declare -A C B
for r in $(seq "$ROUNDS"); do
  for t in gateway haproxy; do
    addr=$GW; [[ $t == haproxy ]] && addr=$HAP
    c=$("$OUT/bench" conns -addr "$addr" -c "$CONNS" -d "${DUR}s")
    b=$("$OUT/bench" bytes -addr "$addr" -c "$STREAMS" -d "${DUR}s")
    echo "round $r $t: $c; $b"
    C[$t]+="$(awk '{print $2}' <<<"$c") "
    B[$t]+="$(awk '{print $2}' <<<"$b") "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
gc=$(median <<<"${C[gateway]}"); hc=$(median <<<"${C[haproxy]}")
gb=$(median <<<"${B[gateway]}"); hb=$(median <<<"${B[haproxy]}")
echo "median conns/s: gateway $gc haproxy $hc ratio $(awk -v a="$gc" -v b="$hc" 'BEGIN{printf "%.2f", a/b}')"
echo "median MB/s:    gateway $gb haproxy $hb ratio $(awk -v a="$gb" -v b="$hb" 'BEGIN{printf "%.2f", a/b}')"
