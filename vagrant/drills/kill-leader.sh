#!/usr/bin/env bash
# Drill: kill the Flotilla leader (SIGKILL, no clean shutdown).
#
# What it does: finds the leader with GET /v2/leader, records the framework
# id and the running tasks of /demo/web, and kills the leader's process with
# SIGKILL (systemd restarts it 3 s later; it comes back as a standby).
#
# What should happen: the leader's ZooKeeper session expires (10 s) and its
# ephemeral election node goes; the standby logs "elected leader", then
# "leading: connection and scheduler started", "subscribing" and
# "subscribed" with the SAME framework id (read from ZooKeeper), and adopts
# the running tasks through reconciliation: no task is killed or
# relaunched, DNS and the gateway keep answering throughout.
#
# Watch while it runs (other terminals):
#   vagrant ssh flotilla1 -c 'journalctl -fu flotilla'   (and flotilla2)
#   watch -n1 "curl -s 192.168.56.51:8080/v2/leader; curl -s 192.168.56.52:8080/v2/leader"
#   watch -n1 dig +short @192.168.56.52 SRV _web-demo._tcp.flotilla.mesos.
#   http://192.168.56.21:5050/#/frameworks  (one flotilla framework, same id, re-registered)
#
# Needs: the lab up and /demo/web deployed (docs/lab.md); deploys it if absent.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
APP=/demo/web

say "before"
old=$(leader)
[ -n "$old" ] || { echo "no replica names a leader: is the lab up?" >&2; exit 2; }
survivor=$(other "$old")
info "leader $old ($(vm_of "$old")), standby $survivor ($(vm_of "$survivor"))"
api "$old" GET "/v2/apps$APP" >/dev/null 2>&1 || { info "deploying $APP"; deploy "$old" "$LAB_DIR/apps/web.json"; }
wait_until 300 "$APP converged before the drill" app_converged "$old" "$APP" || { summary; }
fid=$(api "$old" GET /v2/info | jq -r .frameworkId)
tasks_before=$(running_tasks "$old" "$APP")
info "framework id $fid"
info "running tasks:"
while read -r t; do info "  $t"; done <<<"$tasks_before"

say "kill -9 the leader on $(vm_of "$old")"
vm "$(vm_of "$old")" 'systemctl kill --signal=SIGKILL flotilla.service'
t0=$SECONDS

say "after"
survivor_leads() { [ "$(leader_of "$survivor")" = "$survivor" ]; }
wait_until 60 "standby $survivor is leader" survivor_leads
info "failover took about $((SECONDS - t0))s (ZooKeeper session timeout is 10 s)"
new_fid=$(api "$survivor" GET /v2/info | jq -r .frameworkId)
if [ "$new_fid" = "$fid" ]; then pass "same framework id $fid"; else fail "framework id changed: $fid → $new_fid (tasks of the old framework will be killed when its failover timeout ends)"; fi
wait_until 120 "$APP converged under the new leader" app_converged "$survivor" "$APP"
tasks_after=$(running_tasks "$survivor" "$APP")
if [ "$tasks_after" = "$tasks_before" ]; then
  pass "the same tasks run: adopted, none relaunched"
else
  fail "the running tasks changed (relaunched instead of adopted):"
  diff <(echo "$tasks_before") <(echo "$tasks_after") | sed 's/^/     /' || true
fi
want=$(cut -d' ' -f2 <<<"$tasks_after" | sort)
dns_matches() { [ "$(srv_targets "$APP")" = "$want" ]; }
wait_until 30 "DNS SRV $(srv_name "$APP") lists exactly the running tasks" dns_matches
gw() { curl -fsS --max-time 3 -H 'Host: web.lab.example' "http://$survivor/" | grep -q 'demo web'; }
wait_until 30 "external gateway on $survivor routes web.lab.example" gw
old_back() { [ "$(leader_of "$old")" = "$survivor" ]; }
wait_until 60 "the killed replica came back (systemd) as a standby" old_back
summary
