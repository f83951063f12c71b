#!/usr/bin/env bash
# The cost of metrics on the hot path: RPC calls/s with the admin listener off and on.
# `wampring-load rpc` (1 caller, 1 callee, window 100, MessagePack over RawSocket, 10 s after
# 2 s of warm-up) against a release router (`--cores 2 --placement round-robin`: caller and
# callee on different shards, so every call crosses the shard mesh), once without an [admin]
# table and once with one while /metrics is scraped every second (with it, every call is also
# timed into the latency histogram). ROUNDS times (default 2), alternating, so both see the
# same machine. Messages by type are counted either way (that is not optional).
#
#   bash loadtest/bench/rpc-admin.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --workspace -q
R=target/release/wampring
L=target/release/wampring-load
ROUNDS=${ROUNDS:-2}
DIR=$(mktemp -d)
PID=
SCRAPER=
cleanup() {
  [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null || true
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
base='[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:28191"

[[realm]]
name = "realm1"'
printf '%s\n' "$base" >"$DIR/off.toml"
printf '%s\n\n[admin]\nbind = "127.0.0.1:28190"\n' "$base" >"$DIR/on.toml"

scrape_forever() {
  while true; do
    exec 3<>/dev/tcp/127.0.0.1/28190 || true
    printf 'GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' >&3 || true
    cat <&3 >/dev/null || true
    exec 3<&-
    sleep 1
  done
}

run() {
  local name=$1
  $R --config "$DIR/$name.toml" --cores 2 --placement round-robin >"$DIR/router-$name.log" 2>&1 &
  PID=$!
  sleep 1
  kill -0 $PID || { echo "the router did not start:"; cat "$DIR/router-$name.log"; exit 1; }
  if [ "$name" = on ]; then
    scrape_forever &
    SCRAPER=$!
  fi
  echo "== admin $name, round $2"
  $L rpc --serializer msgpack --window 100 --duration 10s --warmup 2s --router-pid $PID \
    --url rs://127.0.0.1:28191 2>&1 | grep -E "^calls/s|^counts|^cpu|^ +router"
  if [ -n "$SCRAPER" ]; then kill "$SCRAPER"; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=; fi
  kill $PID; wait $PID 2>/dev/null || true; PID=
}
for round in $(seq "$ROUNDS"); do
  run off "$round"
  run on "$round"
done
