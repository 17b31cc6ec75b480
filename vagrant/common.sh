#!/usr/bin/env bash
# Helpers sourced by the provisioning scripts (run as root inside a lab VM).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export CACHE=/vagrant/.cache

log() { printf '[%s %s] %s\n' "$(hostname)" "$(date -u +%H:%M:%S)" "$*"; }
die() { log "error: $*" >&2; exit 1; }

apt_ready=
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ -z "$apt_ready" ]; then apt-get update -q; apt_ready=1; fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# wait_tcp HOST PORT SECONDS: until a TCP connect succeeds.
wait_tcp() {
  local host=$1 port=$2 deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

# write_unit NAME: the unit text on stdin goes to /etc/systemd/system/NAME;
# the unit is enabled and (re)started when the text changed.
write_unit() {
  local unit=/etc/systemd/system/$1 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if ! cmp -s "$tmp" "$unit"; then
    install -m 0644 "$tmp" "$unit"
    systemctl daemon-reload
    systemctl enable "$1"
    systemctl restart "$1"
  else
    systemctl enable --now "$1"
  fi
  rm -f "$tmp"
}

# need_env VAR…: every variable is set (the Vagrantfile passes them).
need_env() {
  local v
  for v in "$@"; do
    [ -n "${!v:-}" ] || die "$v is not set; run this through the Vagrantfile"
  done
}
