# shellcheck shell=bash
# Sourced by bench/gateway/run.sh and run-h2.sh: nginx configured the same
# way in both (workers per core, upstream keepalive, the X-Forwarded-* work
# the gateway does), so the HTTP/1.1 and HTTP/2 figures compare.
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
