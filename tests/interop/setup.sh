#!/usr/bin/env bash
# Installs the real WAMP clients used by the interop tests, idempotently.
#
# Owned by the interop test harness (tests/interop/**, tests/interop.rs).
#  - Autobahn|Python and xconn (pinned in requirements.txt) into tests/interop/.venv
#  - Autobahn|JS 22.x + ws 7 (+ msgpack5 and cbor, regular dependencies of autobahn),
#    xmlhttprequest-ssl (XMLHttpRequest for Autobahn's long-poll transport)
#    from package.json/package-lock.json into tests/interop/node_modules
# Both folders are git-ignored. Concurrent callers (parallel cargo tests) are
# serialised with flock; when the stamp file matches the hash of the inputs,
# nothing is done. Any install error exits non-zero with a message.
#
# Env: INTEROP_PYTHON (default python3), INTEROP_NODE (default node),
#      INTEROP_NPM (default npm).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

PY="${INTEROP_PYTHON:-python3}"
NODE="${INTEROP_NODE:-node}"
NPM="${INTEROP_NPM:-npm}"
LOCK="$HERE/.setup.lock"
STAMP="$HERE/.setup.stamp"
VENV="$HERE/.venv"

die() { echo "interop setup.sh: ERROR: $*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || echo "interop setup.sh: FAILED (exit $rc)" >&2' EXIT

command -v "$PY" >/dev/null || die "$PY not found (need Python 3.11)"
command -v "$NODE" >/dev/null || die "$NODE not found (need Node 20)"
command -v "$NPM" >/dev/null || die "$NPM not found"
command -v flock >/dev/null || die "flock not found (util-linux)"

# Serialise concurrent runs (bounded wait: installs take ~1 min at most).
exec 9>"$LOCK"
flock -w 900 9 || die "timed out waiting for $LOCK"

inputs_hash() {
  {
    cat requirements.txt package.json package-lock.json setup.sh
    "$PY" --version 2>&1
    "$NODE" --version 2>&1
  } | sha256sum | cut -d' ' -f1
}
WANT="$(inputs_hash)"

installed_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c 'import txaio; txaio.use_asyncio(); import autobahn, msgpack, cbor2; from autobahn.wamp.serializer import MsgPackSerializer, CBORSerializer; MsgPackSerializer(); CBORSerializer()
import xconn, xconn.async_client, wampproto.serializers; assert isinstance(xconn.async_client.connect.__defaults__[1], wampproto.serializers.CBORSerializer)' \
      >/dev/null 2>&1 &&
    "$NODE" -e "const ab = require('$HERE/node_modules/autobahn'); new ab.serializer.MsgpackSerializer(); require('$HERE/node_modules/msgpack5'); if (!ab.serializer.CBORSerializer) throw new Error('no CBORSerializer'); new ab.serializer.CBORSerializer(); require('$HERE/node_modules/cbor'); require('$HERE/node_modules/xmlhttprequest-ssl')" \
      >/dev/null 2>&1
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && installed_ok; then
  exit 0
fi

echo "interop setup.sh: installing clients into $HERE (.venv, node_modules)" >&2
rm -f "$STAMP"

# --- Python: Autobahn|Python ------------------------------------------------
if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "python venv creation failed"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
  -r requirements.txt >&2 || die "pip install -r requirements.txt failed"

# --- Node: Autobahn|JS ------------------------------------------------------
# `npm ci` installs exactly package-lock.json. --ignore-scripts: the only
# install scripts are the optional native speed-ups bufferutil and
# utf-8-validate, which ws replaces with pure JS when they are not built.
"$NPM" ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2 ||
  die "npm ci failed"

installed_ok || die "clients installed but do not import (autobahn/msgpack/cbor/xconn)"
echo "$WANT" >"$STAMP"
echo "interop setup.sh: done" >&2
