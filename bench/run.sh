#!/usr/bin/env bash
# `make bench`: the benchmarks of issue 6, in network namespaces of their own, then docs/benchmarks.md.
# Needs root and a build (make build). Every namespace is named srbench-<pid>-*, and all of them are
# removed on exit, whatever happened.
# Knobs: SRBENCH_SIZES=10,100,500,1000,5000  SRBENCH_QUICK=1 (one run per size)  SRBENCH_DRIFT=10:50,1000:10
#   SRBENCH_ONLY=apply,agent,explain,dataplane  run only these sections: only their result files are
#     replaced, the page is re-rendered from bench/results/ (the other sections stay as they were) and
#     the machine record (machine.json) is left alone. `warm` runs only the agent's warm reconcile
#     (section 9; part of `agent`): SRBENCH_WARM=1000:5 (networks:trials), and the agent's Node flags
#     SRBENCH_AGENT_NODE_FLAGS="--flag ..." (default src/agent/node-flags.ts; also for `agent`).
#   Data plane (bench/dataplane.bench.ts): SRBENCH_DATAPLANE_SIZES=0,10,100,1000,5000
#     SRBENCH_DATAPLANE_ROUNDS=36  SRBENCH_DATAPLANE_DATAGRAMS=5000 (per variant, path, mode and round)
#     SRBENCH_DATAPLANE_PATHS=pod,node,pool,reply  SRBENCH_DATAPLANE_MODES=new,existing (a subset: a shorter A/B;
#       pool: through ext0 to a LoadBalancer address, measured by `make bench` for none, one-rule,
#       nftables:1000 and iptables:1000 only, for every chosen variant; reply: the pod's answers on a
#       connection to the last network's pool, back through the node, existing flows only)
#     SRBENCH_DATAPLANE_PIN=1  pin the sender (and the node's softirq work it carries) to that CPU
#     SRBENCH_DATAPLANE_VARIANTS=none,nftables:1000,...  only these variants, in this order (an A/B):
#       the results go to SRBENCH_DATAPLANE_OUT (default tmp/bench/dataplane.json, git-ignored) and the
#       section for them to tmp/bench/dataplane.md and stdout; bench/results/ and docs/ are untouched.
#       A variant is KIND[:NETWORKS][:narrow][@CLI], KIND one of none, nftables, iptables, ip-rules,
#       ip-rules-skip, one-rule (no symroute + one unrelated ip rule), rule-removed (that rule added
#       and deleted again), empty-chain (no symroute + an
#       empty nft base chain at prerouting); :narrow = a band of 4 rule priorities; @CLI = another
#       build's bin/symroute. The same variant twice (none,none) shows the noise of the run.
#     Example: SRBENCH_ONLY=dataplane SRBENCH_DATAPLANE_VARIANTS=none,nftables:1000@/work/main/bin/symroute,nftables:1000 bash bench/run.sh
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
ONLY="${SRBENCH_ONLY:-apply,agent,explain,dataplane}"
for section in ${ONLY//,/ }; do
  case "$section" in apply | agent | warm | explain | dataplane) ;; *)
    echo "bench: SRBENCH_ONLY: unknown section $section (apply, agent, warm, explain, dataplane)" >&2
    exit 2
    ;;
  esac
done
selected() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac }
mkdir -p bench/results
status=0
if selected apply; then
  rm -f bench/results/apply.json
  echo "bench: apply, no-op and delete (items 1-3, 6)"
  "${TSX[@]}" bench/apply.bench.ts || status=1
fi
# The warm reconcile's last results stay as warm-previous.json: section 9 reports the agent's time
# beside them.
keep_previous_warm() { if [ -f bench/results/warm.json ]; then cp bench/results/warm.json bench/results/warm-previous.json; fi; }
if selected agent; then
  keep_previous_warm
  rm -f bench/results/agent.json bench/results/churn.json bench/results/warm.json
  echo "bench: agent (items 4, 6; issue 15 item 3: footprint, churn)"
  "${TSX[@]}" bench/agent.bench.ts || status=1
fi
if selected warm && ! selected agent; then
  keep_previous_warm
  rm -f bench/results/warm.json
  echo "bench: agent, warm reconcile only (issue 15 item 4)"
  SRBENCH_AGENT_PARTS=warm "${TSX[@]}" bench/agent.bench.ts || status=1
fi
if selected explain && [ -f bench/explain.bench.ts ]; then
  echo "bench: explain (item 5)"
  "${TSX[@]}" bench/explain.bench.ts || status=1
fi
if selected dataplane; then
  # Chosen variants write a file of their own, not bench/results/dataplane.json.
  [ -n "${SRBENCH_DATAPLANE_VARIANTS:-}" ] || rm -f bench/results/dataplane.json
  echo "bench: data plane, cost per packet (issue 15 item 2)"
  "${TSX[@]}" bench/dataplane.bench.ts || status=1
fi
if [ -z "${SRBENCH_ONLY:-}" ]; then
  "${TSX[@]}" bench/report.ts --record-machine
else
  "${TSX[@]}" bench/report.ts
fi
echo "bench: took $(($(date +%s) - SRBENCH_STARTED)) s; see docs/benchmarks.md"
exit "$status"
