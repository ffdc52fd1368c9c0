// Items 4 and 6 (agent) of the benchmark: at each size, `symroute agent` in a fresh node namespace:
// time until /readyz (start-up and first converge), its peak memory, and drift repair latency (an owned
// `ip rule` deleted, time until the kernel has it back) over repeated trials.
// The measuring half runs inside the namespace (bench/agent-probe.ts), where the agent's loopback
// listener is reachable. Writes bench/results/agent.json.
// Run: SRBENCH_SIZES=10,100 node --import tsx bench/agent.bench.ts   (root)
// Parts: SRBENCH_AGENT_PARTS=footprint,churn,warm (default all); the agent's Node flags:
// SRBENCH_AGENT_NODE_FLAGS="--flag ..." (default src/agent/node-flags.ts).

import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import {
  type BenchNode,
  cleanupScratch,
  destroyAll,
  log,
  REPO,
  run,
  sizes,
  timed,
  withNode,
  writeConfig,
  writeResult,
} from "./lib.ts";

export interface AgentSize {
  readonly networks: number;
  /** `file`: networks from the config file; `kubernetes`: from SymrouteNetwork objects (--kubernetes). */
  readonly mode?: "file" | "kubernetes";
  /** The Node flags the agent ran with (src/agent/node-flags.ts unless overridden). */
  readonly nodeFlags?: readonly string[];
  readonly trials: number;
  readonly readyMs?: number;
  readonly memoryAfterStart?: AgentMemory;
  readonly memoryAfterTrials?: AgentMemory;
  readonly ownedRules?: number;
  readonly latenciesMs?: number[];
  readonly failures?: string[];
  readonly rssSeriesMiB?: number[];
  readonly debounceMs?: number;
  readonly error?: string;
}

/** MiB: the kernel's VmRSS/VmHWM, and V8's heap as the agent's /metrics report it. */
export interface AgentMemory {
  readonly rss: number;
  readonly hwm: number;
  readonly heapUsed?: number;
  readonly heapTotal?: number;
  readonly external?: number;
}

export interface AgentResults {
  readonly date: string;
  /** Load average (1, 5, 15 min) before and after the runs, and the CPUs: the machine's state. */
  readonly load?: { readonly before: string; readonly after?: string };
  readonly cpus?: number;
  readonly available: boolean;
  readonly reason?: string;
  readonly sizes: AgentSize[];
}

/** Trials per size: SRBENCH_DRIFT="10:50,1000:10" (default); sizes not listed get 0 (memory only). */
function trialsFor(networks: number): number {
  const spec = process.env["SRBENCH_DRIFT"] ?? "10:50,1000:10";
  for (const part of spec.split(",")) {
    const [n, t] = part.split(":").map(Number);
    if (n === networks && t !== undefined && Number.isFinite(t)) return t;
  }
  return 0;
}

/** Kubernetes mode at these sizes (SRBENCH_AGENT_KUBERNETES="10"): the memory target's size by default. */
function kubernetesSizes(): number[] {
  return (process.env["SRBENCH_AGENT_KUBERNETES"] ?? "10")
    .split(",")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

const load = (): string => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Runs bench/SCRIPT inside a fresh node namespace; the JSON object of its last line of output. */
async function probe(name: string, script: string, args: (node: BenchNode) => string[]): Promise<object> {
  const r = await withNode(async (node) =>
    timed(node.inside([process.execPath, "--import", "tsx", join(REPO, "bench", script), ...args(node)])),
  );
  if (r.code !== 0) throw new Error(`${name} probe exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as object;
}

/**
 * A probe's run at `networks` written to bench/results/NAME.json with the date, the CPUs and the load
 * before and after; on failure, `failed` gives the fields the report needs besides the error.
 */
async function probeSection(
  name: string,
  what: string,
  networks: number,
  script: string,
  args: (node: BenchNode) => string[],
  failed: object = {},
): Promise<void> {
  const base = { date: new Date().toISOString(), cpus: cpus().length, networks };
  const before = load();
  try {
    const result = await probe(name, script, args);
    writeResult(name, { ...base, load: { before, after: load() }, ...result });
  } catch (error) {
    log(`${what}: ${(error as Error).message}`);
    writeResult(name, {
      ...base,
      load: { before, after: load() },
      ...failed,
      error: (error as Error).message.slice(0, 500),
    });
  }
}

async function main(): Promise<void> {
  const help = run([process.execPath, join(REPO, "bin/symroute"), "agent", "--help"]);
  if (help.code !== 0) {
    writeResult("agent", {
      date: new Date().toISOString(),
      available: false,
      reason: "`symroute agent` is not available",
      sizes: [],
    });
    log("agent: not available");
    return;
  }
  const load = (): string => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const before = load();
  const results: AgentResults & { load: { before: string; after?: string } } = {
    date: new Date().toISOString(),
    load: { before },
    cpus: cpus().length,
    available: true,
    sizes: [],
  };
  const runs = [
    ...sizes().map((networks) => ({ networks, mode: "file" as const })),
    ...kubernetesSizes().map((networks) => ({ networks, mode: "kubernetes" as const })),
  ];
  for (const { networks, mode } of runs) {
    const trials = trialsFor(networks);
    log(
      `agent (${mode}), ${networks} networks: start-up, memory${trials > 0 ? `, ${trials} drift trials` : ""}`,
    );
    const config = writeConfig(networks);
    try {
      const result = await probe("agent", "agent-probe.ts", (node) => [
        config,
        node.stateDir,
        String(trials),
        mode,
      ]);
      results.sizes.push({
        networks,
        mode,
        trials,
        ...(result as Omit<AgentSize, "networks" | "trials" | "mode">),
      });
    } catch (error) {
      log(`agent (${mode}), ${networks} networks: ${(error as Error).message}`);
      results.sizes.push({ networks, mode, trials, error: (error as Error).message.slice(0, 500) });
    }
    results.load.after = load();
    writeResult("agent", results);
  }
}

/** CPU under pod churn (issue 15 item 3): SRBENCH_CHURN="SECONDS:PODS_PER_SECOND", default 30:10. */
async function churn(): Promise<void> {
  const [seconds, pods] = (process.env["SRBENCH_CHURN"] ?? "30:10").split(":").map(Number);
  const networks = 10;
  log(`agent under pod churn: ${pods} veth pairs a second for ${seconds} s, ${networks} networks`);
  await probeSection("churn", "agent under pod churn", networks, "agent-churn-probe.ts", (node) => [
    writeConfig(networks),
    node.stateDir,
    String(seconds),
    String(pods),
  ]);
}

/** Warm reconcile (issue 15 item 4): SRBENCH_WARM="NETWORKS:TRIALS", default 1000:5; "0" skips it. */
async function warm(): Promise<void> {
  const [networks, trials] = (process.env["SRBENCH_WARM"] ?? "1000:5").split(":").map(Number);
  if (!networks || !trials) return;
  log(`agent, warm reconcile: ${networks} networks, ${trials} trials per case`);
  await probeSection(
    "warm",
    "agent, warm reconcile",
    networks,
    "agent-warm-probe.ts",
    (node) => [node.stateDir, String(networks), String(trials)],
    { cases: [], nodeFlags: [] },
  );
}

/** Which parts run: SRBENCH_AGENT_PARTS="footprint,churn,warm" (default all; run.sh's SRBENCH_ONLY=warm sets warm). */
const parts = (process.env["SRBENCH_AGENT_PARTS"] ?? "footprint,churn,warm").split(",");

try {
  if (parts.includes("footprint")) await main();
  if (parts.includes("churn")) await churn();
  if (parts.includes("warm")) await warm();
} finally {
  destroyAll();
  cleanupScratch();
}
