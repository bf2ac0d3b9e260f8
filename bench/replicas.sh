#!/usr/bin/env bash
# The scaling benchmark: one server against three sharing one PostgreSQL
# database with `spread_sandboxes`, on three sandboxes, side by side.
#
# This machine has two cores, so servers cannot each get a core of their
# own: every server is held to the same CPU budget instead — a cgroup (v1
# `cpu` controller) quota of QUOTA% of one core (default 25), all servers
# on core 0 — so three servers have three times one server's CPU, as three
# machines would. PostgreSQL and wrk share core 1.
#
# Each sandbox gets one wrk (-c CONNECTIONS/3), run at once; their req/s
# add up. Throughput is what servers do at their CPU ceiling, so each run
# also says how often they hit it: the share of quota periods in which
# their cgroups were throttled (cpu.stat). A run well below ~90% was bound
# by round trips, not CPU, and says little about scaling. The default
# CONNECTIONS (96: 32 per sandbox) keeps three servers' group commits
# busy; with 8 per sandbox (the default until 2026-12-05) three servers at
# QUOTA=15 used about 35% of their 45% of a core on creates.
# Loads: stored reads (memory, the hot path) and stateful creates
# (group commit to PostgreSQL), each sent
#   - to the sandbox's own server, as a load balancer routing by the
#     sandbox's "server" would (the one-server run sends everything to it);
#   - and, with three servers, to another server than the sandbox's (the
#     extra hops: a member forwards to the holder, which passes it on).
# One server and three alternate, ROUNDS times each (default 2): the worse
# of each is reported.
#
#   bench/replicas.sh
#   SBX=/tmp/sbx-build QUOTA=30 DURATION=10 bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-2}"
QUOTA="${QUOTA:-25}"
CONNECTIONS="${CONNECTIONS:-96}"
OUT="bench/results"
TARGET="${CARGO_TARGET_DIR:-target}"
CGROUPS=/sys/fs/cgroup/cpu
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -w "$CGROUPS" ] || { echo "needs a writable cgroup v1 cpu controller at $CGROUPS (root)" >&2; exit 1; }
[ -n "${SBX:-}" ] || cargo build --release --quiet -p sbx-cli
SBX="${SBX:-$TARGET/release/sbx}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
export SBX_PG_DIR=/tmp/sbx-bench-replicas-postgres
finish() {
    cleanup
    sleep 0.5
    for group in "$CGROUPS"/sbx-bench-*; do [ -d "$group" ] && rmdir "$group" 2>/dev/null; done
    scripts/postgres.sh stop
}
trap finish EXIT
scripts/postgres.sh stop
PG_URL="$(SBX_PG_OPTIONS="-c fsync=on -c synchronous_commit=off" taskset -c 1 scripts/postgres.sh)"
PSQL="$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)"
TOKEN="bench-admin-token-$(date +%s)"
SECRETS="c2J4LWJlbmNoLXNlY3JldHMta2V5LTMyLWJ5dGVzISE="
PER_WRK=$((CONNECTIONS / 3))
declare -A RESULT

limit() { # name pid: held to QUOTA% of a core
    local group="$CGROUPS/sbx-bench-$1"
    mkdir -p "$group"
    echo $((QUOTA * 1000)) >"$group/cpu.cfs_quota_us"
    echo "$2" >"$group/cgroup.procs"
}

admin() { # method URL [body]
    curl -s -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"} "$2"
}

start_servers() { # count round: servers on a new database, the first holding it (PORTS)
    local database config port data
    database="${PG_URL%/*}/bench_replicas_$2_$1_$RANDOM"
    "$PSQL" -q "$PG_URL" -c "CREATE DATABASE ${database##*/}"
    config=$(mktemp); echo "spread_sandboxes = true" >"$config"
    PORTS=()
    for n in $(seq "$1"); do
        port=$((4040 + n)); data=$(mktemp -d)
        SBX_ADMIN_TOKEN="$TOKEN" SBX_SECRETS_KEY="$SECRETS" SBX_LOG=warn \
            taskset -c 0 "$SBX" serve --config "$config" --listen "127.0.0.1:$port" --data-dir "$data" \
            --database-url "$database" >"$OUT/sbx-replicas-$port.log" 2>&1 &
        PIDS+=($!); limit "$port" $!
        wait_for "http://127.0.0.1:$port/readyz"
        PORTS+=("$port")
    done
}

# Three sandboxes made through the holder; "id port-of-its-server" each.
sandboxes() { # ports...
    local id server port
    "$SBX" import bench/behaviours --name bench --url "http://127.0.0.1:$1" --token "$TOKEN" >/dev/null
    declare -A port_of
    for port in "$@"; do
        port_of[$(curl -s "http://127.0.0.1:$port/readyz" | python3 -c 'import json, sys; print(json.load(sys.stdin)["replica"])')]=$port
    done
    for _ in 1 2 3; do
        id=$(admin POST "http://127.0.0.1:$1/api/v1/sandboxes" '{"project": "bench", "auth": "none"}' |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
        server=$(admin GET "http://127.0.0.1:$1/api/v1/sandboxes/$id" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["server"])')
        echo "$id ${port_of[$server]}"
    done
}

# Quota periods and throttled ones, summed over the servers' cgroups.
periods() {
    local port
    for port in "${PORTS[@]}"; do cat "$CGROUPS/sbx-bench-$port/cpu.stat"; done |
        awk '/^nr_periods/ {p += $2} /^nr_throttled/ {t += $2} END {print p + 0, t + 0}'
}

# One wrk per sandbox at once, to the port given for each; prints
# "summed-req/s worst-p50 worst-p99 throttled-%".
load_all() { # script "port id path" ...
    local script=$1 outs=() pids=() out before after
    shift
    before=$(periods)
    for target in "$@"; do
        read -r port id path <<<"$target"
        out=$(mktemp); outs+=("$out")
        CONNECTIONS=$PER_WRK REQUIRE_2XX=1 load "http://127.0.0.1:$port/sbx/$id$path" "$script" >"$out" &
        pids+=($!)
    done
    wait "${pids[@]}"
    after=$(periods)
    cat "${outs[@]}" | awk -v before="$before" -v after="$after" '
        {rps += $1; if ($2 > p50) p50 = $2; if ($3 > p99) p99 = $3}
        END {
            split(before, b, " "); split(after, a, " ")
            periods = a[1] - b[1]
            printf "%.0f %.3f %.3f %.0f\n", rps, p50, p99, periods > 0 ? 100 * (a[2] - b[2]) / periods : 0
        }'
    rm -f "${outs[@]}"
}

measure() { # key label script targets...
    local key=$1 label=$2
    shift 2
    echo "== $label"
    RESULT[$key]=$(load_all "$@")
    echo "   ${RESULT[$key]}"
}

run() { # count round
    local count=$1 round=$2 own=() other=() id port
    start_servers "$count" "$round"
    while read -r id port; do
        own+=("$port $id")
        # The next server after its own.
        for i in "${!PORTS[@]}"; do
            [ "${PORTS[$i]}" = "$port" ] && other+=("${PORTS[$(((i + 1) % count))]} $id")
        done
    done < <(sandboxes "${PORTS[@]}")
    echo "servers ${PORTS[*]}; each sandbox at its server: ${own[*]}"
    measure "$count-read-own-$round" "$count server(s), round $round: stored reads at each sandbox's server" "" \
        "${own[@]/%/ /v1/items/item_1}"
    measure "$count-create-own-$round" "$count server(s), round $round: stateful creates at each sandbox's server" \
        bench/create.lua "${own[@]/%/ /v1/items}"
    if [ "$count" -gt 1 ]; then
        measure "$count-read-other-$round" "$count servers, round $round: stored reads at another server" "" \
            "${other[@]/%/ /v1/items/item_1}"
    fi
    cleanup; PIDS=()
    sleep 0.5
}

for round in $(seq "$ROUNDS"); do
    run 1 "$round"
    run 3 "$round"
done

worse() { # key-prefix: the lowest req/s of the rounds, with its latencies
    for round in $(seq "$ROUNDS"); do echo "${RESULT[$1-$round]}"; done | sort -n | head -1
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
    echo "# Scaling benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Each server held to ${QUOTA}% of a core (cgroup cpu quota), all on core 0; PostgreSQL and wrk on core 1;"
    echo "three sandboxes, one wrk -t1 -c$PER_WRK -d${DURATION}s each, at once; the worse of $ROUNDS alternating rounds."
    echo
    echo "Throttled: the share of the servers' quota periods in which they hit their quota (~100%: CPU-bound)."
    echo
    echo "| load | 1 server req/s | p50 ms | p99 ms | throttled | 3 servers req/s | p50 ms | p99 ms | throttled | 3 / 1 | target |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for run in read-own create-own; do
        read -r a a50 a99 at <<<"$(worse "1-$run")"
        read -r b b50 b99 bt <<<"$(worse "3-$run")"
        echo "| ${run%-own} at the sandbox's server | $a | $a50 | $a99 | $at% | $b | $b50 | $b99 | $bt% | $(ratio "$b" "$a") | >= 2.5 |"
    done
    read -r a a50 a99 at <<<"$(worse 1-read-own)"
    read -r b b50 b99 bt <<<"$(worse 3-read-other)"
    echo "| read at another server | $a | $a50 | $a99 | $at% | $b | $b50 | $b99 | $bt% | $(ratio "$b" "$a") | — |"
} | tee "$OUT/replicas.md"
