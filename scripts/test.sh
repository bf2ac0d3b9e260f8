#!/usr/bin/env bash
# Every test of the workspace, plus the format and lint gates.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/corpus.sh
export SBX_CORPUS_DIR="${SBX_CORPUS_HOME:-$HOME/.cache/smartsandbox/corpus}/package/api"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --all-targets --locked --no-fail-fast
