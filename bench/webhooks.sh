#!/usr/bin/env bash
# Webhook delivery throughput and memory: `sbx serve` (core 0) delivering to
# a local Node receiver (core 1). A project whose `POST /bursts` emits 1,000
# events per request feeds the outbox.
#
#   bench/webhooks.sh
#   EVENTS=20000 PENDING=100000 bench/webhooks.sh
#   SBX=/tmp/sbx-before bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${EVENTS:-20000}"
PENDING="${PENDING:-100000}"
PORT="${PORT:-18482}"
RECEIVER_PORT="${RECEIVER_PORT:-18483}"
OUT="bench/results"
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$OUT"
if [ -z "${SBX:-}" ]; then
    cargo build --release --quiet -p sbx-cli
    SBX="$TARGET/release/sbx"
fi
DATA="$(mktemp -d)"
export SBX_URL="http://127.0.0.1:$PORT" SBX_TOKEN="bench-admin-token-0123456789"
SBX_ADMIN_TOKEN="$SBX_TOKEN" taskset -c 0 "$SBX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
    --allow-private-egress >"$OUT/webhooks-serve.log" 2>&1 &
SERVER=$!
taskset -c 1 node bench/receiver.js "$RECEIVER_PORT" & RECEIVER=$!
trap 'kill $SERVER $RECEIVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 300); do curl -s -o /dev/null "$SBX_URL/api/v1/health" && break; sleep 0.1; done

admin() { # METHOD PATH [JSON]
    curl -sf -X "$1" -H "Authorization: Bearer $SBX_TOKEN" -H 'content-type: application/json' \
        "$SBX_URL/api/v1$2" ${3:+-d "$3"}
}
received() { curl -s "http://127.0.0.1:$RECEIVER_PORT/"; }
burst() { # BASE COUNT
    curl -sf -o /dev/null -H 'content-type: application/json' "$1/bursts" -d "{\"count\": $2}"
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }

"$SBX" import bench/events --name events >/dev/null
CREATED="$(admin POST /sandboxes '{"project": "events", "auth": "none"}')"
BASE="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["base_url"])' <<<"$CREATED")"
ID="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$CREATED")"
ENDPOINT="$(admin POST "/sandboxes/$ID/webhook-endpoints" "{\"url\": \"http://127.0.0.1:$RECEIVER_PORT/hooks\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"

echo "== throughput: $EVENTS events to one endpoint"
burst "$BASE" 1000
until [ "$(received)" -ge 1000 ]; do sleep 0.05; done   # warm-up
start=$(date +%s.%N)
for _ in $(seq 1 $((EVENTS / 1000))); do burst "$BASE" 1000; done
target=$((1000 + EVENTS))
until [ "$(received)" -ge "$target" ]; do sleep 0.02; done
end=$(date +%s.%N)
awk -v n="$EVENTS" -v s="$start" -v e="$end" 'BEGIN {printf "%d deliveries in %.2f s: %.0f deliveries/s\n", n, e - s, n / (e - s)}'

echo "== memory with $PENDING deliveries pending (the endpoint refuses connections)"
admin PATCH "/sandboxes/$ID/webhook-endpoints/$ENDPOINT" '{"url": "http://127.0.0.1:1/hooks"}' >/dev/null
before=$(rss_kib)
for _ in $(seq 1 $((PENDING / 1000))); do burst "$BASE" 1000; done
sleep 10
after=$(rss_kib)
echo "RSS before ${before} KiB, with $PENDING pending ${after} KiB"
