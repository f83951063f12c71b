#!/usr/bin/env bash
# RPC calls/s over plain RawSocket and RawSocket over TLS, on one router: `wampring-load rpc`
# (1 caller, 1 callee, window 100, MessagePack, 10 s after 2 s of warm-up), plain then TLS,
# ROUNDS times (default 2) alternating, so both see the same machine. The router (release
# build, `--cores 2 --placement round-robin`: caller and callee on different shards) has one
# plain and one TLS RawSocket listener; the certificate is a self-signed P-256 one made here.
# Authentication is ticket in both (the figures of issue 6/8 compare secured routers).
#
#   bash loadtest/bench/rpc-tls.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --workspace -q
R=target/release/wampring
L=target/release/wampring-load
ROUNDS=${ROUNDS:-2}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
  -addext basicConstraints=critical,CA:FALSE 2>/dev/null
cat >"$DIR/wampring.toml" <<EOF
[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:28181"
authmethods = ["ticket"]

[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:28182"
tls_cert = "cert.pem"
tls_key = "key.pem"
authmethods = ["ticket"]

[[realm]]
name = "realm1"

[[realm.principal]]
authid = "bench"
role = "user"
ticket = "bench-ticket"
EOF
$R --config "$DIR/wampring.toml" --cores 2 --placement round-robin >"$DIR/router.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 1
kill -0 $PID || { echo "the router did not start:"; cat "$DIR/router.log"; exit 1; }
AUTH=(--authmethod ticket --authid bench --secret bench-ticket)
run() {
  echo "== $1"
  shift
  $L rpc --serializer msgpack --window 100 --duration 10s --warmup 2s --router-pid $PID \
    "${AUTH[@]}" "$@" 2>&1 | grep -E "^calls/s|^counts|^cpu|^ +router"
}
for round in $(seq "$ROUNDS"); do
  run "plain, round $round" --url rs://127.0.0.1:28181
  run "TLS, round $round" --url rss://127.0.0.1:28182 --tls-ca "$DIR/cert.pem"
done
