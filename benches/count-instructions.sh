#!/usr/bin/env bash
# Instructions per iteration of the router's hot paths (benches/router_instructions.rs), by
# callgrind: each scenario runs twice, with N and 2N iterations; the difference of the totals
# divided by N excludes the set-up. Noise-free, so two builds can be compared on a busy machine.
#
#   benches/count-instructions.sh [N] [binary]
#
# Without `binary`, builds and uses this checkout's bench binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-5000}
bin=${2:-}
if [[ -z "$bin" ]]; then
  bin=$(cargo bench --bench router_instructions --no-run 2>&1 |
    grep -o 'target/release/deps/router_instructions-[0-9a-f]*' | head -n1)
fi
# Optional third argument: extra callgrind options.
total() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null ${3:-} "$bin" "$1" "$2" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
# "router" counts only inside Router::handle_message: without the harness's own work (framing
# the input, encoding the callee's YIELD, taking the actions apart), which uses the library's
# encoder too and would credit the router with the encoder's gains twice.
router_only=--toggle-collect=wampring::router::Router::handle_message
echo "scenario iteration router"
for scenario in call_json call_msgpack call_cbor call_msgpack_4k call_msgpack_timed publish_json_1 \
  publish_msgpack_1 publish_cbor_1 publish_json_100 publish_msgpack_100; do
  one=$(total "$scenario" "$n")
  two=$(total "$scenario" $((2 * n)))
  router_one=$(total "$scenario" "$n" "$router_only")
  router_two=$(total "$scenario" $((2 * n)) "$router_only")
  echo "$scenario $(((two - one) / n)) $(((router_two - router_one) / n))"
done
