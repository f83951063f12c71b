#!/usr/bin/env bash
# run-vs-crossbar.sh — wampring's published benchmark: wampring against Crossbar.io, one router
# core each, with `wampring-load compare`. See README.md beside this script.
#
#   loadtest/bench/run-vs-crossbar.sh [flags]
#
# It builds release wampring and wampring-load (in --repo), starts wampring on a temporary config
# on 127.0.0.1 pinned to --router-cpu, starts Crossbar with loadtest/peers/crossbar/crossbar.sh and
# pins its controller and router worker to the same CPU, runs the generator pinned to --load-cpu,
# and compares the routers on RPC window 1, RPC window 100, PubSub 1->1 and PubSub 1->N fan-out,
# over WebSocket with JSON and MessagePack (8 comparisons by default). It writes OUT/results.md
# (machine, commit, Crossbar version, the exact commands, every table) and OUT/svg/*.svg, and
# stops both routers by PID when it exits, whatever the reason.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: run-vs-crossbar.sh [flags]

  --repo DIR              build and run wampring/wampring-load from this checkout
                          (default: $WAMPRING_REPO, else the checkout holding this script)
  --out DIR               results directory (default: REPO/target/bench/vs-crossbar-<time>)
  --duration DUR          measured time per run (default 10s)
  --warmup DUR            warmup per run (default 2s)
  --repeat N              rounds per comparison, routers alternating (default 3)
  --quick                 smoke run: --duration 2s --warmup 1s --repeat 1, fan-out to 100
  --fanout-window W|auto  PubSub 1->N window (unacknowledged publishes in flight; default 512,
                          the best measured for wampring; `auto` sweeps 64..1024 on wampring first)
  --subscribers N         fan-out subscribers (default 1000)
  --serializers LIST      comma list of json,msgpack (default json,msgpack)
  --transports LIST       comma list of ws,rs (default ws; rs adds RawSocket comparisons)
  --only LIST             comma list of rpc-w1,rpc-w100,pubsub-1to1,pubsub-fanout (default all)
  --router-cpu N          CPU for both routers (default 0)
  --load-cpu N            CPU for the generator (default 1)
  --spin-before-park-us N wampring [runtime] spin_before_park_us (default 0)
  --port N                first local port to try for wampring (default 18080; two are used)
  --no-build              use the existing release binaries
  --no-priority           do not run in a new session with autogroup nice -20 (see README.md)
  -h, --help              this text

Environment: WAMPRING_REPO (as --repo), CARGO_TARGET_DIR (honoured), CROSSBAR_STATE (passed to
crossbar.sh; default: its own target/peers/crossbar).
EOF
}

die() { echo "run-vs-crossbar: $*" >&2; exit 1; }
log() { echo "run-vs-crossbar: $*" >&2; }

original_args=("$@")
script_path="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
self_dir="$(dirname "$script_path")"
self_repo="$(cd "$self_dir/../.." && pwd)"

repo="${WAMPRING_REPO:-$self_repo}"
out=""
duration=10s
warmup=2s
repeat=3
quick=0
fanout_window=512
subscribers=1000
serializers="json,msgpack"
transports="ws"
only="rpc-w1,rpc-w100,pubsub-1to1,pubsub-fanout"
router_cpu=0
load_cpu=1
spin_us=0
port_base=18080
build=1
priority=1
duration_set=0 warmup_set=0 repeat_set=0 subscribers_set=0

while (($#)); do
    case "$1" in
        --repo) repo="${2:?}"; shift 2 ;;
        --out) out="${2:?}"; shift 2 ;;
        --duration) duration="${2:?}"; duration_set=1; shift 2 ;;
        --warmup) warmup="${2:?}"; warmup_set=1; shift 2 ;;
        --repeat) repeat="${2:?}"; repeat_set=1; shift 2 ;;
        --quick) quick=1; shift ;;
        --fanout-window) fanout_window="${2:?}"; shift 2 ;;
        --subscribers) subscribers="${2:?}"; subscribers_set=1; shift 2 ;;
        --serializers) serializers="${2:?}"; shift 2 ;;
        --transports) transports="${2:?}"; shift 2 ;;
        --only) only="${2:?}"; shift 2 ;;
        --router-cpu) router_cpu="${2:?}"; shift 2 ;;
        --load-cpu) load_cpu="${2:?}"; shift 2 ;;
        --spin-before-park-us) spin_us="${2:?}"; shift 2 ;;
        --port) port_base="${2:?}"; shift 2 ;;
        --no-build) build=0; shift ;;
        --no-priority) priority=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown flag: $1" ;;
    esac
done
if ((quick)); then
    ((duration_set)) || duration=2s
    ((warmup_set)) || warmup=1s
    ((repeat_set)) || repeat=1
    ((subscribers_set)) || subscribers=100
fi
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer"
[[ "$subscribers" =~ ^[1-9][0-9]*$ ]] || die "--subscribers must be a positive integer"
[[ "$fanout_window" == auto || "$fanout_window" =~ ^[1-9][0-9]*$ ]] || die "--fanout-window: a number or auto"
[[ "$router_cpu" =~ ^[0-9]+$ && "$load_cpu" =~ ^[0-9]+$ ]] || die "--router-cpu/--load-cpu: CPU numbers"
[[ "$spin_us" =~ ^[0-9]+$ ]] || die "--spin-before-park-us: a number"
[[ "$port_base" =~ ^[0-9]+$ ]] || die "--port: a number"
[[ -d "$repo" ]] || die "--repo $repo: no such directory"
repo="$(cd "$repo" && pwd)"

# Seconds in a duration like 500ms, 10s, 1m (rounded up), for the bounds on each step.
dur_s() {
    local d="$1"
    case "$d" in
        *ms) echo $(((${d%ms} + 999) / 1000)) ;;
        *s) echo "${d%s}" ;;
        *m) echo $((${d%m} * 60)) ;;
        *) die "duration $d: use e.g. 500ms, 10s, 1m" ;;
    esac
}
duration_s="$(dur_s "$duration")"
warmup_s="$(dur_s "$warmup")"

# --- Priority: the benchmark in its own session (scheduler autogroup) at nice -20 -------------
# On a host shared with builds and tests, each session's autogroup gets an equal CPU share, so
# a router pinned to a busy CPU gets a fraction of it and the numbers measure the neighbours.
# Re-running this script under setsid with its autogroup at nice -20 gives every process it
# starts (both routers, the generator) priority over the rest of the machine while it runs.
if ((priority)) && [[ -z "${RUN_VS_CROSSBAR_CHILD:-}" ]]; then
    if [[ $EUID -eq 0 && -w /proc/self/autogroup ]] && command -v setsid >/dev/null; then
        export RUN_VS_CROSSBAR_CHILD=1
        setsid bash "$script_path" "${original_args[@]}" </dev/null &
        child=$!
        trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM HUP
        rc=0
        wait "$child" || rc=$?
        while kill -0 "$child" 2>/dev/null; do
            rc=0
            wait "$child" || rc=$?
        done
        exit "$rc"
    fi
    log "not root (or no autogroup): running at normal priority; results may measure the neighbours"
fi
priority_note="normal priority"
if [[ -n "${RUN_VS_CROSSBAR_CHILD:-}" ]]; then
    if echo -20 >/proc/self/autogroup 2>/dev/null && renice -n -20 -p $$ >/dev/null 2>&1; then
        priority_note="own session, autogroup nice -20, processes nice -20"
    else
        log "could not raise the priority; running at normal priority"
    fi
fi

# --- Paths and binaries ----------------------------------------------------------------------
stamp="$(date -u +%Y%m%d-%H%M%S)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
[[ "$target_dir" = /* ]] || target_dir="$repo/$target_dir"
out="${out:-$repo/target/bench/vs-crossbar-$stamp}"
mkdir -p "$out/runs" "$out/svg"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/run-vs-crossbar.XXXXXX")"
crossbar_sh="$self_repo/loadtest/peers/crossbar/crossbar.sh"
[[ -x "$crossbar_sh" ]] || die "missing $crossbar_sh"
crossbar_state="${CROSSBAR_STATE:-$self_repo/target/peers/crossbar}"
commands_log="$out/commands.txt"
: >"$commands_log"

# Records a command (as run) for the results file, then runs it. In the background and waited
# for, so that a signal is handled at once (cleanup stops it) instead of after it ends.
# run_logged_to OUT ERR CMD... sends the command's output to files ("-": unchanged); the function
# itself is not redirected, so that a signal's cleanup still reports on this script's stderr.
current_job=""
run_logged_to() {
    local stdout="$1" stderr="$2"
    shift 2
    printf '%q ' "$@" >>"$commands_log"
    printf '\n' >>"$commands_log"
    if [[ "$stdout" == - ]]; then
        "$@" &
    else
        "$@" >"$stdout" 2>"$stderr" &
    fi
    current_job=$!
    local rc=0
    wait "$current_job" || rc=$?
    current_job=""
    return "$rc"
}
run_logged() { run_logged_to - - "$@"; }

wampring_pid=""
crossbar_started=0
crossbar_controller=""
crossbar_workers=""

stop_pid() { # pid name: TERM, up to 10 s, then KILL
    local pid="$1" name="$2"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { log "stopped $name (pid $pid)"; return 0; }
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    log "killed $name (pid $pid): it did not stop within 10 s"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    [[ -n "$current_job" ]] && stop_pid "$current_job" "the running step"
    stop_pid "$wampring_pid" wampring
    if ((crossbar_started)); then
        CROSSBAR_STATE="$crossbar_state" timeout 40 "$crossbar_sh" stop >&2 || true
        stop_pid "$crossbar_controller" "crossbar controller"
        local w
        for w in $crossbar_workers; do stop_pid "$w" "crossbar worker"; done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # first port >= $1 that nobody listens on
    local p="$1"
    while port_in_use "$p"; do
        p=$((p + 1))
        ((p < $1 + 200)) || die "no free port in $1..$((p - 1))"
    done
    echo "$p"
}
wait_port() { # port pid seconds
    local port="$1" pid="$2" deadline=$((SECONDS + $3))
    until port_in_use "$port"; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# --- Build -----------------------------------------------------------------------------------
if ((build)); then
    log "building release wampring and wampring-load in $repo (bounded to 60 min)"
    (cd "$repo" && run_logged timeout 3600 cargo build --release -p wampring -p wampring-load) ||
        die "cargo build failed in $repo"
fi
wampring_bin="$target_dir/release/wampring"
load_bin="$target_dir/release/wampring-load"
[[ -x "$wampring_bin" && -x "$load_bin" ]] || die "no release binaries in $target_dir/release (drop --no-build)"

# --- wampring --------------------------------------------------------------------------------
ws_port="$(free_port "$port_base")"
rs_port="$(free_port $((ws_port + 1)))"
config="$work/wampring.toml"
cores_line="# cores: not supported by this build"
if "$wampring_bin" --print-default-config | grep -Eq '^#? *cores *='; then
    cores_line="cores = 1"
fi
cores_flag=()
if "$wampring_bin" --help 2>&1 | grep -q -- '--cores'; then cores_flag=(--cores 1); fi
cat >"$config" <<EOF
# run-vs-crossbar.sh: one shard on 127.0.0.1
$cores_line
log_level = "warn"

[[listener]]
kind = "websocket"
bind = "127.0.0.1:$ws_port"
path = "/ws"
serializers = ["json", "msgpack"]

[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:$rs_port"
serializers = ["json", "msgpack"]

[runtime]
spin_before_park_us = $spin_us

[[realm]]
name = "realm1"
EOF
"$wampring_bin" --check-config "$config" >/dev/null || die "the generated config is refused: $config"
log "starting wampring on CPU $router_cpu: ws://127.0.0.1:$ws_port/ws rs://127.0.0.1:$rs_port"
printf '%q ' taskset -c "$router_cpu" "$wampring_bin" --config wampring.toml "${cores_flag[@]}" >>"$commands_log"
printf '\n' >>"$commands_log"
taskset -c "$router_cpu" "$wampring_bin" --config "$config" "${cores_flag[@]}" \
    >"$out/wampring.log" 2>&1 </dev/null &
wampring_pid=$!
wait_port "$ws_port" "$wampring_pid" 20 && wait_port "$rs_port" "$wampring_pid" 5 ||
    { tail -20 "$out/wampring.log" >&2; die "wampring did not start (log: $out/wampring.log)"; }

# --- Crossbar --------------------------------------------------------------------------------
export CROSSBAR_STATE="$crossbar_state"
if [[ ! -x "$crossbar_state/venv/bin/crossbar" ]]; then
    log "Crossbar not installed under $crossbar_state: installing (bounded to 15 min)"
    run_logged timeout 900 "$crossbar_sh" install >&2 || die "crossbar.sh install failed"
fi
crossbar_reused=0
if status="$("$crossbar_sh" status 2>/dev/null)"; then
    crossbar_reused=1
    log "Crossbar is already running (not started by this script; it is reused and left running):"
    log "$status"
else
    run_logged timeout 120 "$crossbar_sh" start >&2 || die "crossbar.sh start failed"
    crossbar_started=1
    status="$("$crossbar_sh" status)"
fi
crossbar_controller="$(sed -n 's/.*controller pid \([0-9][0-9]*\).*/\1/p' <<<"$status" | head -1)"
crossbar_workers="$("$crossbar_sh" pids | tr '\n' ' ')"
crossbar_worker="$(awk '{print $1}' <<<"$crossbar_workers")"
[[ -n "$crossbar_controller" && -n "$crossbar_worker" ]] || die "cannot find Crossbar's PIDs: $status"
for pid in $crossbar_controller $crossbar_workers; do
    run_logged taskset -a -p -c "$router_cpu" "$pid" >/dev/null
    if [[ "$priority_note" != "normal priority" ]]; then
        for task in /proc/"$pid"/task/*; do renice -n -20 -p "${task##*/}" >/dev/null 2>&1 || true; done
    fi
done
crossbar_version="$("$crossbar_state/venv/bin/python" -c 'import crossbar; print(crossbar.__version__)' 2>/dev/null || echo unknown)"
log "Crossbar $crossbar_version: controller $crossbar_controller, router worker(s) $crossbar_workers, pinned to CPU $router_cpu"

# --- Machine and build facts -------------------------------------------------------------------
model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem="$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
virt="$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p')"
[[ -n "$virt" ]] && virt="$virt virtual machine"
commit="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
commit_line="$(git -C "$repo" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
dirty="$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | head -1)"
[[ -n "$dirty" ]] && commit="$commit (with uncommitted changes)"

# CPU accounting around each comparison, in clock ticks: the machine's total and idle time
# (/proc/stat), and ours: both routers (every thread) plus the children this shell has waited
# for (the generator). What is left is the neighbours' share, a measure of the noise.
proc_ticks() { # pid [with-children] -> utime + stime (+ cutime + cstime)
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
    awk -v kids="${2:-0}" '{ sub(/^.*\) /, ""); t = $12 + $13; if (kids) t += $14 + $15; print t }' <<<"$stat"
}
cpu_sample() {
    local ours=0 pid
    for pid in $wampring_pid $crossbar_controller $crossbar_workers; do
        ours=$((ours + $(proc_ticks "$pid")))
    done
    ours=$((ours + $(proc_ticks $$ 1) - $(proc_ticks $$)))
    awk -v ours="$ours" '/^cpu / {idle = $5 + $6; total = 0; for (i = 2; i <= 9; i++) total += $i; print total, idle, ours}' /proc/stat
}
others_pct() { # "total idle ours" "total idle ours" -> % of all CPU time used by other processes
    local t0 i0 o0 t1 i1 o1
    read -r t0 i0 o0 <<<"$1"
    read -r t1 i1 o1 <<<"$2"
    awk -v t=$((t1 - t0)) -v i=$((i1 - i0)) -v o=$((o1 - o0)) \
        'BEGIN { x = t - i - o; if (x < 0) x = 0; if (t > 0) printf "%.0f", 100 * x / t; else print "?" }'
}

# Waits (at most 60 s) until both routers have been idle for a whole second: Crossbar keeps
# working for a while after it starts and after a run it fell behind in (queued events), and
# whatever it does then is taken from the wampring run that follows on the same CPU.
settle_routers() {
    local waited=0 before after
    while ((waited < 60)); do
        before=0
        for pid in $wampring_pid $crossbar_controller $crossbar_workers; do
            before=$((before + $(proc_ticks "$pid")))
        done
        sleep 1
        waited=$((waited + 1))
        after=0
        for pid in $wampring_pid $crossbar_controller $crossbar_workers; do
            after=$((after + $(proc_ticks "$pid")))
        done
        # At most 2 ticks (20 ms) in a second: idle apart from timers.
        if ((after - before <= 2)); then
            return 0
        fi
    done
    log "the routers did not settle within 60 s; going on"
}

# --- Comparisons -------------------------------------------------------------------------------
IFS=, read -r -a serializer_list <<<"$serializers"
IFS=, read -r -a transport_list <<<"$transports"
IFS=, read -r -a only_list <<<"$only"
url_of() { # router transport
    case "$1:$2" in
        wampring:ws) echo "ws://127.0.0.1:$ws_port/ws" ;;
        wampring:rs) echo "rs://127.0.0.1:$rs_port" ;;
        crossbar:ws) echo "ws://127.0.0.1:9080/ws" ;;
        crossbar:rs) echo "rs://127.0.0.1:9081" ;;
        *) die "unknown transport $2 (ws or rs)" ;;
    esac
}

# Fan-out window: fixed, or the best of a short sweep against wampring alone.
choose_fanout_window() { # serializer transport -> window
    local ser="$1" tr="$2" best=0 best_rate=0 w rate
    for w in 64 128 256 512 1024; do
        local json="$out/runs/fanout-sweep-$tr-$ser-w$w.json"
        run_logged_to /dev/null /dev/null timeout $((warmup_s + 4 + 130)) taskset -c "$load_cpu" "$load_bin" pubsub \
            --url "$(url_of wampring "$tr")" --serializer "$ser" --subscribers "$subscribers" \
            --acknowledge --window "$w" --duration 4s --warmup "$warmup" --cpus "$load_cpu" \
            --setup-timeout 120s --router-pid "$wampring_pid" --quiet --json "$json" || continue
        rate="$(jq -r '.achieved | floor' "$json" 2>/dev/null || echo 0)"
        log "  fan-out sweep $tr/$ser window $w: $rate events/s"
        if ((rate > best_rate)); then best_rate=$rate; best=$w; fi
    done
    ((best > 0)) || die "the fan-out sweep failed"
    echo "$best"
}

sections="$work/sections.md"
summary_rows="$work/summary.tsv"
: >"$sections"
: >"$summary_rows"
failures=0

compare_one() { # name title transport serializer scenario-args...
    local name="$1" title="$2" tr="$3" ser="$4"
    shift 4
    local dir="$out/runs/$name" setup_s=10 drain_s=2 a prev=""
    for a in "$@"; do
        if [[ "$prev" == --setup-timeout ]]; then setup_s="$(dur_s "$a")"; fi
        if [[ "$prev" == --drain ]]; then drain_s="$(dur_s "$a")"; fi
        prev="$a"
    done
    local bound=$((repeat * 2 * (warmup_s + duration_s + setup_s + drain_s + 15) + 60))
    local cmd=(taskset -c "$load_cpu" "$load_bin" compare
        --router "wampring=$(url_of wampring "$tr")" --router "crossbar=$(url_of crossbar "$tr")"
        --router-pid-of "wampring=$wampring_pid" --router-pid-of "crossbar=$crossbar_worker"
        --repeat "$repeat" --out "$dir"
        "$@" --serializer "$ser" --duration "$duration" --warmup "$warmup" --cpus "$load_cpu")
    settle_routers
    log "== $name: $title (bounded to ${bound}s)"
    local before after rc=0
    before="$(cpu_sample)"
    run_logged_to "$work/$name.stdout" "$work/$name.stderr" timeout "$bound" "${cmd[@]}" || rc=$?
    after="$(cpu_sample)"
    ((rc == 0)) || { failures=$((failures + 1)); log "   compare exited $rc (see $dir/raw/*.txt)"; tail -5 "$work/$name.stderr" >&2; }
    [[ -f "$dir/compare.svg" ]] && cp "$dir/compare.svg" "$out/svg/$name.svg"
    local busy
    busy="$(others_pct "$before" "$after")"
    {
        echo "## $title"
        echo
        echo '```'
        printf '%q ' "${cmd[@]}" | sed "s#$target_dir/release/##g"
        echo
        echo '```'
        echo
        if [[ -f "$dir/compare.md" ]]; then
            sed -e '1{/^# /d}' -e '/^Scenario: /d' "$dir/compare.md" | sed '/./,$!d'
        else
            echo "(compare wrote no table; exit code $rc)"
        fi
        echo
        echo "Other processes on the machine (not the routers, not the generator) used ${busy}% of its CPU time during this comparison."
        [[ -f "$out/svg/$name.svg" ]] && echo && echo "![$name](svg/$name.svg)"
        echo
    } >>"$sections"
    # Summary row: medians per router from the raw JSON (jq), ratio wampring / crossbar.
    local w c
    w="$(jq -s '[.[].achieved] | sort | .[length/2|floor] // 0' "$dir"/raw/wampring-*.json 2>/dev/null || echo 0)"
    c="$(jq -s '[.[].achieved] | sort | .[length/2|floor] // 0' "$dir"/raw/crossbar-*.json 2>/dev/null || echo 0)"
    local wp99 cp99 wcpu ccpu gcpu wlost clost
    wp99="$(jq -s '[.[].p99] | sort | .[length/2|floor] // "-"' "$dir"/raw/wampring-*.json 2>/dev/null || echo -)"
    cp99="$(jq -s '[.[].p99] | sort | .[length/2|floor] // "-"' "$dir"/raw/crossbar-*.json 2>/dev/null || echo -)"
    wcpu="$(jq -s '[.[].cpu.router_us_per_op // 0] | sort | .[length/2|floor] // "-"' "$dir"/raw/wampring-*.json 2>/dev/null || echo -)"
    ccpu="$(jq -s '[.[].cpu.router_us_per_op // 0] | sort | .[length/2|floor] // "-"' "$dir"/raw/crossbar-*.json 2>/dev/null || echo -)"
    gcpu="$(jq -s '[.[].cpu.generator_us_per_op // 0] | sort | .[length/2|floor] // "-"' "$dir"/raw/wampring-*.json 2>/dev/null || echo -)"
    wlost="$(jq -s '[.[] | .counts.errors + .counts.lost] | add // "-"' "$dir"/raw/wampring-*.json 2>/dev/null || echo -)"
    clost="$(jq -s '[.[] | .counts.errors + .counts.lost] | add // "-"' "$dir"/raw/crossbar-*.json 2>/dev/null || echo -)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$title" "$(jq -r '.unit' "$(ls "$dir"/raw/wampring-*.json 2>/dev/null | head -1)" 2>/dev/null || echo ops)" \
        "$w" "$c" "$wp99" "$cp99" "$wcpu" "$ccpu" "$gcpu" "$wlost" "$clost" "$busy" "$name" >>"$summary_rows"
}

wants() { local x; for x in "${only_list[@]}"; do [[ "$x" == "$1" ]] && return 0; done; return 1; }

for tr in "${transport_list[@]}"; do
    url_of wampring "$tr" >/dev/null
    trname=$([[ $tr == ws ]] && echo WebSocket || echo RawSocket)
    for ser in "${serializer_list[@]}"; do
        [[ "$ser" == json || "$ser" == msgpack ]] || die "unknown serializer $ser"
        fw="$fanout_window"
        if wants pubsub-fanout && [[ "$fw" == auto ]]; then
            log "fan-out window sweep ($tr/$ser, $subscribers subscribers) against wampring"
            fw="$(choose_fanout_window "$ser" "$tr")"
            log "fan-out window for $tr/$ser: $fw"
        fi
        if wants rpc-w1; then
            compare_one "$tr-$ser-rpc-w1" "RPC, window 1 — $trname $ser" "$tr" "$ser" rpc --window 1
        fi
        if wants rpc-w100; then
            compare_one "$tr-$ser-rpc-w100" "RPC, window 100 — $trname $ser" "$tr" "$ser" rpc --window 100
        fi
        if wants pubsub-1to1; then
            compare_one "$tr-$ser-pubsub-1to1" "PubSub 1->1, acknowledge, window 100 — $trname $ser" "$tr" "$ser" \
                pubsub --subscribers 1 --acknowledge --window 100
        fi
        if wants pubsub-fanout; then
            compare_one "$tr-$ser-pubsub-1to$subscribers" \
                "PubSub 1->$subscribers, acknowledge, window $fw — $trname $ser" "$tr" "$ser" \
                pubsub --subscribers "$subscribers" --acknowledge --window "$fw" --setup-timeout 120s --drain 10s
        fi
    done
done

# --- Results file ------------------------------------------------------------------------------
results="$out/results.md"
{
    echo "# wampring vs Crossbar.io — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Produced by \`loadtest/bench/run-vs-crossbar.sh\` (wampring-load compare: medians over $repeat round(s), routers alternating; measured $duration after $warmup warmup per run)."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| invocation | \`loadtest/bench/run-vs-crossbar.sh${original_args[*]:+ ${original_args[*]}}\` |"
    echo "| machine | $(nproc) CPUs, $model, ${mem}, kernel $(uname -r)${virt:+, $virt} |"
    echo "| wampring | \`$commit\` — $commit_line |"
    echo "| Crossbar.io | $crossbar_version$( ((crossbar_reused)) && echo " (an instance already running was reused)") |"
    echo "| placement | both routers pinned to CPU $router_cpu (wampring: 1 shard; Crossbar: controller and router worker); generator pinned to CPU $load_cpu |"
    echo "| priority | $priority_note |"
    echo "| wampring config | 127.0.0.1 ports $ws_port (WebSocket /ws) and $rs_port (RawSocket), $cores_line, spin_before_park_us = $spin_us, other limits default |"
    echo "| Crossbar config | loadtest/peers/crossbar/config.json (ws://127.0.0.1:9080/ws, rs://127.0.0.1:9081) |"
    echo
    echo "## Summary"
    echo
    echo "Medians per router; **wampring ÷ crossbar** is the throughput ratio (the tables below give ratios to wampring, the first router). For PubSub the unit is events delivered per second (all subscribers). CPU µs/op is the router's (utime + stime per operation); the generator's is for the wampring runs. Errors+lost are summed over all rounds. *Others' CPU %*: the share of the machine's CPU time that processes other than the routers and the generator used during the comparison (noise)."
    echo
    echo "| comparison | wampring /s | crossbar /s | wampring ÷ crossbar | p99 µs wampring | p99 µs crossbar | router CPU µs/op wampring | crossbar | generator CPU µs/op | errors+lost wampring | crossbar | others' CPU % |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    while IFS=$'\t' read -r title _unit w c wp99 cp99 wcpu ccpu gcpu wlost clost busy name; do
        ratio="$(awk -v w="$w" -v c="$c" 'BEGIN { if (c > 0) printf "%.1f×", w / c; else print "-" }')"
        fmt() { awk -v x="$1" 'BEGIN { if (x ~ /^[0-9.eE+-]+$/) printf (x >= 100 ? "%.0f" : "%.2f"), x; else print x }'; }
        echo "| $title | $(fmt "$w") | $(fmt "$c") | $ratio | $(fmt "$wp99") | $(fmt "$cp99") | $(fmt "$wcpu") | $(fmt "$ccpu") | $(fmt "$gcpu") | $wlost | $clost | $busy |"
    done <"$summary_rows"
    echo
    cat "$sections"
    echo "## Commands"
    echo
    echo "Exactly as run (binaries in \`$target_dir/release/\`):"
    echo
    echo '```'
    sed "s#$work/##g" "$commands_log"
    echo '```'
    echo
    echo "wampring config (\`wampring.toml\`):"
    echo
    echo '```toml'
    cat "$config"
    echo '```'
} >"$results"
log "wrote $results and $(ls "$out/svg" | wc -l) chart(s) in $out/svg"
((failures == 0)) || log "$failures comparison(s) exited non-zero; see their sections in $results"
