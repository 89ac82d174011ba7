#!/usr/bin/env bash
# Runs the conformance runner (test/conformance.test.ts: every case of cases.json, in order,
# and the report) and then test/live.test.ts (stream cancellation reaches the server, the
# receive limit) against a live server started by clients/conformance/serve.py:
#   INFERD_CONFORMANCE=connection.json INFERD_CONFORMANCE_CASES=clients/conformance/cases.json \
#   INFERD_CONFORMANCE_REPORT=report.json clients/typescript/conformance.sh
# Offline: needs only what setup.sh installed. Exits non-zero when any case fails.
set -euo pipefail
for name in INFERD_CONFORMANCE INFERD_CONFORMANCE_CASES INFERD_CONFORMANCE_REPORT; do
  [ -n "${!name:-}" ] || { echo "conformance.sh: set $name" >&2; exit 2; }
  export "$name=$(realpath -m "${!name}")" # relative to the caller's directory, not this one's
done
cd "$(dirname "${BASH_SOURCE[0]}")"
./build.sh
exec node --test --test-concurrency=1 --test-reporter=spec dist/test/conformance.test.js dist/test/live.test.js
