#!/usr/bin/env bash
# The scaling benchmark: one server against three sharing one PostgreSQL
# database with `spread_sandboxes`, on three sandboxes, side by side.
#
# This machine has two cores, so servers cannot each get a core of their
# own: every server is held to the same CPU budget instead — a cgroup (v1
# `cpu` controller) quota of QUOTA% of one core (default 15) in every
# PERIOD µs (default 100000, the kernel's), all servers on core 0 — so
# three servers have three times one server's CPU, as three machines
# would. PostgreSQL and wrk share core 1.
#
# Each sandbox gets one wrk, run at once; their req/s add up.
# Throughput here is capacity: the most a configuration serves. With a
# closed-loop load generator that depends on how many requests are in
# flight (group commit batches what a server has waiting; a server's
# event loop handles more per wake-up), so each load runs at every
# concurrency in LEVELS (connections per sandbox, default "32 96 288") and
# the best is kept, with the level that gave it. Each run also says how
# often the servers hit their CPU ceiling: the share of quota periods in
# which their cgroups were throttled (cpu.stat; ~100%: CPU-bound), and how
# busy core 1 was (PostgreSQL and wrk: well under 100%, or they were the
# limit). Until 2026-12-05 this ran 8 connections per sandbox only: three
# servers then used about 35% of their 45% of a core on creates (bound by
# round trips to PostgreSQL, not CPU), and creates read 1.3-2.1x.
# Loads: stored reads (memory, the hot path) and stateful creates
# (group commit to PostgreSQL), each sent
#   - to the sandbox's own server, as a load balancer routing by the
#     sandbox's "server" would (the one-server run sends everything to it);
#   - and, reads only, with three servers, to another server than the
#     sandbox's (the extra hop: a member passes it to the sandbox's).
# One server and three run side by side, at each level one after the
# other (the machine's speed drifts: pairs seconds apart share it),
# ROUNDS times (default 5): each round gives its ratios, and the report
# gives their median and the lowest. Core 0 is kept from idling (SPIN,
# below).
# A third set-up calibrates the method: three servers sharing nothing
# (each on a database of its own, serving one sandbox) — what three
# processes held to the same quotas on core 0 can serve at best on this
# machine. Three replicas' ratio over that ceiling's is their efficiency.
#
#   bench/replicas.sh
#   SBX=/tmp/sbx-build DURATION=10 LEVELS="8 32 96 288" ROUNDS=3 bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-5}"
QUOTA="${QUOTA:-15}"
LEVELS="${LEVELS:-32 96 288}"
PERIOD="${PERIOD:-100000}"
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
finish() { # servers stopped (a drain takes a second or two), then their groups and PostgreSQL
    cleanup
    wait "${PIDS[@]}" 2>/dev/null || true
    for group in "$CGROUPS"/sbx-bench-*; do rmdir "$group" 2>/dev/null || true; done
    scripts/postgres.sh stop
}
trap finish EXIT
scripts/postgres.sh stop
PG_URL="$(SBX_PG_OPTIONS="-c fsync=on -c synchronous_commit=off" taskset -c 1 scripts/postgres.sh)"
PSQL="$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)"
TOKEN="bench-admin-token-$(date +%s)"
SECRETS="c2J4LWJlbmNoLXNlY3JldHMta2V5LTMyLWJ5dGVzISE="
declare -A RESULT

limit() { # name pid: held to QUOTA% of a core
    local group="$CGROUPS/sbx-bench-$1"
    mkdir -p "$group"
    echo "$PERIOD" >"$group/cpu.cfs_period_us"
    echo $((QUOTA * PERIOD / 100)) >"$group/cpu.cfs_quota_us"
    echo "$2" >"$group/cgroup.procs"
}

admin() { # method URL [body]
    curl -s -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"} "$2"
}

start_servers() { # count first-port: servers on a new database, the first holding it (PORTS)
    local database config port data
    database="${PG_URL%/*}/bench_replicas_$1_$RANDOM"
    "$PSQL" -q "$PG_URL" -c "CREATE DATABASE ${database##*/}"
    config=$(mktemp); echo "spread_sandboxes = true" >"$config"
    PORTS=()
    for n in $(seq "$1"); do
        port=$(($2 + n)); data=$(mktemp -d)
        SBX_ADMIN_TOKEN="$TOKEN" SBX_SECRETS_KEY="$SECRETS" SBX_LOG=warn \
            taskset -c 0 "$SBX" serve --config "$config" --listen "127.0.0.1:$port" --data-dir "$data" \
            --database-url "$database" >"$OUT/sbx-replicas-$port.log" 2>&1 &
        PIDS+=($!); limit "$port" $!
        wait_for "http://127.0.0.1:$port/readyz"
        PORTS+=("$port")
    done
}

# COUNT sandboxes (default 3) made through the holder; "id
# port-of-its-server" each.
sandboxes() { # ports...
    local id server port
    "$SBX" import bench/behaviours --name bench --url "http://127.0.0.1:$1" --token "$TOKEN" >/dev/null
    declare -A port_of
    for port in "$@"; do
        port_of[$(curl -s "http://127.0.0.1:$port/readyz" | python3 -c 'import json, sys; print(json.load(sys.stdin)["replica"])')]=$port
    done
    for _ in $(seq "${COUNT:-3}"); do
        id=$(admin POST "http://127.0.0.1:$1/api/v1/sandboxes" '{"project": "bench", "auth": "none"}' |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
        server=$(admin GET "http://127.0.0.1:$1/api/v1/sandboxes/$id" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["server"])')
        echo "$id ${port_of[$server]}"
    done
}

# Quota periods and throttled ones, summed over the servers' cgroups.
periods() { # ports...
    local port
    for port in "$@"; do cat "$CGROUPS/sbx-bench-$port/cpu.stat"; done |
        awk '/^nr_periods/ {p += $2} /^nr_throttled/ {t += $2} END {print p + 0, t + 0}'
}

# Core 1's busy and total time so far (jiffies): PostgreSQL and wrk's
# core, which must not be the limit.
core1() { awk '$1 == "cpu1" {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

# One wrk per sandbox at once, with `connections` each, to the port given
# for each; prints "summed-req/s worst-p50 worst-p99 throttled-%" (of
# the servers on `ports`) "core-1-busy-%".
load_all() { # ports connections script "port id path" ...
    local ports=$1 connections=$2 script=$3 outs=() pids=() out before after core_before core_after
    shift 3
    # shellcheck disable=SC2086 # a list of ports
    before=$(periods $ports)
    core_before=$(core1)
    for target in "$@"; do
        read -r port id path <<<"$target"
        out=$(mktemp); outs+=("$out")
        CONNECTIONS=$connections REQUIRE_2XX=1 load "http://127.0.0.1:$port/sbx/$id$path" "$script" >"$out" &
        pids+=($!)
    done
    wait "${pids[@]}"
    # shellcheck disable=SC2086
    after=$(periods $ports)
    core_after=$(core1)
    # Each sandbox's req/s, to the log: how evenly the servers served.
    echo "   each: $(cut -d' ' -f1 "${outs[@]}" | xargs)" >&2
    cat "${outs[@]}" | awk -v before="$before" -v after="$after" -v core_before="$core_before" -v core_after="$core_after" '
        {rps += $1; if ($2 > p50) p50 = $2; if ($3 > p99) p99 = $3}
        END {
            split(before, b, " "); split(after, a, " ")
            split(core_before, cb, " "); split(core_after, ca, " ")
            periods = a[1] - b[1]; jiffies = ca[2] - cb[2]
            printf "%.0f %.3f %.3f %.0f %.0f\n", rps, p50, p99, (periods > 0 ? 100 * (a[2] - b[2]) / periods : 0),
                (jiffies > 0 ? 100 * (ca[1] - cb[1]) / jiffies : 0)
        }'
    rm -f "${outs[@]}"
}

# Servers and their three sandboxes: PORTS, OWN ("port id", each sandbox
# at its own server) and OTHER (at the next server after its own).
setup() { # count first-port
    local id port
    start_servers "$1" "$2"
    OWN=(); OTHER=()
    while read -r id port; do
        OWN+=("$port $id")
        for i in "${!PORTS[@]}"; do
            [ "${PORTS[$i]}" = "$port" ] && OTHER+=("${PORTS[$(((i + 1) % $1))]} $id")
        done
    done < <(sandboxes "${PORTS[@]}")
    echo "servers ${PORTS[*]}; each sandbox at its server: ${OWN[*]}"
}

# The set-ups run side by side (an idle server uses ~0.2% of a core).
setup 1 4040
ONE_PORTS="${PORTS[*]}"; ONE_OWN=("${OWN[@]}")
setup 3 4050
THREE_PORTS="${PORTS[*]}"; THREE_OWN=("${OWN[@]}"); THREE_OTHER=("${OTHER[@]}")
APART_PORTS=""; APART_OWN=()
for first in 4060 4061 4062; do
    COUNT=1 setup 1 "$first"
    APART_PORTS+=" ${PORTS[*]}"; APART_OWN+=("${OWN[@]}")
done
declare -A PORTS_OF=([1]="$ONE_PORTS" [3]="$THREE_PORTS" [3-other]="$THREE_PORTS" [apart]="$APART_PORTS")

targets_of() { # set-up path: its "port id path" targets, in TARGETS
    case $1 in
        1) TARGETS=("${ONE_OWN[@]/%/ $2}") ;;
        3) TARGETS=("${THREE_OWN[@]/%/ $2}") ;;
        3-other) TARGETS=("${THREE_OTHER[@]/%/ $2}") ;;
        apart) TARGETS=("${APART_OWN[@]/%/ $2}") ;;
    esac
}

# One load at each level of LEVELS, each level on every set-up in turn,
# seconds apart, so the machine's drift falls on all alike; keeps each
# set-up's best as RESULT[set-up-load-round]: "req/s p50 p99 throttled-%
# core-1-busy-% connections-per-sandbox".
measure() { # round load label script path set-ups...
    local round=$1 load=$2 label=$3 script=$4 path=$5 level setup result key
    shift 5
    echo "== round $round: $label"
    for level in $LEVELS; do
        for setup in "$@"; do
            targets_of "$setup" "$path"
            result=$(load_all "${PORTS_OF[$setup]}" "$level" "$script" "${TARGETS[@]}")
            echo "   $setup -c$level: $result"
            key="$setup-$load-$round"
            if [ "${result%% *}" -gt "$(cut -d' ' -f1 <<<"${RESULT[$key]:-0}")" ]; then
                RESULT[$key]="$result $level"
            fi
        done
    done
}

# Core 0 never idles: a spinner of the lowest priority (SCHED_IDLE: it
# runs only when nothing else on the core wants to, and gives way at once)
# takes whatever the servers leave. Without it, servers held to their
# quota leave core 0 idle most of the time (85% for one, 55% for three);
# an idle virtual CPU halts, and the host runs something else until it
# wakes. In three paired rounds each way (2026-12-05), without the spinner
# every set-up served 9-12% fewer reads and 23% fewer creates, and the
# ratio of reads scattered more (2.48-2.98 against 2.81-2.84). SPIN=0
# leaves it out.
if [ "${SPIN:-1}" = 1 ]; then
    chrt --idle 0 taskset -c 0 bash -c 'while :; do :; done' &
    PIDS+=($!)
fi

for round in $(seq "$ROUNDS"); do
    measure "$round" read "stored reads (3-other: at another server than the sandbox's)" "" /v1/items/item_1 1 3 apart 3-other
    measure "$round" create "stateful creates" bench/create.lua /v1/items 1 3 apart
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
reqs() { cut -d' ' -f1 <<<"${RESULT[$1]}"; }
cell() { # key: "req/s (c) throttled-% core-1-%"
    local rps p50 throttled core c
    read -r rps p50 _ throttled core c <<<"${RESULT[$1]}"
    echo "$rps | $c | $p50 | $throttled% | $core%"
}
# The median and the lowest of a column of ratios.
summary() { sort -n | awk '{v[NR] = $1} END {m = (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); printf "median %.2f, lowest %.2f", m, v[1]}'; }
# Each round's ratios are of loads run seconds apart: pairs that share the
# machine's speed of the moment.
ratios() { # load over under: one ratio a round
    for round in $(seq "$ROUNDS"); do ratio "$(reqs "$2-$1-$round")" "$(reqs "$3-$1-$round")"; echo; done
}
{
    echo "# Scaling benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Each server held to ${QUOTA}% of a core (cgroup cpu quota, period ${PERIOD} µs), all on core 0$([ "${SPIN:-1}" = 1 ] && echo ", which a SCHED_IDLE spinner keeps from idling");"
    echo "PostgreSQL and wrk on core 1; three sandboxes, one wrk -t1 -d${DURATION}s each, at once, at -c $LEVELS each (the best kept: c);"
    echo "$ROUNDS rounds, the set-ups taking turns at each level. Throttled: the share of the servers' quota periods in which"
    echo "they hit their quota (~100%: CPU-bound); core 1: how busy PostgreSQL and wrk's core was. Sharing nothing: three servers"
    echo "each on a database of its own, serving one sandbox — the most three servers can serve by this method on this machine."
    echo
    echo "| round | load | 1 server req/s | c | p50 ms | throttled | core 1 | 3 replicas req/s | c | p50 ms | throttled | core 1 | 3 sharing nothing req/s | c | p50 ms | throttled | core 1 | replicas / 1 | sharing nothing / 1 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for round in $(seq "$ROUNDS"); do
        for load in read create; do
            echo "| $round | $load | $(cell "1-$load-$round") | $(cell "3-$load-$round") | $(cell "apart-$load-$round") |" \
                "$(ratio "$(reqs "3-$load-$round")" "$(reqs "1-$load-$round")") | $(ratio "$(reqs "apart-$load-$round")" "$(reqs "1-$load-$round")") |"
        done
        echo "| $round | read at another server | $(cell "1-read-$round") | $(cell "3-other-read-$round") | | | | | |" \
            "$(ratio "$(reqs "3-other-read-$round")" "$(reqs "1-read-$round")") | |"
    done
    echo
    echo "Over the rounds (target: three replicas >= 2.5x one server):"
    echo
    for load in read create; do
        echo "- ${load}s: three replicas / one server $(ratios "$load" 3 1 | summary);" \
            "sharing nothing / one server $(ratios "$load" apart 1 | summary);" \
            "three replicas / sharing nothing $(ratios "$load" 3 apart | summary)."
    done
    echo "- reads at another server than the sandbox's: three replicas / one server $(ratios read 3-other 1 | summary)."
} | tee "$OUT/replicas.md"
