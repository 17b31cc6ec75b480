#!/usr/bin/env bash
# Apache Mesos from the Apache source release, installed under /usr/local.
#
# Where Mesos comes from: Mesosphere's apt repository (repos.mesosphere.com)
# is gone, Debian and Ubuntu never packaged Mesos, and the project moved to
# the Apache Attic, so the one durable source is the signed release tarball
# on archive.apache.org. MESOS_VERSION defaults to 1.11.0, the last release
# (November 2020), whose v1 scheduler API is what MESOS.md and mesos-go's
# 1.10 protos describe. It is built on Ubuntu 18.04 because Mesos 1.x needs
# cgroup v1 (Debian 12 and Ubuntu 22.04 boot cgroup v2 only) and builds
# with the GCC 7 of that release.
#
# The build (about an hour with 2 cores, needs ~3 GB of memory) happens
# once: the installed tree is packed into
# /vagrant/.cache/mesos/mesos-$MESOS_VERSION-<codename>-amd64.tar.gz, and a
# machine that finds that file unpacks it instead of building. VirtualBox
# shares the folder both ways, so only the first Mesos machine builds; with
# libvirt's rsync folder each machine builds its own unless the file was
# put into vagrant/.cache/mesos on the host before `vagrant up`.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. /vagrant/common.sh
need_env MESOS_VERSION

# Libraries libmesos links against, and the tools the agent and executors use.
RUNTIME=(libcurl4-nss-dev libsasl2-dev libsasl2-modules libapr1-dev libsvn-dev zlib1g-dev
  iputils-ping curl ca-certificates)
BUILD=(build-essential python3 wget cmake autoconf automake libtool)

if command -v mesos-master >/dev/null && mesos-master --version | grep -q "mesos $MESOS_VERSION"; then
  log "Mesos $MESOS_VERSION already installed"
  exit 0
fi

# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
artifact=$CACHE/mesos/mesos-$MESOS_VERSION-$codename-amd64.tar.gz
apt_install "${RUNTIME[@]}"

if [ ! -f "$artifact" ]; then
  apt_install "${BUILD[@]}"
  src=/opt/mesos-build
  install -d "$src" "$CACHE/mesos"
  cd "$src"
  tarball=mesos-$MESOS_VERSION.tar.gz
  base=https://archive.apache.org/dist/mesos/$MESOS_VERSION
  [ -f "$tarball" ] || wget -q "$base/$tarball"
  wget -q -O "$tarball.sha512" "$base/$tarball.sha512"
  # The .sha512 file is either "HASH  name" or gpg's "name: HA SH …" form.
  want=$(tr -d '\n' <"$tarball.sha512" | sed 's/^[^:]*: *//; s/ .*\.tar\.gz$//' | tr -d ' ' | tr 'A-F' 'a-f')
  got=$(sha512sum "$tarball" | awk '{print $1}')
  if [ "$want" != "$got" ]; then
    die "$tarball: sha512 mismatch (want $want, got $got)"
  fi
  log "building Mesos $MESOS_VERSION from $base/$tarball (about an hour)"
  rm -rf "mesos-$MESOS_VERSION"
  tar xzf "$tarball"
  cd "mesos-$MESOS_VERSION"
  mkdir -p build && cd build
  # No Java or Python bindings: Flotilla speaks the v1 HTTP API.
  ../configure --prefix=/usr/local --disable-java --disable-python --disable-werror >configure.log
  jobs=$(nproc)
  mem_gb=$(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo)
  if [ "$jobs" -gt $((mem_gb / 2 > 0 ? mem_gb / 2 : 1)) ]; then jobs=$((mem_gb / 2 > 0 ? mem_gb / 2 : 1)); fi
  make -j"$jobs" V=0 >make.log 2>&1 || { tail -50 make.log; die "Mesos build failed (see $PWD/make.log)"; }
  rm -rf /tmp/mesos-root
  make install DESTDIR=/tmp/mesos-root >/dev/null
  tar -C /tmp/mesos-root -czf "$artifact.tmp" usr
  mv "$artifact.tmp" "$artifact"
  rm -rf /tmp/mesos-root
fi

tar -C / -xzf "$artifact"
ldconfig
mesos-master --version >/dev/null || die "mesos-master does not run after install"
log "installed $(mesos-master --version) from $artifact"
