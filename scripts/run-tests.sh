#!/usr/bin/env bash
# Runs node's test runner on an explicit file list (Node 20 has no discovery for .ts files), one
# runner per file (TEST_CONCURRENCY at a time, default twice the CPUs: an end-to-end file spends most
# of its time waiting on the kernel and its children, not on a CPU) so that every result is known to
# come from its file, then proves the run (scripts/check-test-run.ts): every file produced results,
# the passed / failed / skipped counts, no skip other than a missing kernel feature or privilege, and
# the slowest files with their wall times. The files of scripts/slow-tests.txt start first: a long
# file started last would run alone at the end.
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
  local n=$1 file=$2 rc=0 start
  start=$(date +%s%N)
  node --import tsx --test \
    --test-reporter=spec --test-reporter-destination="$RUN_TESTS_OUT/$n.spec" \
    --test-reporter=./scripts/test-events.mjs --test-reporter-destination="$RUN_TESTS_OUT/$n.jsonl" \
    "$file" >"$RUN_TESTS_OUT/$n.out" 2>&1 || rc=$?
  echo "$rc" >"$RUN_TESTS_OUT/$n.rc"
  echo $((($(date +%s%N) - start) / 1000000)) >"$RUN_TESTS_OUT/$n.ms"
  {
    flock 9
    echo "── $file"
    cat "$RUN_TESTS_OUT/$n.out" "$RUN_TESTS_OUT/$n.spec" 2>/dev/null || true
  } 9>"$RUN_TESTS_OUT/print.lock"
}
export -f run_one

if [ $# -eq 1 ]; then files="file"; else files="files"; fi
echo "run-tests: $# test $files"
# The n-th file given is always run as n (check-test-run.ts reads n.*): only the start order changes,
# the files of scripts/slow-tests.txt first, in its order, then the others in the order given.
declare -A rank=()
r=0
while read -r f; do
  r=$((r + 1))
  rank[$f]=$r
done < <(grep -v -e '^#' -e '^$' scripts/slow-tests.txt || true)
n=0
for f in "$@"; do
  n=$((n + 1))
  printf '%s\t%s\n' "${rank[$f]:-$((r + 1))}" "$n"
done | sort -s -n -k1,1 | cut -f2 >"$out/order"
given=("" "$@")
while read -r n; do
  printf '%s\0%s\0' "$n" "${given[$n]}"
done <"$out/order" | xargs -0 -n 2 -P "${TEST_CONCURRENCY:-$((2 * $(nproc)))}" bash -c 'run_one "$@"' _
node --import tsx scripts/check-test-run.ts "$out" "$@"
