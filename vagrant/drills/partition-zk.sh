#!/usr/bin/env bash
# Drill: cut ZooKeeper off from the Flotilla leader.
#
#   partition-zk.sh [SECONDS]      (default 60: how long the cut lasts)
#
# What it does: on the leader's VM, iptables drops every packet to and from
# the three ZooKeeper nodes' client port (2181). Mesos, the agents and the
# other replica stay reachable: this is the split where a leader that only
# trusted its own process would go on scheduling beside a new one. The
# rules are removed at the end, also on Ctrl-C or failure (trap).
#
# What should happen: the leader logs "disconnected from zookeeper", and
# once it has been cut off for its fence time (at most the 10 s session
# timeout) "leadership lost; fenced": it stops its Mesos subscription and
# scheduler and no longer names itself in GET /v2/leader. ZooKeeper
# expires its session, the other replica logs "elected leader" and
# "subscribed" with the same framework id (Mesos fails the old
# subscription over to it if it was still open: "Framework failed over").
# Tasks keep running and are adopted, not relaunched. After the cut the old
# leader logs "contending again with a new session" and "standing by".
#
# Watch:
#   vagrant ssh <leader> -c 'journalctl -fu flotilla'      and the other replica
#   watch -n1 'curl -s 192.168.56.51:8080/v2/leader; echo; curl -s 192.168.56.52:8080/v2/leader'
#   (GET /v2/leader is the one call a replica answers itself; others go to the leader)
#   curl -s 192.168.56.21:5050/master/frameworks | jq '.frameworks[] | {id, name, active, hostname}'
#   vagrant ssh zk1 -c 'echo srvr | nc 192.168.56.11 2181'   (the ensemble itself is fine)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
APP=/demo/web
cut_for=${1:-60}

say "before"
old=$(leader)
[ -n "$old" ] || { echo "no replica names a leader: is the lab up?" >&2; exit 2; }
survivor=$(other "$old")
oldvm=$(vm_of "$old")
info "leader $old ($oldvm), standby $survivor"
api "$old" GET "/v2/apps$APP" >/dev/null 2>&1 || { info "deploying $APP"; deploy "$old" "$LAB_DIR/apps/web.json"; }
wait_until 300 "$APP converged before the drill" app_converged "$old" "$APP" || summary
fid=$(api "$old" GET /v2/info | jq -r .frameworkId)
tasks_before=$(running_tasks "$old" "$APP")

rules=""
for z in "${ZK_IPS[@]}"; do
  rules+="iptables -w -I OUTPUT -d $z -p tcp --dport 2181 -j DROP; "
  rules+="iptables -w -I INPUT -s $z -p tcp --sport 2181 -j DROP; "
done
unrules=${rules//-I /-D }
heal() {
  say "healing: removing the iptables rules on $oldvm"
  vm "$oldvm" "$unrules true" || info "could not remove every rule; check: vagrant ssh $oldvm -c 'sudo iptables -S'"
}
trap heal EXIT

say "cutting $oldvm off from ZooKeeper for ${cut_for}s"
vm "$oldvm" "command -v iptables >/dev/null || apt-get install -y -q iptables >/dev/null; $rules"
t0=$SECONDS

say "during the cut"
fenced() { [ "$(leader_of "$old")" != "$old" ]; }
wait_until 40 "the cut-off leader no longer names itself leader" fenced
survivor_leads() { [ "$(leader_of "$survivor")" = "$survivor" ]; }
wait_until 60 "$survivor took over" survivor_leads
new_fid=$(api "$survivor" GET /v2/info | jq -r .frameworkId)
if [ "$new_fid" = "$fid" ]; then pass "same framework id"; else fail "framework id changed: $fid → $new_fid"; fi
one_framework() {
  curl -fsS --max-time 5 "http://$MASTER_IP:5050/master/frameworks" |
    jq -e --arg id "$fid" --arg h "$survivor" \
      '[.frameworks[] | select(.id == $id and .active)] | length == 1 and .[0].hostname == $h'
}
wait_until 60 "Mesos has one active flotilla framework, subscribed from $survivor" one_framework
wait_until 120 "$APP converged under $survivor" app_converged "$survivor" "$APP"
if [ "$(running_tasks "$survivor" "$APP")" = "$tasks_before" ]; then
  pass "the same tasks run (adopted)"
else
  fail "the running tasks changed during the cut"
fi
left=$((cut_for - (SECONDS - t0)))
if [ "$left" -gt 0 ]; then info "keeping the cut for ${left}s more"; sleep "$left"; fi

trap - EXIT
heal
say "after the cut"
standby() { [ "$(leader_of "$old")" = "$survivor" ]; }
wait_until 60 "$old is back as a standby and names $survivor as leader" standby
summary
