#!/usr/bin/env bash
# What issue 4's features cost, against `sbx serve` with examples/payments:
# scenario selection (a `when_state` rule on the record read) and an
# idempotency lookup, each as a ratio to the same request without it, run
# side by side; then advancing a clock over JOBS scheduled jobs.
# The server is pinned to core 0, wrk to core 1; each load run is done
# twice and the second counted (the first warms SQLite's files).
#
#   bench/scenarios.sh
#   DURATION=10 JOBS=10000 bench/scenarios.sh
#   SBX=/tmp/sbx-before bench/scenarios.sh     # another build, e.g. a baseline
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5}"
CREATE_DURATION="${CREATE_DURATION:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
JOBS="${JOBS:-10000}"
PORT="${PORT:-18480}"
OUT="bench/results"
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

if [ -z "${SBX:-}" ]; then   # SBX=path/to/sbx measures another build (a baseline)
    cargo build --release --quiet -p sbx-cli
    SBX="$TARGET/release/sbx"
fi
DATA="$(mktemp -d)"
export SBX_URL="http://127.0.0.1:$PORT" SBX_TOKEN="bench-admin-token-0123456789"
SBX_ADMIN_TOKEN="$SBX_TOKEN" taskset -c 0 "$SBX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
    >"$OUT/scenarios-serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 300); do curl -s -o /dev/null "$SBX_URL/api/v1/health" && break; sleep 0.1; done

admin() { # METHOD PATH [JSON]
    curl -sf -X "$1" -H "Authorization: Bearer $SBX_TOKEN" -H 'content-type: application/json' \
        "$SBX_URL/api/v1$2" ${3:+-d "$3"}
}
sandbox() { # PROJECT → base URL
    admin POST /sandboxes "{\"project\": \"$1\", \"auth\": \"none\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["base_url"])'
}
wrk_rps() { # SECONDS URL [script] → requests per second; fails on non-2xx answers
    local args=(-t1 -c"$CONNECTIONS" -d"$1s")
    [ -n "${3:-}" ] && args+=(-s "$3")
    taskset -c 1 wrk "${args[@]}" "$2" | awk '
        /Non-2xx/ {bad=$NF} /Requests\/sec/ {rps=$2}
        END {if (bad) {print "non-2xx answers: " bad > "/dev/stderr"; exit 1} printf "%.0f", rps}'
}
rps() { # URL → requests per second (second of two runs)
    wrk_rps "$DURATION" "$1" >/dev/null
    wrk_rps "$DURATION" "$1"
}
create_rps() { # PATH script → creates per second, each run in a fresh sandbox
    # (a sandbox holds 100,000 records: runs are kept short enough).
    wrk_rps "$CREATE_DURATION" "$(sandbox payments)$1" "$2" >/dev/null
    wrk_rps "$CREATE_DURATION" "$(sandbox payments)$1" "$2"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

"$SBX" import examples/payments --name payments >/dev/null
BASE="$(sandbox payments)"

echo "== reads: a scenario state rule (GET /accounts/{id}) vs none (GET /customers/{id})"
plain_get="$(rps "$BASE/customers/cus_demo_alice")"
rule_get="$(rps "$BASE/accounts/acct_demo_gold")"
echo "no rule $plain_get req/s, state rule $rule_get req/s: ratio $(ratio "$rule_get" "$plain_get")"

echo "== creates: a fresh Idempotency-Key per request vs none (POST /customers)"
plain_post="$(create_rps /customers bench/customers.lua)"
keyed_post="$(create_rps /customers bench/idempotency.lua)"
echo "no key $plain_post req/s, key $keyed_post req/s: ratio $(ratio "$keyed_post" "$plain_post")"

other_server() { # NAME PORT [serve flags…]: another server, pinned like the first; sets $NAME to a payments sandbox's base URL
    local name="$1" port="$2" data base; shift 2
    data="$(mktemp -d)"
    OTHER_DATA+=("$data")
    SBX_ADMIN_TOKEN="$SBX_TOKEN" taskset -c 0 "$SBX" serve --listen "127.0.0.1:$port" \
        --data-dir "$data" "$@" >"$OUT/scenarios-$port.log" 2>&1 &
    OTHERS+=($!)
    for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$port/api/v1/health" && break; sleep 0.1; done
    SBX_URL="http://127.0.0.1:$port" "$SBX" import examples/payments --name payments >/dev/null
    base="$(curl -sf -H "Authorization: Bearer $SBX_TOKEN" "http://127.0.0.1:$port/api/v1/sandboxes" \
        -d '{"project": "payments", "auth": "none"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["base_url"])')"
    printf -v "$name" '%s' "$base"
}
OTHERS=(); OTHER_DATA=()
trap 'kill $PID "${OTHERS[@]}" 2>/dev/null || true; rm -rf "$DATA" "${OTHER_DATA[@]}"' EXIT

echo "== request log: the same GET against servers with the log off, and with no write cap"
UNCAPPED_CONFIG="$(mktemp)"
OTHER_DATA+=("$UNCAPPED_CONFIG")
printf '[request_log_limits]\nqueue = 1000000\nmax_per_second = 1000000\n' >"$UNCAPPED_CONFIG"
other_server QUIET_BASE $((PORT + 1)) --no-request-log
other_server UNCAPPED_BASE $((PORT + 2)) --config "$UNCAPPED_CONFIG"
unlogged="$(rps "$QUIET_BASE/customers/cus_demo_alice")"
logged="$(rps "$BASE/customers/cus_demo_alice")"
uncapped="$(rps "$UNCAPPED_BASE/customers/cus_demo_alice")"
kill "${OTHERS[@]}"; OTHERS=()
echo "logged (default cap: 2,000 written/s, the rest dropped and counted) $logged req/s, unlogged $unlogged req/s: ratio $(ratio "$logged" "$unlogged")"
echo "logged with no cap (every request written) $uncapped req/s: ratio $(ratio "$uncapped" "$unlogged")"

echo "== clock advance over $JOBS scheduled jobs"
"$SBX" import bench/jobs --name ticks >/dev/null
TICKS="$(sandbox ticks)"
ID="${TICKS#*/sbx/}"; ID="${ID%%/*}"
admin POST "/sandboxes/$ID/clock" '{"freeze": true}' >/dev/null
for _ in $(seq 1 $((JOBS / 1000))); do
    curl -sf -H 'content-type: application/json' "$TICKS/plans" -d '{"count": 1000}' >/dev/null
done
seconds="$(curl -sf -o "$OUT/scenarios-advance.json" -w '%{time_total}' -X POST \
    -H "Authorization: Bearer $SBX_TOKEN" -H 'content-type: application/json' \
    "$SBX_URL/api/v1/sandboxes/$ID/clock" -d '{"advance": "P30D"}')"
ran="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ran_jobs"])' "$OUT/scenarios-advance.json")"
echo "advance ran $ran jobs in $seconds s"
