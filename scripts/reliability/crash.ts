// Crash consistency, the full run (issue 7, item 1): SIGKILL symroute at random moments of `apply`
// and `delete` of 200 networks, N trials each (default 100), and check every recovery; with each
// firewall front end asked for (`--firewall`, default both: nftables, then iptables).
//
//   node --import tsx scripts/reliability/crash.ts [TRIALS] [--seed S] [--networks N] [--json FILE]
//     [--no-points] [--firewall nftables|iptables|both]
//   SYMROUTE_CRASH_TRIALS=100 SYMROUTE_CRASH_SEED=1 node --import tsx scripts/reliability/crash.ts
//
// The node has kube-proxy's own iptables rules, chains and ipsets on it first (loadForeignKubeProxy):
// every recovery must leave them as they were. Per front end, first every exact crash point (each ip
// batch and `ipset restore` killed after 0, 1, half, all-but-one and all of its lines; each nft and
// iptables-restore/ip6tables-restore killed before and after its commit; see support/fault-tools.ts),
// then TRIALS kills at random moments per phase (see crashTrial for how the moment is drawn);
// TRIALS 0 runs the crash points only.
// Needs root (network namespaces) and a built CLI (`make build`). Replay one trial with
// `--firewall F --only apply:17 --seed S` (the base seed and the trial number that the summary prints).
// Exit code 0 when every trial recovered, every crash point was reached and at least 60% of the
// random kills of each phase landed mid-change (see landedMidChange), per front end; 1 otherwise.
// `--json FILE` writes the results (with the commit they ran on) for scripts/reliability/report.ts:
// every point, trial and baseline names its front end (`firewall`; none in files from before).

import { runProvenance, writeResult } from "./results.ts";
import { parseArgs } from "node:util";
import {
  crashPoints,
  crashPointTrial,
  crashTrial,
  describePoint,
  measureBaseline,
  landedMidChange,
  MIN_MID_CHANGE_SHARE,
  summarise,
  weakRun,
  type Baseline,
  type CrashPointResult,
  type Phase,
  type TrialResult,
} from "../../test/reliability/support/crash.ts";
import { createFaultTools, type PayloadTool } from "../../test/reliability/support/fault-tools.ts";
import { readFileSync } from "node:fs";
import { createNamespaceNode, type Netns, stateFileOf, writeConfigFile } from "../../test/support/netns.ts";
import { loadForeignKubeProxy, manyNetworksConfig } from "../../test/reliability/support/node.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: "string" },
    networks: { type: "string", default: "200" },
    json: { type: "string" },
    only: { type: "string" },
    "no-points": { type: "boolean", default: false },
    firewall: { type: "string", default: "both" },
  },
});
const trials = Number(positionals[0] ?? process.env["SYMROUTE_CRASH_TRIALS"] ?? 100);
const baseSeed = Number(values.seed ?? process.env["SYMROUTE_CRASH_SEED"] ?? Date.now() % 1_000_000);
const networks = Number(values.networks);
type Firewall = "nftables" | "iptables";
const firewalls: readonly Firewall[] =
  values.firewall === "both"
    ? ["nftables", "iptables"]
    : values.firewall === "nftables" || values.firewall === "iptables"
      ? [values.firewall]
      : [];
if (
  !Number.isInteger(trials) ||
  trials < 0 ||
  !Number.isInteger(networks) ||
  networks < 1 ||
  firewalls.length === 0
) {
  console.error(
    "usage: crash.ts [TRIALS] [--seed S] [--networks N] [--json FILE] [--only apply:K|delete:K] [--firewall nftables|iptables|both]",
  );
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error("crash.ts needs root (it creates network namespaces)");
  process.exit(2);
}

/** Each trial's seed follows from the base seed, the phase and the trial number. */
const trialSeed = (phase: Phase, trial: number): number =>
  (baseSeed * 1000 + trial * 2 + (phase === "delete" ? 1 : 0)) >>> 0;

const only = values.only === undefined ? undefined : /^(apply|delete):(\d+)$/.exec(values.only);
let node: Netns | undefined;
/** Each result names the front end it ran with. */
type Of<T> = T & { readonly firewall: Firewall };
const results: Of<TrialResult>[] = [];
const pointResults: Of<CrashPointResult>[] = [];
const tools = createFaultTools();
// Ctrl-C, or a kill of the run: the finally below does not run, so the namespaces and the tool
// wrappers go here (after the symroute run in progress, which blocks the loop, has returned).
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    node?.destroy();
    tools.remove();
    process.exit(signal === "SIGINT" ? 130 : 143);
  });
const provenance = runProvenance();
/** The uninterrupted runs' timings, measured at the start and every 20 trials. */
const baselines: Of<Omit<Baseline, "original" | "converged">>[] = [];
const save = (final?: { problems: readonly string[]; seconds: number }): void => {
  if (values.json !== undefined) {
    writeResult(values.json, {
      kind: "crash",
      ...provenance,
      finished: final !== undefined,
      ...(final === undefined
        ? {}
        : { ok: final.problems.length === 0, problems: final.problems, seconds: final.seconds }),
      baseSeed,
      networks,
      trials,
      firewalls,
      minMidChangeShare: MIN_MID_CHANGE_SHARE,
      baselines,
      points: pointResults,
      results,
    });
  }
};

/** Payload line counts per tool, in call order, from a JSON plan with payloads. */
function payloadCounts(json: string): Partial<Record<PayloadTool, number[]>> {
  const p = (
    JSON.parse(json) as {
      payloads: {
        ip: Record<string, string[]>;
        firewall: { tool: string; family?: number; script: string }[];
      };
    }
  ).payloads;
  const counts: Partial<Record<PayloadTool, number[]>> = {
    ip: Object.values(p.ip).map((lines) => lines.length),
  };
  for (const f of p.firewall) {
    const tool: PayloadTool =
      f.tool === "nft" || f.tool === "ipset"
        ? f.tool
        : f.family === 6
          ? "ip6tables-restore"
          : "iptables-restore";
    (counts[tool] ??= []).push(f.script.split("\n").length);
  }
  return counts;
}
const started = Date.now();

async function fresh(firewall: Firewall): Promise<{ node: Netns; config: string; baseline: Baseline }> {
  node?.destroy();
  node = createNamespaceNode({ prefix: "sr-crash", dualStack: true });
  loadForeignKubeProxy(node);
  const config = writeConfigFile(node.stateDir, "networks.yaml", manyNetworksConfig(networks, firewall));
  const baseline = await measureBaseline(node, config, tools);
  const { original: _o, converged: _c, ...timings } = baseline;
  baselines.push({ firewall, ...timings });
  return { node, config, baseline };
}

try {
  for (const firewall of firewalls) {
    let setup = await fresh(firewall);
    console.log(
      `crash, firewall ${firewall}: ${networks} networks, ${trials} trials per phase, base seed ${baseSeed}; ` +
        `uninterrupted apply ${Math.round(setup.baseline.applyMs)} ms (changes from ${Math.round(setup.baseline.applyChangesAtMs)} ms), ` +
        `delete ${Math.round(setup.baseline.deleteMs)} ms (changes from ${Math.round(setup.baseline.deleteChangesAtMs)} ms)`,
    );
    if (values["no-points"] !== true && only === undefined) {
      const n = setup.node;
      const applyCounts = payloadCounts(
        n.symroute(["plan", "-c", setup.config, "-o", "json", "--payloads"]).stdout,
      );
      n.symroute(["apply", "-c", setup.config]);
      const deleteCounts = payloadCounts(n.symroute(["delete", "--dry-run", "-o", "json"]).stdout);
      // The delete's commit drops each built-in chain and mangle table the iptables front end made
      // (one `nft delete` each, not a payload) before it removes the state file: a kill before and
      // after each.
      const made = JSON.parse(readFileSync(stateFileOf(n), "utf8")) as {
        iptablesTablesCreated?: number[];
        iptablesChainsCreated?: string[];
      };
      const drops = (made.iptablesTablesCreated ?? []).length + (made.iptablesChainsCreated ?? []).length;
      n.symroute(["delete"]);
      const points = [
        ...crashPoints("apply", applyCounts),
        ...crashPoints("delete", deleteCounts),
        ...Array.from({ length: drops }, (_, i) => i).flatMap((i) =>
          ([0, "all"] as const).map((lines) => ({
            phase: "delete" as const,
            tool: "nft" as const,
            call: i + 1,
            lines,
            arg: "delete",
          })),
        ),
      ];
      console.log(`crash points (${firewall}): ${points.length}`);
      for (const [i, point] of points.entries()) {
        const r = await crashPointTrial({ ...setup, tools, deleteFirst: i % 2 === 0 }, point);
        pointResults.push({ firewall, ...r });
        console.log(
          `${firewall} ${describePoint(point)} -> ${r.fired ? r.landing : "not reached"} ${r.inProgressLeft ? "inProgress " : ""}${r.problems.length === 0 ? "ok" : `FAILED: ${r.problems.join("; ")}`}`,
        );
        if (r.problems.length > 0) setup = await fresh(firewall);
        save();
      }
    }
    // Phases interleaved, so that a run cut short still has figures for both.
    for (let trial = 0; trial < trials; trial++) {
      // The machine's load changes how long a run takes: measure again now and then, so that the
      // kill moments keep covering the run.
      if (trial > 0 && trial % 20 === 0) setup = await fresh(firewall);
      for (const phase of ["apply", "delete"] as const) {
        if (only !== undefined && only !== null && (only[1] !== phase || Number(only[2]) !== trial)) continue;
        const result = await crashTrial({
          ...setup,
          tools,
          phase,
          trial,
          windows: trials,
          seed: trialSeed(phase, trial),
        });
        results.push({ firewall, ...result });
        const status = result.problems.length === 0 ? "ok" : "FAILED";
        console.log(
          `${firewall} ${phase} ${String(trial).padStart(3)} seed ${result.seed} ${result.killMode.padEnd(7)} kill at ${result.afterChangesStart ? "changes+" : "start+  "}${String(result.delayMs).padStart(5)} ms ${(result.killedAtHold ? `held after ${result.holdAfter ?? ""}` : "").padEnd(18)}` +
            `-> ${result.landing.padEnd(14)} ${result.uncommitted ? "uncommitted " : "            "}${landedMidChange(result) ? "mid-change " : "           "}${status}` +
            (result.leftovers.length > 0 ? ` leftovers: ${result.leftovers.join(", ")}` : ""),
        );
        // A failed trial may leave the node dirty: the next one starts from a fresh namespace.
        if (result.problems.length > 0) setup = await fresh(firewall);
        save();
      }
    }
  }
} finally {
  node?.destroy();
  tools.remove();
}

const seconds = Math.round((Date.now() - started) / 1000);
const problems: string[] = [];
for (const firewall of firewalls) {
  const points = pointResults.filter((r) => r.firewall === firewall);
  const trialsOf = results.filter((r) => r.firewall === firewall);
  const pointsFailed = points.filter((r) => r.problems.length > 0);
  console.log(
    `\n${firewall}: crash points: ${points.length} (${points.filter((r) => r.fired).length} reached), ${pointsFailed.length} failed` +
      pointsFailed.map((r) => `\n  FAILED ${describePoint(r.point)}: ${r.problems.join("; ")}`).join(""),
  );
  console.log(summarise(trialsOf));
  // A replay of one trial (--only) proves nothing about shares.
  const weak = only === undefined ? weakRun(trialsOf, points) : [];
  for (const p of weak) console.log(`WEAK RUN (${firewall}): ${p}`);
  problems.push(
    ...pointsFailed.map((r) => `${firewall} ${describePoint(r.point)}: ${r.problems.join("; ")}`),
    ...trialsOf
      .filter((r) => r.problems.length > 0)
      .map((r) => `${firewall} ${r.phase} trial ${r.trial}: ${r.problems.join("; ")}`),
    ...weak.map((p) => `${firewall}: ${p}`),
  );
}
console.log(`took ${seconds} s`);
save({ problems, seconds });
process.exit(problems.length > 0 ? 1 : 0);
