#!/usr/bin/env bash
# Makes sure a Chromium for the status-page test (tests/status_page.rs) is installed: Debian's
# `chromium` package, installed with apt-get when missing (root, or sudo without a password).
# Owned by the interop test harness. Idempotent; concurrent callers are serialised with flock.
# Prints the browser's path on stdout.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "setup-chromium.sh: ERROR: $*" >&2; exit 1; }

find_chromium() {
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if find_chromium; then exit 0; fi

exec 9>"$HERE/.chromium.lock"
flock -w 900 9 || die "timed out waiting for $HERE/.chromium.lock"
if find_chromium; then exit 0; fi

if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  die "chromium is missing and this user cannot install it (run: sudo apt-get install chromium)"
fi
command -v apt-get >/dev/null || die "chromium is missing and there is no apt-get to install it"
echo "setup-chromium.sh: installing Debian's chromium package" >&2
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 \
  || die "apt-get install chromium failed"
find_chromium || die "chromium still not found after installing it"
