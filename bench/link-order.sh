#!/usr/bin/env bash
# Regenerates crates/cli/link-order.txt: the functions `sbx` runs to start
# (`sbx mock` on Petstore, `sbx serve --demo`) and to answer typical
# requests, which the release link places side by side (crates/cli/build.rs).
# The kernel maps a binary's code 64 KiB at a time around each first touch:
# scattered over the 30 MB text, the ~2 MB that start-up runs made ~12 MB
# resident. Traced with valgrind's callgrind (installed from apt if
# missing); run it after changes that move start-up or the request path.
#
#   bench/link-order.sh                 # this build
#   SBX=/path/to/sbx bench/link-order.sh
#
# Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
TARGET="${CARGO_TARGET_DIR:-target}"
[ -n "${SBX:-}" ] || cargo build --release --quiet -p sbx-cli
SBX="${SBX:-$TARGET/release/sbx}"
OUT=$(mktemp -d)

# shellcheck source=bench/lib.sh
source bench/lib.sh

# trace NAME BASE_URL COMMAND...: start under callgrind, answer the
# requests of $REQUESTS (method path [json body]), stop.
trace() {
    local name=$1 base=$2
    shift 2
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.out" --demangle=no \
        "$@" >"$OUT/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_for "$base/$FIRST"
    while read -r method path body; do
        [ -n "$method" ] || continue
        curl -s -o /dev/null -X "$method" -H 'content-type: application/json' \
            ${body:+-d "$body"} "$base$path" || true
    done <<<"$REQUESTS"
    sleep 1
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
}

FIRST=v1/pets
REQUESTS='GET /v1/pets
GET /v1/pets/1
POST /v1/pets {"name":"rex","photoUrls":[]}
POST /v1/pets {"name":1}'
trace mock http://127.0.0.1:4091 "$SBX" mock crates/server/tests/fixtures/petstore.yaml --listen 127.0.0.1:4091

DATA=$(mktemp -d)
FIRST=api/v1/health
REQUESTS='GET /api/v1/health'
trace demo http://127.0.0.1:4092 "$SBX" serve --demo --listen 127.0.0.1:4092 --data-dir "$DATA"
rm -rf "$DATA"

# Functions of the sbx binary itself that ran (callgrind names each once
# in full, as `fn=(id) name`, then by its id; `ob=` says whose it is):
# `sbx mock`'s first, so that its few megabytes are not interleaved with
# what only `sbx serve` runs.
python3 - "$SBX" "$OUT/mock.out" "$OUT/demo.out" >crates/cli/link-order.txt <<'EOF'
import os, re, sys
binary = os.path.realpath(sys.argv[1])
# Symbols only (callgrind also names what it could not: addresses, "(below main)").
symbol = re.compile(r"[A-Za-z_][A-Za-z0-9_.$]*")
listed = set()
for path in sys.argv[2:]:
    objects, names, current, ran = {}, {}, None, set()
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            m = re.match(r"ob=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m.group(2):
                objects[m.group(1)] = os.path.realpath(m.group(2))
            current = objects.get(m.group(1))
        elif line.startswith(("fn=", "cfn=")):
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m.group(2):
                names[m.group(1)] = m.group(2)
            if line.startswith("fn=") and current == binary:
                ran.add(names[m.group(1)])
    new = sorted(f for f in ran - listed if symbol.fullmatch(f))
    listed.update(new)
    print("\n".join(new))
EOF
echo "$(wc -l <crates/cli/link-order.txt) functions in crates/cli/link-order.txt"
rm -rf "$OUT"
