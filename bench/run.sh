#!/usr/bin/env bash
# `make bench`: the benchmarks of issue 6, in network namespaces of their own, then docs/benchmarks.md.
# Needs root and a build (make build). Every namespace is named srbench-<pid>-*, and all of them are
# removed on exit, whatever happened.
# Knobs: SRBENCH_SIZES=10,100,500,1000,5000  SRBENCH_QUICK=1 (one run per size)  SRBENCH_DRIFT=10:50,1000:10
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "bench: needs root (it creates network namespaces)" >&2
  exit 1
fi
if [ ! -f dist/cli/main.js ]; then
  echo "bench: symroute is not built; run make build first" >&2
  exit 1
fi

export SRBENCH_PREFIX="srbench-$$-"
export SRBENCH_STARTED="$(date +%s)"
export SRBENCH_LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

cleanup() {
  local ns
  for ns in $(ip netns list | awk '{print $1}'); do
    case "$ns" in "$SRBENCH_PREFIX"*) ip netns del "$ns" 2>/dev/null || true ;; esac
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TSX=(node --import tsx)
mkdir -p bench/results
rm -f bench/results/apply.json bench/results/agent.json bench/results/churn.json bench/results/warm.json bench/results/dataplane.json
status=0
echo "bench: apply, no-op and delete (items 1-3, 6)"
"${TSX[@]}" bench/apply.bench.ts || status=1
echo "bench: agent (items 4, 6; issue 15 item 3: footprint, churn)"
"${TSX[@]}" bench/agent.bench.ts || status=1
if [ -f bench/explain.bench.ts ]; then
  echo "bench: explain (item 5)"
  "${TSX[@]}" bench/explain.bench.ts || status=1
fi
echo "bench: data plane, cost per packet (issue 15 item 2)"
"${TSX[@]}" bench/dataplane.bench.ts || status=1
"${TSX[@]}" bench/report.ts --record-machine
echo "bench: took $(($(date +%s) - SRBENCH_STARTED)) s; see docs/benchmarks.md"
exit "$status"
