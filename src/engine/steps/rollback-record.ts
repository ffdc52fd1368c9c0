// What the state file says after a roll back: the node is back to the saved record's, except what
// the roll back could not undo. One pure function of the saved record, the record the failed run
// would have committed, and what the roll back left (test/engine/rollback-record.test.ts, a row per
// case).

import type { SavedState } from "../ports.ts";

/** What a roll back could not undo (all empty, and `complete`: it undid everything). */
export interface RollBackLeft {
  /** Whether every undo step ran (the routing's and each firewall front end's). */
  readonly complete: boolean;
  /** VLAN links the failed run created that are still on the node (their delete failed). */
  readonly linksLeft: readonly string[];
  /** Links the failed run deleted that are still gone (their add failed). */
  readonly linksGone: readonly string[];
  /** Sysctls the failed run wrote that still have its value (their write back failed or waited). */
  readonly sysctlsLeft: ReadonlySet<string>;
}

/**
 * The record after a roll back of the run that would have committed `attempted` (its
 * StateRecord.state: every sysctl value and link it learnt of, the tables it made, its marks), from
 * `saved` (undefined: a first apply), the links on the node when the run started, and what the roll
 * back left:
 * - allocations, freed ones and the firewall (front end, spec, contents) are the saved ones: the
 *   failed run's spec was never in force (recorded, a later roll back would put it on the node), and
 *   its front end is not where the saved firewall is (a later run would not read that one);
 * - sysctl values from before symroute: the saved ones, and of those the run learnt, the ones whose
 *   write is still on the node (one put back, recorded, would make a value set later by someone
 *   else symroute's to restore);
 * - links: the saved ones the run found, and those it made that are still there, not those it
 *   deleted that are still gone (one not on the node, recorded, would make a link of that name made
 *   later by someone else symroute's to delete; a record written before a crash names links still to add);
 * - the mangle tables symroute made, the run's too: they are there (made, or not dropped);
 * - the ownership marks: after a complete roll back the saved ones (nothing of symroute's carries a
 *   move's new routeProtocol; recorded, another tool's routes under it were symroute's to delete);
 *   after an incomplete one the run's protocols (both numbers: what is left still carries the new
 *   one) and the saved rule band (rules are symroute's by protocol in any band; the band is where a
 *   delete without a config looks for others' rules, which the roll back put back there);
 * - `inProgress` when the roll back was incomplete or the saved record was (a crash: the next run
 *   must read every front end, or a half-made move of front end would stay).
 */
export function rolledBackRecord(
  saved: SavedState | undefined,
  attempted: SavedState,
  linksBefore: readonly string[],
  left: RollBackLeft,
): SavedState {
  const {
    allocations: _attemptedAllocations,
    freedAllocations: _attemptedFreed,
    firewall: attemptedFrontEnd,
    firewallSpec: _neverInForce,
    firewallContents: _attemptedContents,
    previousSysctls: learnt,
    createdLinks: _attemptedLinks,
    routeProtocol: attemptedProtocol,
    rulePriorities: attemptedBand,
    formerRouteProtocols: attemptedFormer,
    inProgress: _attemptedInProgress,
    iptablesTablesCreating: _creating,
    iptablesChainsCreating: _creatingChains,
    ...kept
  } = attempted;
  const previousSysctls = Object.fromEntries(
    Object.entries(learnt).filter(
      ([name]) => name in (saved?.previousSysctls ?? {}) || left.sysctlsLeft.has(name),
    ),
  );
  const createdLinks = [
    ...new Set([...(saved?.createdLinks ?? []).filter((l) => linksBefore.includes(l)), ...left.linksLeft]),
  ].filter((l) => !left.linksGone.includes(l));
  const marks =
    left.complete && saved !== undefined
      ? saved
      : {
          routeProtocol: attemptedProtocol,
          rulePriorities: saved?.rulePriorities ?? attemptedBand,
          formerRouteProtocols: attemptedFormer,
        };
  const frontEnd = saved?.firewall ?? attemptedFrontEnd;
  return {
    ...kept,
    previousSysctls,
    allocations: saved?.allocations ?? {},
    ...(saved?.freedAllocations === undefined ? {} : { freedAllocations: saved.freedAllocations }),
    createdLinks,
    ...(frontEnd === undefined ? {} : { firewall: frontEnd }),
    ...(saved?.firewallSpec === undefined ? {} : { firewallSpec: saved.firewallSpec }),
    ...(saved?.firewallContents === undefined ? {} : { firewallContents: saved.firewallContents }),
    ...(marks.routeProtocol === undefined ? {} : { routeProtocol: marks.routeProtocol }),
    ...(marks.rulePriorities === undefined ? {} : { rulePriorities: marks.rulePriorities }),
    ...(marks.formerRouteProtocols === undefined ? {} : { formerRouteProtocols: marks.formerRouteProtocols }),
    ...(!left.complete || saved?.inProgress === true ? { inProgress: true } : {}),
  };
}
