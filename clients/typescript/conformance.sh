#!/usr/bin/env bash
# Runs the conformance runner (test/conformance.test.ts) against a live server:
#   INFERD_CONFORMANCE=conn.json INFERD_CONFORMANCE_CASES=cases.json \
#   INFERD_CONFORMANCE_REPORT=report.json clients/typescript/conformance.sh
# Offline: needs only what setup.sh installed (it compiles when the sources changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for name in INFERD_CONFORMANCE INFERD_CONFORMANCE_CASES INFERD_CONFORMANCE_REPORT; do
  [ -n "${!name:-}" ] || { echo "conformance.sh: set $name" >&2; exit 2; }
done
[ -x node_modules/.bin/tsc ] || { echo "conformance.sh: run setup.sh first" >&2; exit 2; }
node_modules/.bin/tsc -p tsconfig.json
exec node --test --test-reporter=spec dist/test/conformance.test.js
