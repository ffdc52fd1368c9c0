#!/usr/bin/env bash
# Runs node's test runner on an explicit file list (Node 20 has no discovery for .ts files), one
# runner per file (TEST_CONCURRENCY at a time, default 2) so that every result is known to come from
# its file, then proves the run (scripts/check-test-run.ts): every file produced results, the
# passed / failed / skipped counts, and no skip other than a missing kernel feature or privilege.
set -euo pipefail
if [ "$#" -eq 0 ]; then echo "run-tests: no test files given" >&2; exit 1; fi
cd "$(dirname "$0")/.."
for f in "$@"; do [ -f "$f" ] || { echo "run-tests: no such test file: $f" >&2; exit 1; }; done
# Test assertions read plain text; CI=true would otherwise switch colours on in every child.
export NO_COLOR=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export RUN_TESTS_OUT="$out"

# One file: its spec output is printed whole when it ends (under a lock, so files do not interleave),
# its events go to N.jsonl and its exit code to N.rc.
run_one() {
  local n=$1 file=$2 rc=0
  node --import tsx --test \
    --test-reporter=spec --test-reporter-destination="$RUN_TESTS_OUT/$n.spec" \
    --test-reporter=./scripts/test-events.mjs --test-reporter-destination="$RUN_TESTS_OUT/$n.jsonl" \
    "$file" >"$RUN_TESTS_OUT/$n.out" 2>&1 || rc=$?
  echo "$rc" >"$RUN_TESTS_OUT/$n.rc"
  {
    flock 9
    echo "── $file"
    cat "$RUN_TESTS_OUT/$n.out" "$RUN_TESTS_OUT/$n.spec" 2>/dev/null || true
  } 9>"$RUN_TESTS_OUT/print.lock"
}
export -f run_one

if [ $# -eq 1 ]; then files="file"; else files="files"; fi
echo "run-tests: $# test $files"
n=0
for f in "$@"; do
  n=$((n + 1))
  printf '%s\0%s\0' "$n" "$f"
done | xargs -0 -n 2 -P "${TEST_CONCURRENCY:-2}" bash -c 'run_one "$@"' _
node --import tsx scripts/check-test-run.ts "$out" "$@"
