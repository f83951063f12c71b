#!/usr/bin/env bash
# run-two-builds.sh — two builds of wampring against each other (a change's before and after),
# one router core each, with `wampring-load compare`: both routers pinned to --router-cpu and
# run side by side on 127.0.0.1 (cores = 1), the generator pinned to --load-cpu, runs
# alternating (before, after, before, ...). Writes OUT/compare.md (medians, router CPU µs per
# operation) per scenario, and stops both routers by PID when it exits, whatever the reason.
#
#   loadtest/bench/run-two-builds.sh BEFORE_BIN AFTER_BIN OUT [SCENARIO FLAGS...]
#
# Default scenario: rpc --serializer msgpack --window 100 --duration 10s --warmup 2s.
# wampring-load is this checkout's release build (built when missing).
set -euo pipefail

die() { echo "run-two-builds: $*" >&2; exit 1; }
(($# >= 3)) || die "usage: run-two-builds.sh BEFORE_BIN AFTER_BIN OUT [SCENARIO FLAGS...]"
before_bin=$1 after_bin=$2 out=$3
shift 3
scenario=("$@")
((${#scenario[@]})) || scenario=(rpc --serializer msgpack --window 100 --duration 10s --warmup 2s)
router_cpu=${ROUTER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
repeat=${REPEAT:-3}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
load_bin="$repo/target/release/wampring-load"
[[ -x "$load_bin" ]] || (cd "$repo" && cargo build --release -p wampring-load)
mkdir -p "$out"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

start() { # NAME BIN PORT -> pid in $started
    local name=$1 bin=$2 port=$3
    cat >"$out/$name.toml" <<TOML
cores = 1
[[listener]]
kind = "websocket"
bind = "127.0.0.1:$port"
path = "/ws"
serializers = ["json", "msgpack"]
[[realm]]
name = "realm1"
TOML
    taskset -c "$router_cpu" "$bin" --config "$out/$name.toml" --log-level warn \
        >"$out/$name.log" 2>&1 &
    started=$!
    pids+=("$started")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$name did not start: $(cat "$out/$name.log")"
}

start before "$before_bin" 28180
before_pid=$started
start after "$after_bin" 28190
after_pid=$started

taskset -c "$load_cpu" "$load_bin" compare \
    --router before=ws://127.0.0.1:28180/ws --router after=ws://127.0.0.1:28190/ws \
    --router-pid-of before="$before_pid" --router-pid-of after="$after_pid" \
    --repeat "$repeat" --out "$out" "${scenario[@]}" | tee "$out/stdout.txt"
