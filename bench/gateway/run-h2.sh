#!/usr/bin/env bash
# Gateway HTTP/2 benchmark (issue 21), recorded in bench/RESULTS.md
# (## Gateway HTTP/2 and HTTP/1.1 against nginx, issue 21). In one run,
# against the same 3 backends as run.sh (bench/gateway backend, HTTP/1.1
# behind both proxies):
#   gateway-h2c  Flotilla's gateway, internal listener, HTTP/2 prior knowledge
#   nginx-h2c    Debian nginx, `listen ... http2` without TLS (h2c)
#   gateway-h2   the gateway's external listener with TLS, h2 by ALPN
#   nginx-h2     nginx `listen ... ssl http2`, the same certificate
# Both proxies: workers = cores (nginx worker_processes auto, the gateway's
# GOMAXPROCS), upstream keep-alive, the same X-Forwarded-* work.
# Each round: an h2load run per target, alternating, with the proxy's CPU
# per request; then a latency run (bench/gateway latency -h2c: LAT single
# requests per target over one HTTP/2 connection each, targets
# interleaved). Medians over ROUNDS, load average per round.
# Loopback only. Installs nginx and nghttp2-client (h2load) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/gateway/lib.sh
source bench/gateway/lib.sh

DUR=${DUR:-5}           # seconds per h2load run
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}      # connections (as run.sh's wrk)
STREAMS=${STREAMS:-1}   # concurrent streams per connection (h2load -m)
THREADS=${THREADS:-2}
LAT=${LAT:-10000}       # requests per target in each latency run
WARM=${WARM:-2}         # seconds of unmeasured load per target before the rounds
BASE=${BASE:-27100}     # backends BASE+1..3; gateway BASE+80 (TLS) and +82 (h2c); nginx +83 (h2c), +84 (TLS)

# shellcheck source=bench/install.sh
source bench/install.sh
install_missing nginx:nginx h2load:nghttp2-client openssl:openssl
OUT=$(mktemp -d /tmp/gwbench-h2.XXXXXX)
go build -o "$OUT/gwbench" ./bench/gateway
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench.example.com \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" >/dev/null 2>&1

trap gw_cleanup EXIT
start_backends
GWTLS=127.0.0.1:$((BASE + 80))
GWH2C=127.0.0.1:$((BASE + 82))
NGXH2C=127.0.0.1:$((BASE + 83))
NGXTLS=127.0.0.1:$((BASE + 84))
nice "$OUT/gwbench" serve -external "$GWTLS" -internal "$GWH2C" -tls-cert "$OUT/cert.pem" -tls-key "$OUT/key.pem" \
  -backends "$(IFS=,; echo "${BACKENDS[*]}")" >"$OUT/gateway.log" 2>&1 &
GWPID=$!
pids+=("$GWPID")

# nginx ends an HTTP/2 connection after 1000 requests by default (GOAWAY),
# and h2load does not reconnect: the run would stop short.
nginx_conf "$OUT" "  keepalive_requests 100000000;" "    listen $NGXH2C http2;
    listen $NGXTLS ssl http2;
    ssl_certificate $OUT/cert.pem; ssl_certificate_key $OUT/key.pem;" "${BACKENDS[@]}"
nice nginx -p "$OUT/nginx" -c "$OUT/nginx.conf" >"$OUT/nginx.log" 2>&1 &
pids+=($!)

url() { case $1 in gateway-h2c) echo "http://$GWH2C/" ;; nginx-h2c) echo "http://$NGXH2C/" ;; gateway-h2) echo "https://$GWTLS/" ;; nginx-h2) echo "https://$NGXTLS/" ;; esac; }
TARGETS=(gateway-h2c nginx-h2c gateway-h2 nginx-h2)

# Every target answers over HTTP/2 before anything is measured.
for t in "${TARGETS[@]}"; do
  ok=
  for _ in $(seq 100); do
    if h2load -n 1 -c 1 -H ':authority: bench.example.com' "$(url "$t")" 2>/dev/null | grep -q '1 succeeded'; then ok=1; break; fi
    sleep 0.1
  done
  [[ -n $ok ]] || { echo "$t does not answer over HTTP/2"; cat "$OUT"/*.log "$OUT/nginx.err" 2>/dev/null; exit 1; }
done

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
procs() {
  case $1 in
    gateway*) echo "$GWPID" ;;
    nginx*) echo "$(cat "$OUT/nginx.pid") $(pgrep -P "$(cat "$OUT/nginx.pid")" | tr '\n' ' ')" ;;
  esac
}

bench() { # target → "rps cpu-µs-per-request mean-ms"
  local f="$OUT/h2load.$1.$RANDOM" pids t0 used
  pids=$(procs "$1")
  # shellcheck disable=SC2086 # pids is a list
  t0=$(ticks $pids)
  nice h2load -c "$CONNS" -m "$STREAMS" -t "$THREADS" -D "$DUR" -H ':authority: bench.example.com' "$(url "$1")" >"$f" 2>&1
  # shellcheck disable=SC2086
  used=$(($(ticks $pids) - t0))
  local rps n ok mean
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$f")
  n=$(awk '/^requests:/ {print $2}' "$f")
  ok=$(awk '/^requests:/ {print $8}' "$f")
  # (status codes count the requests still in flight at the end as well)
  if [[ "$ok" != "$n" ]] || ! grep -q "^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx" "$f"; then echo "h2load errors against $1:" >&2; cat "$f" >&2; fi
  mean=$(awk '/^time for request:/ {v = $6; if (v ~ /us$/) { sub("us", "", v); v /= 1000 } else if (v ~ /ms$/) { sub("ms", "", v) } else { sub("s", "", v); v *= 1000 } printf "%.3f", v}' "$f")
  echo "$rps $(awk -v u="$used" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", u / hz * 1e6 / n }') $mean"
}

for t in "${TARGETS[@]}"; do
  nice h2load -c "$CONNS" -m "$STREAMS" -t "$THREADS" -D "$WARM" -H ':authority: bench.example.com' "$(url "$t")" >/dev/null 2>&1
done

declare -A RPS CPU P50 P99
echo "h2load ${DUR}s per run, $CONNS connections x $STREAMS streams, $THREADS threads; latency: $LAT h2c requests per target, one at a time, interleaved; $ROUNDS rounds; $(nproc) cores"
printf '%-6s %-12s %12s %12s %10s %10s %10s  %s\n' round target req/s "CPU µs/req" "mean ms" "p50 ms" "p99 ms" "load average"
for r in $(seq "$ROUNDS"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  for t in "${TARGETS[@]}"; do
    read -r rps cpu mean <<<"$(bench "$t")"
    RPS[$t]="${RPS[$t]:-} $rps"; CPU[$t]="${CPU[$t]:-} $cpu"
    printf '%-6s %-12s %12s %12s %10s %10s %10s  %s\n' "$r" "$t" "$rps" "$cpu" "$mean" - - "$load"
  done
  nice "$OUT/gwbench" latency -h2c -n "$LAT" -targets "gateway-h2c=$GWH2C,nginx-h2c=$NGXH2C" >"$OUT/latency.$r"
  for t in gateway-h2c nginx-h2c; do
    read -r p50 p99 <<<"$(awk -v t="$t" '$1 == t {print $3, $7}' "$OUT/latency.$r")"
    P50[$t]="${P50[$t]:-} $p50"; P99[$t]="${P99[$t]:-} $p99"
    printf '%-6s %-12s %12s %12s %10s %10s %10s  %s\n' "$r" "$t" - - - "$p50" "$p99" "$(cut -d' ' -f1-3 /proc/loadavg)"
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for t in "${TARGETS[@]}"; do
  printf 'median %-12s req/s %10.0f  CPU %5.1f µs/req\n' "$t" "$(median "${RPS[$t]}")" "$(median "${CPU[$t]}")"
done
for k in h2c h2; do
  awk -v k="$k" -v g="$(median "${RPS[gateway-$k]}")" -v n="$(median "${RPS[nginx-$k]}")" \
    -v gc="$(median "${CPU[gateway-$k]}")" -v nc="$(median "${CPU[nginx-$k]}")" \
    'BEGIN { printf "%s: gateway/nginx requests/s %.2fx, CPU per request %.2fx\n", k, g / n, gc / nc }'
done
printf 'rounds gateway/nginx req/s: '
for k in h2c h2; do
  printf '%s' "$k"
  paste -d' ' <(tr ' ' '\n' <<<"${RPS[gateway-$k]}" | grep .) <(tr ' ' '\n' <<<"${RPS[nginx-$k]}" | grep .) |
    awk '{ printf " %.2fx", $1 / $2 }'
  printf '; '
done
echo
awk -v g5="$(median "${P50[gateway-h2c]}")" -v n5="$(median "${P50[nginx-h2c]}")" \
    -v g9="$(median "${P99[gateway-h2c]}")" -v n9="$(median "${P99[nginx-h2c]}")" \
  'BEGIN { printf "h2c single requests: p50 gateway %.3f ms, nginx %.3f ms; p99 gateway %.3f ms, nginx %.3f ms (%+.3f ms)\n", g5, n5, g9, n9, g9 - n9 }'
echo "logs and h2load output: $OUT"
