#!/usr/bin/env bash
# What an OAuth access token costs against an API key (issue 16: under
# 10% more): one `sbx serve`, two sandboxes of the load benchmark's spec —
# one secured by an HTTP bearer scheme (its sk_test_ key), one by an
# oauth2 scheme with a scope (a JWT from its own token endpoint) — called
# alternately, ROUNDS times. Prints requests per second of each run and the
# ratio. Traffic goes to 127.0.0.1 only.
#
#   bench/oauth.sh
#   ROUNDS=5 DURATION=10 bench/oauth.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8}"
TARGET="${CARGO_TARGET_DIR:-target}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
cargo build --release --quiet -p sbx-cli
SBX="${SBX:-$TARGET/release/sbx}"

# shellcheck source=bench/lib.sh
source bench/lib.sh

WORK=$(mktemp -d)
trap 'cleanup; rm -rf "$WORK"' EXIT
ADMIN="bench-admin-token-0123456789"
URL=http://127.0.0.1:4091
sed -e 's|^servers: \[{ url: /v1 }\]$|servers: [{ url: /v1 }]\nsecurity: [{ bearer: [] }]|' \
    -e 's|^components:$|components:\n  securitySchemes:\n    bearer: { type: http, scheme: bearer }|' \
    bench/spec.yaml >"$WORK/keyed.yaml"
sed -e 's|^servers: \[{ url: /v1 }\]$|servers: [{ url: /v1 }]\nsecurity: [{ oauth: ["items:read"] }]|' \
    -e 's|^components:$|components:\n  securitySchemes:\n    oauth: { type: oauth2, flows: { clientCredentials: { tokenUrl: /token, scopes: { "items:read": read } } } }|' \
    bench/spec.yaml >"$WORK/oauth.yaml"

SBX_ADMIN_TOKEN="$ADMIN" taskset -c 0 "$SBX" serve --listen 127.0.0.1:4091 --data-dir "$WORK/data" >/dev/null 2>&1 &
PIDS+=("$!")
wait_for "$URL/api/v1/health"
api() { # METHOD PATH [JSON]
    curl -sf -X "$1" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        ${3:+--data "$3"} "$URL/api/v1$2"
}
for project in keyed oauth; do
    api POST /projects "$(jq -n --arg name "$project" --rawfile spec "$WORK/$project.yaml" '{name: $name, spec: $spec}')" >/dev/null
done
keyed=$(api POST /sandboxes '{"project": "keyed"}')
oauth=$(api POST /sandboxes '{"project": "oauth"}')
KEYED_ID=$(jq -r .id <<<"$keyed")
KEY=$(jq -r .api_key <<<"$keyed")
OAUTH_ID=$(jq -r .id <<<"$oauth")
client=$(api POST "/sandboxes/$OAUTH_ID/oauth/clients" '{"name": "bench"}')
TOKEN=$(curl -sf -u "$(jq -r .client_id <<<"$client"):$(jq -r .client_secret <<<"$client")" \
    -d grant_type=client_credentials -d scope=items:read "$URL/sbx/$OAUTH_ID/__sbx/oauth/token" | jq -r .access_token)

run() { # SANDBOX CREDENTIAL
    local target="$URL/sbx/$1/v1/items/1"
    curl -sf -o /dev/null -H "Authorization: Bearer $2" "$target"
    taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -H "Authorization: Bearer $2" "$target" |
        awk '/Non-2xx/ {print "non-2xx answers" > "/dev/stderr"; exit 1} /Requests\/sec/ {print $2}'
}
for round in $(seq "$ROUNDS"); do
    key_rps=$(run "$KEYED_ID" "$KEY")
    jwt_rps=$(run "$OAUTH_ID" "$TOKEN")
    echo "round $round: sk_test_ key $key_rps req/s, JWT $jwt_rps req/s, JWT/key $(awk -v a="$jwt_rps" -v b="$key_rps" 'BEGIN {printf "%.3f", a/b}')"
done
