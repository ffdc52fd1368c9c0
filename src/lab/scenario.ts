// One lab run from start to end: build, matrix before, plan, apply, matrix after, delete, compare
// with the start, tear down. Shared by `symroute lab demo` and the end-to-end tests.

import { removeSymrouteArpProbes } from "./controls.ts";
import { matrixOf, runCells, runMatrix } from "./matrix.ts";
import type { Cell, MatrixOptions } from "./matrix.ts";
import { neighbourStates, nextHopsOf } from "./neighbours.ts";
import type { NeighbourState } from "./neighbours.ts";
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
  /** The first node's neighbour entries for its next hops on the pool's link, after each matrix. */
  readonly neighbours?: {
    readonly before: readonly NeighbourState[];
    readonly after?: readonly NeighbourState[];
  };
  /** After apply, symroute's ARP probes removed on purpose (see ScenarioOptions.arpControl). */
  readonly arpControl?: ArpControl;
}

interface ArpControl {
  /** How many ARP probe rules were removed. */
  readonly removed: number;
  /** The IPv4 external cells, expected to fail now. */
  readonly cells: readonly Cell[];
  /** The next hops' neighbour entries after those cells ran. */
  readonly neighbours: readonly NeighbourState[];
  /** `apply` again: it puts the probes back. */
  readonly reapply: SymrouteRun;
}

/** Hooks to show progress while a scenario runs (the demo prints; tests ignore them). */
interface ScenarioHooks {
  built?(topology: Topology): void | Promise<void>;
  step?(name: string, value: Cell[] | SymrouteRun): void | Promise<void>;
  neighbours?(phase: "before" | "after", states: readonly NeighbourState[]): void | Promise<void>;
  arpControl?(control: ArpControl): void | Promise<void>;
}

interface ScenarioOptions extends MatrixOptions {
  readonly prefix?: string;
  /** Stop after the "before" matrix (no symroute run). */
  readonly beforeOnly?: boolean;
  /**
   * After the "after" matrix: remove symroute's ARP probes, forget the next hop's MAC, and show that
   * the IPv4 external cells fail and the entry does not resolve (the strict router ignores the node's
   * ARP requests); then `apply` again. Only where a next hop sits on the pool's address-less link.
   */
  readonly arpControl?: boolean;
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
    const neighboursBefore = await neighbourStates(topology);
    await hooks.neighbours?.("before", neighboursBefore);
    if (options.beforeOnly === true) return { ...base, before, neighbours: { before: neighboursBefore } };

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
    const neighbours = { before: neighboursBefore, after: await neighbourStates(topology) };
    await hooks.neighbours?.("after", neighbours.after);
    let arpControl: ArpControl | undefined;
    let reapplyFailed = false;
    const arpHops = nextHopsOf(spec).filter((h) => h.family === 4);
    if (options.arpControl === true && arpHops.length > 0) {
      const removed = await removeSymrouteArpProbes(topology);
      for (const hop of arpHops)
        await topology.exec("node", ["ip", "-4", "neigh", "flush", "dev", hop.device]);
      const external = matrixOf(spec).filter((c) => c.kind === "external" && c.family === 4);
      const cells = await runCells(topology, external, () => false, options);
      const states = await neighbourStates(topology);
      const reapply = await onEveryNode("apply", (code) => code === 0);
      arpControl = { removed, cells, neighbours: states.filter((n) => n.family === 4), reapply: reapply.run };
      if (!reapply.ok) reapplyFailed = true;
      await hooks.arpControl?.(arpControl);
    }
    const deleted = await onEveryNode("delete", (code) => code === 0);
    await hooks.step?.("delete", deleted.run);
    const residue = compareSnapshots(start, await snapshotNodes(topology));
    const stoppedAt = !planAfterApply.ok
      ? "plan after apply"
      : reapplyFailed
        ? "apply after the ARP control"
        : !deleted.ok
          ? "delete"
          : undefined;
    return {
      ...base,
      before,
      plan: plan.run,
      apply: apply.run,
      planAfterApply: planAfterApply.run,
      after,
      delete: deleted.run,
      residue,
      neighbours,
      ...(arpControl === undefined ? {} : { arpControl }),
      ...(stoppedAt === undefined ? {} : { stoppedAt }),
    };
  } finally {
    await topology.teardown();
  }
}
