#!/usr/bin/env bash
# Drill: lose a Mesos agent.
#
#   stop-agent.sh [agent1|agent2] [--halt]
#
# What it does (default agent2): stops the mesos-agent service on that VM.
# With KillMode=process its executors and containers keep running, as when
# an agent process crashes or its machine is cut off. With --halt it powers
# the VM off instead (`vagrant halt --force`): the tasks die with it.
# Either way it brings the agent back at the end (`systemctl start` or
# `vagrant up`).
#
# What should happen: the master stops hearing the agent and marks it
# unreachable after agent_ping_timeout × max_agent_ping_timeouts (15 s × 5
# = 75 s); Flotilla gets TASK_UNREACHABLE for its tasks there and removes
# them from DNS and the gateway at once; after the app's
# unreachableStrategy.inactiveAfterSeconds (60 s for /demo/web) it launches
# replacements on the other agent. When the agent returns, the master
# reports the old tasks again (service mode: TASK_RUNNING; --halt: gone)
# and Flotilla kills the surplus so exactly `instances` tasks run.
#
# Watch:
#   vagrant ssh flotilla1 -c 'journalctl -fu flotilla | grep -i -e unreachable -e launch -e kill'
#   curl -s 192.168.56.21:5050/master/state | jq '.slaves[] | {hostname, active}'
#   curl -s 192.168.56.51:8080/v2/apps/demo/web/tasks | jq -r '.tasks[] | "\(.host) \(.state)"'
#   dig +short @192.168.56.51 SRV _web-demo._tcp.flotilla.mesos.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
APP=/demo/web
agent=agent2
mode=service
for a in "$@"; do
  case $a in
    agent1 | agent2) agent=$a ;;
    --halt) mode=halt ;;
    *) echo "usage: $0 [agent1|agent2] [--halt]" >&2; exit 2 ;;
  esac
done
agent_ip=${AGENT_IPS[${agent#agent} - 1]}

say "before"
l=$(leader)
[ -n "$l" ] || { echo "no replica names a leader: is the lab up?" >&2; exit 2; }
api "$l" GET "/v2/apps$APP" >/dev/null 2>&1 || { info "deploying $APP"; deploy "$l" "$LAB_DIR/apps/web.json"; }
wait_until 300 "$APP converged before the drill" app_converged "$l" "$APP" || summary
instances=$(api "$l" GET "/v2/apps$APP" | jq .app.instances)
on_agent=$(running_tasks "$l" "$APP" | grep -c " $agent_ip:" || true)
info "$instances instances, $on_agent on $agent ($agent_ip)"
if [ "$on_agent" -eq 0 ]; then
  info "no task of $APP on $agent: the drill still checks the agent is marked unreachable"
fi

restore() {
  say "bringing $agent back"
  if [ "$mode" = halt ]; then
    (cd "$LAB_DIR" && vagrant up "$agent" --no-provision) || true
    vm "$agent" 'systemctl start mesos-agent' || true
  else
    vm "$agent" 'systemctl start mesos-agent' || true
  fi
}
trap restore EXIT

say "stopping $agent ($mode)"
if [ "$mode" = halt ]; then
  (cd "$LAB_DIR" && vagrant halt --force "$agent")
else
  vm "$agent" 'systemctl stop mesos-agent'
fi

say "while $agent is away"
inactive() {
  curl -fsS --max-time 5 "http://$MASTER_IP:5050/master/state" |
    jq -e --arg h "$agent_ip" '[.slaves[] | select(.hostname == $h and .active)] | length == 0'
}
wait_until 150 "the master no longer counts $agent as active" inactive
not_in_dns() { ! srv_targets "$APP" | grep -q "^$agent_ip:"; }
wait_until 120 "no DNS record of $APP points at $agent" not_in_dns
replaced() {
  [ "$(running_tasks "$(leader)" "$APP" | grep -vc " $agent_ip:" || true)" -ge "$instances" ]
}
wait_until 300 "$instances running tasks of $APP away from $agent (replacements launched)" replaced

trap - EXIT
restore
say "after $agent is back"
active() {
  curl -fsS --max-time 5 "http://$MASTER_IP:5050/master/state" |
    jq -e --arg h "$agent_ip" '[.slaves[] | select(.hostname == $h and .active)] | length == 1'
}
wait_until 300 "$agent registered again" active
exact() { [ "$(running_tasks "$(leader)" "$APP" | wc -l)" -eq "$instances" ] && app_converged "$(leader)" "$APP"; }
wait_until 300 "exactly $instances healthy tasks of $APP (surplus killed)" exact
summary
