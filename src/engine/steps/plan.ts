// Step 3: plan. The desired state from the config and the node's routing, the changes that bring
// the node there, and their payloads. Made in two halves: the routing half as soon as routing is
// read (its ip batches can start), the firewall half once the firewall's read is in.

import type { Config } from "../../config/schema.ts";
import { CONFIG_DEFAULTS } from "../../config/schema.ts";
import { SymrouteError } from "../../model/errors.ts";
import type { NodeState, OwnedFirewall } from "../../model/state.ts";
import { computeDesired, EMPTY_DESIRED, resolveKubeProxyMode } from "../../plan/desired.ts";
import {
  diffFirewall,
  diffLinkDeletes,
  diffRouting,
  formerProtocols,
  ownsProtocol,
  type OwnershipMarks,
} from "../../plan/diff.ts";
import { keepObservedGuards } from "../../plan/kept-guards.ts";
import { markMoves, markMoveWarning } from "../../plan/mark-moves.ts";
import { recoveredAllocations } from "../../plan/recovered-allocations.ts";
import { warningMessages, type PlanWarning } from "../../plan/types.ts";
import { renderLinkBatch } from "../../render/ip.ts";
import { renderRoutingPayloads } from "../../render/payloads.ts";
import { FRONT_ENDS, firewallPayloads } from "../firewall/index.ts";
import { bypassMessage, detectBypassingDatapaths } from "../../verify/datapath.ts";
import type { SavedState } from "../ports.ts";
import type { Observation, Planned, RoutingPlan } from "../types.ts";

/**
 * How symroute's objects are told from others': the config's marks, else the state's, else
 * defaults. A protocol the state records that the config no longer uses (a move of routeProtocol,
 * or one a crash or roll back left unfinished) is still symroute's: formerRouteProtocols.
 */
export function ownership(config: Config | undefined, saved: SavedState | undefined): OwnershipMarks {
  const routeProtocol = config?.routeProtocol ?? saved?.routeProtocol ?? CONFIG_DEFAULTS.routeProtocol;
  const former = formerProtocols(routeProtocol, saved);
  return {
    routeProtocol,
    ...(former.length === 0 ? {} : { formerRouteProtocols: former }),
    rulePriorities: config?.rulePriorities ?? saved?.rulePriorities ?? CONFIG_DEFAULTS.rulePriorities,
    previousSysctls: saved?.previousSysctls ?? {},
    createdLinks: saved?.createdLinks ?? [],
  };
}

export function countOwned(node: NodeState, own: OwnershipMarks): number {
  const owns = ownsProtocol(own);
  return (
    node.routes.filter((r) => owns(r.protocol)).length +
    node.rules.filter((r) => owns(r.protocol)).length +
    node.firewall.reduce((n, f) => n + f.ruleKeys.length, 0)
  );
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

/**
 * The first half of a plan: the desired state and the changes that come before the firewall's
 * (diffRouting). With `removing`, the desired state is empty: everything owned goes, sysctls go back.
 */
export function planRouting(
  observed: Observation,
  config: Config | undefined,
  saved: SavedState | undefined,
  removing: boolean,
  stateFile: string,
): RoutingPlan {
  const { routing, available, firewall } = observed;
  // A datapath that DNATs outside netfilter makes every object symroute would add useless: refuse
  // plan and apply; delete (removing) still runs, so that what an earlier apply left can go.
  if (!removing && config !== undefined) refuseBypassingDatapath(config, routing);
  const kubeProxy = config === undefined || removing ? undefined : resolveKubeProxyMode(config, routing);
  const kubeProxyMode = kubeProxy?.mode;
  const own = ownership(config, saved);
  // No state file: the tables and marks stay where the node shows them (a lost file moves nothing).
  const recovered =
    saved === undefined && config !== undefined && !removing
      ? recoveredAllocations(config, routing, ownsProtocol(own))
      : undefined;
  const desired =
    config === undefined || firewall === undefined || kubeProxyMode === undefined
      ? EMPTY_DESIRED
      : computeDesired({
          config,
          node: routing,
          saved:
            saved ?? (recovered === undefined ? undefined : { allocations: recovered, previousSysctls: {} }),
          firewall,
          kubeProxyMode,
        });
  if ((desired.firewall?.arpProbes ?? []).length > 0 && !available.includes("nftables")) {
    throw new SymrouteError(
      "dependency",
      `ARP probes on ${(desired.firewall?.arpProbes ?? []).map((p) => p.oif).join(", ")} need nft, also with the iptables front end`,
      {
        hint: "install the Debian package nftables, or give the interface an IPv4 address in the gateway's subnet",
      },
    );
  }
  const missing =
    desired.firewall === undefined
      ? undefined
      : FRONT_ENDS[desired.firewall.backend].missing(desired.firewall, observed);
  if (missing !== undefined) throw missing;
  const before = saved?.allocations ?? recovered;
  const moves =
    config === undefined || before === undefined
      ? []
      : markMoves(before, desired.allocations, config.marks.mask);
  return {
    routing,
    desired,
    saved,
    own,
    firewall,
    kubeProxyMode,
    kubeProxyModeSource: kubeProxy?.source,
    diff: diffRouting(desired, routing, own),
    ...(config === undefined || moves.length === 0
      ? {}
      : {
          markMoves: {
            moves,
            mask: config.marks.mask,
            // Without the state's firewall (a lost file, say) the old mask is not known: one that covers
            // the new mask and every old value, for conntrack -m VALUE/MASK to match them.
            oldMask:
              saved?.firewallSpec?.mask ??
              moves.reduce((m, move) => (m | move.from) >>> 0, config.marks.mask),
          },
        }),
    firewallRead: observed.firewallRead,
    stateFile,
  };
}

/**
 * The routing plan once the firewall is read: with the anti-spoofing guards the node shows and no
 * state record explains kept (keepObservedGuards), so that a lost state file does not take them away.
 */
export function withObservedGuards(rp: RoutingPlan, observedFirewall: readonly OwnedFirewall[]): RoutingPlan {
  const desired = keepObservedGuards(
    rp.desired,
    observedFirewall,
    rp.saved?.previousSysctls ?? {},
    rp.routing,
  );
  return desired === rp.desired ? rp : { ...rp, desired };
}

/** The second half: the firewall's changes, link deletions, and the report with every payload. */
export function finishPlan(
  rp: RoutingPlan,
  observedFirewall: readonly OwnedFirewall[],
  routingPayloads = renderRoutingPayloads(rp.diff.changes, rp.desired.sysctls),
): Planned {
  const { desired, own } = rp;
  const node: NodeState = { ...rp.routing, firewall: observedFirewall };
  const warnings = [...desired.warningDetails, ...rp.diff.noticeDetails, ...markMoveWarnings(rp.markMoves)];
  // The same order diffState gives: the routing part keeps its indices, which its payloads name.
  const changes = [
    ...rp.diff.changes,
    ...diffFirewall(desired, observedFirewall, rp.saved?.firewallContents),
    ...diffLinkDeletes(desired, node.links, own),
  ];
  return {
    desired,
    node,
    report: {
      networks: desired.decisions,
      changes,
      conflicts: rp.diff.conflicts,
      warnings: warningMessages(warnings),
      warningDetails: warnings,
      inSync: changes.length === 0,
      firewall: rp.firewall,
      kubeProxyMode: rp.kubeProxyMode,
      kubeProxyModeSource: rp.kubeProxyModeSource,
      ownedObjects: countOwned(node, own),
      payloads: {
        ...routingPayloads,
        firewall: firewallPayloads(
          desired.firewall,
          node,
          changes.flatMap((c) => (c.kind === "firewall" ? [c.backend] : [])),
        ),
        linkDeletes: renderLinkBatch(changes, "delete"),
      },
      firewallSpec: desired.firewall,
      ...(rp.markMoves === undefined ? {} : { markMoves: rp.markMoves.moves }),
      ...(desired.ruleSkips === undefined ? {} : { ruleSkips: desired.ruleSkips }),
      state: {
        file: rp.stateFile,
        found: rp.saved !== undefined,
        ...((rp.saved?.baselineUnknown ?? []).length === 0
          ? {}
          : { baselineUnknown: rp.saved?.baselineUnknown }),
      },
    },
  };
}

/** plan's warning for each network whose mark moves. */
const markMoveWarnings = (markMoves: RoutingPlan["markMoves"]): PlanWarning[] =>
  markMoves === undefined
    ? []
    : markMoves.moves.map((m) => ({
        kind: "mark-move",
        message: markMoveWarning(m, markMoves.mask, markMoves.oldMask),
        // The network that takes the old value is named, not concerned.
        networks: [m.network],
      }));
