#!/usr/bin/env bash
# Validates the interop client scripts against Crossbar.io, the reference router.
#
# Owned by the interop test harness (tests/interop/**, tests/interop.rs).
# Not part of CI: run it by hand when the client scripts change, to prove
# that a failure against wampring is wampring's and not the scripts'.
#  1. runs setup.sh (Autobahn|Python + Autobahn|JS clients)
#  2. installs crossbar into tests/interop/.venv-crossbar (git-ignored;
#     first time only, takes a few minutes)
#  3. starts crossbar with tests/interop/crossbar/config.json
#     (ws://127.0.0.1:9080/ws and rs://127.0.0.1:9081, anonymous; realm1, and
#     realm1.disclosed, whose role has the `disclose: {caller: true,
#     publisher: true}` permission: the counterpart of wampring's per-realm
#     disclose_caller and disclose_publisher, passed to the scripts with
#     --disclosed-realm; realm1 keeps the event history of the three
#     topics of the `event_history` step in a memory event store)
#  4. runs every client x transport x serializer combination against it (Autobahn|Python and
#     Autobahn|JS with json, msgpack and cbor; xconn_client.py with xconn's default serializer,
#     CBOR; mixed.py with json, msgpack and cbor sessions at once), with
#     `--peer crossbar`: where Crossbar behaves differently from wampring (or
#     lacks a feature), the scripts adapt only that assertion and print
#     `info crossbar-differs <step>: <what>` (summarised at the end)
#  5. stops crossbar by PID (its own process group as a fallback)
# Exits 0 only when every combination passes.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

CROSSBAR_VERSION="26.10.1"
PY="${INTEROP_PYTHON:-python3}"
CBVENV="$HERE/.venv-crossbar"
CBDIR="$HERE/.crossbar-run"
WS_PORT=9080
RS_PORT=9081
START_TIMEOUT_S=60
CLIENT_TIMEOUT_S=40

die() { echo "run_against_crossbar.sh: ERROR: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- 1. clients ----------------------------------------------------------------
bash "$HERE/setup.sh"

# --- 2. crossbar -----------------------------------------------------------------
(
  exec 8>"$HERE/.crossbar-setup.lock"
  flock -w 1800 8 || die "timed out waiting for crossbar install lock"
  want="crossbar==$CROSSBAR_VERSION $("$PY" --version 2>&1)"
  if [ -x "$CBVENV/bin/crossbar" ] && [ "$(cat "$HERE/.crossbar-setup.stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
  fi
  echo "installing crossbar==$CROSSBAR_VERSION into $CBVENV (takes a few minutes)" >&2
  rm -rf "$CBVENV"
  "$PY" -m venv "$CBVENV"
  "$CBVENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    "crossbar==$CROSSBAR_VERSION" || die "pip install crossbar failed"
  echo "$want" >"$HERE/.crossbar-setup.stamp"
)

# --- 3. start it -----------------------------------------------------------------
for p in $WS_PORT $RS_PORT; do
  port_open "$p" && die "port $p is already in use (another crossbar still running?)"
done
rm -rf "$CBDIR"
mkdir -p "$CBDIR"
cp "$HERE/crossbar/config.json" "$CBDIR/config.json"
LOG="$CBDIR/crossbar.log"

CB_PID=""
cleanup() {
  if [ -n "$CB_PID" ] && kill -0 "$CB_PID" 2>/dev/null; then
    kill -TERM "$CB_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$CB_PID" 2>/dev/null || break; sleep 0.2; done
  fi
  if [ -n "$CB_PID" ]; then
    # crossbar runs its router worker as a child process; setsid made
    # CB_PID the leader of a process group that holds exactly what we started.
    kill -KILL -- "-$CB_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

setsid "$CBVENV/bin/crossbar" start --cbdir "$CBDIR" --config config.json \
  >"$LOG" 2>&1 </dev/null &
CB_PID=$!
echo "crossbar started, pid $CB_PID, log $LOG" >&2

deadline=$((SECONDS + START_TIMEOUT_S))
until port_open $WS_PORT && port_open $RS_PORT; do
  kill -0 "$CB_PID" 2>/dev/null || { tail -n 40 "$LOG" >&2; die "crossbar exited during startup"; }
  [ $SECONDS -lt $deadline ] || { tail -n 40 "$LOG" >&2; die "crossbar did not listen within ${START_TIMEOUT_S}s"; }
  sleep 0.5
done
echo "crossbar listening after ~$((SECONDS - deadline + START_TIMEOUT_S))s" >&2

# --- 4. run the combinations --------------------------------------------------------
COMBOS=(
  "python ws-json    ws://127.0.0.1:$WS_PORT/ws json"
  "python ws-msgpack ws://127.0.0.1:$WS_PORT/ws msgpack"
  "python rs-json    rs://127.0.0.1:$RS_PORT    json"
  "python rs-msgpack rs://127.0.0.1:$RS_PORT    msgpack"
  "js     ws-json    ws://127.0.0.1:$WS_PORT/ws json"
  "js     ws-msgpack ws://127.0.0.1:$WS_PORT/ws msgpack"
  "js     rs-json    rs://127.0.0.1:$RS_PORT    json"
  "python ws-cbor    ws://127.0.0.1:$WS_PORT/ws cbor"
  "python rs-cbor    rs://127.0.0.1:$RS_PORT    cbor"
  "js     ws-cbor    ws://127.0.0.1:$WS_PORT/ws cbor"
  "xconn  ws-default ws://127.0.0.1:$WS_PORT/ws -"
  "xconn  rs-default rs://127.0.0.1:$RS_PORT    -"
  "mixed  ws+rs      ws://127.0.0.1:$WS_PORT/ws -"
)
passed=0
failed=0
summary=""
differs=""
for combo in "${COMBOS[@]}"; do
  read -r client name url ser <<<"$combo"
  case "$client" in
    python) cmd=("$HERE/.venv/bin/python" "$HERE/client.py" --serializer "$ser" --disclosed-realm realm1.disclosed) ;;
    js) cmd=(node "$HERE/client.js" --serializer "$ser" --disclosed-realm realm1.disclosed) ;;
    # xconn with its defaults (CBOR); mixed.py: json, msgpack and cbor sessions at once
    xconn) cmd=("$HERE/.venv/bin/python" "$HERE/xconn_client.py") ;;
    mixed) cmd=("$HERE/.venv/bin/python" "$HERE/mixed.py" --rs-url "rs://127.0.0.1:$RS_PORT") ;;
  esac
  echo "=== $client $name ($url, $ser)"
  set +e
  out="$(timeout -k 5 "$CLIENT_TIMEOUT_S" "${cmd[@]}" --url "$url" --realm realm1 --peer crossbar 2>&1)"
  rc=$?
  set -e
  echo "$out" | sed 's/^/    /'
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); summary+="PASS  $client $name"$'\n'
  else
    failed=$((failed + 1)); summary+="FAIL  $client $name (exit $rc; $(echo "$out" | grep -m1 '^FAIL' || echo 'no FAIL line'))"$'\n'
  fi
  differs+="$(echo "$out" | sed -n "s/^info crossbar-differs /$client: /p")"$'\n'
done

echo
echo "=== where crossbar $CROSSBAR_VERSION differs (assertions adapted)"
printf '%s' "$differs" | sed '/^$/d; s/^/  /' | sort -u

echo
echo "=== crossbar $CROSSBAR_VERSION results"
printf '%s' "$summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
