#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests (initdb + pg_ctl, no
# system service) on a free loopback port and prints its URL. The cluster
# lives under $SBX_PG_DIR (default /tmp/sbx-test-postgres) and is reused
# while it answers; `scripts/postgres.sh stop` stops it. It is tuned for
# tests (fsync off); $SBX_PG_OPTIONS adds server options after that (the
# benchmark's `-c fsync=on -c synchronous_commit=off`). `restart` restarts
# it (a fast shutdown, as a failover or an upgrade does).
set -euo pipefail

dir="${SBX_PG_DIR:-/tmp/sbx-test-postgres}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$bin/initdb" ] || { echo "PostgreSQL's server binaries are missing (Debian: apt-get install postgresql)" >&2; exit 1; }

# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` user the Debian package creates.
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = restart ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w restart >/dev/null
    exit 0
fi

if [ "${1:-}" = stop ]; then
    # A cluster whose server is already gone (killed, the machine
    # restarted) leaves its pid file behind: nothing to stop.
    if [ -f "$dir/data/postmaster.pid" ] && ! as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1; then
        rm -f "$dir/data/postmaster.pid"
    fi
    exit 0
fi

if [ -f "$dir/port" ] && as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$dir/port")"; then
    echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
    exit 0
fi

rm -rf "$dir"
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
# Trust on loopback only: a test cluster, never a real one. C collation
# sorts as SQLite does.
as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale -E UTF8 >"$dir/initdb.log"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
echo "$port" >"$dir/port"
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=500 -c shared_buffers=128MB ${SBX_PG_OPTIONS:-}" start >/dev/null
echo "postgres://postgres@127.0.0.1:$port/postgres"
