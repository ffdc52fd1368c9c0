#!/usr/bin/env bash
# Runs node's test runner on an explicit file list (Node 20 has no discovery for .ts files) and
# checks that it really ran tests: every file reported, and more than zero tests.
set -euo pipefail
if [ "$#" -eq 0 ]; then echo "run-tests: no test files given" >&2; exit 1; fi
# Test assertions read plain text; CI=true would otherwise switch colours on in every child.
export NO_COLOR=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "run-tests: $# test file(s)"
status=0
node --import tsx --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-2}" "$@" 2>&1 | tee "$log" || status=$?
tests=$(grep -E '^ℹ tests [0-9]+' "$log" | tail -n1 | awk '{print $3}')
if [ -z "${tests:-}" ] || [ "$tests" -eq 0 ]; then
  echo "run-tests: the runner executed no tests" >&2
  exit 1
fi
echo "run-tests: $tests tests from $# files"
exit "$status"
