#!/usr/bin/env bash
# Installs kosoku (the Autobahn TestSuite runner, pinned in requirements.txt) into the
# git-ignored tests/ws_conformance/.venv, idempotently. Owned by the WebSocket conformance test
# (tests/ws_conformance.rs, tests/ws_conformance/**). Needs only python3 (3.10+) with venv and
# PyPI. Concurrent callers are serialised with flock; when the stamp matches the hash of the
# inputs and kosoku imports, nothing is done. Any install error exits non-zero with a message.
#
# Env: CONFORMANCE_PYTHON (default python3).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

PY="${CONFORMANCE_PYTHON:-python3}"
LOCK="$HERE/.setup.lock"
STAMP="$HERE/.setup.stamp"
VENV="$HERE/.venv"

die() { echo "ws_conformance setup.sh: ERROR: $*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || echo "ws_conformance setup.sh: FAILED (exit $rc)" >&2' EXIT

command -v "$PY" >/dev/null || die "$PY not found (need Python 3.10+)"
command -v flock >/dev/null || die "flock not found (util-linux)"

exec 9>"$LOCK"
flock -w 600 9 || die "timed out waiting for $LOCK"

inputs_hash() {
  {
    cat requirements.txt setup.sh
    "$PY" --version 2>&1
  } | sha256sum | cut -d' ' -f1
}
WANT="$(inputs_hash)"

installed_ok() {
  [ -x "$VENV/bin/kosoku" ] &&
    "$VENV/bin/python" -c 'import kosoku; from kosoku.cases import CASES' >/dev/null 2>&1
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && installed_ok; then
  exit 0
fi

echo "ws_conformance setup.sh: installing kosoku into $VENV" >&2
rm -f "$STAMP"
if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "python venv creation failed"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
  -r requirements.txt >&2 || die "pip install -r requirements.txt failed"

installed_ok || die "kosoku installed but does not import"
echo "$WANT" >"$STAMP"
echo "ws_conformance setup.sh: done" >&2
