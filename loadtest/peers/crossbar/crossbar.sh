#!/usr/bin/env bash
# crossbar.sh — Crossbar.io as a peer router for wampring-load benchmarks.
#
#   crossbar.sh install   pip-install Crossbar.io 26.10.x into a venv under target/peers/crossbar
#   crossbar.sh start     start it on 127.0.0.1: ws://127.0.0.1:9080/ws and rs://127.0.0.1:9081,
#                         realm1, anonymous with every permission, json and msgpack; waits
#                         (bounded) until both ports accept connections
#   crossbar.sh stop      stop it by the PID in the pid file (TERM, then KILL after 15 s)
#   crossbar.sh status    running or not, the controller PID, and the router worker PID(s)
#   crossbar.sh pids      the router worker PID(s) only, for --router-pid / --router-pid-of
#
# The configuration is config.json beside this script. Notes that cost time to find:
# - the web transport needs a static resource on "/" or /ws answers HTTP 200 instead of
#   upgrading to WebSocket;
# - the realm has no event store (history) configured: it would cost the broker time;
# - Crossbar takes 7-15 s to start (a controller, then a router worker process);
# - the routing happens in the router worker, a child of the controller: give the worker's PID
#   to --router-pid so CPU per operation counts the process that does the work;
# - Crossbar's call timeouts (CALL.Options.timeout) are in seconds, not milliseconds.
#
# Environment: CROSSBAR_STATE (default: <workspace>/target/peers/crossbar), CROSSBAR_VERSION
# (pip requirement, default "crossbar==26.10.*"), PYTHON (default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(cd "$here/../../.." && pwd)"
state="${CROSSBAR_STATE:-$workspace/target/peers/crossbar}"
venv="$state/venv"
node="$state/node"
pidfile="$state/crossbar.pid"
logfile="$state/crossbar.log"
requirement="${CROSSBAR_VERSION:-crossbar==26.10.*}"
python="${PYTHON:-python3}"
ports=(9080 9081)
start_timeout=60

die() { echo "crossbar.sh: $*" >&2; exit 1; }

running_pid() {
    [[ -f "$pidfile" ]] || return 1
    local pid
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

worker_pids() {
    local controller="$1"
    # Router workers are children of the controller (python processes).
    pgrep -P "$controller" 2>/dev/null || true
}

cmd_install() {
    if [[ -x "$venv/bin/crossbar" ]]; then
        echo "crossbar already installed: $("$venv/bin/crossbar" version 2>/dev/null | grep -i 'crossbar' | head -1 || echo "$venv")"
        return 0
    fi
    mkdir -p "$state"
    "$python" -m venv "$venv" || die "cannot create a venv with $python (install python3-venv)"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "$requirement" || die "pip install $requirement failed"
    echo "installed $requirement into $venv"
}

cmd_start() {
    if pid="$(running_pid)"; then
        echo "crossbar already running (pid $pid)"
        return 0
    fi
    [[ -x "$venv/bin/crossbar" ]] || die "not installed; run: $0 install"
    for port in "${ports[@]}"; do
        port_open "$port" && die "port $port is already in use by another process"
    done
    mkdir -p "$node/.crossbar"
    cp "$here/config.json" "$node/.crossbar/config.json"
    rm -f "$node/.crossbar/node.pid"
    (cd "$node" && exec nohup "$venv/bin/crossbar" start --cbdir "$node/.crossbar" >"$logfile" 2>&1) &
    echo $! >"$pidfile"
    local pid waited=0
    pid="$(cat "$pidfile")"
    echo "crossbar starting (pid $pid, log $logfile); waiting for ports ${ports[*]} (up to ${start_timeout}s)"
    while true; do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$logfile" >&2; rm -f "$pidfile"; die "crossbar exited during start"; }
        local all_open=1
        for port in "${ports[@]}"; do port_open "$port" || all_open=0; done
        if (( all_open )); then break; fi
        if (( waited >= start_timeout * 2 )); then
            tail -20 "$logfile" >&2
            cmd_stop >/dev/null 2>&1 || true
            die "ports did not open within ${start_timeout}s"
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    echo "crossbar ready: ws://127.0.0.1:9080/ws rs://127.0.0.1:9081 realm1 (router worker pid(s): $(worker_pids "$pid" | tr '\n' ' '))"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$pidfile"
        echo "crossbar not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        local workers
        workers="$(worker_pids "$pid")"
        kill -KILL "$pid" $workers 2>/dev/null || true
        echo "crossbar did not stop in 15 s; killed pid $pid $workers"
    else
        echo "crossbar stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "crossbar running: controller pid $pid, router worker pid(s): $(worker_pids "$pid" | tr '\n' ' ')"
        for port in "${ports[@]}"; do
            if port_open "$port"; then echo "  port $port: open"; else echo "  port $port: closed"; fi
        done
    else
        echo "crossbar not running"
        return 1
    fi
}

cmd_pids() {
    local pid
    pid="$(running_pid)" || die "not running"
    worker_pids "$pid"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    pids) cmd_pids ;;
    *) echo "usage: $0 install|start|stop|status|pids" >&2; exit 2 ;;
esac
