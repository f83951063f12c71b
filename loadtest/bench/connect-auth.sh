#!/usr/bin/env bash
# Sessions per second by authentication method: one wampring router (release build, `--cores
# 2` unless CORES says otherwise) with a principal for each method, made here with `wampring
# auth`, and one `wampring-load connect` run per method against it (4 open/close loops, 10 s
# after 2 s of warm-up), in one go. The README's "Authentication (issue 6/8): figures" come
# from it.
#
#   bash loadtest/bench/connect-auth.sh            # RawSocket, MessagePack
#   URL=ws://127.0.0.1:23480/ws SER=json bash loadtest/bench/connect-auth.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --workspace -q
R=target/release/wampring
L=target/release/wampring-load
URL=${URL:-rs://127.0.0.1:23481}
SER=${SER:-msgpack}
CORES=${CORES:-2}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
KEY=4d6f6e74726561756c20657374206c612063617069616c65206475205175c3a9
cat >"$DIR/wampring.toml" <<EOF
[[listener]]
kind = "websocket"
bind = "127.0.0.1:23480"
path = "/ws"
authmethods = ["anonymous", "ticket", "wampcra", "cryptosign", "wamp-scram"]

[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:23481"
authmethods = ["anonymous", "ticket", "wampcra", "cryptosign", "wamp-scram"]

[[realm]]
name = "realm1"

[[realm.principal]]
authid = "joe"
role = "user"
ticket = "joe-ticket"

[[realm.principal]]
authid = "ann"
role = "user"
$(echo ann-ticket | $R auth ticket)

[[realm.principal]]
authid = "cra"
role = "user"
wampcra_secret = "cra-secret"

[[realm.principal]]
authid = "salty"
role = "user"
$(echo salty-secret | $R auth wampcra)

[[realm.principal]]
authid = "dev"
role = "user"
cryptosign = ["beccd2f146fdd5a9ff5dad42c054a3780af028f9d2ac01a543358e839d62395d"]

[[realm.principal]]
authid = "sam"
role = "user"
$(echo sam-password | $R auth scram)
EOF
$R --config "$DIR/wampring.toml" --cores "$CORES" >"$DIR/router.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 1
kill -0 $PID || { echo "the router did not start:"; cat "$DIR/router.log"; exit 1; }
run() {
  echo "== $1"
  shift
  $L connect --url "$URL" --serializer "$SER" --duration 10s --warmup 2s --router-pid $PID "$@" 2>&1 |
    grep -E "^sessions/s|^counts|^cpu|^ +router"
}
run none
run anonymous --authmethod anonymous
run ticket --authmethod ticket --authid joe --secret joe-ticket
run ticket-argon2id --authmethod ticket --authid ann --secret ann-ticket
run wampcra --authmethod wampcra --authid cra --secret cra-secret
run wampcra-salted --authmethod wampcra --authid salty --secret salty-secret
run cryptosign --authmethod cryptosign --private-key $KEY
run scram --authmethod scram --authid sam --secret sam-password
