// Items 4 and 6 (agent) of the benchmark: at each size, `symroute agent` in a fresh node namespace:
// time until /readyz (start-up and first converge), its peak memory, and drift repair latency (an owned
// `ip rule` deleted, time until the kernel has it back) over repeated trials.
// The measuring half runs inside the namespace (bench/agent-probe.ts), where the agent's loopback
// listener is reachable. Writes bench/results/agent.json.
// Run: SRBENCH_SIZES=10,100 node --import tsx bench/agent.bench.ts   (root)

import { join } from "node:path";
import {
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
  readonly trials: number;
  readonly readyMs?: number;
  readonly memoryAfterStart?: { rss: number; hwm: number };
  readonly memoryAfterTrials?: { rss: number; hwm: number };
  readonly ownedRules?: number;
  readonly latenciesMs?: number[];
  readonly failures?: string[];
  readonly rssSeriesMiB?: number[];
  readonly debounceMs?: number;
  readonly error?: string;
}

export interface AgentResults {
  readonly date: string;
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
  const results: AgentResults = { date: new Date().toISOString(), available: true, sizes: [] };
  for (const networks of sizes()) {
    const trials = trialsFor(networks);
    log(`agent, ${networks} networks: start-up, memory${trials > 0 ? `, ${trials} drift trials` : ""}`);
    const config = writeConfig(networks);
    try {
      const r = await withNode(async (node) =>
        timed(
          node.inside([
            process.execPath,
            "--import",
            "tsx",
            join(REPO, "bench/agent-probe.ts"),
            config,
            node.stateDir,
            String(trials),
          ]),
        ),
      );
      if (r.code !== 0) throw new Error(`agent probe exited ${r.code}: ${r.stderr.slice(-2000)}`);
      const line = r.stdout.trim().split("\n").pop() ?? "{}";
      results.sizes.push({
        networks,
        trials,
        ...(JSON.parse(line) as Omit<AgentSize, "networks" | "trials">),
      });
    } catch (error) {
      log(`agent, ${networks} networks: ${(error as Error).message}`);
      results.sizes.push({ networks, trials, error: (error as Error).message.slice(0, 500) });
    }
    writeResult("agent", results);
  }
}

try {
  await main();
} finally {
  destroyAll();
  cleanupScratch();
}
