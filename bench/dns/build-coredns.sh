#!/usr/bin/env bash
# Builds CoreDNS from the Go module proxy outside the repository, so the DNS
# benchmark has a peer serving the same records. The binary is cached; a second
# run is a no-op.
set -euo pipefail
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
DIR=${COREDNS_DIR:-$HOME/.cache/flotilla/coredns}
BIN="$DIR/coredns-$COREDNS_VERSION"
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$DIR"
cd "$DIR"
printf '%s\n' 'module corednsbuild' 'go 1.26' "require github.com/coredns/coredns $COREDNS_VERSION" > go.mod
# -mod=mod lets the build resolve CoreDNS's own requirements from the proxy.
GOFLAGS=-mod=mod GOWORK=off nice -n 19 go build -trimpath -o "$BIN.tmp" github.com/coredns/coredns >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
