#!/usr/bin/env bash
# Shared by the drills. They run on the host, from any directory, with the
# lab up (docs/lab.md); they need vagrant, curl, jq and dig (Debian: vagrant
# curl jq dnsutils) and reach the VMs over the lab's host-only network.
# The variables below are used by the drills that source this file.
# shellcheck disable=SC2034
set -euo pipefail

# Addresses of the lab (the Vagrantfile's defaults); not every drill uses all.
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NET=${LAB_NET:-192.168.56}
REPLICAS=("$NET.51" "$NET.52")      # flotilla1, flotilla2
ZK_IPS=("$NET.11" "$NET.12" "$NET.13")
MASTER_IP=$NET.21
AGENT_IPS=("$NET.31" "$NET.32")    # agent1, agent2
API_PORT=8080
DNS_DOMAIN=${LAB_DNS_DOMAIN:-mesos}
FRAMEWORK=${LAB_FRAMEWORK:-flotilla}
FAILED=0

say() { printf '\n== %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
pass() { printf '   PASS %s\n' "$*"; }
fail() { printf '   FAIL %s\n' "$*"; FAILED=$((FAILED + 1)); }
need() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null || { echo "drill: needs $c on the host" >&2; exit 2; }; done
}
need vagrant curl jq dig

# vm NAME SCRIPT: run SCRIPT as root on lab VM NAME (flotilla1, agent2, …).
vm() {
  (cd "$LAB_DIR" && vagrant ssh "$1" -c "sudo bash -c $(printf '%q' "$2")" -- -q -o LogLevel=ERROR)
}

# vm_of IP: the lab VM name of an address.
vm_of() {
  case $1 in
    "${REPLICAS[0]}") echo flotilla1 ;;
    "${REPLICAS[1]}") echo flotilla2 ;;
    "${AGENT_IPS[0]}") echo agent1 ;;
    "${AGENT_IPS[1]}") echo agent2 ;;
    "$MASTER_IP") echo master ;;
    *) echo "drill: no lab VM has address $1" >&2; return 1 ;;
  esac
}

# api IP METHOD PATH: one API call to the replica at IP (standbys forward).
api() { curl -fsS --max-time 10 -X "$2" -H 'Content-Type: application/json' "http://$1:$API_PORT$3"; }

# leader_of IP: the leader's address as replica IP says it (host only).
leader_of() {
  api "$1" GET /v2/leader 2>/dev/null | jq -r '.leader // empty' | sed 's|^[a-z]*://||; s|:[0-9]*$||'
}

# leader: the leader as any replica answering says it; empty if none does.
leader() {
  local ip l
  for ip in "${REPLICAS[@]}"; do
    l=$(leader_of "$ip" || true)
    if [ -n "$l" ]; then echo "$l"; return 0; fi
  done
}

# other IP: the replica that is not IP.
other() { if [ "$1" = "${REPLICAS[0]}" ]; then echo "${REPLICAS[1]}"; else echo "${REPLICAS[0]}"; fi; }

# running_tasks IP APP: "taskid host:port" of the app's running tasks, sorted.
running_tasks() {
  api "$1" GET "/v2/apps$2/tasks" |
    jq -r '.tasks[] | select(.state == "TASK_RUNNING") | "\(.id) \(.host):\(.ports[0])"' | sort
}

# srv_targets APP: the host:port pairs Flotilla's DNS (on either replica)
# announces for APP, sorted. Mesos-DNS name: _<task>._tcp.<framework>.<domain>.
srv_name() {
  local label
  label=$(printf '%s' "$1" | sed 's|^/||' | awk -F/ '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? "-" : "")}')
  echo "_$label._tcp.$FRAMEWORK.$DNS_DOMAIN."
}
srv_targets() {
  local ip name out
  name=$(srv_name "$1")
  for ip in "${REPLICAS[@]}"; do
    if out=$(dig +short +time=2 +tries=1 @"$ip" SRV "$name" 2>/dev/null) && [ -n "$out" ]; then
      # "prio weight port target." → the target's A record : port
      while read -r _ _ port target; do
        printf '%s:%s\n' "$(dig +short +time=2 +tries=1 @"$ip" A "$target" | head -1)" "$port"
      done <<<"$out" | sort
      return 0
    fi
  done
}

# wait_until SECONDS DESCRIPTION COMMAND…: poll every 3 s until COMMAND
# succeeds; PASS or FAIL with the time it took.
wait_until() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  while ! "$@" >/dev/null 2>&1; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      fail "$what (not within ${limit}s)"
      return 1
    fi
    sleep 3
  done
  pass "$what (after $((SECONDS - start))s)"
}

# app_converged IP APP: as many running tasks as instances, all healthy.
app_converged() {
  local app
  app=$(api "$1" GET "/v2/apps$2") || return 1
  jq -e '.app | .instances == .tasksRunning and .instances == .tasksHealthy and .instances > 0' <<<"$app" >/dev/null
}

# deploy IP FILE: create or replace the app in FILE (an apps/*.json).
deploy() {
  local id
  id=$(jq -r .id "$2")
  curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/json' \
    --data-binary @"$2" "http://$1:$API_PORT/v2/apps$id" >/dev/null
}

summary() {
  if [ "$FAILED" -eq 0 ]; then
    say "drill passed"
  else
    say "drill FAILED: $FAILED check(s); see the FAIL lines above"
    exit 1
  fi
}
