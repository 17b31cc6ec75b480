#!/usr/bin/env bash
# One Flotilla replica as a systemd unit. Both replicas join the election
# in ZooKeeper (zk://…/flotilla); the leader subscribes to the Mesos master
# it finds at zk://…/mesos, the other stands by and forwards API calls.
#
# Listeners, all on this VM's lab address:
#   :8080  API (Marathon v2, /metrics)   operators and CI only
#   :53    DNS (udp+tcp, Mesos-DNS names) agents and tasks
#   :80    external gateway              the one listener meant for outside
#   :8001  internal gateway              tasks calling each other
#
# The binary is vagrant/.cache/bin/flotilla, built on the host by
# vagrant/build-artifacts.sh (a static linux/amd64 build of ./cmd/flotilla).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. /vagrant/common.sh
need_env FLOTILLA_IP ZK_HOSTS VAULT_ADDR VAULT_FLOTILLA_TOKEN

[ -x "$CACHE/bin/flotilla" ] || die "no $CACHE/bin/flotilla: run vagrant/build-artifacts.sh on the host, then 'vagrant provision $(hostname)'"
apt_install curl jq dnsutils ca-certificates
install -m 0755 "$CACHE/bin/flotilla" /usr/local/bin/flotilla
log "$(/usr/local/bin/flotilla version)"

id flotilla >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin flotilla
install -d -m 0750 -g flotilla /etc/flotilla
# The token is periodic and limited to the "flotilla" policy (vault.sh);
# Flotilla renews it. It is given as a file so it never shows in `ps`.
install -m 0640 -g flotilla /dev/null /etc/flotilla/vault-token
printf '%s' "$VAULT_FLOTILLA_TOKEN" >/etc/flotilla/vault-token
cat >/etc/flotilla/env <<ENV
VAULT_ADDR=$VAULT_ADDR
VAULT_TOKEN_FILE=/etc/flotilla/vault-token
ENV

write_unit flotilla.service <<UNIT
[Unit]
Description=Flotilla replica (lab)
After=network-online.target
Wants=network-online.target

[Service]
User=flotilla
EnvironmentFile=/etc/flotilla/env
# --secret-env-type=value: Mesos resolves SECRET environment variables only
# in the Mesos containerizer, and the lab runs Docker tasks through the
# Docker containerizer; see docs/operating.md (security).
ExecStart=/usr/local/bin/flotilla serve \\
  --master zk://$ZK_HOSTS/mesos \\
  --zk zk://$ZK_HOSTS/flotilla \\
  --api-addr $FLOTILLA_IP:8080 \\
  --advertise http://$FLOTILLA_IP:8080 \\
  --hostname $FLOTILLA_IP \\
  --dns-addr $FLOTILLA_IP:53 \\
  --gateway-addr $FLOTILLA_IP:80 \\
  --internal-gateway-addr $FLOTILLA_IP:8001 \\
  --secret-env-type value
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=true
ProtectSystem=full
ProtectHome=true
PrivateTmp=true
Restart=always
RestartSec=3
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT

for _ in $(seq 60); do
  if curl -fsS "http://$FLOTILLA_IP:8080/ping" >/dev/null 2>&1; then
    log "Flotilla API on http://$FLOTILLA_IP:8080; leader: $(curl -fsS "http://$FLOTILLA_IP:8080/v2/leader" || echo 'none yet')"
    exit 0
  fi
  sleep 2
done
die "Flotilla did not answer /ping on $FLOTILLA_IP:8080 in 2 minutes (journalctl -u flotilla)"
