#!/usr/bin/env bash
# Bridge forwarder benchmark for issue 15, recorded in bench/RESULTS.md
# ("Bridge forwarder (issue 15)"). In one run, the same testapp container
# image reached
#   host      on the host network (the baseline)
#   kernel    BRIDGE, host port -> container 8080 by the kernel (veth pair,
#             nftables DNAT; internal/portfwd kernel.go)
#   userland  BRIDGE, host port -> container 8080 through the user-space
#             forwarder (internal/portfwd forward.go)
# ROUNDS rounds, each a wrk run per target in turn (wrk -t THREADS -c CONNS
# -d DUR --latency, GET /). Goals: kernel >= 0.8x host requests/s, p99 within
# +0.2 ms of host. fwd_us/req is the CPU (user+system) the forwarding process
# spent per request, from /proc: steadier than req/s on a shared machine
# (near 0 for host and kernel: the agent process does nothing for them).
# Loopback and the veth's link-local addresses only. Needs root, the Docker
# engine and the test image (scripts/testbed.sh images), ip and nft
# (iproute2, nftables) and wrk (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
HOSTPORT=${HOSTPORT:-29401}
KERNELPORT=${KERNELPORT:-29402}
USERLANDPORT=${USERLANDPORT:-29403}

# shellcheck source=bench/install.sh
source bench/install.sh
install_missing wrk:wrk
OUT=$(mktemp -d /tmp/fwdbench.XXXXXX)
go build -o "$OUT/forward" ./bench/forward
"$OUT/forward" -host-port "$HOSTPORT" -kernel-port "$KERNELPORT" -userland-port "$USERLANDPORT" >"$OUT/forward.out" 2>"$OUT/forward.err" &
FPID=$!
trap 'kill "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q ready "$OUT/forward.out" 2>/dev/null && break
  kill -0 "$FPID" 2>/dev/null || { cat "$OUT/forward.err" >&2; exit 1; }
  sleep 0.1
done
grep -q ready "$OUT/forward.out" || { echo "targets not ready after 60 s" >&2; cat "$OUT/forward.err" >&2; exit 1; }

# wrk's latency lines are "50%  123.00us" or "99%  1.20ms"; print ms.
ms() { awk -v p="$1" '$1==p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}'; }

# utime+stime of the forwarding process, in clock ticks
ticks() { awk '{print $14 + $15}' "/proc/$FPID/stat"; }
HZ=$(getconf CLK_TCK)

echo "# wrk -t$THREADS -c$CONNS -d${DUR}s --latency, $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-9s %10s %9s %9s %12s\n' round target req/s p50_ms p99_ms fwd_us/req
for r in $(seq "$ROUNDS"); do
  for target in host kernel userland; do
    case $target in
      host) port=$HOSTPORT ;;
      kernel) port=$KERNELPORT ;;
      userland) port=$USERLANDPORT ;;
    esac
    t0=$(ticks)
    wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port/" >"$OUT/$target.$r" 2>&1
    t1=$(ticks)
    rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/$target.$r")
    n=$(awk '/requests in/ {print $1}' "$OUT/$target.$r")
    us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
    printf '%-6s %-9s %10s %9s %9s %12s\n' "$r" "$target" "$rps" "$(ms 50% <"$OUT/$target.$r")" "$(ms 99% <"$OUT/$target.$r")" "$us"
  done
done
