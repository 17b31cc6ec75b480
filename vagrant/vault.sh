#!/usr/bin/env bash
# Vault 1.14.1 (the newest MPL-2.0 release) in dev mode on the lab network,
# with what Flotilla needs: KV v2 at secret/, a "flotilla" policy that reads
# secret/apps/*, and a periodic token with that policy only.
#
# Dev mode keeps everything in memory: after a restart of the VM or of
# vault.service, vault-lab-setup.service writes the policy, the token and
# the demo secret again (the token id is fixed, so Flotilla keeps working).
#
# The binary: vagrant/.cache/bin/vault when the host built it
# (vagrant/build-artifacts.sh copies the one scripts/testbed.sh builds from
# the Go module proxy); otherwise the official 1.14.1 release zip from
# releases.hashicorp.com, checked against its SHA256SUMS.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. /vagrant/common.sh
need_env VAULT_IP VAULT_ROOT_TOKEN VAULT_FLOTILLA_TOKEN

VERSION=1.14.1
apt_install curl unzip ca-certificates jq

if [ -x "$CACHE/bin/vault" ]; then
  install -m 0755 "$CACHE/bin/vault" /usr/local/bin/vault
elif ! /usr/local/bin/vault version 2>/dev/null | grep -q "v$VERSION"; then
  tmp=$(mktemp -d)
  base=https://releases.hashicorp.com/vault/$VERSION
  curl -fsSL -o "$tmp/vault.zip" "$base/vault_${VERSION}_linux_amd64.zip"
  curl -fsSL -o "$tmp/SUMS" "$base/vault_${VERSION}_SHA256SUMS"
  want=$(awk -v f="vault_${VERSION}_linux_amd64.zip" '$2 == f {print $1}' "$tmp/SUMS")
  got=$(sha256sum "$tmp/vault.zip" | awk '{print $1}')
  if [ -z "$want" ] || [ "$want" != "$got" ]; then
    die "vault zip checksum mismatch (want $want, got $got)"
  fi
  unzip -o -q "$tmp/vault.zip" -d "$tmp"
  install -m 0755 "$tmp/vault" /usr/local/bin/vault
  rm -rf "$tmp"
fi
log "$(/usr/local/bin/vault version)"

install -d -m 0700 /etc/vault-lab
cat >/etc/vault-lab/env <<ENV
VAULT_ADDR=http://$VAULT_IP:8200
VAULT_TOKEN=$VAULT_ROOT_TOKEN
VAULT_FLOTILLA_TOKEN=$VAULT_FLOTILLA_TOKEN
ENV
chmod 0600 /etc/vault-lab/env

cat >/etc/vault-lab/flotilla.hcl <<'HCL'
# Flotilla reads app secrets (KV v2 at secret/, under apps/) and their
# versions; nothing else. The default policy adds token self-renewal and
# the mount lookup the KV v1/v2 detection uses.
path "secret/data/apps/*" {
  capabilities = ["read"]
}
path "secret/metadata/apps/*" {
  capabilities = ["read"]
}
HCL

cat >/usr/local/sbin/vault-lab-setup <<'SETUP'
#!/usr/bin/env bash
# Idempotent: policy, Flotilla's token (fixed id) and the demo secret.
set -euo pipefail
set -a; . /etc/vault-lab/env; set +a
for _ in $(seq 60); do
  curl -fsS "$VAULT_ADDR/v1/sys/health" >/dev/null 2>&1 && break
  sleep 1
done
vault policy write flotilla /etc/vault-lab/flotilla.hcl
if ! vault token lookup "$VAULT_FLOTILLA_TOKEN" >/dev/null 2>&1; then
  vault token create -id="$VAULT_FLOTILLA_TOKEN" -policy=flotilla -period=24h -orphan \
    -display-name=flotilla >/dev/null
fi
# A demo secret for examples and the rotate drill (lab value, not a real one).
if ! vault kv get secret/apps/demo/db >/dev/null 2>&1; then
  vault kv put secret/apps/demo/db password=lab-initial-password >/dev/null
fi
echo "vault-lab-setup: policy flotilla, token for Flotilla, secret/apps/demo/db ready"
SETUP
chmod 0755 /usr/local/sbin/vault-lab-setup

write_unit vault.service <<UNIT
[Unit]
Description=Vault $VERSION, dev mode (Flotilla lab; in-memory)
After=network-online.target
Wants=network-online.target

[Service]
# One dependency of a Go >= 1.23 build parses a CA certificate that is
# otherwise rejected at start-up (ENVIRONMENT.md); harmless for the release.
Environment=GODEBUG=x509negativeserial=1
Environment=HOME=/root
ExecStart=/usr/local/bin/vault server -dev -dev-listen-address=$VAULT_IP:8200 -dev-root-token-id=$VAULT_ROOT_TOKEN
Restart=always
RestartSec=3

[Install]
WantedBy=multi-user.target
UNIT

write_unit vault-lab-setup.service <<'UNIT'
[Unit]
Description=Flotilla lab: Vault policy, token and demo secret
After=vault.service
BindsTo=vault.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vault-lab-setup

[Install]
WantedBy=vault.service
UNIT

wait_tcp "$VAULT_IP" 8200 60 || die "Vault did not listen on $VAULT_IP:8200 (journalctl -u vault)"
systemctl start vault-lab-setup.service
log "Vault dev server on http://$VAULT_IP:8200; Flotilla's token has policy flotilla only"
