// Or roll back: any failure after the node was touched undoes what ran. The engine knows which
// changes ran (for `ip -batch`, the lines before the failing one); it applies their inverses,
// restores old sysctl values, and re-applies the previously recorded firewall spec.

import { SymrouteError, isSymrouteError } from "../../model/errors.ts";
import type { FirewallBackend, RoutingState } from "../../model/state.ts";
import type { Change } from "../../model/change.ts";
import { renderLinkBatch, type IpBatch } from "../../render/ip.ts";
import { renderRoutingPayloads } from "../../render/payloads.ts";
import { describeChange } from "../describe.ts";
import { FRONT_ENDS, firewallPayloads, frontEndOf, type CreatedObjects } from "../firewall/index.ts";
import { BatchError, type Kernel, type SavedState, type StateStore } from "../ports.ts";
import { runIpBatch } from "./apply.ts";
import type { StateRecord } from "./record.ts";
import { agreeing, counted } from "../../model/plural.ts";
import { rolledBackRecord, type RollBackLeft } from "./rollback-record.ts";

/** The changes that undo `executed`, in reverse order. */
function inverseChanges(executed: readonly Change[]): Change[] {
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
  // The rules deleted come back in the order they were deleted (the node's order), not reversed:
  // the kernel lists a rule added at a priority after those already there, so that a priority whose
  // rules all went comes back as it was listed. Nothing else depends on their order (a goto to a
  // priority without a rule yet is taken), and the batch orders the other changes by kind.
  const readded = out.flatMap((c, i) => (c.kind === "rule" && c.action === "add" ? [i] : []));
  const inOrder = readded.map((i) => out[i] as Change).reverse();
  readded.forEach((at, k) => (out[at] = inOrder[k] as Change));
  return out;
}

/** Whether `change` is a sysctl write that lowers a value. */
const lowers = (change: Change | undefined): boolean =>
  change?.kind === "sysctl" && Number(change.to) < Number(change.from ?? 0);

/**
 * Runs `batch`, and after a line ip refused, the lines after it: each line it can take is undone.
 * `failed` gains the changes of the refused lines; the first error is returned (none: undefined).
 * A failure that names no line stops the batch (nothing tells which lines ran).
 */
async function runIpBatchOnward(
  kernel: Kernel,
  batch: IpBatch,
  done: Set<number>,
  failed: Set<number>,
): Promise<unknown> {
  let first: unknown;
  let rest = batch;
  while (rest.lines.length > 0) {
    try {
      await runIpBatch(kernel, rest, done);
      break;
    } catch (error) {
      first ??= error;
      const line = error instanceof BatchError ? error.failedLine : undefined;
      if (line === undefined || line < 1 || line > rest.lines.length) {
        rest.changeIndex.forEach((i) => failed.add(i));
        break;
      }
      failed.add(rest.changeIndex[line - 1] as number);
      rest = { ...rest, lines: rest.lines.slice(line), changeIndex: rest.changeIndex.slice(line) };
    }
  }
  return first;
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** What a roll back did: what failed (empty: nothing), part by part what the node holds now, what is left. */
interface Undone extends Omit<RollBackLeft, "complete"> {
  readonly problems: string[];
  readonly node: string[];
}

/** Undoes `executed`: routing by the inverse changes, each firewall front end touched from `saved`. */
async function undo(
  kernel: Kernel,
  saved: SavedState | undefined,
  routing: RoutingState,
  ran: Ran,
  /** The iptables mangle tables and chains symroute created (the saved ones, and this run's). */
  created: CreatedObjects,
): Promise<Undone> {
  const problems: string[] = [];
  const node: string[] = [];
  const inverse = inverseChanges(ran.executed);
  const payloads = renderRoutingPayloads(inverse);
  const isAll = (name: string): boolean => name.endsWith("/all/rp_filter");
  const sysctls = [
    ...payloads.sysctls.filter((s) => isAll(s.name)),
    ...payloads.sysctls.filter((s) => !isAll(s.name)),
  ];
  // Every undo step is tried, whatever failed before it: what is left is exactly what failed or
  // was held back.
  const done = new Set<number>();
  const failed = new Set<number>();
  const failedAll = new Set<string>();
  for (const w of sysctls) {
    // Lowering an interface's value while conf.all stays lowered would lower its effective
    // rp_filter below what it was before the apply: such a write waits for conf.all.
    const setting = w.name.slice(w.name.lastIndexOf("/") + 1);
    if (failedAll.has(setting) && lowers(inverse[w.changeIndex])) continue;
    try {
      await kernel.writeSysctls([[w.name, w.value]]);
      done.add(w.changeIndex);
    } catch (error) {
      problems.push(`roll back of routing failed: ${messageOf(error)}`);
      if (w.name.includes("/conf/all/")) failedAll.add(setting);
    }
  }
  for (const batch of [payloads.linkAdds, ...payloads.ip, renderLinkBatch(inverse, "delete")]) {
    const error = await runIpBatchOnward(kernel, batch, done, failed);
    if (error !== undefined) problems.push(`roll back of routing failed: ${messageOf(error)}`);
  }
  const left = inverse.filter((_, i) => !done.has(i) || failed.has(i));
  const linksLeft = left.flatMap((c) => (c.kind === "link" && c.action === "delete" ? [c.vlan.ifname] : []));
  const linksGone = left.flatMap((c) => (c.kind === "link" && c.action === "add" ? [c.vlan.ifname] : []));
  const sysctlsLeft = new Set(left.flatMap((c) => (c.kind === "sysctl" ? [c.name] : [])));
  if (left.length === 0) node.push("routing, links and sysctls are as before this apply");
  else
    node.push(
      `routing, links and sysctls: ${counted(left.length, "change")} of this apply ${agreeing(left.length, "is", "are")} still on the node`,
      ...left.slice(0, 10).map((c) => `still to undo: ${describeChange(c)}`),
      ...(left.length > 10 ? [`and ${left.length - 10} more`] : []),
    );
  if (!ran.firewallTouched) return { problems, node, linksLeft, linksGone, sysctlsLeft };
  // The front end the saved spec is for goes last: both write nft's `table arp symroute` (the ARP
  // probes), and an emptied front end's payload deletes it (firewallPayloads orders them alike).
  const backends = [
    ...new Set<FirewallBackend>(ran.changes.flatMap((c) => (c.kind === "firewall" ? [c.backend] : []))),
  ].sort((a, b) => Number(a === saved?.firewallSpec?.backend) - Number(b === saved?.firewallSpec?.backend));
  for (const backend of backends) {
    let payloadsRun = 0;
    try {
      // Only a front end whose payloads depend on what it holds now reads it again.
      const firewall = FRONT_ENDS[backend].rendersFromNode ? await kernel.readFirewall([backend]) : [];
      for (const p of firewallPayloads(saved?.firewallSpec, { ...routing, firewall }, [backend])) {
        // A table the restore makes is symroute's too (a failed commit's clean-up dropped it).
        await frontEndOf(p).run(kernel, p, created);
        payloadsRun++;
      }
      // As a commit does: a front end the saved record does not use drops the tables symroute
      // created for it (iptables-nft made the mangle table on the failed apply's first use).
      await FRONT_ENDS[backend].cleanUp(kernel, created, saved?.firewallSpec?.backend === backend);
      node.push(`symroute's ${backend} firewall is as before this apply`);
    } catch (error) {
      problems.push(`roll back of the ${backend} firewall failed: ${messageOf(error)}`);
      node.push(
        payloadsRun === 0
          ? `symroute's ${backend} firewall is as the failed apply left it`
          : `symroute's ${backend} firewall is partly restored (${payloadsRun} of the roll back's payloads ran)`,
      );
    }
  }
  return { problems, node, linksLeft, linksGone, sysctlsLeft };
}

/** What the failed apply ran, for the roll back. */
interface Ran {
  /** Every change of the plan (their indices are what `executed` names). */
  readonly changes: readonly Change[];
  readonly executed: readonly Change[];
  readonly firewallTouched: boolean;
}

/**
 * Rolls back what ran, records the state as it was but for what the roll back left
 * (rolledBackRecord), and throws the failure, saying whether the roll back was complete and, when
 * not, what the node holds now.
 */
export async function rollBack(
  kernel: Kernel,
  store: StateStore,
  record: StateRecord,
  saved: SavedState | undefined,
  /** Routing as the plan read it (the firewall's payloads render from the firewall alone). */
  routing: RoutingState,
  ran: Ran,
  failure: unknown,
  /** What failed, for the message: the command the user ran. */
  run: "apply" | "delete" = "apply",
): Promise<never> {
  const { problems, node, ...left } = await undo(kernel, saved, routing, ran, record.created);
  const complete = problems.length === 0;
  let stateWritten = true;
  try {
    await store.write(
      rolledBackRecord(
        saved,
        record.state(false),
        routing.links.map((l) => l.ifname),
        { complete, ...left },
      ),
    );
  } catch (error) {
    // The original failure is what the user needs to see; this one goes with it.
    stateWritten = false;
    problems.push(`the state file could not be written after the roll back: ${messageOf(error)}`);
  }
  const base = isSymrouteError(failure)
    ? failure
    : new SymrouteError("kernel", messageOf(failure), { cause: failure });
  if (complete) {
    throw new SymrouteError(base.kind, `${run} failed and was rolled back: ${base.message}`, {
      cause: failure,
      details: [...base.details, ...problems],
      hint: stateWritten
        ? base.hint
        : `the node is as before this ${run}, but its state file still says a run is in progress: fix the cause above, then run \`symroute ${run}\` again`,
      retriable: base.retriable,
    });
  }
  throw new SymrouteError(base.kind, `${run} failed and its roll back was incomplete: ${base.message}`, {
    cause: failure,
    details: [...base.details, ...problems, ...node.map((line) => `now: ${line}`)],
    hint: "the node is half-changed (the `now:` lines say how) and its state file says the apply is in progress: fix the cause above, then run `symroute apply` again (it converges from the node as it is), or `symroute delete` to remove what symroute owns",
    retriable: base.retriable,
  });
}
