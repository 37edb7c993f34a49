#!/bin/sh
# Check the README's promise that `make test` works on a fresh machine with nothing but
# python3 and make: a Debian bookworm chroot (debootstrap, minbase) gets python3 and make
# only, the committed tree (git archive HEAD), and runs `make test`; PYTEST_ADDOPTS picks
# the tests (default: those that need the system packages, not the whole suite). The
# machine's own trust store and pip.conf are copied in, since this network needs them.
# Needs root; leaves nothing behind. Usage: sh scripts/check-fresh-debian.sh [pytest args]
set -eu
root=$(mktemp -d /tmp/fresh-debian.XXXXXX)
chmod 755 "$root"  # a root directory others can enter, as on a real machine
tests=${*:-"tests/core/test_testing_redis_server.py tests/browser/test_home.py \
tests/collab_doc/test_interop.py tests/packaging/test_system_packages.py \
tests/cluster/test_cluster.py::test_a_forwarded_call_whose_ack_and_reply_were_lost_runs_once"}
cleanup() {
  umount -R "$root/dev" 2>/dev/null || true
  umount "$root/proc" "$root/sys" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" sh -c 'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 make >/dev/null'
# After the install: ca-certificates (pulled in by python3) rewrites the bundle.
mkdir -p "$root/etc/ssl/certs"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$root/etc/pip.conf"; fi
mkdir "$root/src"
git archive HEAD | tar -x -C "$root/src"
chroot "$root" env PYTEST_ADDOPTS="$tests" sh -c 'cd /src && make test'
