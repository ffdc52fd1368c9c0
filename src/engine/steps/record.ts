// Step 4: record state. What symroute is about to change is written to the state file before the
// node is touched: a crash mid-way still knows the original sysctl values and the links it
// created, and the next run converges from there. The same record, renewed, is what commit writes.

import type { Family } from "../../model/address.ts";
import type { FirewallBackend, OwnedFirewall } from "../../model/state.ts";
import type { DesiredState } from "../../plan/types.ts";
import { FRONT_ENDS, type CreatedObjects, type CreatingObjects } from "../firewall/index.ts";
import type { BaselinePart, Kernel, SavedState, StateStore } from "../ports.ts";
import type { RoutingPlan } from "../types.ts";

const NOTHING_CREATING: CreatingObjects = { tables: [], chains: [] };

type ContentsRecord = Partial<Record<FirewallBackend, readonly string[]>>;

/**
 * The record of symroute's firewall as the kernel lists it (sorted), for the front end wanted;
 * undefined when there is none or the reader lists no contents.
 */
export function recordContents(
  desired: DesiredState,
  firewall: readonly OwnedFirewall[],
): ContentsRecord | undefined {
  const backend = desired.firewall?.backend;
  const contents = firewall.find((f) => f.backend === backend)?.contents;
  if (backend === undefined || contents === undefined) return undefined;
  return { [backend]: [...contents].sort() };
}

/** The state this run will leave, built up as the run goes. */
export class StateRecord {
  /** sysctl values before symroute first changed them: the saved ones, and those this run changes. */
  readonly previousSysctls: Record<string, string>;
  /**
   * Links symroute created: the saved ones still on the node, and those this run adds. One gone (a
   * record written before a crash names links it had yet to add), recorded, would make a link of
   * that name made later by someone else symroute's to delete.
   */
  readonly createdLinks: readonly string[];
  /**
   * The iptables mangle tables (by family) and built-in chains symroute created (apply adds to
   * them, the clean-up of a commit that no longer uses them clears them).
   */
  readonly created: CreatedObjects;
  /** The firewall's content as listed, renewed from the kernel's listing once verified. */
  contents: ContentsRecord | undefined;
  /**
   * Protocols symroute's routes and rules may still carry from before a move of routeProtocol:
   * kept in every record (the one written before the apply, a roll back's) until a commit has
   * verified that nothing of symroute's carries them (noFormerProtocols).
   */
  formerRouteProtocols: readonly number[];

  constructor(
    readonly plan: RoutingPlan,
    /** What this record cannot know of the node before symroute (unknownBaseline); kept until delete. */
    readonly baselineUnknown: readonly BaselinePart[] = plan.saved?.baselineUnknown ?? [],
    /** The firewall as observed: which tables a crashed run of the saved record made. */
    observedFirewall: readonly OwnedFirewall[] = [],
  ) {
    const { saved, diff } = plan;
    this.previousSysctls = { ...(saved?.previousSysctls ?? {}) };
    for (const c of diff.changes) {
      if (c.kind === "sysctl" && c.from !== undefined && !(c.name in this.previousSysctls))
        this.previousSysctls[c.name] = c.from;
    }
    this.createdLinks = [
      ...new Set([
        ...(saved?.createdLinks ?? []).filter((l) => plan.routing.links.some((x) => x.ifname === l)),
        ...diff.changes.flatMap((c) => (c.kind === "link" && c.action === "add" ? [c.vlan.ifname] : [])),
      ]),
    ];
    // A crashed apply's record names the tables and chains it may have made: those it did are
    // symroute's.
    const creating: CreatingObjects = {
      tables: saved?.iptablesTablesCreating ?? [],
      chains: saved?.iptablesChainsCreating ?? [],
    };
    const made = Object.values(FRONT_ENDS).map((f) => f.made(creating, observedFirewall));
    this.created = {
      tables: new Set<Family>([...(saved?.iptablesTablesCreated ?? []), ...made.flatMap((m) => m.tables)]),
      chains: new Set<string>([...(saved?.iptablesChainsCreated ?? []), ...made.flatMap((m) => m.chains)]),
    };
    this.contents = saved?.firewallContents;
    this.formerRouteProtocols = plan.own.formerRouteProtocols ?? [];
  }

  /** After a verified run: no route or rule of symroute's carries a former protocol any more. */
  noFormerProtocols(): void {
    this.formerRouteProtocols = [];
  }

  /**
   * The record written before the node is touched: in progress, the firewall spec in force until
   * now (a roll back after a crash puts it back; this run's was never applied), and the tables and
   * chains this run may create (`creating`, toCreate), for the clean-up after a crash.
   */
  beforeApply(creating: CreatingObjects = NOTHING_CREATING): SavedState {
    const { firewallSpec: _notYetApplied, ...state } = this.state(true);
    const inForce = this.plan.saved?.firewallSpec;
    return {
      ...state,
      ...(inForce === undefined ? {} : { firewallSpec: inForce }),
      ...(creating.tables.length > 0 ? { iptablesTablesCreating: [...creating.tables].sort() } : {}),
      ...(creating.chains.length > 0 ? { iptablesChainsCreating: [...creating.chains].sort() } : {}),
    };
  }

  /** The state to write, with these sysctls and links (by default all this run knows of). */
  state(
    inProgress: boolean,
    previousSysctls: Record<string, string> = this.previousSysctls,
    createdLinks: readonly string[] = this.createdLinks,
  ): SavedState {
    const { desired, firewall, own } = this.plan;
    return {
      version: 1,
      previousSysctls,
      allocations: desired.allocations,
      ...(desired.freedAllocations === undefined ? {} : { freedAllocations: desired.freedAllocations }),
      createdLinks,
      ...(firewall === undefined ? {} : { firewall }),
      ...(desired.firewall === undefined ? {} : { firewallSpec: desired.firewall }),
      rulePriorities: own.rulePriorities,
      routeProtocol: own.routeProtocol,
      ...(this.formerRouteProtocols.length > 0 ? { formerRouteProtocols: this.formerRouteProtocols } : {}),
      ...(inProgress ? { inProgress: true } : {}),
      ...(this.contents === undefined || desired.firewall === undefined
        ? {}
        : { firewallContents: this.contents }),
      ...(this.created.tables.size > 0 ? { iptablesTablesCreated: [...this.created.tables].sort() } : {}),
      ...(this.created.chains.size > 0 ? { iptablesChainsCreated: [...this.created.chains].sort() } : {}),
      ...(this.baselineUnknown.length > 0 ? { baselineUnknown: this.baselineUnknown } : {}),
    };
  }
}

/**
 * Whether a run that follows a crash of this one would need the record written before the node is
 * touched: there is no record yet, or this run adds what only the record can say and the node
 * cannot show: the value a sysctl had before symroute first changed it, a link symroute creates,
 * or new ownership marks (rule priority band, route protocol) or front end, by which the next run
 * and `delete` tell symroute's objects from others'. A move of the route protocol is recorded with
 * the old number among formerRouteProtocols: a crash half way leaves routes and rules under both,
 * and the next run (or `delete`) owns both. Everything else a crash can leave (routes and
 * rules by their protocol, the firewall by its table and comments) is owned by those marks, and the
 * next run plans from the node as it finds it; it recomputes the same allocations from the saved
 * ones. So an apply that adds, changes or removes networks on the same interfaces and front end
 * (the agent's usual edit) writes the state file once, at the commit.
 */
export function recordNeededBeforeApply(
  record: StateRecord,
  saved: SavedState | undefined,
  /** What this run may create (toCreate): only the record can say a crash made it. */
  creating: CreatingObjects = NOTHING_CREATING,
): boolean {
  if (saved === undefined || creating.tables.length > 0 || creating.chains.length > 0) return true;
  const { firewall, own } = record.plan;
  // The record starts from the saved sysctls and only ever adds to them; of the saved links it
  // keeps those still there.
  return (
    Object.keys(record.previousSysctls).length !== Object.keys(saved.previousSysctls).length ||
    record.createdLinks.some((l) => !saved.createdLinks.includes(l)) ||
    (firewall !== undefined && firewall !== saved.firewall) ||
    ownershipMarksMoved(own, saved)
  );
}

/** Whether the route protocol or the rule band differs from the one the saved state records. */
export function ownershipMarksMoved(own: RoutingPlan["own"], saved: SavedState): boolean {
  return (
    own.routeProtocol !== saved.routeProtocol ||
    own.rulePriorities.from !== saved.rulePriorities?.from ||
    own.rulePriorities.to !== saved.rulePriorities?.to
  );
}

/**
 * Writes the record with `inProgress` before anything changes, when a crash would need it
 * (recordNeededBeforeApply). A delete changes nothing the saved state does not already describe: no
 * write before it, so that a full disk cannot stop a clean-up.
 */
export async function recordState(
  kernel: Kernel,
  store: StateStore,
  record: StateRecord,
  saved: SavedState | undefined,
  removing: boolean,
  /** The firewall as observed (a front end's tables with symroute's objects in them are there). */
  observedFirewall: readonly OwnedFirewall[],
): Promise<void> {
  if (removing) {
    if (saved === undefined) await store.write(record.beforeApply());
    return;
  }
  const spec = record.plan.desired.firewall;
  const each = await Promise.all(
    Object.values(FRONT_ENDS).map((f) => f.toCreate(kernel, spec, observedFirewall, record.created)),
  );
  const creating: CreatingObjects = {
    tables: each.flatMap((c) => c.tables),
    chains: each.flatMap((c) => c.chains),
  };
  if (recordNeededBeforeApply(record, saved, creating)) await store.write(record.beforeApply(creating));
}
