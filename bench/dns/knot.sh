# shellcheck shell=bash
# Sourced by bench/dns/run.sh and bench/dns/ab.sh: Knot DNS configured the
# same way in both, so their figures compare.
#
# knot_conf OUT PORT WORKERS writes OUT/knot.conf: WORKERS UDP workers
# (each its own SO_REUSEPORT socket), the zone OUT/mesos.zone loaded once
# from the file, no journal or zone-file writes while serving.
knot_conf() {
  local out=$1 port=$2 workers=$3
  mkdir -p "$out/knot"
  cat >"$out/knot.conf" <<KC
server:
    listen: 127.0.0.1@$port
    rundir: $out/knot
    udp-workers: $workers
    tcp-workers: 1
    background-workers: 1
database:
    storage: $out/knot
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: $out
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: mesos
    file: $out/mesos.zone
KC
}
