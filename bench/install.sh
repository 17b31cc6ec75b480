# shellcheck shell=bash
# Sourced by the bench scripts that run a peer or a load generator from
# Debian (nginx, wrk, h2load, haproxy): make bench installs what is missing
# instead of stopping on a fresh machine.

# install_missing CMD:PACKAGE... installs (Debian) the package of each
# command this machine lacks, so make bench runs on a fresh machine.
install_missing() {
  local pair need=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  ((${#need[@]})) || return 0
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null; }
}
