#!/usr/bin/env bash
# Code sessions' figures against a release `sbx serve --demo` (see
# bench/sessions.py). Needs bubblewrap. Traffic goes to 127.0.0.1 only.
#
#   bench/sessions.sh            # 30 runs of each
#   RUNS=100 bench/sessions.sh
#   SBX_CONFIG=sbx.toml bench/sessions.sh   # e.g. [session_runtime] kind = "docker"
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p sbx-cli
SBX="${SBX:-$TARGET/release/sbx}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
DATA=$(mktemp -d)
CONFIG=()
if [ -n "${SBX_CONFIG:-}" ]; then CONFIG=(--config "$SBX_CONFIG"); fi
"$SBX" serve --demo "${CONFIG[@]}" --listen 127.0.0.1:4030 --data-dir "$DATA" >"$DATA/serve.log" 2>&1 & SERVE_PID=$!
PIDS+=($SERVE_PID)
wait_for http://127.0.0.1:4030/api/v1/health
TOKEN=$(cat "$DATA/admin-token")
for _ in $(seq 50); do grep -q 'API key:' "$DATA/serve.log" && break; sleep 0.1; done
BASE=$(grep -o 'base URL: [^ ]*' "$DATA/serve.log" | head -1 | cut -d' ' -f3)
KEY=$(grep -o 'API key:  [^ ]*' "$DATA/serve.log" | head -1 | awk '{print $3}')
python3 bench/sessions.py http://127.0.0.1:4030 "$TOKEN" "$BASE" "$KEY" "${RUNS:-30}"
# Stopped first: it unmounts its sessions' workspaces on the way out.
kill "$SERVE_PID"
wait "$SERVE_PID" || true
rm -rf "$DATA"
