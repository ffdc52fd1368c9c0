// Or roll back: any failure after the node was touched undoes what ran. The engine knows which
// changes ran (for `ip -batch`, the lines before the failing one); it applies their inverses,
// restores old sysctl values, and re-applies the previously recorded firewall spec.

import { SymrouteError, isSymrouteError } from "../../model/errors.ts";
import type { FirewallBackend } from "../../model/state.ts";
import type { Change } from "../../model/change.ts";
import { renderLinkBatch } from "../../render/ip.ts";
import { renderRoutingPayloads } from "../../render/payloads.ts";
import { firewallPayloads, frontEndOf } from "../firewall/index.ts";
import type { Kernel, SavedState, StateStore } from "../ports.ts";
import { readNode } from "./observe.ts";
import type { StateRecord } from "./record.ts";

/** The changes that undo `executed`, in reverse order. */
export function inverseChanges(executed: readonly Change[]): Change[] {
  const out: Change[] = [];
  for (const c of [...executed].reverse()) {
    switch (c.kind) {
      case "route":
        if (c.action === "add") out.push({ kind: "route", action: "delete", route: c.route });
        else if (c.action === "replace")
          out.push({ kind: "route", action: "replace", route: c.previous, previous: c.route });
        else out.push({ kind: "route", action: "add", route: c.route });
        break;
      case "rule":
        out.push({ kind: "rule", action: c.action === "add" ? "delete" : "add", rule: c.rule });
        break;
      case "sysctl":
        if (c.from !== undefined)
          out.push({ kind: "sysctl", action: "set", name: c.name, from: c.to, to: c.from });
        break;
      case "link":
        out.push({ kind: "link", action: c.action === "add" ? "delete" : "add", vlan: c.vlan });
        break;
      case "firewall":
        break; // restored from the saved spec, whole
    }
  }
  return out;
}

/** Undoes `executed` on the node; returns what could not be undone (empty: all of it was). */
async function undo(
  kernel: Kernel,
  saved: SavedState | undefined,
  changes: readonly Change[],
  executed: readonly Change[],
  firewallTouched: boolean,
): Promise<string[]> {
  const problems: string[] = [];
  const inverse = inverseChanges(executed);
  const node = await readNode(kernel, { firewalls: await kernel.availableFirewalls() });
  const payloads = renderRoutingPayloads(inverse);
  const batches = [payloads.linkAdds, ...payloads.ip, renderLinkBatch(inverse, "delete")];
  try {
    for (const w of payloads.sysctls.filter((s) => s.name.endsWith("/all/rp_filter")))
      await kernel.writeSysctls([[w.name, w.value]]);
    for (const w of payloads.sysctls.filter((s) => !s.name.endsWith("/all/rp_filter")))
      await kernel.writeSysctls([[w.name, w.value]]);
    for (const batch of batches)
      if (batch.lines.length > 0) await kernel.runIpBatch(batch.family, batch.lines);
  } catch (error) {
    problems.push(`roll back of routing failed: ${(error as Error).message}`);
  }
  if (firewallTouched) {
    const previous = saved?.firewallSpec;
    const backends = new Set<FirewallBackend>(
      changes.flatMap((c) => (c.kind === "firewall" ? [c.backend] : [])),
    );
    for (const p of firewallPayloads(previous, node, [...backends])) {
      try {
        await frontEndOf(p).run(kernel, p);
      } catch (error) {
        problems.push(`roll back of the firewall failed: ${(error as Error).message}`);
      }
    }
  }
  return problems;
}

/**
 * Rolls back what ran, records the state as it was (the links and sysctl values this run learnt of
 * stay known), and throws the failure, saying whether the roll back was complete.
 */
export async function rollBack(
  kernel: Kernel,
  store: StateStore,
  record: StateRecord,
  saved: SavedState | undefined,
  ran: {
    /** Every change of the plan (their indices are what `executed` names). */
    readonly changes: readonly Change[];
    readonly executed: readonly Change[];
    readonly firewallTouched: boolean;
  },
  failure: unknown,
): Promise<never> {
  const problems = await undo(kernel, saved, ran.changes, ran.executed, ran.firewallTouched);
  try {
    record.contents = saved?.firewallContents;
    await store.write({
      ...record.state(false),
      ...(saved?.firewallSpec === undefined ? {} : { firewallSpec: saved.firewallSpec }),
      allocations: saved?.allocations ?? {},
    });
  } catch (error) {
    // The original failure is what the user needs to see; this one goes with it.
    problems.push(`the state file could not be written after the roll back: ${(error as Error).message}`);
  }
  const base = isSymrouteError(failure)
    ? failure
    : new SymrouteError("kernel", String((failure as Error).message ?? failure), { cause: failure });
  throw new SymrouteError(base.kind, `apply failed and was rolled back: ${base.message}`, {
    cause: failure,
    details: [...base.details, ...problems],
    hint:
      problems.length > 0
        ? "the roll back was incomplete: run `symroute plan` to see what is left"
        : base.hint,
    retriable: base.retriable,
  });
}
