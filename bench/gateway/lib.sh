# shellcheck shell=bash
# Sourced by bench/gateway/run.sh and run-h2.sh: the same backends, the
# same cleanup and nginx configured the same way in both (workers per core,
# upstream keepalive, the X-Forwarded-* work the gateway does), so the
# HTTP/1.1 and HTTP/2 figures compare.

pids=()
# gw_cleanup kills what the run started (pids, nginx); the EXIT trap.
gw_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -s "$OUT/nginx.pid" ]]; then kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}

# start_backends starts the three bench backends on BASE+1..BASE+3 (from
# OUT/gwbench): their addresses in BACKENDS, the first one's pid in BPID.
start_backends() {
  local i addr
  BACKENDS=()
  for i in 1 2 3; do
    addr=127.0.0.1:$((BASE + i))
    nice "$OUT/gwbench" backend -addr "$addr" -id "bench.$i" >"$OUT/backend$i.log" 2>&1 &
    pids+=($!)
    # shellcheck disable=SC2034 # read by run.sh
    if [[ $i == 1 ]]; then BPID=$!; fi
    BACKENDS+=("$addr")
  done
}
#
# nginx_conf OUT HTTP_EXTRA SERVER_LINES BACKEND... writes OUT/nginx.conf:
# HTTP_EXTRA goes into the http block, SERVER_LINES (listen and TLS lines)
# into the server block, in front of the proxying location.
# shellcheck disable=SC2016 # $host and the like are nginx's variables
nginx_conf() {
  local out=$1 http_extra=$2 server_lines=$3 a d
  shift 3
  mkdir -p "$out/nginx"
  {
    echo "daemon off; worker_processes auto; pid $out/nginx.pid; error_log $out/nginx.err warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    if [[ -n $http_extra ]]; then echo "$http_extra"; fi
    for d in client_body proxy fastcgi uwsgi scgi; do echo "  ${d}_temp_path $out/nginx/$d;"; done
    echo "  upstream backends {"
    for a in "$@"; do echo "    server $a;"; done
    echo "    keepalive 128;"
    echo "  }"
    echo "  server {"
    echo "$server_lines"
    echo "    location / {"
    echo "      proxy_pass http://backends;"
    echo "      proxy_http_version 1.1;"
    echo '      proxy_set_header Connection "";'
    echo '      proxy_set_header Host $host;'
    echo '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;'
    echo '      proxy_set_header X-Forwarded-Proto $scheme;'
    echo '      proxy_set_header X-Forwarded-Host $host;'
    echo "    }"
    echo "  }"
    echo "}"
  } >"$out/nginx.conf"
}
