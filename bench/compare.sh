#!/usr/bin/env bash
# Two builds of sbx side by side on the same workloads, back to back in one
# invocation: the ratio of each run (new / base) says whether a change made
# the data plane slower. Each server is pinned to core 0, wrk to core 1.
#
#   BASE=/path/to/old/sbx bench/compare.sh [NEW]   # NEW: target/release/sbx
#   DURATION=10 ROUNDS=2 BASE=… bench/compare.sh
#
# ROUNDS alternates base and new that many times and keeps each one's
# worse run, so a noisy moment does not favour either. Traffic goes to
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

one_build() { # name binary
    local name="$1" bin="$2" pid
    taskset -c 0 "$bin" mock bench/spec.yaml --listen 127.0.0.1:4030 >"$OUT/compare-$name.log" 2>&1 & pid=$!
    PIDS+=("$pid")
    wait_for http://127.0.0.1:4030/v1/items/1
    for run in get varied post; do
        measure "$name" "$run" 4030
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    taskset -c 0 "$bin" mock bench/behaviours --listen 127.0.0.1:4031 >>"$OUT/compare-$name.log" 2>&1 & pid=$!
    PIDS+=("$pid")
    wait_for http://127.0.0.1:4031/v1/items/item_1
    for run in hello greet items; do
        measure "$name" "$run" 4031
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

measure() { # build run port
    local spec path script result rps
    for spec in "${RUNS[@]}"; do
        [ "${spec%%:*}" = "$2" ] || continue
        path="$(cut -d: -f2 <<<"$spec")"; script="$(cut -d: -f3 <<<"$spec")"
        read -r rps _ p99 <<<"$(load "http://127.0.0.1:$3$path" "$script")"
        result="$rps $p99"
        echo "   $1 $2: $result"
        local key="$1-$2"
        if [ -z "${WORST[$key]:-}" ] || [ "$rps" -lt "${WORST[$key]%% *}" ]; then
            WORST[$key]="$result"
        fi
    done
}

for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    one_build base "$BASE"
    one_build new "$NEW"
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
