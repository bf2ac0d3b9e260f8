#!/usr/bin/env bash
# What rate limiting costs (issue 16: under 5%): `sbx mock` on the load
# benchmark's spec with bearer auth, without rate limits and with limits so
# high (1,000,000/s per key and per sandbox) that every request is checked
# against both buckets and passes. Run alternately, ROUNDS times; prints
# requests per second of each run. Traffic goes to 127.0.0.1 only.
#
#   bench/rate-limits.sh
#   ROUNDS=5 DURATION=10 bench/rate-limits.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8}"
TARGET="${CARGO_TARGET_DIR:-target}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet -p sbx-cli
SBX="${SBX:-$TARGET/release/sbx}"

# shellcheck source=bench/lib.sh
source bench/lib.sh

WORK=$(mktemp -d)
trap 'cleanup; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/off" "$WORK/on"
sed -e 's|^servers: \[{ url: /v1 }\]$|servers: [{ url: /v1 }]\nsecurity: [{ bearer: [] }]|' \
    -e 's|^components:$|components:\n  securitySchemes:\n    bearer: { type: http, scheme: bearer }|' \
    bench/spec.yaml >"$WORK/off/openapi.yaml"
cp "$WORK/off/openapi.yaml" "$WORK/on/openapi.yaml"
cat >"$WORK/on/project.yaml" <<'YAML'
rate_limits:
  per_key: {requests_per_second: 1000000, burst: 1000000}
  per_sandbox: {requests_per_second: 1000000, burst: 1000000}
YAML

KEY="Authorization: Bearer sk_test_bench"
for round in $(seq "$ROUNDS"); do
    for variant in off on; do
        taskset -c 0 "$SBX" mock "$WORK/$variant" --auth spec --listen 127.0.0.1:4090 >/dev/null 2>&1 &
        pid=$!
        PIDS+=("$pid")
        until curl -sf -o /dev/null -H "$KEY" http://127.0.0.1:4090/v1/items/1; do sleep 0.05; done
        rps=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -H "$KEY" http://127.0.0.1:4090/v1/items/1 |
            awk '/Non-2xx/ {print "non-2xx answers" > "/dev/stderr"; exit 1} /Requests\/sec/ {print $2}')
        echo "round $round, rate limits $variant: $rps req/s"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
