#!/usr/bin/env bash
# Run on the host before `vagrant up`: puts the binaries the lab VMs install
# into vagrant/.cache/bin (the VMs see it as /vagrant/.cache/bin).
#   flotilla  static linux/amd64 build of ./cmd/flotilla from this checkout
#   vault     the MPL-2.0 Vault 1.14.1 scripts/testbed.sh built from the Go
#             module proxy, when it exists (else the vault VM downloads the
#             official 1.14.1 release and checks its SHA256SUMS)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$here/.cache/bin
mkdir -p "$out"

version=$(cd "$repo" && git describe --always --dirty 2>/dev/null || echo lab)
(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
  -ldflags "-X main.version=$version" -o "$out/flotilla" ./cmd/flotilla)
echo "built $out/flotilla ($version)"

vault_bin=${FLOTILLA_CACHE:-$HOME/.cache/flotilla}/vault-build/vault
if [ -x "$vault_bin" ]; then
  cp "$vault_bin" "$out/vault"
  echo "copied $vault_bin to $out/vault"
else
  rm -f "$out/vault"
  echo "no host-built Vault at $vault_bin: the vault VM will download the 1.14.1 release"
fi
