#!/usr/bin/env bash
# The lean-process benchmark (issue 15, item 5): startup to first answer
# and idle RSS of `sbx mock` on Petstore and of `sbx serve --demo`, split
# into anonymous memory and file pages (the binary's code and constants).
#
#   bench/lean.sh                          # this build, 3 runs each
#   BASE=/tmp/sbx-before bench/lean.sh     # and a baseline, run alternately
#   RUNS=5 bench/lean.sh
#
# Idle means one request answered, then one second of rest. Traffic goes to
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p sbx-cli
SBX="${SBX:-$TARGET/release/sbx}"
BUILDS=("$SBX")
[ -n "${BASE:-}" ] && BUILDS+=("$BASE")
PETSTORE=crates/server/tests/fixtures/petstore.yaml

# shellcheck source=bench/lib.sh
source bench/lib.sh

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# memory PID: "RSS anon file" in MiB.
memory() {
    awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2}
         END {printf "%.1f %.1f %.1f\n", r/1024, a/1024, f/1024}' "/proc/$1/status"
}

# measure NAME URL COMMAND...: one start, one answer, one second idle.
measure() {
    local name=$1 url=$2 start pid
    shift 2
    start=$(now_ms)
    "$@" >/dev/null 2>&1 &
    pid=$!
    PIDS+=("$pid")
    until curl -sf -o /dev/null "$url"; do sleep 0.002; done
    local ready=$(($(now_ms) - start))
    sleep 1
    read -r rss anon file < <(memory "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    printf '%-10s %-40s %8s %9s %9s %9s\n' "$name" "$1" "$ready" "$rss" "$anon" "$file"
}

printf '%-10s %-40s %8s %9s %9s %9s\n' process build "ready ms" "RSS MiB" "anon" "file"
for _ in $(seq "$RUNS"); do
    for build in "${BUILDS[@]}"; do
        measure mock http://127.0.0.1:4080/v1/pets \
            "$build" mock "$PETSTORE" --listen 127.0.0.1:4080
    done
done
for _ in $(seq "$RUNS"); do
    for build in "${BUILDS[@]}"; do
        data=$(mktemp -d)
        measure demo http://127.0.0.1:4081/api/v1/health \
            "$build" serve --demo --listen 127.0.0.1:4081 --data-dir "$data"
        rm -rf "$data"
    done
done
echo "targets: mock idle RSS < 20 MB (19.07 MiB), serve --demo < 40 MB (38.1 MiB), ready < 50 ms"
