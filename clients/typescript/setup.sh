#!/usr/bin/env bash
# Installs what the TypeScript client, its code generation (buf, protoc-gen-es) and its tests
# (tsc, @types/node) need, pinned by package-lock.json, into node_modules (npm ci), then
# compiles to dist/. Idempotent: quick when node_modules matches the lockfile already.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
stamp=node_modules/.inferd-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
./build.sh
