#!/usr/bin/env bash
# Runs the cargo-fuzz targets one after another, each for SECONDS, and prints how many inputs
# each ran. Needs the nightly toolchain; installs cargo-fuzz when it is missing.
#
#   fuzz/run.sh SECONDS [TARGET...]     (all targets when none is named)
#
# Each target reads the committed seeds (fuzz/corpus/<target>/, never written to) and grows its
# own working corpus in fuzz/work/<target>/ (git-ignored, kept between runs). A crash stops that
# target; libFuzzer leaves the input in fuzz/artifacts/<target>/ and the script exits 1 at the
# end. Reproduce with `cargo +nightly fuzz run <target> <file>`; once fixed, copy the file into
# fuzz/corpus/<target>/regress-<what> so `cargo test --test fuzz_corpus` keeps replaying it.
# Runs under `nice`, one target at a time. Not part of the test command.
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || usage
seconds=$1
shift

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir/.."

all_targets=(json_decode msgpack_decode websocket_server rawsocket_server router)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $target "* ]] || {
        echo "unknown target $target (targets: ${all_targets[*]})" >&2
        exit 2
    }
done

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

echo "building ${targets[*]}" >&2
for target in "${targets[@]}"; do
    nice cargo +nightly fuzz build "$target"
done

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
rows=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/work/$target"
    log="$logs/$target.log"
    echo "fuzzing $target for ${seconds}s" >&2
    status=ok
    if ! nice cargo +nightly fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" \
        -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        status=FAILED
        failed=1
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //' || true)
        grep -E "panicked at|^thread|ERROR: libFuzzer" -A2 "$log" | head -12 >&2 || true
        [[ -n $artifact ]] && status="FAILED: $artifact"
    fi
    # libFuzzer's last line on a normal end: "Done 123456 runs in 61 second(s)".
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    if [[ -n $done_line ]]; then
        runs=$(awk '{print $2}' <<<"$done_line")
        secs=$(awk '{print $5}' <<<"$done_line")
    else
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
        runs=${runs:-?}
        secs="?"
    fi
    if [[ $runs =~ ^[0-9]+$ && $secs =~ ^[0-9]+$ && $secs -gt 0 ]]; then
        rate=$((runs / secs))
    else
        rate="?"
    fi
    corpus=$(find "fuzz/work/$target" -type f | wc -l)
    rows+=("$target|$runs|$secs|$rate|$corpus|$status")
done

echo
printf '%-18s %14s %8s %10s %8s  %s\n' target executions seconds "execs/s" corpus result
for row in "${rows[@]}"; do
    IFS='|' read -r target runs secs rate corpus status <<<"$row"
    printf '%-18s %14s %8s %10s %8s  %s\n' "$target" "$runs" "$secs" "$rate" "$corpus" "$status"
done
exit $failed
