#!/usr/bin/env bash
# The test bed: real ZooKeeper, Docker engine and Vault on loopback, and the
# local test images. Idempotent; used by `make test`, .ci/run and developers.
#
#   scripts/testbed.sh up     install what is missing, start everything, build images
#   scripts/testbed.sh env    print the environment the tests read (eval-able)
#   scripts/testbed.sh down   stop what `up` started
#   scripts/testbed.sh status say what answers and what does not
#   scripts/testbed.sh zk|docker|vault|images   one part of `up`
#
# Settings (environment): FLOTILLA_TESTBED_DIR (state, default /tmp/flotilla-testbed),
# FLOTILLA_CACHE (cached Vault build, default ~/.cache/flotilla), ZK_PORT (2181),
# VAULT_PORT (8200), VAULT_TOKEN (flotilla-dev-root).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${FLOTILLA_TESTBED_DIR:-/tmp/flotilla-testbed}
CACHE=${FLOTILLA_CACHE:-$HOME/.cache/flotilla}
ZK_PORT=${ZK_PORT:-2181}
VAULT_PORT=${VAULT_PORT:-8200}
VAULT_TOKEN=${VAULT_TOKEN:-flotilla-dev-root}
VAULT_VERSION=1.14.1
VAULT_BIN=$CACHE/vault-build/vault
DOCKER_SOCK=/var/run/docker.sock
# nftables and iproute2: kernel port forwarding of BRIDGE/USER tasks
# (internal/portfwd); util-linux (nsenter) is essential on Debian.
PACKAGES=(zookeeper docker.io dnsutils busybox-static chromium nftables iproute2)

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: MISSING: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

# wait_for DESCRIPTION SECONDS COMMAND... : retry COMMAND until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local end=$(( $(now) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now)" -lt "$end" ] || return 1
    sleep 0.3
  done
  log "$what is up"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# spawn LOG COMMAND...: start a daemon in the background with the locks'
# descriptors closed. A daemon that inherited fd 8 would hold up.lock for
# its whole life, and the next `up` (make test runs one after .ci/run's)
# would wait on it forever.
spawn() {
  local out=$1; shift
  nohup "$@" >"$out" 2>&1 8>&- 9>&- &
}

install_packages() {
  local want=()
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || want+=("$p")
  done
  [ ${#want[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${want[*]}"
  [ "$(id -u)" -eq 0 ] || die "not root; install by hand: ${want[*]}"
  log "installing ${want[*]}"
  local t0; t0=$(now)
  apt-get update -qq >/dev/null || log "apt-get update failed; trying the install anyway"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >"$STATE/apt.log" 2>&1 \
    || die "apt-get install ${want[*]} failed (see $STATE/apt.log)"
  log "installed in $(( $(now) - t0 ))s"
}

zk_up() {
  if tcp_open "$ZK_PORT"; then log "ZooKeeper already answers on 127.0.0.1:$ZK_PORT"; return; fi
  [ -f /usr/share/java/zookeeper.jar ] || die "ZooKeeper (Debian package zookeeper): /usr/share/java/zookeeper.jar not found"
  command -v java >/dev/null || die "java (needed by ZooKeeper) not found"
  local dir=$STATE/zk
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
maxSessionTimeout=60000
CFG
  cp /etc/zookeeper/conf/log4j.properties "$dir/" 2>/dev/null || true
  spawn "$dir/zk.log" java -Dzookeeper.log.dir="$dir" -cp "$dir:/etc/zookeeper/conf:/usr/share/java/zookeeper.jar" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
  echo $! >"$STATE/zk.pid"
  wait_for "ZooKeeper on 127.0.0.1:$ZK_PORT" 60 tcp_open "$ZK_PORT" || die "ZooKeeper did not start (see $dir/zk.log)"
}

docker_ok() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

docker_up() {
  if docker_ok; then log "Docker engine already answers on $DOCKER_SOCK"; return; fi
  command -v dockerd >/dev/null || die "dockerd (Debian package docker.io) not found"
  # No bridge, no iptables: tasks use host networking and nothing touches
  # private address ranges.
  spawn "$STATE/dockerd.log" dockerd --bridge=none --iptables=false --ip-masq=false --host "unix://$DOCKER_SOCK"
  echo $! >"$STATE/dockerd.pid"
  wait_for "Docker engine" 60 docker_ok || die "dockerd did not start (see $STATE/dockerd.log)"
}

vault_build() {
  [ -x "$VAULT_BIN" ] && return 0
  local dir=$CACHE/vault-build
  mkdir -p "$dir"
  log "building Vault $VAULT_VERSION from the Go module proxy (first time only; 5-15 minutes)"
  local t0; t0=$(now)
  (
    cd "$dir"
    sdk=$(go mod download -json github.com/hashicorp/vault/sdk@v0.9.2 | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    [ -n "$sdk" ] || exit 1
    rm -rf sdk && cp -r "$sdk" sdk && chmod -R u+w sdk
    # sdk v0.9.2 carries a start-up self-check that panics on a Vault
    # enterprise-stub path; v1.14.1's own sdk does not have it.
    sed -i 's/if p.ExistenceCheck == nil {/if false \&\& p.ExistenceCheck == nil {/' sdk/framework/backend.go
    printf '%s\n' 'module vaultbuild' 'go 1.26' \
      "require github.com/hashicorp/vault v$VAULT_VERSION" \
      'replace github.com/hashicorp/vault/sdk => ./sdk' \
      'replace github.com/hashicorp/vault/api => github.com/hashicorp/vault/api v1.9.2' >go.mod
    GOFLAGS=-mod=mod go build -o vault.tmp github.com/hashicorp/vault
    mv vault.tmp vault
  ) >"$dir/build.log" 2>&1 || die "Vault build failed (see $dir/build.log)"
  log "Vault built in $(( $(now) - t0 ))s"
}

vault_ok() { curl -fsS "http://127.0.0.1:$VAULT_PORT/v1/sys/health" >/dev/null 2>&1; }

vault_up() {
  if vault_ok; then log "Vault already answers on 127.0.0.1:$VAULT_PORT"; return; fi
  command -v go >/dev/null || die "go (needed to build Vault) not found"
  (
    exec 9>"$CACHE/vault-build.lock"
    flock 9
    vault_build
  )
  spawn "$STATE/vault.log" env GODEBUG=x509negativeserial=1 "$VAULT_BIN" server -dev \
    -dev-listen-address="127.0.0.1:$VAULT_PORT" -dev-root-token-id="$VAULT_TOKEN"
  echo $! >"$STATE/vault.pid"
  wait_for "Vault on 127.0.0.1:$VAULT_PORT" 60 vault_ok || die "Vault did not start (see $STATE/vault.log)"
}

# import_image NAME ENTRYPOINT ROOTFS: a local image from a directory, since
# there is no registry.
import_image() {
  local name=$1 entry=$2 rootfs=$3
  tar -C "$rootfs" -c . | docker import --change "ENTRYPOINT $entry" - "$name" >/dev/null \
    || die "docker import of $name failed"
  log "image $name built"
}

images_up() {
  local dir=$STATE/images
  rm -rf "$dir" && mkdir -p "$dir/testapp/tmp" "$dir/busybox/bin" "$dir/busybox/tmp"
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$dir/testapp/testapp" ./cmd/testapp) || die "go build ./cmd/testapp failed"
  # The same program, for process tasks; renamed into place because a
  # running task may hold the old file open ("text file busy").
  cp "$dir/testapp/testapp" "$STATE/testapp.new" && mv -f "$STATE/testapp.new" "$STATE/testapp"
  import_image flotilla/testapp:dev '["/testapp"]' "$dir/testapp"
  cp /bin/busybox "$dir/busybox/bin/busybox" || die "busybox (Debian package busybox-static) not found"
  for a in sh sleep env cat echo ls true false wget nc printenv; do ln -sf busybox "$dir/busybox/bin/$a"; done
  import_image flotilla/busybox:dev '["/bin/sh", "-c"]' "$dir/busybox"
}

print_env() {
  cat <<ENV
export FLOTILLA_TEST_ZK=127.0.0.1:$ZK_PORT
export DOCKER_HOST=unix://$DOCKER_SOCK
export VAULT_ADDR=http://127.0.0.1:$VAULT_PORT
export VAULT_TOKEN=$VAULT_TOKEN
export FLOTILLA_TESTAPP=$STATE/testapp
export FLOTILLA_VAULT_BIN=$VAULT_BIN
ENV
}

stop_pid() {
  local f=$STATE/$1.pid
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $1"
  fi
  rm -f "$f"
}

status() {
  local rc=0
  if tcp_open "$ZK_PORT"; then log "ZooKeeper: up"; else log "ZooKeeper: down"; rc=1; fi
  if docker_ok; then log "Docker: up"; else log "Docker: down"; rc=1; fi
  if vault_ok; then log "Vault: up"; else log "Vault: down"; rc=1; fi
  return $rc
}

# holds PID FILE: whether process PID has FILE open.
holds() {
  local f
  for f in /proc/"$1"/fd/*; do
    [ "$(readlink "$f" 2>/dev/null)" = "$2" ] && return 0
  done
  return 1
}

# lock_holders FILE: the processes holding FILE open, for the message of a
# wait that lasts.
lock_holders() {
  local p out=""
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    holds "$p" "$1" || continue
    out+="$p($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-60)) "
  done
  printf '%s' "${out:-none}"
}

mkdir -p "$STATE" "$CACHE"
case "${1:-}" in
  up | zk | docker | vault | images)
    # One at a time: two clones' make test and make bench start the same
    # test bed side by side, and two docker imports of one image at once
    # made one of them fail.
    exec 8>"$STATE/up.lock"
    if ! flock -n 8; then
      for d in zk dockerd vault; do
        # A daemon of ours holding the lock never lets go: fail now, not in an hour.
        [ -f "$STATE/$d.pid" ] && holds "$(cat "$STATE/$d.pid")" "$STATE/up.lock" \
          && die "$d (pid $(cat "$STATE/$d.pid")) holds $STATE/up.lock; restart it with: $0 down && $0 up"
      done
      log "waiting for another test bed start (holders of $STATE/up.lock: $(lock_holders "$STATE/up.lock"))"
      # Generous: the holder may be building Vault for the first time.
      flock -w 3600 8 || die "$STATE/up.lock still held after an hour by: $(lock_holders "$STATE/up.lock")"
    fi
    ;;
esac
case "${1:-}" in
  up)
    t0=$(now)
    install_packages
    zk_up
    docker_up
    vault_up
    images_up
    log "up in $(( $(now) - t0 ))s"
    print_env
    ;;
  zk) install_packages; zk_up ;;
  docker) install_packages; docker_up ;;
  vault) vault_up ;;
  images) docker_up; images_up ;;
  env) print_env ;;
  down)
    # Containers tests left behind would hold ports of later runs.
    if docker_ok; then docker ps -aq --filter name=mesos- | xargs -r docker rm -f >/dev/null || true; fi
    stop_pid vault; stop_pid dockerd; stop_pid zk
    ;;
  status) status ;;
  *) echo "usage: $0 up|env|down|status|zk|docker|vault|images" >&2; exit 2 ;;
esac
