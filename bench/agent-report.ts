// The agent's sections of docs/benchmarks.md for issue 15 (items 3 and 4): footprint (memory in
// file and Kubernetes mode, CPU under pod churn, drift repair latency) and warm reconcile, each
// against its target with met or not met, from bench/results/{agent,churn,warm}.json of one run.
// Kept apart from report.ts (like dataplane-report.ts) so that the sections evolve without conflicts.

import type { AgentResults, AgentSize } from "./agent.bench.ts";
import { counted } from "../src/model/plural.ts";
import { percentile, readResult, stats } from "./lib.ts";

export const TARGETS = {
  /** Resident memory with 10 networks, after start and after the trials (MiB). */
  rssMiB: 80,
  /** Drift repair, from the deletion event to the object back (ms). */
  repairMedianMs: 150,
  repairWorstMs: 500,
  /** CPU of the agent under 10 pods per second of churn (% of one core). */
  churnCpuPercent: 20,
  /** Warm reconcile against the same payloads fed straight to the tools. */
  warmRatio: 1.3,
} as const;

const met = (ok: boolean | undefined): string =>
  ok === undefined ? "not measured" : ok ? "**met**" : "**not met**";
const mib = (v: number | undefined): string => (v === undefined ? "-" : `${v.toFixed(1)} MiB`);
const ms = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? "-" : `${Math.round(v)} ms`;

export interface ChurnResults {
  readonly date: string;
  readonly load: { readonly before: string; readonly after: string };
  readonly cpus: number;
  readonly networks: number;
  readonly seconds: number;
  /** veth pairs created and deleted per second (each pair one "pod"). */
  readonly podsPerSecond: number;
  readonly pairsCreated: number;
  /** The agent's CPU time over the churn, as % of one core. */
  readonly cpuPercent: number;
  /** The same agent idle for as long, for comparison. */
  readonly idleCpuPercent: number;
  readonly reconciles: number;
  readonly kernelEvents: number;
  /** Kernel events dropped as not concerning the configuration (no reconcile). */
  readonly kernelEventsIgnored?: number;
  readonly convergedAfter: boolean;
  readonly rssAfterMiB: number;
  readonly nodeFlags: readonly string[];
  readonly error?: string;
}

export interface WarmCase {
  readonly label: string;
  /** Agent: from the config edit to the changed objects in the kernel (ms, per run). */
  readonly agentMs: readonly number[];
  /**
   * The same payloads fed straight to the tools (ms, per run): with the nft change as the agent ran
   * it (partial in every trial: the partial script; else the whole-table one).
   */
  readonly toolsMs: readonly number[];
  /** The nft change as the partial transaction from the same tables (ms, per run). */
  readonly toolsPartialMs?: readonly number[];
  /** The nft change as the whole-table transaction, `symroute plan --payloads` (ms, per run). */
  readonly toolsFullMs?: readonly number[];
  /** How the agent ran its nft transaction in each trial (its `applied` line's `nftTransaction`). */
  readonly agentTransactions?: readonly string[];
  /** The agent's CPU (user + system, 10 ms ticks) from the edit until 1.5 s after it (ms, per run). */
  readonly agentCpuMs?: readonly number[];
}

export interface WarmResults {
  readonly date: string;
  readonly load: { readonly before: string; readonly after: string };
  readonly cpus: number;
  readonly networks: number;
  readonly cases: readonly WarmCase[];
  readonly nodeFlags: readonly string[];
  readonly error?: string;
}

const loadNote = (
  load: { before: string; after: string } | undefined,
  cpus: number | undefined,
  date?: string,
): string =>
  load === undefined
    ? ""
    : ` Run ${date === undefined ? "" : `${date.slice(0, 16).replace("T", " ")} UTC, `}load average before ${load.before}, after ${load.after}${cpus === undefined ? "" : ` on ${counted(cpus, "CPU")}`}.`;

export function agentFootprintSection(): string[] {
  const out: string[] = ["## 8. Agent footprint (issue 15 item 3)", ""];
  const agent = readResult<AgentResults>("agent");
  const at10 = (agent?.sizes ?? []).filter((s) => s.networks === 10 && s.error === undefined);
  const flags = at10.find((s) => s.nodeFlags !== undefined)?.nodeFlags;
  out.push(
    `The agent as it is deployed (${flags === undefined ? "Node flags not recorded: a run from before src/agent/node-flags.ts" : `Node flags \`${flags.join(" ") || "none"}\`, src/agent/node-flags.ts`}), 10 networks,`,
    "in a fresh node namespace. File mode: the networks in the config file. Kubernetes mode: the same networks",
    "as SymrouteNetwork objects from a small API server on loopback (the tests' fake), `--kubernetes`.",
    `Memory is the kernel's \`VmRSS\` after the first converge and after the drift trials (\`VmHWM\`: the peak).${agent?.load === undefined ? "" : loadNote({ before: agent.load.before, after: agent.load.after ?? "-" }, agent.cpus, agent.date)}`,
    "",
    "| mode | after start | after trials (peak) | V8 heap used / total after trials | trials | repair median | repair worst | memory | repair |",
    "|---|---|---|---|---|---|---|---|---|",
  );
  for (const s of at10) {
    const l = s.latenciesMs ?? [];
    const median = l.length === 0 ? undefined : stats(l).median;
    const worst = l.length === 0 ? undefined : Math.max(...l);
    const rssOk =
      s.memoryAfterStart === undefined
        ? undefined
        : s.memoryAfterStart.rss <= TARGETS.rssMiB &&
          (s.memoryAfterTrials === undefined || s.memoryAfterTrials.rss <= TARGETS.rssMiB);
    const repairOk =
      median === undefined || worst === undefined
        ? undefined
        : median < TARGETS.repairMedianMs && worst < TARGETS.repairWorstMs;
    const t = s.memoryAfterTrials;
    out.push(
      `| ${s.mode ?? "file"} | ${mib(s.memoryAfterStart?.rss)} | ${mib(t?.rss)} (${mib(t?.hwm)}) | ${t?.heapUsed === undefined ? "-" : `${t.heapUsed.toFixed(1)} / ${(t.heapTotal ?? Number.NaN).toFixed(1)} MiB`} | ${l.length} of ${s.trials} | ${ms(median)} | ${ms(worst)} | ${met(rssOk)} | ${met(repairOk)} |`,
    );
  }
  if (at10.length === 0) out.push("| - | not measured | | | | | | | |");
  out.push(
    "",
    `Targets: resident memory at most ${TARGETS.rssMiB} MiB after start and after the trials; drift repair median under ${TARGETS.repairMedianMs} ms, worst under ${TARGETS.repairWorstMs} ms. The 10-minute soak with pod churn is \`make soak\` (docs/reliability.md).`,
    "",
  );
  out.push(...churnPart());
  return out;
}

function churnPart(): string[] {
  const out: string[] = ["### CPU under pod churn", ""];
  const r = readResult<ChurnResults>("churn");
  if (r === undefined) return [...out, "Not measured (bench/results/churn.json is missing).", ""];
  if (r.error !== undefined) return [...out, `Not measured: ${r.error}`, ""];
  out.push(
    `${r.podsPerSecond} veth pairs per second created and deleted in the node namespace for ${r.seconds} s (${r.pairsCreated} pairs: a pod's network coming and going), the agent converged on ${r.networks} networks.${loadNote(r.load, r.cpus, r.date)}`,
    "",
    "| agent CPU under churn | idle, as long | reconciles during churn | kernel events received / ignored | converged after | RSS after | target | |",
    "|---|---|---|---|---|---|---|---|",
    `| ${r.cpuPercent.toFixed(1)}% of a core | ${r.idleCpuPercent.toFixed(1)}% | ${r.reconciles} | ${r.kernelEvents} / ${r.kernelEventsIgnored ?? "-"} | ${r.convergedAfter ? "yes" : "no"} | ${mib(r.rssAfterMiB)} | ≤ ${TARGETS.churnCpuPercent}%, converged | ${met(r.cpuPercent <= TARGETS.churnCpuPercent && r.convergedAfter)} |`,
    "",
  );
  return out;
}

/** `oneShotApplyMs(n)`: the one-shot CLI's `apply` of n networks on an empty node (report.ts, item 1). */
export function warmReconcileSection(
  oneShotApplyMs: (networks: number) => number | undefined = () => undefined,
): string[] {
  const out: string[] = ["## 9. Warm reconcile (issue 15 item 4)", ""];
  const r = readResult<WarmResults>("warm");
  if (r === undefined) return [...out, "Not measured (bench/results/warm.json is missing).", ""];
  if (r.error !== undefined) return [...out, `Not measured: ${r.error}`, ""];
  out.push(
    `A running agent (Node flags \`${r.nodeFlags.join(" ") || "none"}\`) converged on ${r.networks.toLocaleString("en-US")} networks; the config file is replaced (a temporary file renamed over it) and the time runs from the edit to the agent's \`applied\` log line (read, plan, payloads run, verified). Beside it, the payloads of the same change (\`symroute plan --payloads\` from the same node state) fed straight to \`ip -batch\` and \`nft -f\`, side by side as the engine runs them, with the nft change as the agent ran it: a partial transaction of the changed chains when its \`applied\` line said \`partial\` in every trial (the same script, \`renderNftIncremental\` of the two whole-table scripts), else the whole-table one; the whole-table replace is timed beside it for information. The previous run is the agent's time in the results of the run before this one (\`bench/results/warm-previous.json\`, kept by \`bench/run.sh\`). The agent's CPU is its process's user and system time (\`/proc/PID/stat\`, in ticks of 10 ms) from the edit until 1.5 s after it, follow-up reconciles included: what an edit costs the node, which load on the machine does not lengthen as it does the wall time. Where the agent's time goes: docs/agent.md, "Warm reconcile". To re-run this section alone: \`SRBENCH_ONLY=warm bash bench/run.sh\` (as root, after make build; other Node flags with \`SRBENCH_AGENT_NODE_FLAGS\`).${loadNote(r.load, r.cpus, r.date)}`,
    "",
    "| change | agent (median, n) | agent's nft transaction | tools, as the agent ran them (median) | ratio | target | | tools, whole-table nft (median) | agent, previous run (median) | agent's CPU per edit (median) |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  // The run before this one (bench/run.sh keeps its results as warm-previous.json).
  const previous = readResult<WarmResults>("warm-previous");
  for (const c of r.cases) {
    const a = stats(c.agentMs).median;
    const t = stats(c.toolsMs).median;
    const ratio = a / t;
    const kinds = [...new Set(c.agentTransactions ?? [])].join(", ") || "-";
    const whole = c.toolsFullMs === undefined ? "-" : ms(stats(c.toolsFullMs).median);
    const before = previous?.cases.find((p) => p.label === c.label);
    const was =
      before === undefined
        ? "-"
        : `${ms(stats(before.agentMs).median)} (${previous?.date.slice(0, 16).replace("T", " ") ?? ""})`;
    out.push(
      `| ${c.label} | ${ms(a)} (n=${c.agentMs.length}, p90 ${ms(percentile([...c.agentMs], 90))}) | ${kinds} | ${ms(t)} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-"} | ≤ ${TARGETS.warmRatio}x | ${met(Number.isFinite(ratio) ? ratio <= TARGETS.warmRatio : undefined)} | ${whole} | ${was} | ${c.agentCpuMs === undefined || c.agentCpuMs.length === 0 ? "-" : ms(stats(c.agentCpuMs).median)} |`,
    );
  }
  const oneShot = oneShotApplyMs(r.networks);
  out.push(
    "",
    `Beside it, the one-shot CLI (information, no target): \`symroute apply\` of ${r.networks.toLocaleString("en-US")} networks on an empty node, Node start-up included, ${oneShot === undefined ? "not measured in this run" : ms(oneShot)} (item 1 above).`,
    "",
  );
  return out;
}

/** The file-mode rows, which the older sections (drift latency, peak memory, growth) report. */
export function fileMode(agent: AgentResults | undefined): AgentResults | undefined {
  if (agent === undefined) return undefined;
  return { ...agent, sizes: agent.sizes.filter((s: AgentSize) => (s.mode ?? "file") === "file") };
}
