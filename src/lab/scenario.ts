// One lab run from start to end: build, matrix before, plan, apply, matrix after, delete, compare
// with the start, tear down. Shared by `symroute lab demo` and the end-to-end tests.

import { runMatrix } from "./matrix.ts";
import type { Cell, MatrixOptions } from "./matrix.ts";
import { compareSnapshots, snapshot } from "./snapshot.ts";
import type { SnapshotDifference } from "./snapshot.ts";
import { labConfigText, runSymroute, writeLabConfig } from "./symroute.ts";
import type { SymrouteRun } from "./symroute.ts";
import { buildTopology } from "./topology.ts";
import type { Topology } from "./topology.ts";
import type { LabSpec } from "./spec.ts";

export interface ScenarioReport {
  readonly spec: LabSpec;
  readonly namespaces: Readonly<Record<string, string>>;
  readonly config: string;
  readonly before: readonly Cell[];
  readonly plan?: SymrouteRun;
  readonly apply?: SymrouteRun;
  /** `plan` right after `apply`: must say in sync (exit 0). */
  readonly planAfterApply?: SymrouteRun;
  readonly after?: readonly Cell[];
  readonly delete?: SymrouteRun;
  /** Differences between the node's state at the start and after delete; empty is the goal. */
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

/** Runs the whole scenario; the topology is always torn down, also when a step throws. */
export async function runScenario(
  spec: LabSpec,
  hooks: ScenarioHooks = {},
  options: ScenarioOptions = {},
): Promise<ScenarioReport> {
  const topology = await buildTopology(spec, options.prefix === undefined ? {} : { prefix: options.prefix });
  try {
    const config = labConfigText(spec);
    const node = topology.namespaceOf("node");
    const start = await snapshot(node);
    await hooks.built?.(topology);
    const base = { spec, namespaces: { ...topology.namespaces }, config };
    const before = await runMatrix(topology, "before", options);
    await hooks.step?.("before", before);
    if (options.beforeOnly === true) return { ...base, before };

    const configPath = await writeLabConfig(topology, config);
    const plan = await runSymroute(topology, "plan", configPath);
    await hooks.step?.("plan", plan);
    if (plan.code !== 0 && plan.code !== 2) return { ...base, before, plan, stoppedAt: "plan" };
    const apply = await runSymroute(topology, "apply", configPath);
    await hooks.step?.("apply", apply);
    if (apply.code !== 0) return { ...base, before, plan, apply, stoppedAt: "apply" };
    const planAfterApply = await runSymroute(topology, "plan", configPath);
    await hooks.step?.("plan after apply", planAfterApply);
    const after = await runMatrix(topology, "after", options);
    await hooks.step?.("after", after);
    const deleted = await runSymroute(topology, "delete", configPath);
    await hooks.step?.("delete", deleted);
    const residue = compareSnapshots(start, await snapshot(node));
    return {
      ...base,
      before,
      plan,
      apply,
      planAfterApply,
      after,
      delete: deleted,
      residue,
      ...(deleted.code === 0 ? {} : { stoppedAt: "delete" }),
    };
  } finally {
    await topology.teardown();
  }
}
