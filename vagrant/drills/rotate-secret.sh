#!/usr/bin/env bash
# Drill: rotate a Vault secret an app uses.
#
# What it does: deploys /demo/secret (apps/secret.json: DB_PASSWORD from
# secret/apps/demo/db#password; each task serves the SHA-256 of the value
# it got, never the value), writes a new version of the secret with the
# root token on the vault VM, and waits: Flotilla polls the KV v2 version
# of every secret in use (--secret-poll, 30 s by default) and rolls the
# apps that use a rotated secret (a RestartApplication deployment under the
# app's upgradeStrategy; apps labelled FLOTILLA_SECRET_ROTATION=off are
# left alone).
#
# What should happen: within the poll interval a deployment starts by
# itself; tasks change over a few at a time, and afterwards every task
# serves the hash of the new value. The value never shows in Flotilla's
# API or logs.
#
# Watch:
#   vagrant ssh vault -c 'sudo bash -c ". /etc/vault-lab/env; export VAULT_ADDR VAULT_TOKEN; vault kv metadata get secret/apps/demo/db"'
#   curl -sN 192.168.56.51:8080/v2/events      (deployment_info, status_update_event, deployment_success)
#   curl -s 192.168.56.51:8080/v2/deployments | jq
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
APP=/demo/secret

vault_sh() { vm vault "set -a; . /etc/vault-lab/env; set +a; $1"; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
# served_hashes: the distinct hashes the running tasks serve, one a line.
served_hashes() {
  local id hp
  running_tasks "$(leader)" "$APP" | while read -r id hp; do
    curl -fsS --max-time 3 "http://$hp/" || echo "unreachable:$id"
  done | sort -u
}
serves_only() { [ "$(served_hashes)" = "$1" ]; }

say "before"
l=$(leader)
[ -n "$l" ] || { echo "no replica names a leader: is the lab up?" >&2; exit 2; }
deploy "$l" "$LAB_DIR/apps/secret.json"
wait_until 300 "$APP converged" app_converged "$l" "$APP" || summary
old_value=$(vault_sh 'vault kv get -field=password secret/apps/demo/db' | tr -d '\r')
wait_until 30 "every task serves the hash of the current value" serves_only "$(sha "$old_value")"

say "rotating secret/apps/demo/db"
new_value="lab-rotated-$(date +%s)-$RANDOM"
vault_sh "vault kv put secret/apps/demo/db password=$(printf '%q' "$new_value") >/dev/null"
new_hash=$(sha "$new_value")
info "new version written; hash $new_hash"
say "waiting for Flotilla to notice the new version and roll $APP by itself"
wait_until 300 "every task serves the hash of the new value" serves_only "$new_hash"
wait_until 120 "$APP converged after the rotation" app_converged "$(leader)" "$APP"

say "the value never shows"
leaked=0
for ip in "${REPLICAS[@]}"; do
  if api "$ip" GET "/v2/apps$APP" | grep -qF "$new_value"; then fail "the API of $ip shows the value"; leaked=1; fi
  n=$(vm "$(vm_of "$ip")" "journalctl -u flotilla --since '-15min' | grep -cF $(printf '%q' "$new_value") || true" | tr -d '\r')
  if [ "${n:-0}" != 0 ]; then fail "the log of $(vm_of "$ip") shows the value ($n lines)"; leaked=1; fi
done
[ "$leaked" -eq 1 ] || pass "not in the API's app JSON, not in either replica's log"
info "note: with --secret-env-type=value the value is in the task's environment (docker inspect on the agent); see docs/operating.md"
summary
