// observe -> desired -> diff -> render -> apply -> verify, with roll back on any failure.
// Depends on the ports only; src/cli and src/agent wire the real kernel in.

import type { Family } from "../model/address.ts";
import type { Config } from "../config/schema.ts";
import { CONFIG_DEFAULTS } from "../config/schema.ts";
import { SymrouteError, isSymrouteError } from "../model/errors.ts";
import type { FirewallBackend, NodeState, OwnedFirewall, RoutingState } from "../model/state.ts";
import { computeDesired, resolveFirewall, resolveKubeProxyMode } from "../plan/desired.ts";
import {
  diffFirewall,
  diffLinkDeletes,
  diffRouting,
  type DiffResult,
  type OwnershipMarks,
} from "../plan/diff.ts";
import { managedSysctlsNow, SYSCTLS_TO_READ } from "../plan/sysctls.ts";
import type {
  Change,
  Conflict,
  DesiredState,
  FirewallSpec,
  NetworkDecision,
  RuleSkip,
} from "../plan/types.ts";
import { changeLines, type IpBatch } from "../render/ip.ts";
import {
  renderFirewallPayloads,
  renderLastPayloads,
  renderPayloads,
  renderRoutingPayloads,
  type Payloads,
} from "../render/payloads.ts";
import { bypassMessage, detectBypassingDatapaths } from "../verify/datapath.ts";
import type { Kernel, SavedState, StateStore } from "./ports.ts";

export interface EngineDeps {
  readonly kernel: Kernel;
  readonly store: StateStore;
}

export interface PlanReport {
  readonly networks: readonly NetworkDecision[];
  readonly changes: readonly Change[];
  readonly conflicts: readonly Conflict[];
  readonly warnings: readonly string[];
  readonly inSync: boolean;
  readonly firewall: FirewallBackend | undefined;
  readonly kubeProxyMode: string | undefined;
  /** Routes, rules and firewall rules symroute owns on the node (after the apply, for apply). */
  readonly ownedObjects: number;
  readonly payloads: Payloads;
  /** The firewall symroute wants on the node (undefined: none). */
  readonly firewallSpec: FirewallSpec | undefined;
  /** Per family with fwmark rules: the rule that lets unmarked packets skip them, or why none. */
  readonly ruleSkips?: readonly RuleSkip[];
  /** The state file this run used, and whether it held a record (set by the engine). */
  readonly state?: StateInfo;
}

export interface StateInfo {
  /** The state file (its directory is the state directory plus the network namespace's id). */
  readonly file: string;
  /** Whether the file held a record of an earlier apply. */
  readonly found: boolean;
}

export interface ApplyReport extends PlanReport {
  readonly applied: boolean;
}

export interface ApplyOptions {
  readonly dryRun?: boolean;
  /**
   * delete only: remove what symroute owns even without a state file, leaving the sysctls it may
   * have changed as they are (their earlier values are known only from the state).
   */
  readonly force?: boolean;
  /** How long to wait for another run in this namespace to finish. */
  readonly lockWaitMs?: number;
}

export interface Engine {
  plan(config: Config): Promise<PlanReport>;
  apply(config: Config, options?: ApplyOptions): Promise<ApplyReport>;
  remove(config?: Config, options?: ApplyOptions): Promise<ApplyReport>;
}

interface Planned {
  readonly report: PlanReport;
  readonly desired: DesiredState;
  readonly node: NodeState;
  readonly saved: SavedState | undefined;
  readonly own: OwnershipMarks;
  /** The firewall front ends this plan read. */
  readonly firewallsRead: readonly FirewallBackend[];
}

/** The first half of a plan (planRouting); finishPlan completes it. */
interface RoutingPlan {
  readonly routing: RoutingState;
  readonly desired: DesiredState;
  readonly saved: SavedState | undefined;
  readonly own: OwnershipMarks;
  readonly firewall: FirewallBackend | undefined;
  readonly kubeProxyMode: string | undefined;
  /** Links added, sysctls, routes and rules (diffRouting). */
  readonly diff: DiffResult;
  readonly firewallRead: Promise<readonly OwnedFirewall[]>;
  readonly firewallsRead: readonly FirewallBackend[];
}

type RoutingPayloads = ReturnType<typeof renderRoutingPayloads>;

interface ExecuteHooks {
  readonly routingDone: () => void;
  readonly firewallDone: () => void;
}

const EMPTY_DESIRED: DesiredState = {
  decisions: [],
  routes: [],
  rules: [],
  sysctls: {},
  firewall: undefined,
  vlans: [],
  allocations: {},
  warnings: [],
};

function ownership(config: Config | undefined, saved: SavedState | undefined): OwnershipMarks {
  return {
    routeProtocol: config?.routeProtocol ?? saved?.routeProtocol ?? CONFIG_DEFAULTS.routeProtocol,
    rulePriorities: config?.rulePriorities ?? saved?.rulePriorities ?? CONFIG_DEFAULTS.rulePriorities,
    previousSysctls: saved?.previousSysctls ?? {},
    createdLinks: saved?.createdLinks ?? [],
  };
}

function countOwned(node: NodeState, own: OwnershipMarks): number {
  return (
    node.routes.filter((r) => r.protocol === own.routeProtocol).length +
    node.rules.filter((r) => r.protocol === own.routeProtocol).length +
    node.firewall.reduce((n, f) => n + f.ruleKeys.length, 0)
  );
}

/**
 * The record of symroute's firewall as the kernel lists it (sorted), for the front end wanted;
 * undefined when there is none or the reader lists no contents.
 */
function recordContents(
  desired: DesiredState,
  firewall: readonly OwnedFirewall[],
): Partial<Record<FirewallBackend, readonly string[]>> | undefined {
  const backend = desired.firewall?.backend;
  const contents = firewall.find((f) => f.backend === backend)?.contents;
  if (backend === undefined || contents === undefined) return undefined;
  return { [backend]: [...contents].sort() };
}

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

function refuseBypassingDatapath(config: Config, node: NodeState): void {
  if (node.datapath === undefined) return;
  const found = detectBypassingDatapaths({
    links: node.links,
    datapath: node.datapath,
    interfaces: config.networks.map((n) => n.interface),
  });
  if (found.length === 0) return;
  const { message, details, hint } = bypassMessage(found);
  throw new SymrouteError("not-supported", message, { details, hint });
}

export function createEngine(deps: EngineDeps): Engine {
  const { kernel, store } = deps;

  async function observe(
    firewalls: readonly FirewallBackend[],
    kubeProxyHints = false,
    datapathOf?: Config,
  ): Promise<NodeState> {
    return kernel.readNode({
      ...SYSCTLS_TO_READ,
      firewalls,
      kubeProxyHints,
      ...(datapathOf === undefined
        ? {}
        : { datapath: { interfaces: [...new Set(datapathOf.networks.map((n) => n.interface))] } }),
    });
  }

  /**
   * The first half of a plan: the node's routing read, the desired state, and the changes that come
   * before the firewall's (diffRouting). The firewall's read goes on meanwhile; `finishPlan` takes it.
   * With `removing`, the desired state is empty: everything owned goes, sysctls go back.
   */
  async function planRouting(
    config: Config | undefined,
    saved: SavedState | undefined,
    removing: boolean,
  ): Promise<RoutingPlan> {
    const available = await kernel.availableFirewalls();
    // A missing firewall tool is reported after the node was read, so that a missing `ip` (the
    // tool everything needs) is the error a user sees first.
    let firewallError: unknown;
    let firewall: FirewallBackend | undefined;
    try {
      firewall = config === undefined || removing ? undefined : resolveFirewall(config, available);
    } catch (error) {
      firewallError = error;
    }
    // Only the front ends that can hold symroute's objects: the one wanted and the one last used.
    // Without a record (a first run, or a lost state file) every available one is read.
    const toRead =
      saved === undefined || firewall === undefined
        ? available
        : available.filter((b) => b === firewall || b === saved.firewall);
    // Routing and firewall are read side by side, and the desired state (a RoutingState is all it
    // takes) is computed while the firewall's read, the slower one at thousands of rules, goes on.
    const firewallRead = kernel.readFirewall(toRead);
    firewallRead.catch(() => undefined); // awaited by the caller; a rejection must not count as unhandled
    const routing = await observe(
      [],
      config?.kubeProxyMode === "auto" && !removing,
      removing ? undefined : config,
    );
    if (firewallError !== undefined) throw firewallError;
    // A datapath that DNATs outside netfilter makes every object symroute would add useless: refuse
    // plan and apply; delete (removing) still runs, so that what an earlier apply left can go.
    if (!removing && config !== undefined) refuseBypassingDatapath(config, routing);
    const kubeProxyMode =
      config === undefined || removing ? undefined : resolveKubeProxyMode(config, routing);
    const desired =
      config === undefined || firewall === undefined || kubeProxyMode === undefined
        ? EMPTY_DESIRED
        : computeDesired({ config, node: routing, saved, firewall, kubeProxyMode });
    if ((desired.firewall?.arpProbes ?? []).length > 0 && !available.includes("nftables")) {
      throw new SymrouteError(
        "dependency",
        `ARP probes on ${(desired.firewall?.arpProbes ?? []).map((p) => p.oif).join(", ")} need nft, also with the iptables front end`,
        {
          hint: "install the Debian package nftables, or give the interface an IPv4 address in the gateway's subnet",
        },
      );
    }
    const own = ownership(config, saved);
    return {
      routing,
      desired,
      saved,
      own,
      firewall,
      kubeProxyMode,
      diff: diffRouting(desired, routing, own),
      firewallRead,
      firewallsRead: toRead,
    };
  }

  /** The second half: the firewall's changes, link deletions, and the report with every payload. */
  function finishPlan(
    rp: RoutingPlan,
    observedFirewall: readonly OwnedFirewall[],
    routingPayloads = renderRoutingPayloads(rp.diff.changes, rp.desired.sysctls),
  ): Planned {
    const { desired, own } = rp;
    const node: NodeState = { ...rp.routing, firewall: observedFirewall };
    // The same order diffState gives: the routing part keeps its indices, which its payloads name.
    const changes = [
      ...rp.diff.changes,
      ...diffFirewall(desired, observedFirewall, rp.saved?.firewallContents),
      ...diffLinkDeletes(desired, node.links, own),
    ];
    return {
      desired,
      node,
      saved: rp.saved,
      own,
      firewallsRead: rp.firewallsRead,
      report: {
        networks: desired.decisions,
        changes,
        conflicts: rp.diff.conflicts,
        warnings: [...desired.warnings, ...rp.diff.notices],
        inSync: changes.length === 0,
        firewall: rp.firewall,
        kubeProxyMode: rp.kubeProxyMode,
        ownedObjects: countOwned(node, own),
        payloads: { ...routingPayloads, ...renderLastPayloads(changes, desired.firewall, node) },
        firewallSpec: desired.firewall,
        ...(desired.ruleSkips === undefined ? {} : { ruleSkips: desired.ruleSkips }),
        state: { file: store.location, found: rp.saved !== undefined },
      },
    };
  }

  async function planWith(
    config: Config | undefined,
    saved: SavedState | undefined,
    removing: boolean,
  ): Promise<Planned> {
    const rp = await planRouting(config, saved, removing);
    return finishPlan(rp, await rp.firewallRead);
  }

  /**
   * Runs the payloads; on failure returns what ran, so that it can be undone. Links and sysctls go
   * first; then routing (ip batches, then link deletions) and the firewall transaction run side by
   * side: they touch disjoint kernel objects (nft matches interfaces by name, rules by mark), so
   * the order between them changes nothing but the wall time. The ip batches start before the
   * firewall is even compared: `finish` completes the plan (firewall and link deletions) while they
   * run. `routingDone` and `firewallDone` fire as soon as each branch succeeded, so that
   * verification reads each part while the other is still being written.
   */
  async function execute(
    first: RoutingPayloads,
    routingChanges: readonly Change[],
    finish: () => Planned,
    tablesCreated: Set<Family>,
    hooks: ExecuteHooks,
  ): Promise<{
    planned?: Planned;
    /** What ran, in order (asked for only to roll back: sorting thousands of indices costs). */
    executed: () => Change[];
    firewallTouched: boolean;
    error?: unknown;
  }> {
    const done = new Set<number>();
    let planned: Planned | undefined;
    const executed = (): Change[] => {
      const all = planned?.report.changes ?? routingChanges;
      return [...done].sort((a, b) => a - b).map((i) => all[i] as Change);
    };
    let firewallTouched = false;
    const runBatch = async (batch: IpBatch): Promise<void> => {
      if (batch.lines.length === 0) return;
      try {
        await kernel.runIpBatch(batch.family, batch.lines);
        for (const i of batch.changeIndex) done.add(i);
      } catch (error) {
        // ip stops at the failing line: everything before it is in the kernel.
        const failed =
          (isSymrouteError(error)
            ? (error.cause as { failedLine?: number } | undefined)?.failedLine
            : undefined) ?? 1;
        const partial = new Set<number>();
        batch.changeIndex.forEach((changeIdx, lineIdx) => {
          if (lineIdx < failed - 1) partial.add(changeIdx);
        });
        // A change is done only when all its lines ran.
        batch.changeIndex.forEach((changeIdx, lineIdx) => {
          if (lineIdx >= failed - 1) partial.delete(changeIdx);
        });
        for (const i of partial) done.add(i);
        throw error;
      }
    };
    const firewall = async (payloads: Payloads): Promise<void> => {
      for (const p of payloads.firewall) {
        firewallTouched = true;
        if (p.tool === "nft") await kernel.runNft(p.script);
        else {
          if (!tablesCreated.has(p.family) && !(await kernel.iptablesMangleExists(p.family)))
            tablesCreated.add(p.family);
          await kernel.runIptablesRestore(p.family, p.script);
        }
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

  async function rollBack(
    saved: SavedState | undefined,
    changes: readonly Change[],
    executed: readonly Change[],
    firewallTouched: boolean,
  ): Promise<string[]> {
    const problems: string[] = [];
    const undo = inverseChanges(executed);
    const node = await observe(await kernel.availableFirewalls());
    const payloads = renderPayloads(undo, undefined, node);
    const batches = [payloads.linkAdds, ...payloads.ip, payloads.linkDeletes];
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
      for (const p of renderFirewallPayloads(previous, node, [...backends])) {
        try {
          if (p.tool === "nft") await kernel.runNft(p.script);
          else await kernel.runIptablesRestore(p.family, p.script);
        } catch (error) {
          problems.push(`roll back of the firewall failed: ${(error as Error).message}`);
        }
      }
    }
    return problems;
  }

  /**
   * A delete that finds objects symroute owns but no state file: the sysctls symroute may have
   * changed cannot be put back (only the state knows their earlier values). Refused unless forced;
   * forced, the warning that says what stays as it is.
   */
  function unrestorable(
    rp: RoutingPlan,
    observedFirewall: readonly OwnedFirewall[],
    options: ApplyOptions,
  ): string[] {
    const { changes } = finishPlan(rp, observedFirewall).report;
    if (changes.length === 0) return [];
    const values = managedSysctlsNow(rp.routing);
    const where = `no state file at ${store.location}`;
    if (options.force !== true) {
      throw new SymrouteError(
        "conflict",
        `found ${changes.length} object(s) symroute owns but ${where}: the values these sysctls had before symroute cannot be restored`,
        {
          details: values,
          hint: "run delete with the --state-dir (or -c config with the stateDir) that apply used; or add --force to remove the objects and leave these sysctls as they are now",
        },
      );
    }
    return [`${where}: sysctls left as they are, not restored: ${values.join(", ")}`];
  }

  async function converge(
    config: Config | undefined,
    options: ApplyOptions,
    removing: boolean,
  ): Promise<ApplyReport> {
    const release = options.dryRun === true ? async () => {} : await store.lock(options.lockWaitMs ?? 30_000);
    try {
      const saved = await store.read();
      const rp = await planRouting(config, saved, removing);
      // Every read is in before anything is written: a failed read changes nothing.
      const observedFirewall = await rp.firewallRead;
      const { desired } = rp;
      const stateless = removing && saved === undefined ? unrestorable(rp, observedFirewall, options) : [];
      const withWarnings = <T extends PlanReport>(report: T): T =>
        stateless.length === 0 ? report : { ...report, warnings: [...report.warnings, ...stateless] };
      if (options.dryRun === true)
        return withWarnings({ ...finishPlan(rp, observedFirewall).report, applied: false });
      const routingPayloads = renderRoutingPayloads(rp.diff.changes, desired.sysctls);
      // Routing changes pending: the node is not in sync, whatever the firewall's comparison says,
      // and the ip batches can start before it is made.
      const early =
        rp.diff.changes.length > 0 ? undefined : finishPlan(rp, observedFirewall, routingPayloads);

      const previousSysctls: Record<string, string> = { ...(saved?.previousSysctls ?? {}) };
      for (const c of rp.diff.changes) {
        if (c.kind === "sysctl" && c.from !== undefined && !(c.name in previousSysctls))
          previousSysctls[c.name] = c.from;
      }
      const createdLinks = [
        ...new Set([
          ...(saved?.createdLinks ?? []),
          ...rp.diff.changes.flatMap((c) => (c.kind === "link" && c.action === "add" ? [c.vlan.ifname] : [])),
        ]),
      ];
      const tablesCreatedSoFar = new Set<Family>(saved?.iptablesTablesCreated ?? []);
      // The record of the firewall's content, renewed from the kernel's listing once verified.
      let contentsRecord = saved?.firewallContents;
      const nextState = (
        inProgress: boolean,
        prev: Record<string, string>,
        links: readonly string[],
      ): SavedState => ({
        version: 1,
        previousSysctls: prev,
        allocations: desired.allocations,
        createdLinks: links,
        ...(rp.firewall === undefined ? {} : { firewall: rp.firewall }),
        ...(desired.firewall === undefined ? {} : { firewallSpec: desired.firewall }),
        rulePriorities: rp.own.rulePriorities,
        routeProtocol: rp.own.routeProtocol,
        ...(inProgress ? { inProgress: true } : {}),
        ...(contentsRecord === undefined || desired.firewall === undefined
          ? {}
          : { firewallContents: contentsRecord }),
        ...(tablesCreatedSoFar.size > 0 ? { iptablesTablesCreated: [...tablesCreatedSoFar].sort() } : {}),
      });

      if (early?.report.inSync === true) {
        const record = recordContents(desired, observedFirewall);
        const recordMissing = record !== undefined && saved?.firewallContents === undefined;
        if (recordMissing) contentsRecord = record;
        if (
          !removing &&
          (recordMissing || JSON.stringify(saved?.allocations ?? {}) !== JSON.stringify(desired.allocations))
        ) {
          await store.write(nextState(false, previousSysctls, createdLinks));
        }
        if (removing && saved !== undefined) await store.remove();
        return withWarnings({ ...early.report, applied: false });
      }

      // Record what we are about to change before changing it: a crash mid-way still knows the
      // original sysctl values and links, and the next run converges from there.
      // A delete changes nothing the saved state does not already describe: no write before it, so
      // that a full disk cannot stop a clean-up.
      if (!removing || saved === undefined) await store.write(nextState(true, previousSysctls, createdLinks));

      // Verification reads again what this apply wrote (links, sysctls, the families it sent ip
      // batches for, the firewall front ends it ran a transaction for) and compares each part with
      // the same desired state as soon as its read is in; what it did not write is as the plan
      // read it. Each part's read starts when that part is written.
      const ownAfter = ownership(config, nextState(false, previousSysctls, createdLinks));
      const families = [...new Set(routingPayloads.ip.map((b) => b.family))];
      const untouched = <T extends { readonly family: Family }>(objects: readonly T[]): T[] =>
        objects.filter((o) => !families.includes(o.family));
      let routingCheck: Promise<{ reread: RoutingState; diff: DiffResult }> | undefined;
      const checkRouting = (): Promise<{ reread: RoutingState; diff: DiffResult }> => {
        routingCheck ??= kernel
          .readNode({ ...SYSCTLS_TO_READ, firewalls: [], families })
          .then(({ firewall: _none, ...routing }) => {
            const reread: RoutingState = {
              ...routing,
              addresses: routing.addresses.concat(untouched(rp.routing.addresses)),
              routes: routing.routes.concat(untouched(rp.routing.routes)),
              rules: routing.rules.concat(untouched(rp.routing.rules)),
            };
            return { reread, diff: diffRouting(desired, reread, ownAfter) };
          });
        // Awaited below, unless the apply failed; until then a rejection must not count as unhandled.
        routingCheck.catch(() => undefined);
        return routingCheck;
      };
      let written: readonly FirewallBackend[] = [];
      let firewallCheck: Promise<{ reread: readonly OwnedFirewall[]; changes: Change[] }> | undefined;
      const checkFirewall = (): Promise<{ reread: readonly OwnedFirewall[]; changes: Change[] }> => {
        firewallCheck ??= kernel.readFirewall(written).then((read) => {
          const rewritten = new Set(read.map((f) => f.backend));
          const reread = [...read, ...observedFirewall.filter((f) => !rewritten.has(f.backend))];
          return { reread, changes: diffFirewall(desired, reread) };
        });
        firewallCheck.catch(() => undefined);
        return firewallCheck;
      };
      const finish = (): Planned => {
        const planned = early ?? finishPlan(rp, observedFirewall, routingPayloads);
        // The front ends the firewall payloads write (a switch of front end writes both).
        written = [
          ...new Set(
            planned.report.payloads.firewall.map((p): FirewallBackend =>
              p.tool === "nft" && p.frontEnd === undefined ? "nftables" : "iptables",
            ),
          ),
        ];
        return planned;
      };
      const outcome = await execute(routingPayloads, rp.diff.changes, finish, tablesCreatedSoFar, {
        routingDone: () => void checkRouting(),
        firewallDone: () => void checkFirewall(),
      });
      let failure = outcome.error;
      const planned = outcome.planned;
      let after: Planned | undefined;
      if (failure === undefined && planned !== undefined) {
        const [routing, firewall] = await Promise.all([
          checkRouting(),
          outcome.firewallTouched
            ? checkFirewall()
            : {
                reread: observedFirewall,
                changes: diffFirewall(desired, observedFirewall, saved?.firewallContents),
              },
        ]);
        const reread: NodeState = { ...routing.reread, firewall: firewall.reread };
        const changes = [
          ...routing.diff.changes,
          ...firewall.changes,
          ...diffLinkDeletes(desired, reread.links, ownAfter),
        ];
        after = {
          ...planned,
          node: reread,
          own: ownAfter,
          report: {
            ...planned.report,
            changes,
            inSync: changes.length === 0,
            ownedObjects: countOwned(reread, ownAfter),
          },
        };
        if (!after.report.inSync) {
          failure = new SymrouteError(
            "verification",
            `${after.report.changes.length} change(s) still pending after apply`,
            {
              details: after.report.changes.slice(0, 10).map(describeChange),
              hint: "something on the node changes these objects back (a network manager?); see `symroute doctor`",
            },
          );
        }
      }
      if (failure === undefined) {
        // Success: sysctls no longer managed have their original value again, links deleted are
        // gone. Recording that is part of the apply: if it fails (a full disk), it is rolled back.
        try {
          const finalNode = after?.node ?? rp.routing;
          const stillDesired = after?.desired.sysctls ?? {};
          const keptPrevious = Object.fromEntries(
            Object.entries(previousSysctls).filter(([name]) => name in stillDesired),
          );
          const keptLinks = createdLinks.filter((l) => finalNode.links.some((x) => x.ifname === l));
          if (removing || desired.firewall?.backend !== "iptables") {
            // iptables' own mangle table goes again when symroute created it and nothing else uses it.
            for (const family of tablesCreatedSoFar) await kernel.dropEmptyIptablesMangle(family);
            tablesCreatedSoFar.clear();
          }
          contentsRecord =
            recordContents(desired, after?.node.firewall ?? observedFirewall) ?? contentsRecord;
          if (removing) await store.remove();
          else await store.write(nextState(false, keptPrevious, keptLinks));
        } catch (error) {
          failure = error;
        }
      }
      if (failure !== undefined || planned === undefined) {
        const problems = await rollBack(
          saved,
          planned?.report.changes ?? rp.diff.changes,
          outcome.executed(),
          outcome.firewallTouched,
        );
        try {
          contentsRecord = saved?.firewallContents;
          await store.write({
            ...nextState(false, previousSysctls, createdLinks),
            ...(saved?.firewallSpec === undefined ? {} : { firewallSpec: saved.firewallSpec }),
            allocations: saved?.allocations ?? {},
          });
        } catch (error) {
          // The original failure is what the user needs to see; this one goes with it.
          problems.push(
            `the state file could not be written after the roll back: ${(error as Error).message}`,
          );
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
      return withWarnings({
        ...planned.report,
        // The changes listed are those applied; after them the node is in sync (verified above).
        inSync: after?.report.inSync ?? planned.report.inSync,
        ownedObjects: after?.report.ownedObjects ?? planned.report.ownedObjects,
        applied: true,
      });
    } finally {
      await release();
    }
  }

  return {
    async plan(config: Config): Promise<PlanReport> {
      return (await planWith(config, await store.read(), false)).report;
    },
    apply: (config, options = {}) => converge(config, options, false),
    remove: (config, options = {}) => converge(config, options, true),
  };
}

/**
 * describeChange of every change, taking the line of a route or rule change from the batch already
 * rendered for the payloads (thousands of changes need not be rendered twice).
 */
export function describeChanges(changes: readonly Change[], payloads: Payloads): string[] {
  // An array by change index, not a Map: one slot per change, no hashing of thousands of keys.
  const rendered: (string | undefined)[] = new Array(changes.length).fill(undefined);
  for (const batch of payloads.ip) {
    const { lines, changeIndex } = batch;
    for (let i = 0; i < lines.length; i++) rendered[changeIndex[i] as number] = lines[i];
  }
  const texts: string[] = new Array(changes.length);
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as Change;
    const line = rendered[i];
    if (line === undefined || (change.kind !== "route" && change.kind !== "rule"))
      texts[i] = describeChange(change);
    else {
      const family = change.kind === "route" ? change.route.family : change.rule.family;
      texts[i] = (family === 6 ? "ip -6 " : "ip ") + line;
    }
  }
  return texts;
}

export function describeChange(change: Change): string {
  switch (change.kind) {
    case "sysctl":
      return `sysctl ${change.name.replaceAll("/", ".")} ${change.from ?? "(absent)"} -> ${change.to}`;
    case "firewall":
      return change.action === "delete"
        ? `firewall ${change.backend}: remove symroute's rules (${change.rules})`
        : `firewall ${change.backend}: replace symroute's rules (${change.rules} rules)`;
    case "link":
      return changeLines(change)
        .map((l) => `ip ${l}`)
        .join("; ");
    case "route":
      return `ip${change.route.family === 6 ? " -6" : ""} ${changeLines(change).join("; ")}`;
    case "rule":
      return `ip${change.rule.family === 6 ? " -6" : ""} ${changeLines(change).join("; ")}`;
  }
}
