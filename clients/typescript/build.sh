#!/usr/bin/env bash
# Compiles src/ and test/ to dist/ with the pinned tsc, when a source is newer than the last
# build (offline: needs only what setup.sh installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[ -x node_modules/.bin/tsc ] || { echo "build.sh: run setup.sh first" >&2; exit 2; }
if [ ! -f dist/.built ] || [ -n "$(find src test tsconfig.json package-lock.json -newer dist/.built | head -1)" ]; then
  node_modules/.bin/tsc -p tsconfig.json
  touch dist/.built
fi
