#!/usr/bin/env bash
# Every test of the workspace, plus the format and lint gates. The store's
# contract runs on SQLite and PostgreSQL, and the integration suite runs
# twice: on SQLite, then on PostgreSQL (a throwaway cluster this script
# starts, see scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/corpus.sh
export SBX_CORPUS_DIR="${SBX_CORPUS_HOME:-$HOME/.cache/smartsandbox/corpus}/package/api"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# A fresh cluster each run: every test makes a database of its own.
scripts/postgres.sh stop
SBX_TEST_POSTGRES_URL="$(scripts/postgres.sh)"
export SBX_TEST_POSTGRES_URL
trap 'scripts/postgres.sh stop' EXIT

failed=0
cargo nextest run --workspace --all-targets --locked --no-fail-fast || failed=1
echo "The integration suite again, on PostgreSQL:"
SBX_TEST_BACKEND=postgres cargo nextest run -p sbx-server --test it --locked --no-fail-fast || failed=1
exit "$failed"
