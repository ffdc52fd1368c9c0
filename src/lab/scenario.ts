// One lab run from start to end: build, matrix before, plan, apply, matrix after, delete, compare
// with the start, tear down. Shared by `symroute lab demo` and the end-to-end tests.

import { runMatrix } from "./matrix.ts";
import type { Cell, MatrixOptions } from "./matrix.ts";
import { compareSnapshots, snapshot } from "./snapshot.ts";
import type { Snapshot, SnapshotDifference } from "./snapshot.ts";
import { nodesOf } from "./spec.ts";
import type { LabSpec } from "./spec.ts";
import { labConfigText, runSymroute, writeLabConfig } from "./symroute.ts";
import type { SymrouteRun } from "./symroute.ts";
import { buildTopology } from "./topology.ts";
import type { Topology } from "./topology.ts";

export interface ScenarioReport {
  readonly spec: LabSpec;
  readonly namespaces: Readonly<Record<string, string>>;
  readonly config: string;
  readonly before: readonly Cell[];
  /** The runs on the first node (the one that answers for the LB address). */
  readonly plan?: SymrouteRun;
  readonly apply?: SymrouteRun;
  /** `plan` right after `apply`: must say in sync (exit 0). */
  readonly planAfterApply?: SymrouteRun;
  readonly after?: readonly Cell[];
  readonly delete?: SymrouteRun;
  /** The same commands on the other nodes, in order. */
  readonly otherNodeRuns: readonly SymrouteRun[];
  /** Differences between the nodes' state at the start and after delete; empty is the goal. */
  readonly residue?: readonly SnapshotDifference[];
  /** Where the run stopped early, and why (a symroute command failed). */
  readonly stoppedAt?: string;
}

/** Hooks to show progress while a scenario runs (the demo prints; tests ignore them). */
export interface ScenarioHooks {
  built?(topology: Topology): void | Promise<void>;
  step?(name: string, value: Cell[] | SymrouteRun): void | Promise<void>;
}

export interface ScenarioOptions extends MatrixOptions {
  readonly prefix?: string;
  /** Stop after the "before" matrix (no symroute run). */
  readonly beforeOnly?: boolean;
}

async function snapshotNodes(topology: Topology): Promise<Snapshot> {
  const nodes = nodesOf(topology.spec);
  const parts = await Promise.all(nodes.map((n) => snapshot(topology.namespaceOf(n))));
  const merged: Record<string, string> = {};
  nodes.forEach((n, i) => {
    for (const [section, text] of Object.entries(parts[i] ?? {})) {
      merged[nodes.length === 1 ? section : `${n}: ${section}`] = text;
    }
  });
  return merged;
}

/** Runs the whole scenario; the topology is always torn down, also when a step throws. */
export async function runScenario(
  spec: LabSpec,
  hooks: ScenarioHooks = {},
  options: ScenarioOptions = {},
): Promise<ScenarioReport> {
  const topology = await buildTopology(spec, options.prefix === undefined ? {} : { prefix: options.prefix });
  try {
    const config = labConfigText(spec);
    const start = await snapshotNodes(topology);
    await hooks.built?.(topology);
    const otherNodeRuns: SymrouteRun[] = [];
    const base = { spec, namespaces: { ...topology.namespaces }, config, otherNodeRuns };
    const before = await runMatrix(topology, "before", options);
    await hooks.step?.("before", before);
    if (options.beforeOnly === true) return { ...base, before };

    const configPath = await writeLabConfig(topology, config);
    // Every node runs the same command; the first node's run is the one reported and shown, and a
    // failure on another node counts as a failure of the step.
    const onEveryNode = async (
      command: "plan" | "apply" | "delete",
      ok: (code: number) => boolean,
    ): Promise<{ run: SymrouteRun; ok: boolean }> => {
      const [first, ...others] = await Promise.all(
        nodesOf(spec).map((n) => runSymroute(topology, command, configPath, n)),
      );
      if (first === undefined) throw new Error("a topology has at least one node");
      otherNodeRuns.push(...others);
      return { run: first, ok: [first, ...others].every((r) => ok(r.code)) };
    };

    const plan = await onEveryNode("plan", (code) => code === 0 || code === 2);
    await hooks.step?.("plan", plan.run);
    if (!plan.ok) return { ...base, before, plan: plan.run, stoppedAt: "plan" };
    const apply = await onEveryNode("apply", (code) => code === 0);
    await hooks.step?.("apply", apply.run);
    if (!apply.ok) return { ...base, before, plan: plan.run, apply: apply.run, stoppedAt: "apply" };
    const planAfterApply = await onEveryNode("plan", (code) => code === 0);
    await hooks.step?.("plan after apply", planAfterApply.run);
    const after = await runMatrix(topology, "after", options);
    await hooks.step?.("after", after);
    const deleted = await onEveryNode("delete", (code) => code === 0);
    await hooks.step?.("delete", deleted.run);
    const residue = compareSnapshots(start, await snapshotNodes(topology));
    const stoppedAt = !planAfterApply.ok ? "plan after apply" : !deleted.ok ? "delete" : undefined;
    return {
      ...base,
      before,
      plan: plan.run,
      apply: apply.run,
      planAfterApply: planAfterApply.run,
      after,
      delete: deleted.run,
      residue,
      ...(stoppedAt === undefined ? {} : { stoppedAt }),
    };
  } finally {
    await topology.teardown();
  }
}
