#!/usr/bin/env bash
# The storage benchmark: one sbx build on SQLite and on PostgreSQL, side by
# side. Each backend serves bench/behaviours in one sandbox and is loaded
# with stored reads (GET /v1/items/item_1: memory, the hot path) and
# stateful creates (POST /v1/items, a new record each: group commit to the
# database). The server and PostgreSQL share core 0 (SQLite works inside the
# server's process, so both backends get the same CPU); wrk runs on core 1.
# The backends alternate, ROUNDS times each (default 2): report the worse.
# With PostgreSQL, a second server on the same database stands by and
# forwards: the stored read through it, beside the same read sent to the
# holder directly, is what forwarding costs.
#
#   bench/database.sh
#   DURATION=10 ROUNDS=3 bench/database.sh
#   SBX=/tmp/sbx-before BACKENDS=sqlite bench/database.sh   # a baseline build
#
# PostgreSQL runs as `scripts/postgres.sh` starts it, but durable
# (fsync on) and with synchronous_commit off: a commit is acknowledged
# before its WAL reaches the disk, as SQLite's WAL with synchronous=NORMAL
# does. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-2}"
BACKENDS="${BACKENDS:-sqlite postgres}"
CONNECTIONS="${CONNECTIONS:-32}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
prepare
export SBX_PG_DIR=/tmp/sbx-bench-postgres
trap 'cleanup; scripts/postgres.sh stop' EXIT
scripts/postgres.sh stop
PG_URL="$(SBX_PG_OPTIONS="-c fsync=on -c synchronous_commit=off" taskset -c 0 scripts/postgres.sh)"

TOKEN="bench-admin-token-$(date +%s)"
PSQL="$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)"
declare -A RESULT

new_database() { # name: a new database on the cluster; its URL
    "$PSQL" -q "$PG_URL" -c "CREATE DATABASE $1"
    echo "${PG_URL%/*}/$1"
}

bench_sandbox() { # server URL: bench/behaviours imported, a sandbox without auth; its base URL
    "$SBX" import bench/behaviours --name bench --url "$1" --token "$TOKEN" >/dev/null
    curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d '{"project": "bench", "auth": "none"}' "$1/api/v1/sandboxes" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["base_url"])'
}

measure() { # result-key label URL [wrk script]
    echo "== $2"
    RESULT[$1]=$(load "$3" "${4:-}")
    echo "   ${RESULT[$1]}"
}

run_backend() { # name round
    local name=$1 data args=() pid base
    data=$(mktemp -d)
    [ "$name" = postgres ] && args=(--database-url "$(new_database "bench_$2_$RANDOM")")
    SBX_ADMIN_TOKEN="$TOKEN" taskset -c 0 "$SBX" serve --listen 127.0.0.1:4030 --data-dir "$data" "${args[@]}" \
        >"$OUT/sbx-$name.log" 2>&1 & pid=$!
    PIDS+=("$pid")
    wait_for http://127.0.0.1:4030/readyz
    base=$(bench_sandbox http://127.0.0.1:4030)
    REQUIRE_2XX=1
    measure "$name-read-$2" "$name round $2: stored read" "$base/items/item_1"
    measure "$name-create-$2" "$name round $2: stateful create" "$base/items" bench/create.lua
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data"
}
for round in $(seq "$ROUNDS"); do
    for backend in $BACKENDS; do
        run_backend "$backend" "$round"
    done
done

forward_round() { # round: the holder and a forwarding standby, both on core 0
    local round=$1 database pids=() dirs=() port data path config
    database=$(new_database "bench_forward_${round}_$RANDOM")
    # Standing by, not serving sandboxes of its own.
    config=$(mktemp); echo "spread_sandboxes = false" >"$config"
    # The holder first (it takes the database), then the standby.
    for port in 4031 4032; do
        data=$(mktemp -d); dirs+=("$data")
        SBX_ADMIN_TOKEN="$TOKEN" SBX_SECRETS_KEY="c2J4LWJlbmNoLXNlY3JldHMta2V5LTMyLWJ5dGVzISE=" \
            taskset -c 0 "$SBX" serve --config "$config" --listen "127.0.0.1:$port" --data-dir "$data" --database-url "$database" \
            >"$OUT/sbx-forward-$port.log" 2>&1 &
        pids+=($!); PIDS+=($!)
        wait_for "http://127.0.0.1:$port/readyz"
    done
    path="/sbx/$(bench_sandbox http://127.0.0.1:4031 | sed 's|.*/sbx/||')/items/item_1"
    REQUIRE_2XX=1
    measure "direct-read-$round" "forward round $round: stored read at the holder" "http://127.0.0.1:4031$path"
    measure "forwarded-read-$round" "forward round $round: stored read through the standby" "http://127.0.0.1:4032$path"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    rm -rf "${dirs[@]}"
}
case " $BACKENDS " in
    *" postgres "*) for round in $(seq "$ROUNDS"); do forward_round "$round"; done ;;
esac

worse() { # name run: the lowest req/s of the rounds, with its latencies
    for round in $(seq "$ROUNDS"); do echo "${RESULT[$1-$2-$round]}"; done | sort -n | head -1
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
    echo "# Storage benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s; sbx and PostgreSQL on core 0, wrk on core 1; the worse of $ROUNDS alternating rounds."
    echo
    echo "| run | SQLite req/s | p50 ms | p99 ms | PostgreSQL req/s | p50 ms | p99 ms | PostgreSQL / SQLite | target |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for run in read create; do
        read -r s s50 s99 <<<"$(worse sqlite $run)"
        read -r p p50 p99 <<<"$(worse postgres $run 2>/dev/null || true)"
        target=">= 0.90"; [ $run = create ] && target=">= 0.50"
        echo "| $run | $s | $s50 | $s99 | $p | $p50 | $p99 | $(ratio "$p" "$s") | $target |"
    done
    case " $BACKENDS " in
        *" postgres "*)
            read -r d d50 d99 <<<"$(worse direct read)"
            read -r f f50 f99 <<<"$(worse forwarded read)"
            echo
            echo "Forwarding (PostgreSQL; a standby passes the stored read to the holder; both servers on core 0):"
            echo
            echo "| run | at the holder req/s | p50 ms | p99 ms | through the standby req/s | p50 ms | p99 ms | p50 added ms | target |"
            echo "|---|---|---|---|---|---|---|---|---|"
            echo "| read | $d | $d50 | $d99 | $f | $f50 | $f99 | $(awk -v a="$f50" -v b="$d50" 'BEGIN { printf "%.3f", a - b }') | < 1 ms |"
            ;;
    esac
} | tee "$OUT/database.md"
