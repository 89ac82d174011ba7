#!/usr/bin/env bash
# Runs the Go client's conformance runner (conformance_test.go) against a running
# clients/conformance/serve.py: INFERD_CONFORMANCE (its connection.json),
# INFERD_CONFORMANCE_CASES (cases.json) and INFERD_CONFORMANCE_REPORT (where the report goes)
# must be set. Offline: setup.sh has fetched and built everything. Exits non-zero unless every
# case passed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for name in INFERD_CONFORMANCE INFERD_CONFORMANCE_CASES INFERD_CONFORMANCE_REPORT; do
  [[ -n "${!name:-}" ]] || { echo "clients/go/conformance.sh: $name is not set" >&2; exit 2; }
done
# Absolute paths: go test runs in the package's folder.
export INFERD_CONFORMANCE="$(realpath "$INFERD_CONFORMANCE")"
export INFERD_CONFORMANCE_CASES="$(realpath "$INFERD_CONFORMANCE_CASES")"
export INFERD_CONFORMANCE_REPORT="$(realpath -m "$INFERD_CONFORMANCE_REPORT")"
cd "$HERE"
GOPROXY=off exec go test -count=1 -run '^TestConformance$' ${INFERD_CONFORMANCE_VERBOSE:+-v} .
