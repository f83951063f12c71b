#!/usr/bin/env bash
# tuning/check.sh — owns the read-only host check for wampring. It prints one table row per
# operating-system setting the router depends on (locked memory for io_uring, file
# descriptors, listen backlogs, ephemeral ports, CPUs and their isolation, NIC receive queues,
# io_uring availability, frequency governor, transparent hugepages): the current value, what
# wampring wants, and a verdict (OK, WARN, INFO, n/a). Its expectations are computed for the
# shards wampring would run here: by default one per CPU this process may run on (what the
# router does when `cores` is unset, at most 64), or `--cores N`. It changes nothing, needs no
# root, reads only /proc and /sys plus `ulimit` (and `nproc` as a fallback), and always exits
# 0 unless an argument is bad (exit 2).
# tuning/README.md explains every row: why it matters, how to set it, how to make it stick.

# Run by `sh`? Re-run under bash (the script uses bash features).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -u

usage() {
    cat <<'EOF'
Usage: tuning/check.sh [--cores N] [--no-color] [--help]

Prints the host settings wampring depends on beside what it wants, with a verdict:
  OK    meets what wampring wants
  WARN  below it: read the matching section of tuning/README.md
  INFO  no single right value; shown for reference
  n/a   not available on this host (missing file or tool)

Options:
  -c, --cores N   shards you plan to run (the `cores` config key / --cores flag, 1..=64).
                  Default: what wampring runs when `cores` is unset, one shard per CPU
                  this process may run on (at most 64). Scales the locked-memory and
                  file-descriptor expectations and is checked against the CPUs,
                  the cgroup CPU quota and the NIC receive queues.
  --no-color      plain output even on a terminal (NO_COLOR=1 does the same)
  -h, --help      this text

Read-only, needs no root; run it as the user (and in the container, unit or cgroup)
wampring will run under, since limits and allowed CPUs are per process.
Exit status: 0 (whatever the verdicts), 2 for a bad argument.
EOF
}

# cpu_count LIST: number of CPUs in a kernel CPU list such as "0-3,8,10-11".
cpu_count() {
    local list="$1" part lo hi n=0
    list="${list// /}"
    [ -z "$list" ] && {
        echo 0
        return
    }
    local IFS=','
    for part in $list; do
        if [[ "$part" =~ ^([0-9]+)-([0-9]+)$ ]]; then
            lo="${BASH_REMATCH[1]}" hi="${BASH_REMATCH[2]}"
            [ "$hi" -ge "$lo" ] && n=$((n + hi - lo + 1))
        elif [[ "$part" =~ ^[0-9]+$ ]]; then
            n=$((n + 1))
        fi
    done
    echo "$n"
}

# ----- arguments -----

cores=''
color=1
[ -n "${NO_COLOR:-}" ] && color=0
[ -t 1 ] || color=0

while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        -c | --cores)
            if [ $# -lt 2 ]; then
                echo "check.sh: $1 needs a value" >&2
                usage >&2
                exit 2
            fi
            cores="$2"
            shift 2
            ;;
        --cores=*)
            cores="${1#--cores=}"
            shift
            ;;
        --no-color)
            color=0
            shift
            ;;
        *)
            echo "check.sh: unknown argument: $1" >&2
            usage >&2
            exit 2
            ;;
    esac
done

# The router's bound on shards (src/router/shard_msg.rs MAX_SHARDS, the config's MAX_CORES).
MAX_SHARDS=64

# CPUs this process may run on, as the router sees them (sched_getaffinity); the same list
# appears in /proc/self/status. Read here because the default shard count depends on it.
allowed=''
if [ -r /proc/self/status ]; then
    while IFS=$':\t ' read -r key value _; do
        [ "$key" = Cpus_allowed_list ] && allowed="$value"
    done </proc/self/status
fi
if [ -z "$allowed" ] && command -v taskset >/dev/null 2>&1; then
    allowed=$(taskset -cp $$ 2>/dev/null | sed -n 's/.*: *//p')
fi

if [ -n "$cores" ]; then
    # Same bounds as the config (src/config: 1 ..= MAX_CORES = MAX_SHARDS).
    if ! [[ "$cores" =~ ^[0-9]{1,4}$ ]] || [ "$cores" -lt 1 ] || [ "$cores" -gt "$MAX_SHARDS" ]; then
        echo "check.sh: --cores must be a number in 1..=$MAX_SHARDS, got: $cores" >&2
        exit 2
    fi
    cores_source="--cores $cores"
else
    # wampring's default: one shard per allowed CPU, at most MAX_SHARDS.
    cores=0
    if [ -n "$allowed" ]; then
        cores=$(cpu_count "$allowed")
    fi
    if [ "$cores" -lt 1 ] && command -v nproc >/dev/null 2>&1; then
        cores=$(nproc 2>/dev/null || echo 0)
        [[ "$cores" =~ ^[0-9]+$ ]] || cores=0
    fi
    [ "$cores" -lt 1 ] && cores=1
    if [ "$cores" -gt "$MAX_SHARDS" ]; then
        cores_source="default: $MAX_SHARDS of the allowed CPUs"
        cores=$MAX_SHARDS
    else
        cores_source="default: one per allowed CPU"
    fi
fi

# ----- what wampring wants -----

GLOMMIO_MIN_MEMLOCK_KIB=512   # glommio 0.9 refuses to build an executor below this
MEMLOCK_CLEAN_KIB=8192        # per shard: io_uring buffer registration succeeds without CAP_IPC_LOCK
WANT_NOFILE=65536             # at least, whatever the shard count
CONNECTIONS_PER_SHARD=100000  # the default [limits] max_connections_per_shard
# Descriptors wampring keeps besides connections (src/shard/startup.rs): 32 per process, and per
# shard 8 (io_uring rings, eventfd, spare) + 16 refusals in flight + one listener per listener
# (two assumed: WebSocket and RawSocket).
FD_RESERVE_PROCESS=32
FD_RESERVE_PER_SHARD=$((8 + 16 + 2))
WANT_SOMAXCONN=4096           # wampring listens with backlog 4096 (src/shard/startup.rs)
WANT_SYN_BACKLOG=4096
WANT_FILE_MAX=1048576
WANT_PORT_RANGE=60000         # load-generator hosts: e.g. 1024..65535
MAX_CPU_FILES=4096            # bound on per-CPU sysfs reads

need_memlock_kib=$((GLOMMIO_MIN_MEMLOCK_KIB * cores))
clean_memlock_kib=$((MEMLOCK_CLEAN_KIB * cores))
fd_reserve=$((FD_RESERVE_PROCESS + FD_RESERVE_PER_SHARD * cores))
want_nofile_full=$((CONNECTIONS_PER_SHARD * cores + fd_reserve))

# ----- helpers -----

warns=0

if [ "$color" = 1 ]; then
    c_ok=$'\033[32m' c_warn=$'\033[33;1m' c_dim=$'\033[2m' c_off=$'\033[0m'
else
    c_ok='' c_warn='' c_dim='' c_off=''
fi

# row SETTING CURRENT WANTED VERDICT [NOTE]
row() {
    local setting="$1" current="$2" wanted="$3" verdict="$4" note="${5:-}" paint=''
    [ -z "$current" ] && current='n/a'
    # Keep the table readable: long values are cut (the note or README has the detail).
    [ "${#current}" -gt 24 ] && current="${current:0:22}.."
    case "$verdict" in
        OK) paint="$c_ok" ;;
        WARN)
            paint="$c_warn"
            warns=$((warns + 1))
            ;;
        *) paint="$c_dim" ;;
    esac
    local line
    line=$(printf '%-30s %-24s %-20s %s%-7s%s' \
        "$setting" "$current" "$wanted" "$paint" "$verdict" "$c_off")
    if [ -n "$note" ]; then
        printf '%s %s\n' "$line" "$note"
    else
        printf '%s\n' "${line%"${line##*[! ]}"}"
    fi
}

section() {
    printf '\n%s\n' "-- $1"
}

# first_line FILE: prints the file's first line (tabs as spaces); fails when unreadable.
first_line() {
    local line=''
    [ -r "$1" ] || return 1
    IFS= read -r line <"$1" 2>/dev/null || [ -n "$line" ] || return 1
    printf '%s' "${line//$'\t'/ }"
}

# is_uint VALUE
is_uint() {
    [[ "$1" =~ ^[0-9]{1,19}$ ]]
}

# at_least VALUE MIN: VALUE is "unlimited"/"infinity" or a number >= MIN.
at_least() {
    case "$1" in
        unlimited | infinity) return 0 ;;
    esac
    is_uint "$1" && [ "$1" -ge "$2" ]
}


# sysctl_row NAME MIN NOTE-WHEN-LOW: a numeric /proc/sys value checked against MIN.
sysctl_row() {
    local name="$1" min="$2" low_note="$3" path value
    path="/proc/sys/${name//./\/}"
    if value=$(first_line "$path"); then
        if at_least "$value" "$min"; then
            row "$name" "$value" ">= $min" OK
        else
            row "$name" "$value" ">= $min" WARN "$low_note"
        fi
    else
        row "$name" "n/a" ">= $min" n/a "not readable here"
    fi
}

# ----- header -----

kernel=$(first_line /proc/sys/kernel/osrelease || uname -r 2>/dev/null || echo unknown)
printf 'wampring host check — %s, kernel %s, user %s (uid %s), planning %s shard(s) (%s)\n' \
    "$(first_line /proc/sys/kernel/hostname || echo unknown-host)" "$kernel" \
    "$(id -un 2>/dev/null || echo '?')" "$(id -u 2>/dev/null || echo '?')" "$cores" "$cores_source"
printf '%-30s %-24s %-20s %-7s %s\n' SETTING CURRENT WANTED VERDICT NOTE

# ----- io_uring -----

section "io_uring (glommio needs it; README: io_uring availability)"

if [[ "$kernel" =~ ^([0-9]+)\.([0-9]+) ]]; then
    k_major="${BASH_REMATCH[1]}" k_minor="${BASH_REMATCH[2]}"
    if [ "$k_major" -gt 5 ] || { [ "$k_major" -eq 5 ] && [ "$k_minor" -ge 8 ]; }; then
        row "kernel version" "$k_major.$k_minor" ">= 5.8" OK
    else
        row "kernel version" "$k_major.$k_minor" ">= 5.8" WARN "glommio needs io_uring of Linux 5.8+"
    fi
else
    row "kernel version" "$kernel" ">= 5.8" n/a "cannot parse the version"
fi

if disabled=$(first_line /proc/sys/kernel/io_uring_disabled); then
    case "$disabled" in
        0) row "kernel.io_uring_disabled" "0" "0" OK ;;
        1)
            group=$(first_line /proc/sys/kernel/io_uring_group || echo '?')
            in_group=no
            for g in $(id -G 2>/dev/null); do [ "$g" = "$group" ] && in_group=yes; done
            if [ "$in_group" = yes ] || [ "$(id -u 2>/dev/null)" = 0 ]; then
                row "kernel.io_uring_disabled" "1 (group $group)" "0" OK "restricted, but this user may use it"
            else
                row "kernel.io_uring_disabled" "1 (group $group)" "0" WARN "only gid $group or CAP_SYS_ADMIN may create rings"
            fi
            ;;
        *) row "kernel.io_uring_disabled" "$disabled" "0" WARN "io_uring is off: wampring cannot start" ;;
    esac
else
    row "kernel.io_uring_disabled" "n/a" "0" n/a "no such sysctl (kernel < 6.6): io_uring is on"
fi

seccomp=''
if [ -r /proc/self/status ]; then
    while IFS=$':\t ' read -r key value _; do
        [ "$key" = Seccomp ] && seccomp="$value"
    done </proc/self/status
fi
case "$seccomp" in
    0) row "seccomp (this process)" "0 (none)" "none or io_uring ok" OK ;;
    1) row "seccomp (this process)" "1 (strict)" "none or io_uring ok" WARN "strict mode: io_uring is blocked" ;;
    2) row "seccomp (this process)" "2 (filter)" "none or io_uring ok" WARN "a filter is active; docker >= 25 default blocks io_uring_*" ;;
    *) row "seccomp (this process)" "n/a" "none or io_uring ok" n/a ;;
esac

# ----- locked memory -----

section "locked memory (README: RLIMIT_MEMLOCK)"

cap_eff='' ipc_lock=''
if [ -r /proc/self/status ]; then
    while IFS=$':\t ' read -r key value _; do
        [ "$key" = CapEff ] && cap_eff="$value"
    done </proc/self/status
fi
if [[ "$cap_eff" =~ ^[0-9a-fA-F]{1,16}$ ]]; then
    if [ $(((16#$cap_eff >> 14) & 1)) = 1 ]; then ipc_lock=yes; else ipc_lock=no; fi
fi

ml_soft=$(ulimit -S -l 2>/dev/null || echo '')
ml_hard=$(ulimit -H -l 2>/dev/null || echo '')

memlock_row() {
    local which="$1" value="$2" shown
    case "$value" in
        unlimited) shown=unlimited ;;
        '') shown='' ;;
        *) shown="$value KiB" ;;
    esac
    if [ -z "$value" ]; then
        row "RLIMIT_MEMLOCK $which" "n/a" ">= $need_memlock_kib KiB" n/a
    elif ! at_least "$value" "$need_memlock_kib"; then
        if [ "$which" = soft ] && at_least "$ml_hard" "$need_memlock_kib"; then
            row "RLIMIT_MEMLOCK $which" "$shown" ">= $need_memlock_kib KiB" OK "below, but wampring raises soft to hard"
        else
            row "RLIMIT_MEMLOCK $which" "$shown" ">= $need_memlock_kib KiB" WARN "wampring refuses to start"
        fi
    elif [ "$ipc_lock" != yes ] && [ "$value" != unlimited ] && [ "$value" -lt "$clean_memlock_kib" ]; then
        row "RLIMIT_MEMLOCK $which" "$shown" ">= $need_memlock_kib KiB" OK "< $clean_memlock_kib KiB: glommio may log a harmless warning"
    else
        row "RLIMIT_MEMLOCK $which" "$shown" ">= $need_memlock_kib KiB" OK
    fi
}
memlock_row soft "$ml_soft"
memlock_row hard "$ml_hard"
case "$ipc_lock" in
    yes) row "CAP_IPC_LOCK (effective)" "yes" "either" INFO "io_uring skips memlock accounting" ;;
    no) row "CAP_IPC_LOCK (effective)" "no" "either" INFO "io_uring buffers count against memlock" ;;
    *) row "CAP_IPC_LOCK (effective)" "n/a" "either" n/a ;;
esac

# ----- file descriptors -----

section "file descriptors (README: file descriptors)"

nf_soft=$(ulimit -S -n 2>/dev/null || echo '')
nf_hard=$(ulimit -H -n 2>/dev/null || echo '')
if [ -z "$nf_soft" ]; then
    row "RLIMIT_NOFILE soft" "n/a" ">= $WANT_NOFILE" n/a
elif at_least "$nf_soft" "$WANT_NOFILE"; then
    row "RLIMIT_NOFILE soft" "$nf_soft" ">= $WANT_NOFILE" OK
else
    row "RLIMIT_NOFILE soft" "$nf_soft" ">= $WANT_NOFILE" INFO "wampring raises it to the hard limit at start"
fi
if [ -z "$nf_hard" ]; then
    row "RLIMIT_NOFILE hard" "n/a" ">= $WANT_NOFILE" n/a
elif at_least "$nf_hard" "$WANT_NOFILE"; then
    row "RLIMIT_NOFILE hard" "$nf_hard" ">= $WANT_NOFILE" OK
else
    row "RLIMIT_NOFILE hard" "$nf_hard" ">= $WANT_NOFILE" WARN "caps connections per shard; raising it needs root (limits.conf, LimitNOFILE=)"
fi
# wampring splits what the hard limit leaves after its reserve evenly over the shards and
# lowers max_connections_per_shard to that (with a warning) when the default does not fit.
if [ "$nf_hard" = unlimited ] || [ "$nf_hard" = infinity ]; then
    row "connections per shard (fit)" "unlimited" ">= $CONNECTIONS_PER_SHARD" OK
elif is_uint "${nf_hard:-}"; then
    per_shard=0
    [ "$nf_hard" -gt "$fd_reserve" ] && per_shard=$(((nf_hard - fd_reserve) / cores))
    if [ "$per_shard" -ge "$CONNECTIONS_PER_SHARD" ]; then
        row "connections per shard (fit)" "$per_shard" ">= $CONNECTIONS_PER_SHARD" OK
    elif [ "$per_shard" -ge 1024 ]; then
        row "connections per shard (fit)" "$per_shard" ">= $CONNECTIONS_PER_SHARD" INFO "wampring lowers max_connections_per_shard to this; all shards full: $want_nofile_full fds"
    else
        row "connections per shard (fit)" "$per_shard" ">= $CONNECTIONS_PER_SHARD" WARN "hard limit / $cores shards leaves few connections per shard"
    fi
else
    row "connections per shard (fit)" "n/a" ">= $CONNECTIONS_PER_SHARD" n/a
fi
sysctl_row fs.file-max "$WANT_FILE_MAX" "system-wide open files"
sysctl_row fs.nr_open "$WANT_NOFILE" "caps RLIMIT_NOFILE"

# ----- network -----

section "network (README: listen backlog, ephemeral ports, TCP buffers)"

sysctl_row net.core.somaxconn "$WANT_SOMAXCONN" "caps wampring's backlog of 4096"
sysctl_row net.ipv4.tcp_max_syn_backlog "$WANT_SYN_BACKLOG" "half-open connections dropped in bursts"

if range=$(first_line /proc/sys/net/ipv4/ip_local_port_range); then
    read -r lo hi _ <<<"$range"
    if is_uint "${lo:-}" && is_uint "${hi:-}"; then
        width=$((hi - lo + 1))
        if [ "$width" -ge "$WANT_PORT_RANGE" ]; then
            row "net.ipv4.ip_local_port_range" "$lo-$hi ($width)" ">= $WANT_PORT_RANGE ports" OK
        else
            row "net.ipv4.ip_local_port_range" "$lo-$hi ($width)" ">= $WANT_PORT_RANGE ports" WARN "matters on load-generator hosts only"
        fi
    else
        row "net.ipv4.ip_local_port_range" "$range" ">= $WANT_PORT_RANGE ports" n/a "cannot parse"
    fi
else
    row "net.ipv4.ip_local_port_range" "n/a" ">= $WANT_PORT_RANGE ports" n/a
fi

for name in net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.core.rmem_max net.core.wmem_max; do
    if value=$(first_line "/proc/sys/${name//./\/}"); then
        row "$name" "$(echo "$value" | tr -s ' ')" "defaults are fine" INFO
    else
        row "$name" "n/a" "defaults are fine" n/a
    fi
done

# ----- CPUs -----

section "CPUs (README: CPU pinning and isolation)"

present=$(first_line /sys/devices/system/cpu/present || echo '')
online=$(first_line /sys/devices/system/cpu/online || echo '')
n_present=$(cpu_count "$present")
n_online=$(cpu_count "$online")
if [ -n "$present" ]; then
    row "CPUs present" "$present ($n_present)" "-" INFO
else
    row "CPUs present" "n/a" "-" n/a
fi
if [ -n "$online" ]; then
    if [ "$n_online" -ge "$cores" ]; then
        row "CPUs online" "$online ($n_online)" ">= $cores (shards)" OK
    else
        row "CPUs online" "$online ($n_online)" ">= $cores (shards)" WARN "fewer CPUs than shards"
    fi
else
    row "CPUs online" "n/a" ">= $cores (shards)" n/a
fi

# ($allowed was read before the arguments: the default shard count comes from it.)
if [ -n "$allowed" ]; then
    n_allowed=$(cpu_count "$allowed")
    if [ "$n_allowed" -lt "$cores" ]; then
        row "allowed CPUs (affinity)" "$allowed ($n_allowed)" ">= $cores (shards)" WARN "fewer allowed CPUs than shards: wampring refuses to start"
    elif [ "$n_allowed" -gt "$MAX_SHARDS" ] && [ "$cores" = "$MAX_SHARDS" ]; then
        row "allowed CPUs (affinity)" "$allowed ($n_allowed)" ">= $cores (shards)" INFO "wampring uses the first $MAX_SHARDS"
    elif [ "$n_allowed" -gt "$cores" ]; then
        row "allowed CPUs (affinity)" "$allowed ($n_allowed)" ">= $cores (shards)" OK "shards on the first $cores; the rest stay free"
    else
        row "allowed CPUs (affinity)" "$allowed ($n_allowed)" ">= $cores (shards)" OK "one shard on each"
    fi
else
    row "allowed CPUs (affinity)" "n/a" ">= $cores (shards)" n/a
fi

# CPU quota of this process's cgroup (v2 cpu.max, else v1 cfs quota).
quota_text='' quota_cpus=''
if [ -r /proc/self/cgroup ]; then
    v2_path='' v1_path=''
    while IFS=: read -r _ controllers path; do
        [ -z "$controllers" ] && v2_path="$path"
        [[ ",$controllers," == *,cpu,* ]] && v1_path="$path"
    done </proc/self/cgroup
    if [ -n "$v2_path" ] && max=$(first_line "/sys/fs/cgroup${v2_path%/}/cpu.max"); then
        read -r q p _ <<<"$max"
        if [ "${q:-}" = max ]; then
            quota_text='max (none)'
        elif is_uint "${q:-}" && is_uint "${p:-}" && [ "$p" -gt 0 ]; then
            quota_cpus=$(((q + p - 1) / p))
            quota_text="$q/$p (~$quota_cpus CPU)"
        fi
    elif [ -n "$v1_path" ] && q=$(first_line "/sys/fs/cgroup/cpu${v1_path%/}/cpu.cfs_quota_us") &&
        p=$(first_line "/sys/fs/cgroup/cpu${v1_path%/}/cpu.cfs_period_us"); then
        if [ "$q" = -1 ]; then
            quota_text='-1 (none)'
        elif is_uint "$q" && is_uint "$p" && [ "$p" -gt 0 ]; then
            quota_cpus=$(((q + p - 1) / p))
            quota_text="$q/$p (~$quota_cpus CPU)"
        fi
    fi
fi
if [ -z "$quota_text" ]; then
    row "cgroup CPU quota" "n/a" "none, or >= $cores CPU" n/a
elif [ -n "$quota_cpus" ] && [ "$quota_cpus" -lt "$cores" ]; then
    row "cgroup CPU quota" "$quota_text" "none, or >= $cores CPU" WARN "$cores shards share ~$quota_cpus CPU: set cores to $quota_cpus or raise the quota"
else
    row "cgroup CPU quota" "$quota_text" "none, or >= $cores CPU" OK
fi

cmdline=$(first_line /proc/cmdline || echo '')
isolcpus='' nohz=''
for word in $cmdline; do
    [ "$word" = "--" ] && break
    case "$word" in
        isolcpus=*) isolcpus="${word#isolcpus=}" ;;
        nohz_full=*) nohz="${word#nohz_full=}" ;;
    esac
done
isolated=$(first_line /sys/devices/system/cpu/isolated || echo '')
row "isolcpus (cmdline)" "${isolcpus:-none}" "optional" INFO "${isolated:+kernel isolated: $isolated}"
row "nohz_full (cmdline)" "${nohz:-none}" "optional" INFO

if smt=$(first_line /sys/devices/system/cpu/smt/active); then
    siblings=$(first_line /sys/devices/system/cpu/cpu0/topology/thread_siblings_list || echo '?')
    if [ "$smt" = 1 ]; then
        row "SMT (hyperthreads) active" "yes (cpu0: $siblings)" "-" INFO "the default puts a shard on each sibling; one per core is best"
    else
        row "SMT (hyperthreads) active" "no" "-" INFO
    fi
else
    row "SMT (hyperthreads) active" "n/a" "-" n/a
fi

governors=''
count=0
for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
    [ "$count" -ge "$MAX_CPU_FILES" ] && break
    count=$((count + 1))
    g=$(first_line "$f") || continue
    [[ " $governors " == *" $g "* ]] || governors="${governors:+$governors }$g"
done
if [ -z "$governors" ]; then
    row "cpufreq governor" "n/a" "performance" n/a "no cpufreq (common on VMs)"
elif [ "$governors" = performance ]; then
    row "cpufreq governor" "$governors" "performance" OK
else
    row "cpufreq governor" "$governors" "performance" WARN "frequency ramps add latency and noise"
fi

if command -v pgrep >/dev/null 2>&1; then
    if pgrep -x irqbalance >/dev/null 2>&1; then
        row "irqbalance running" "yes" "-" INFO "may move NIC IRQs onto shard cores"
    else
        row "irqbalance running" "no" "-" INFO
    fi
else
    row "irqbalance running" "n/a" "-" n/a
fi

# Network receive work runs where the NIC's queue interrupts (or RPS) land; with one shard per
# CPU there are usually no spare CPUs, so the queues should be spread over the shard CPUs.
n_ifaces=0
for dev in /sys/class/net/*; do
    [ -d "$dev/queues" ] || continue
    name="${dev##*/}"
    [ "$name" = lo ] && continue
    [ -e "$dev/device" ] || continue # virtual devices (bridges, veths, tunnels) have no queues of their own
    n_ifaces=$((n_ifaces + 1))
    [ "$n_ifaces" -gt 8 ] && break
    rxq=0 rps=off
    for q in "$dev"/queues/rx-*; do
        [ -d "$q" ] || continue
        rxq=$((rxq + 1))
        [ "$rxq" -gt "$MAX_CPU_FILES" ] && break
        if mask=$(first_line "$q/rps_cpus") && [[ "$mask" =~ [1-9a-fA-F] ]]; then rps=on; fi
    done
    if [ "$rxq" -ge "$cores" ]; then
        row "NIC rx queues ($name)" "$rxq (rps $rps)" ">= $cores or RPS" OK
    elif [ "$rps" = on ]; then
        row "NIC rx queues ($name)" "$rxq (rps $rps)" ">= $cores or RPS" OK "RPS spreads receive work"
    else
        row "NIC rx queues ($name)" "$rxq (rps $rps)" ">= $cores or RPS" INFO "fewer queues than shards: receive work lands on $rxq CPU(s)"
    fi
done
[ "$n_ifaces" = 0 ] && row "NIC rx queues" "n/a" ">= $cores or RPS" n/a "no physical NIC visible"

# ----- memory -----

section "memory (README: transparent hugepages)"

thp_row() {
    local name="$1" path="$2" raw value wanted="$3"
    if raw=$(first_line "$path"); then
        value=$(echo "$raw" | sed -n 's/.*\[\([^]]*\)\].*/\1/p')
        case "$value" in
            always) row "$name" "$value" "$wanted" WARN "khugepaged/compaction latency spikes" ;;
            '') row "$name" "$raw" "$wanted" n/a ;;
            *) row "$name" "$value" "$wanted" OK ;;
        esac
    else
        row "$name" "n/a" "$wanted" n/a
    fi
}
thp_row "THP enabled" /sys/kernel/mm/transparent_hugepage/enabled "madvise or never"
thp_row "THP defrag" /sys/kernel/mm/transparent_hugepage/defrag "not always"

# ----- summary -----

printf '\n%s WARN row(s). Each row is explained in tuning/README.md.\n' "$warns"
printf 'Expectations are for %s shard(s) (%s); --cores N checks another count.\n' "$cores" "$cores_source"
exit 0
