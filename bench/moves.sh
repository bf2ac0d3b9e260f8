#!/usr/bin/env bash
# The live-move benchmark: what moving sandboxes between servers costs the
# requests sent to them. Two servers share one PostgreSQL database with
# `spread_sandboxes` and serve SANDBOXES sandboxes (default 60, half each);
# wrk sends stored reads spread over every sandbox through the holder for
# DURATION seconds (default 10), three times:
#
#   steady  nothing moves (the baseline);
#   join    a third server starts 2 s in: a third of the sandboxes move to it;
#   stop    a member is stopped (SIGTERM) 2 s in: its sandboxes move to the
#           two others.
#
# Reported per run: req/s, p50, p99 and the slowest answer, how many answers
# were not 2xx (none allowed), and how long the sandboxes took to spread
# (join) or the member to stop (stop). Servers on core 0, PostgreSQL and wrk
# on core 1. Traffic goes to 127.0.0.1 only.
#
#   bench/moves.sh
#   SBX=/tmp/sbx-build SANDBOXES=300 bench/moves.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
SANDBOXES="${SANDBOXES:-60}"
CONNECTIONS="${CONNECTIONS:-16}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
prepare
export SBX_PG_DIR=/tmp/sbx-bench-moves-postgres
trap 'cleanup; scripts/postgres.sh stop' EXIT
scripts/postgres.sh stop
PG_URL="$(SBX_PG_OPTIONS="-c fsync=on -c synchronous_commit=off" taskset -c 1 scripts/postgres.sh)"
PSQL="$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)"
TOKEN="bench-admin-token-$(date +%s)"
SECRETS="c2J4LWJlbmNoLXNlY3JldHMta2V5LTMyLWJ5dGVzISE="
CONFIG=$(mktemp)
echo "spread_sandboxes = true" >"$CONFIG"
declare -A RESULT

admin() { # method URL [body]
    curl -s -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"} "$2"
}

start_server() { # database port: its PID in SERVER
    SBX_ADMIN_TOKEN="$TOKEN" SBX_SECRETS_KEY="$SECRETS" SBX_LOG=warn \
        taskset -c 0 "$SBX" serve --config "$CONFIG" --listen "127.0.0.1:$2" --data-dir "$(mktemp -d)" \
        --database-url "$1" >"$OUT/sbx-moves-$2.log" 2>&1 &
    SERVER=$!
    PIDS+=("$SERVER")
    wait_for "http://127.0.0.1:$2/readyz"
}

# How many sandboxes each server serves, as the database says.
spread() { # database
    "$PSQL" -qAt "$1" -c "SELECT string_agg(n::text, ' ' ORDER BY n DESC) FROM
        (SELECT COUNT(*) AS n FROM sandboxes GROUP BY served_by) counts"
}

# wrk through the holder over every sandbox; "rps p50 p99 max non2xx".
read_all() { # script
    local out
    out="$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$1" http://127.0.0.1:4141)"
    awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /Requests\/sec/ {rps=$2}
        /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
        /^ +Latency +[0-9]/ {max=$4}
        /Non-2xx/ {bad=$NF}
        END {printf "%.0f %.3f %.3f %.3f %d\n", rps, ms(p50), ms(p99), ms(max), bad}' <<<"$out"
}

run() { # kind: steady, join or stop
    local database script took=""
    database="${PG_URL%/*}/bench_moves_$1_$RANDOM"
    "$PSQL" -q "$PG_URL" -c "CREATE DATABASE ${database##*/}"
    start_server "$database" 4141
    start_server "$database" 4142
    local member=$SERVER
    "$SBX" import bench/behaviours --name bench --url http://127.0.0.1:4141 --token "$TOKEN" >/dev/null
    script=$(mktemp --suffix .lua)
    {
        echo "ids = {"
        for _ in $(seq "$SANDBOXES"); do
            admin POST http://127.0.0.1:4141/api/v1/sandboxes '{"project": "bench", "auth": "none"}' |
                python3 -c 'import json, sys; print("  \"" + json.load(sys.stdin)["id"] + "\",")'
        done
        echo "}"
        echo 'counter = 0'
        echo 'request = function()'
        echo '    counter = counter + 1'
        echo '    return wrk.format("GET", "/sbx/" .. ids[counter % #ids + 1] .. "/v1/items/item_1")'
        echo 'end'
    } >"$script"
    echo "== $1: sandboxes per server $(spread "$database")"
    read_all "$script" >"$OUT/moves-wrk.txt" &
    local wrk=$!
    sleep 2
    local began
    began=$(date +%s.%N)
    case $1 in
    join)
        start_server "$database" 4143
        local want
        want=$((SANDBOXES / 3))
        for _ in $(seq 600); do
            [ "$(spread "$database")" = "$want $want $want" ] && break
            sleep 0.05
        done
        took=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
        ;;
    stop)
        kill -TERM "$member"
        while kill -0 "$member" 2>/dev/null; do sleep 0.05; done
        took=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
        ;;
    esac
    wait "$wrk"
    RESULT[$1]="$(cat "$OUT/moves-wrk.txt") ${took:-—}"
    echo "   ${RESULT[$1]} (then $(spread "$database"))"
    # Gone before the next run binds their ports (a member stopping hands
    # its sandboxes over first).
    cleanup
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

run steady
run join
run stop

{
    echo "# Live-move benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "$SANDBOXES sandboxes; wrk -t1 -c$CONNECTIONS -d${DURATION}s of stored reads over all of them through the holder;"
    echo "servers on core 0, PostgreSQL and wrk on core 1."
    echo
    echo "| run | req/s | p50 ms | p99 ms | max ms | non-2xx | spread / stopped after, s |"
    echo "|---|---|---|---|---|---|---|"
    for kind in steady join stop; do
        read -r rps p50 p99 max bad took <<<"${RESULT[$kind]}"
        echo "| $kind | $rps | $p50 | $p99 | $max | $bad | $took |"
    done
} | tee "$OUT/moves.md"
