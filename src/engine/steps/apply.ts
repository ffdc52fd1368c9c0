// Step 5: apply the payloads. Links and sysctls go first; then routing (ip batches, then link
// deletions) and the firewall transaction run side by side: they touch disjoint kernel objects
// (nft matches interfaces by name, rules by mark), so the order between them changes nothing but
// the wall time.

import type { Change } from "../../model/change.ts";
import type { IpBatch } from "../../render/ip.ts";
import type { Payloads, renderRoutingPayloads } from "../../render/payloads.ts";
import { frontEndOf, type CreatedObjects } from "../firewall/index.ts";
import { BatchError, type Kernel } from "../ports.ts";
import type { Planned } from "../types.ts";

export type RoutingPayloads = ReturnType<typeof renderRoutingPayloads>;

export interface ApplyHooks {
  /** Routing (ip batches and link deletions) is written. */
  readonly routingDone: () => void;
  /** The firewall's transactions ran. */
  readonly firewallDone: () => void;
}

export interface ApplyOutcome {
  /** The whole plan, once `finish` made it. */
  readonly planned?: Planned;
  /** What ran, in order (asked for only to roll back: sorting thousands of indices costs). */
  readonly executed: () => Change[];
  /** Whether a firewall payload changed the node (a refused transaction did not). */
  readonly firewallTouched: boolean;
  readonly error?: unknown;
}

/**
 * The changes of `batch` that ran whole before it failed with `error`: ip stops at the failing line
 * and keeps every line before it (a failure that names no line: none ran).
 */
function changesRun(batch: IpBatch, error: unknown): Set<number> {
  const failed = (error instanceof BatchError ? error.failedLine : undefined) ?? 1;
  const run = new Set<number>();
  batch.changeIndex.forEach((changeIdx, lineIdx) => {
    if (lineIdx < failed - 1) run.add(changeIdx);
  });
  // A change is done only when all its lines ran.
  batch.changeIndex.forEach((changeIdx, lineIdx) => {
    if (lineIdx >= failed - 1) run.delete(changeIdx);
  });
  return run;
}

/** Runs one ip batch (none when it is empty); `done` gains the changes that ran whole, even when it fails. */
export async function runIpBatch(kernel: Kernel, batch: IpBatch, done: Set<number>): Promise<void> {
  if (batch.lines.length === 0) return;
  try {
    await kernel.runIpBatch(batch.family, batch.lines);
    for (const i of batch.changeIndex) done.add(i);
  } catch (error) {
    for (const i of changesRun(batch, error)) done.add(i);
    throw error;
  }
}

/** An `nft -f` or `iptables-restore` transaction the tool refused: it changed nothing. */
const refusedTransaction = (error: unknown): boolean =>
  error instanceof BatchError && error.tool !== "ip" && error.tool !== "ipset";

/**
 * Runs the payloads; on failure returns what ran, so that it can be undone. The ip batches start
 * before the firewall is even compared: `finish` completes the plan (firewall and link deletions)
 * while they run. `routingDone` and `firewallDone` fire as soon as each branch succeeded, so that
 * verification reads each part while the other is still being written. Each firewall payload is
 * run by its front end; `created` gains the tables and chains they create.
 */
export async function apply(
  kernel: Kernel,
  first: RoutingPayloads,
  routingChanges: readonly Change[],
  finish: () => Planned,
  created: CreatedObjects,
  hooks: ApplyHooks,
): Promise<ApplyOutcome> {
  const done = new Set<number>();
  let planned: Planned | undefined;
  const executed = (): Change[] => {
    const all = planned?.report.changes ?? routingChanges;
    return [...done].sort((a, b) => a - b).map((i) => all[i] as Change);
  };
  let firewallTouched = false;
  const runBatch = (batch: IpBatch): Promise<void> => runIpBatch(kernel, batch, done);
  const firewall = async (payloads: Payloads): Promise<void> => {
    for (const p of payloads.firewall) {
      try {
        await frontEndOf(p).run(kernel, p, created);
      } catch (error) {
        // A transaction the tool refused changed nothing; anything else may have.
        if (!refusedTransaction(error)) firewallTouched = true;
        throw error;
      }
      firewallTouched = true;
    }
    if (payloads.firewall.length > 0) hooks.firewallDone();
  };
  try {
    await runBatch(first.linkAdds);
    for (const w of first.sysctls) {
      await kernel.writeSysctls([[w.name, w.value]]);
      if (w.changeIndex >= 0) done.add(w.changeIndex);
    }
    // The real kernel starts `ip` within this call, before `finish` takes the main thread.
    const batches = (async () => {
      for (const batch of first.ip) await runBatch(batch);
    })();
    try {
      planned = finish();
    } catch (error) {
      await batches.catch(() => undefined);
      throw error;
    }
    const full = planned;
    const routing = batches.then(async () => {
      await runBatch(full.report.payloads.linkDeletes);
      hooks.routingDone();
    });
    const firewalled = firewall(full.report.payloads);
    // Both branches run to their end even when one fails: a roll back must know all that ran.
    const [r, f] = await Promise.allSettled([routing, firewalled]);
    if (r.status === "rejected") throw r.reason;
    if (f.status === "rejected") throw f.reason;
    return { planned, executed, firewallTouched };
  } catch (error) {
    return { ...(planned === undefined ? {} : { planned }), executed, firewallTouched, error };
  }
}
