#!/usr/bin/env bash
# RPC calls/s per serializer: JSON, MessagePack and CBOR through one router. `wampring-load rpc`
# (1 caller, 1 callee, window 100, RawSocket, 10 s after 2 s of warm-up) against a release
# router (`--cores 2 --placement round-robin`: caller and callee on different shards, so every
# call crosses the shard mesh) whose listeners offer json, msgpack and cbor. ROUNDS times
# (default 2), the serializer order reversed every other round so all see the same machine.
# Prints one row per run (serializer, round, calls/s, p50 and p99 latency in µs, router CPU µs
# per call) from the tool's JSON report.
#
#   bash loadtest/bench/rpc-serializers.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v jq >/dev/null || { echo "jq is needed to read the reports"; exit 1; }
cargo build --release --workspace -q
R=target/release/wampring
L=target/release/wampring-load
ROUNDS=${ROUNDS:-2}
DIR=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
cat >"$DIR/router.toml" <<'EOF'
[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:28193"
serializers = ["json", "msgpack", "cbor"]

[[listener]]
kind = "websocket"
bind = "127.0.0.1:28192"
path = "/ws"
serializers = ["json", "msgpack", "cbor"]

[[realm]]
name = "realm1"
EOF

$R --config "$DIR/router.toml" --cores 2 --placement round-robin >"$DIR/router.log" 2>&1 &
PID=$!
sleep 1
kill -0 $PID || { echo "the router did not start:"; cat "$DIR/router.log"; exit 1; }

run() {
  local ser=$1 round=$2
  echo "== $ser, round $round" >&2
  $L rpc --serializer "$ser" --window 100 --duration 10s --warmup 2s --router-pid $PID \
    --url rs://127.0.0.1:28193 --json "$DIR/$ser-$round.json" >"$DIR/$ser-$round.txt" 2>&1 ||
    { cat "$DIR/$ser-$round.txt"; exit 1; }
  kill -0 $PID || { echo "the router died:"; cat "$DIR/router.log"; exit 1; }
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="json msgpack cbor"; else order="cbor msgpack json"; fi
  for ser in $order; do run "$ser" "$round"; done
done
kill $PID; wait $PID 2>/dev/null || true; PID=

printf '\n%-10s %5s %12s %10s %10s %8s %18s\n' serializer round calls/s "p50 µs" "p99 µs" errors "router µs/call"
for ser in json msgpack cbor; do
  for round in $(seq "$ROUNDS"); do
    jq -r --arg s "$ser" --arg r "$round" \
      '[$s, $r, (.achieved | floor), ((.p50 * 10 | round) / 10), ((.p99 * 10 | round) / 10),
        .counts.errors, ((.cpu.router_us_per_op // null) | if . == null then "-" else (. * 100 | round) / 100 end)] | @tsv' "$DIR/$ser-$round.json" |
      awk -F'\t' '{ printf "%-10s %5s %12s %10s %10s %8s %18s\n", $1, $2, $3, $4, $5, $6, $7 }'
  done
done
