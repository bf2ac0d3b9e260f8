#!/usr/bin/env bash
# Two builds of sbx side by side on the same workloads, back to back in one
# invocation: the ratio of each run (new / base) says whether a change made
# the data plane slower. Each server is pinned to core 0, wrk to core 1.
#
#   BASE=/path/to/old/sbx bench/compare.sh [NEW]   # NEW: target/release/sbx
#   DURATION=10 ROUNDS=2 BASE=… bench/compare.sh
#
# Each run is measured ROUNDS times for each build, back to back, the
# order alternating by round; the worse of each build's runs is kept. Traffic goes to
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
ROUNDS="${ROUNDS:-2}"
BASE="${BASE:?set BASE to the sbx binary to compare against}"
NEW="${1:-${CARGO_TARGET_DIR:-target}/release/sbx}"
OUT="bench/results"
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

# shellcheck source=bench/lib.sh
source bench/lib.sh

RUNS=(get:/v1/items/1: varied::bench/get-varied.lua post:/v1/items:bench/post.lua
      hello:/v1/hello/ada?lang=fr:: greet:/v1/greet/ada?lang=fr:: items:/v1/items/item_1::)
declare -A WORST

# Both builds serve at once (idle while the other is measured); each run
# measures them back to back, the order alternating by round, so that a
# noisy moment falls on both.
start_pair() { # spec-or-folder base-port
    local pid
    for build in base new; do
        local bin="$BASE" port="$2"
        [ "$build" = new ] && bin="$NEW" port=$(( $2 + 1 ))
        taskset -c 0 "$bin" mock "$1" --listen "127.0.0.1:$port" >>"$OUT/compare-$build.log" 2>&1 & pid=$!
        PIDS+=("$pid")
    done
}

measure() { # round run port-of-base
    local spec path script rps p99 build port order=(base new)
    [ $(( $1 % 2 )) -eq 0 ] && order=(new base)
    for spec in "${RUNS[@]}"; do
        [ "${spec%%:*}" = "$2" ] || continue
        path="$(cut -d: -f2 <<<"$spec")"; script="$(cut -d: -f3 <<<"$spec")"
        for build in "${order[@]}"; do
            port="$3"; [ "$build" = new ] && port=$(( $3 + 1 ))
            read -r rps _ p99 <<<"$(load "http://127.0.0.1:$port$path" "$script")"
            echo "   $build $2: $rps $p99"
            local key="$build-$2"
            if [ -z "${WORST[$key]:-}" ] || [ "$rps" -lt "${WORST[$key]%% *}" ]; then
                WORST[$key]="$rps $p99"
            fi
        done
    done
}

start_pair bench/spec.yaml 4030
start_pair bench/behaviours 4032
wait_for http://127.0.0.1:4030/v1/items/1; wait_for http://127.0.0.1:4031/v1/items/1
wait_for http://127.0.0.1:4032/v1/items/item_1; wait_for http://127.0.0.1:4033/v1/items/item_1
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    for run in get varied post; do measure "$round" "$run" 4030; done
    for run in hello greet items; do measure "$round" "$run" 4032; done
done

{
    echo "# sbx side by side $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, the worse run of each; servers on core 0, wrk on core 1."
    echo
    echo "| run | base req/s | base p99 ms | new req/s | new p99 ms | new / base |"
    echo "|---|---|---|---|---|---|"
    for run in get varied post hello greet items; do
        read -r b bp <<<"${WORST[base-$run]}"; read -r n np <<<"${WORST[new-$run]}"
        echo "| $run | $b | $bp | $n | $np | $(awk -v a="$n" -v b="$b" 'BEGIN { printf "%.2f", a / b }') |"
    done
} | tee "$OUT/compare.md"
