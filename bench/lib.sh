# Shared by the bench scripts: server start-up waits, a wrk run, and
# stopping every server a script started (by PID) when it exits.
# shellcheck shell=bash

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_for() { # URL
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "server at $1 did not start" >&2
    return 1
}

# wrk on core 1 with latency percentiles; prints "rps p50 p99" (milliseconds).
# With REQUIRE_2XX=1 a run with any other answer fails, saying how many.
load() { # URL [script]
    local args=(-t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency) out
    [ -n "${2:-}" ] && args+=(-s "$2")
    out="$(taskset -c 1 wrk "${args[@]}" "$1")"
    if [ "${REQUIRE_2XX:-}" = 1 ] && grep -q 'Non-2xx' <<<"$out"; then
        echo "$1 ${2:-}: $(grep 'Non-2xx' <<<"$out" | xargs)" >&2
        return 1
    fi
    awk '
        /Requests\/sec/ {rps=$2}
        /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        END {printf "%.0f %.3f %.3f\n", rps, ms(p50), ms(p99)}' <<<"$out"
}

# The results folder ($OUT), wrk, and the build to measure ($SBX): as given,
# else a release build of this tree.
prepare() {
    OUT="bench/results"
    mkdir -p "$OUT"
    command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
    [ -n "${SBX:-}" ] || cargo build --release --quiet -p sbx-cli
    SBX="${SBX:-${CARGO_TARGET_DIR:-target}/release/sbx}"
}
