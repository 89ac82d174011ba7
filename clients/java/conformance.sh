#!/usr/bin/env bash
# Runs the Java conformance runner (src/test/java/dev/inferd/client/ConformanceTest.java)
# against a live server: INFERD_CONFORMANCE (serve.py's connection file),
# INFERD_CONFORMANCE_CASES (cases.json) and INFERD_CONFORMANCE_REPORT (the report to write)
# must be set (and MAVEN_REPO_LOCAL where setup.sh had it). Offline: run setup.sh once before.
# Exits non-zero if any case failed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${INFERD_CONFORMANCE:?the connection file of serve.py}"
: "${INFERD_CONFORMANCE_CASES:?cases.json}"
: "${INFERD_CONFORMANCE_REPORT:?where to write the report}"
# absolute, since Maven runs the tests from this folder
INFERD_CONFORMANCE="$(realpath -m "$INFERD_CONFORMANCE")"
INFERD_CONFORMANCE_CASES="$(realpath -m "$INFERD_CONFORMANCE_CASES")"
INFERD_CONFORMANCE_REPORT="$(realpath -m "$INFERD_CONFORMANCE_REPORT")"
export INFERD_CONFORMANCE INFERD_CONFORMANCE_CASES INFERD_CONFORMANCE_REPORT
cd "$HERE"
exec mvn -o -q -B ${MAVEN_REPO_LOCAL:+-Dmaven.repo.local=$MAVEN_REPO_LOCAL} test -Dtest=ConformanceTest -Dsurefire.failIfNoSpecifiedTests=false
