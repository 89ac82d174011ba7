#!/usr/bin/env bash
# Installs what the TypeScript client, its code generation and its tests need, pinned by
# package-lock.json, into node_modules (npm ci), then compiles to dist/. Idempotent: quick
# when node_modules already matches the lockfile and dist/ is newer than the sources.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
stamp=node_modules/.inferd-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
newest_source="$(find src test tsconfig.json package-lock.json -newer dist/.built 2>/dev/null | head -1 || true)"
if [ ! -f dist/.built ] || [ -n "$newest_source" ]; then
  node_modules/.bin/tsc -p tsconfig.json
  touch dist/.built
fi
