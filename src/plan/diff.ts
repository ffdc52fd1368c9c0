// desired vs observed -> the changes, and the foreign objects in the way. Only objects symroute
// owns (its route/rule protocol, its firewall table or chains, sysctls it recorded) are ever changed.

import { parsePrefix, prefixContains } from "../model/address.ts";
import { routeKey, ruleKey, sameRouteValue } from "../model/keys.ts";
import type {
  FirewallBackend,
  Link,
  NodeState,
  OwnedFirewall,
  Route,
  RoutingState,
  Rule,
} from "../model/state.ts";
import { firewallRuleKeys } from "../model/firewall.ts";
import type { Change } from "../model/change.ts";
import { routeNetworks, ruleNetworks } from "./conflict-networks.ts";
import { creatingLinks, leavingLinks, rpFilterName } from "./sysctls.ts";
import { warningMessages, type Conflict, type DesiredState, type PlanWarning } from "./types.ts";
import { agreeing, counted } from "../model/plural.ts";

export interface OwnershipMarks {
  /** The protocol of every route and rule symroute makes. */
  readonly routeProtocol: number;
  /**
   * Protocols symroute's routes and rules may still carry from before a move of routeProtocol (the
   * state file's): owned, never desired, so what carries them is deleted or re-made under routeProtocol.
   */
  readonly formerRouteProtocols?: readonly number[];
  readonly rulePriorities: { readonly from: number; readonly to: number };
  /** Sysctl values before symroute changed them. */
  readonly previousSysctls: Readonly<Record<string, string>>;
  /** VLAN links symroute created. */
  readonly createdLinks: readonly string[];
}

export interface DiffResult {
  readonly changes: readonly Change[];
  /** Foreign objects that keep a desired object out. */
  readonly conflicts: readonly Conflict[];
  /**
   * Foreign objects worth knowing about that block nothing (a rule in symroute's band), and a move
   * of the route protocol: the messages of noticeDetails.
   */
  readonly notices: readonly string[];
  readonly noticeDetails: readonly PlanWarning[];
}

/**
 * Whether a route or rule with this protocol is symroute's: its routeProtocol, or one it had before
 * a move that has not finished (formerRouteProtocols).
 */
export function ownsProtocol(
  own: Pick<OwnershipMarks, "routeProtocol" | "formerRouteProtocols">,
): (protocol: number | undefined) => boolean {
  const former = own.formerRouteProtocols ?? [];
  if (former.length === 0) return (protocol) => protocol === own.routeProtocol;
  const owned = new Set([own.routeProtocol, ...former]);
  return (protocol) => protocol !== undefined && owned.has(protocol);
}

/** The protocols a state file names (its routeProtocol and former ones) other than `routeProtocol`. */
export function formerProtocols(
  routeProtocol: number,
  saved: { readonly routeProtocol?: number; readonly formerRouteProtocols?: readonly number[] } | undefined,
): number[] {
  const named = [
    ...(saved?.routeProtocol === undefined ? [] : [saved.routeProtocol]),
    ...(saved?.formerRouteProtocols ?? []),
  ];
  return [...new Set(named)].filter((p) => p !== routeProtocol).sort((a, b) => a - b);
}

const describeRoute = (r: Route): string =>
  `IPv${r.family} route ${r.type === "unicast" ? "" : `${r.type} `}${r.dst}${r.gateway === undefined ? "" : ` via ${r.gateway}`}${r.dev === undefined ? "" : ` dev ${r.dev}`} table ${r.table}`;

/**
 * The `ip route del` that removes this route and no other: with its gateway, device, metric and
 * protocol, so that it cannot match symroute's route to the same destination (the kernel deletes
 * the first route that every given selector matches, and compares the protocol when one is given).
 */
const routeDeleteCommand = (r: Route): string =>
  `ip${r.family === 6 ? " -6" : ""} route del ${r.type === "unicast" ? "" : `${r.type} `}${r.dst}${
    r.gateway === undefined ? "" : ` via ${r.gateway}`
  }${r.dev === undefined ? "" : ` dev ${r.dev}`} table ${r.table}${r.metric === undefined ? "" : ` metric ${r.metric}`}${
    r.protocol === undefined || r.protocol === 0 ? "" : ` proto ${r.protocol}`
  }`;

/**
 * The `ip rule del` that removes this rule and no other. `ip rule del priority N` alone deletes the
 * first rule at N, which is symroute's own when the two share a priority and symroute's is listed
 * first: every selector is given instead (a foreign rule's protocol is often 0, which selects nothing).
 */
export const ruleDeleteCommand = (r: Rule): string =>
  `ip${r.family === 6 ? " -6" : ""} rule del ${describeRule(r)}${
    r.protocol === undefined || r.protocol === 0 ? "" : ` proto ${r.protocol}`
  }`;

const networksField = (networks: readonly string[] | undefined): Pick<Conflict, "networks"> =>
  networks === undefined ? {} : { networks };

/**
 * A listed rule with the elements of each anonymous set or map in one order. The agent records a
 * chain it rewrote as nft's monitor printed it, a cold read as `nft -t list` lists it, and for a set
 * that is not an interval set the two differ in order only (measured, nft 1.0.6: the monitor prints
 * the script's order, the listing sorts; `icmpv6 type { ... }`, the ARP probes' `"IF" . ADDR`, a
 * verdict map's keys): taken as drift, every such edit made the next cold plan exit 2 and the
 * agent's resync replace the firewall.
 */
const setsSorted = (line: string): string =>
  line.includes("{ ")
    ? line.replace(
        /\{ ([^{}]*) \}/g,
        (_whole, elements: string) => `{ ${elements.split(", ").sort().join(", ")} }`,
      )
    : line;

/** Equal as multisets (both of one length). */
function sameSorted(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((k, i) => k === y[i]);
}

/**
 * desired vs observed, all of it. The changes come in the order they run: links added, sysctls,
 * routes, rules, the firewall, links deleted. The parts below give the same changes piece by
 * piece, so that an apply can start writing routes before the firewall is compared.
 */
export function diffState(desired: DesiredState, node: NodeState, own: OwnershipMarks): DiffResult {
  const routing = diffRouting(desired, node, own);
  return {
    changes: [
      ...routing.changes,
      ...diffFirewall(desired, node.firewall),
      ...diffLinkDeletes(desired, node.links, own),
    ],
    conflicts: routing.conflicts,
    notices: routing.notices,
    noticeDetails: routing.noticeDetails,
  };
}

/** Links to add, sysctls, routes and rules: every change that comes before the firewall's. */
export function diffRouting(desired: DesiredState, node: RoutingState, own: OwnershipMarks): DiffResult {
  const changes: Change[] = [];
  const conflicts: Conflict[] = [];
  const notices: PlanWarning[] = [];
  const owns = ownsProtocol(own);

  // Links first: routes need their device.
  const linkNames = new Set(node.links.map((l) => l.ifname));
  for (const vlan of desired.vlans) {
    if (!linkNames.has(vlan.ifname)) changes.push({ kind: "link", action: "add", vlan });
  }

  // Sysctls: desired values, and recorded ones that are no longer wanted go back to what they were.
  // A link this plan adds comes with conf.default's value now (it is added before the writes).
  const defaultRpFilter = rpFilterName("default");
  const created = new Set([...creatingLinks(desired.vlans, linkNames)].map(rpFilterName));
  for (const [name, to] of Object.entries(desired.sysctls)) {
    const from = node.sysctls[name] ?? (created.has(name) ? node.sysctls[defaultRpFilter] : undefined);
    if (from !== to) changes.push({ kind: "sysctl", action: "set", name, from, to });
  }
  // A link the plan deletes takes its sysctls with it: nothing to put back on it first.
  const leaving = new Set([...leavingLinks(own.createdLinks, desired.vlans)].map(rpFilterName));
  for (const [name, previous] of Object.entries(own.previousSysctls)) {
    if (name in desired.sysctls || leaving.has(name)) continue;
    const from = node.sysctls[name];
    if (from !== undefined && from !== previous)
      changes.push({ kind: "sysctl", action: "set", name, from, to: previous });
  }

  // Routes by kernel identity; each key is built once (there are thousands).
  const observedRouteKeys = node.routes.map(routeKey);
  const observedRoutes = new Map<string, Route>();
  // One key can list twice: the kernel keeps an appended IPv4 route beside one with its key (an
  // address's connected route added after symroute's own, measured). symroute's own is the one
  // compared with the desired route; another tool's beside it is not taken for it.
  node.routes.forEach((r, i) => {
    const key = observedRouteKeys[i] ?? "";
    const kept = observedRoutes.get(key);
    if (kept === undefined || owns(r.protocol) || !owns(kept.protocol)) observedRoutes.set(key, r);
  });
  const desiredRouteKeys = new Set<string>();
  for (const route of desired.routes) {
    const key = routeKey(route);
    desiredRouteKeys.add(key);
    const current = observedRoutes.get(key);
    if (current === undefined) {
      changes.push({ kind: "route", action: "add", route });
    } else if (!owns(current.protocol)) {
      if (!sameRouteValue({ ...current, protocol: own.routeProtocol }, route)) {
        conflicts.push({
          object: describeRoute(current),
          reason: `not symroute's (proto ${current.protocol ?? "?"}) and in the way of ${describeRoute(route)}`,
          ...networksField(routeNetworks(desired.decisions, route)),
        });
      }
    } else if (!sameRouteValue(current, route)) {
      // Also a route of symroute's under a former protocol: replaced in place, under the new one.
      changes.push({ kind: "route", action: "replace", route, previous: current });
    }
  }
  // A foreign route in a table symroute allocated changes where symroute's replies go (or is lost
  // on them): a conflict for the operator to resolve, never a reason to move to another table.
  const allocated = new Set(desired.allocatedTables ?? []);
  node.routes.forEach((r, i) => {
    const key = observedRouteKeys[i] ?? "";
    const ours = owns(r.protocol);
    if (ours && !desiredRouteKeys.has(key)) {
      changes.push({ kind: "route", action: "delete", route: r });
    } else if (
      !ours &&
      allocated.has(r.table) &&
      // Also one listed beside symroute's own route with that key (appended).
      (!desiredRouteKeys.has(key) ||
        (observedRoutes.get(key) !== r && owns(observedRoutes.get(key)?.protocol)))
    ) {
      conflicts.push({
        object: describeRoute(r),
        reason: `not symroute's (proto ${r.protocol ?? "?"}) but in table ${r.table}, which symroute allocated for its replies; remove it (${routeDeleteCommand(r)}); for routes of your own next to symroute's, give the network a table: of your own (docs/config.md)`,
        ...networksField(routeNetworks(desired.decisions, { family: r.family, table: r.table, dst: "" })),
      });
    }
  });

  // Rules by every selector (ruleKey leaves the protocol out); ours carry our protocol. The kernel
  // keeps rules that differ only by protocol apart (measured, 6.18): during a move of the protocol
  // one key can show symroute's rule under the old number and under the new one, and someone
  // else's. Per key: whether one carries routeProtocol, whether one is not symroute's.
  const observedRuleKeys = node.rules.map(ruleKey);
  const observedRules = new Map<string, { current: boolean; foreign: boolean }>();
  node.rules.forEach((r, i) => {
    const key = observedRuleKeys[i] ?? "";
    let seen = observedRules.get(key);
    if (seen === undefined) {
      seen = { current: false, foreign: false };
      observedRules.set(key, seen);
    }
    if (r.protocol === own.routeProtocol) seen.current = true;
    else if (!owns(r.protocol)) seen.foreign = true;
  });
  const desiredRuleKeys = new Set<string>();
  for (const rule of desired.rules) {
    const key = ruleKey(rule);
    desiredRuleKeys.add(key);
    const seen = observedRules.get(key);
    if (seen?.current === true) continue;
    if (seen?.foreign !== true) changes.push({ kind: "rule", action: "add", rule });
    else {
      const copy = node.rules.find((o, j) => observedRuleKeys[j] === key && !owns(o.protocol));
      conflicts.push({
        object: `IPv${rule.family} rule ${rule.priority}`,
        reason: `an identical rule exists that symroute did not create${
          copy === undefined
            ? ""
            : ` (${describeRule(copy)}${copy.protocol === undefined ? "" : ` proto ${copy.protocol}`}); if no other tool needs it, remove it (${ruleDeleteCommand(copy)}) and apply: symroute then adds its own`
        }`,
        ...networksField(ruleNetworks(desired.decisions, rule)),
      });
    }
  }
  // symroute's goto rules (the skips over its fwmark rules, and the gotos to their groups): a
  // foreign rule between one and its target no longer sees the packets the goto takes past it.
  const gotos = desired.rules.filter((d) => d.action === "goto" && d.goto !== undefined);
  node.rules.forEach((r, i) => {
    const isDesired = desiredRuleKeys.has(observedRuleKeys[i] ?? "");
    const ours = owns(r.protocol);
    // symroute's rule under a former protocol goes, after its copy under routeProtocol was added
    // (the batch adds before it deletes, and the two do not clash: renderIpBatch).
    if (ours && (!isDesired || r.protocol !== own.routeProtocol)) {
      changes.push({ kind: "rule", action: "delete", rule: r });
    } else if (
      !ours &&
      !isDesired &&
      r.priority >= own.rulePriorities.from &&
      r.priority <= own.rulePriorities.to
    ) {
      const jumper = gotos.find(
        (d) =>
          d.family === r.family && r.priority > d.priority && r.priority < (d.goto ?? 0) && mayOverlap(r, d),
      );
      if (jumper !== undefined) {
        conflicts.push({
          object: `IPv${r.family} rule ${describeRule(r)}`,
          reason: `not symroute's, and between symroute's ${jumper.fwmark === 0 ? "skip rule" : "goto rule"} ${describeRule(jumper)} and its target: packets that rule matches (${jumper.fwmark === 0 ? "those without symroute's mark" : "replies with the marks of one group of networks"}) jump over it and never reach it; move it out of the band ${own.rulePriorities.from}-${own.rulePriorities.to} (${ruleDeleteCommand(r)}, then add it outside)`,
          ...networksField(ruleNetworks(desired.decisions, jumper)),
        });
        return;
      }
      // Only rules that route: a foreign rule tried before the skip or the nop changes nothing
      // they do (the rules behind them are checked in their own right).
      // At one priority the kernel tries rules in list order: a foreign rule listed after
      // symroute's copy is tried after it (a rule symroute has yet to add goes after the foreign one).
      const listedBefore = (d: Rule): boolean => {
        const key = ruleKey(d);
        return node.rules.some((o, j) => j < i && observedRuleKeys[j] === key && owns(o.protocol));
      };
      const shadowed = desired.rules.find(
        (d) =>
          d.family === r.family &&
          (d.priority > r.priority || (d.priority === r.priority && !listedBefore(d))) &&
          d.action !== "nop" &&
          d.action !== "goto" &&
          mayOverlap(r, d),
      );
      if (shadowed !== undefined) {
        conflicts.push({
          object: `IPv${r.family} rule ${describeRule(r)}`,
          reason: `not symroute's, in its priority band ${own.rulePriorities.from}-${own.rulePriorities.to}, and the kernel tries it before symroute's rule ${describeRule(shadowed)} for packets both match; remove it (${ruleDeleteCommand(r)}), or move it out of the band`,
          ...networksField(ruleNetworks(desired.decisions, shadowed)),
        });
        return;
      }
      notices.push({
        kind: "foreign-rule-in-band",
        message: `IPv${r.family} rule priority ${r.priority}${r.table === undefined ? "" : ` lookup ${r.table}`} is not symroute's but sits in its priority band ${own.rulePriorities.from}-${own.rulePriorities.to}; left alone`,
        networks: [],
      });
    }
  });

  const former = own.formerRouteProtocols ?? [];
  if (former.length > 0) {
    const underFormer = (p: number | undefined): boolean => p !== own.routeProtocol && owns(p);
    const left =
      node.routes.reduce((n, r) => (underFormer(r.protocol) ? n + 1 : n), 0) +
      node.rules.reduce((n, r) => (underFormer(r.protocol) ? n + 1 : n), 0);
    if (left > 0) {
      notices.push({
        kind: "route-protocol-move",
        message: `routeProtocol moves from ${former.join(", ")} (the state file's) to ${own.routeProtocol}: ${counted(left, "route or rule", "routes and rules")} of symroute's still ${agreeing(left, "carries", "carry")} ${former.length === 1 ? "it" : "one of those"}; the apply re-makes them under ${own.routeProtocol} and removes them`,
        networks: [],
      });
      // Before the move, objects under the new number that symroute does not want are most likely
      // another tool's: the number is symroute's from now on, and the apply deletes them.
      const taken = changes.filter(
        (c) =>
          (c.kind === "route" || c.kind === "rule") &&
          c.action === "delete" &&
          (c.kind === "route" ? c.route.protocol : c.rule.protocol) === own.routeProtocol,
      ).length;
      if (taken > 0)
        notices.push({
          kind: "route-protocol-taken",
          message: `${counted(taken, "route or rule", "routes and rules")} on the node already ${agreeing(taken, "carries", "carry")} proto ${own.routeProtocol} and ${agreeing(taken, "is", "are")} not symroute's to keep: from this move on symroute takes ${own.routeProtocol} as its own and the apply deletes them; if another tool uses ${own.routeProtocol}, choose another routeProtocol`,
          networks: [],
        });
    }
  }

  return { changes, conflicts, notices: warningMessages(notices), noticeDetails: notices };
}

export const describeRule = (r: Rule): string =>
  [
    `priority ${r.priority}`,
    r.not === true ? "not" : "",
    r.from === undefined ? "" : `from ${r.from}`,
    r.to === undefined ? "" : `to ${r.to}`,
    r.iif === undefined ? "" : `iif ${r.iif}`,
    r.oif === undefined ? "" : `oif ${r.oif}`,
    r.fwmark === undefined
      ? ""
      : `fwmark 0x${r.fwmark.toString(16)}${r.fwmask === undefined ? "" : `/0x${r.fwmask.toString(16)}`}`,
    r.tos === undefined ? "" : `tos 0x${r.tos.toString(16)}`,
    r.ipproto === undefined ? "" : `ipproto ${r.ipproto}`,
    r.sport === undefined ? "" : `sport ${r.sport.start}-${r.sport.end}`,
    r.dport === undefined ? "" : `dport ${r.dport.start}-${r.dport.end}`,
    r.uidrange === undefined ? "" : `uidrange ${r.uidrange.start}-${r.uidrange.end}`,
    r.action === "lookup"
      ? `lookup ${r.table ?? "?"}`
      : r.action === "goto"
        ? `goto ${r.goto ?? "?"}`
        : r.action,
    r.suppressPrefixlength === undefined ? "" : `suppress_prefixlength ${r.suppressPrefixlength}`,
    r.suppressIfgroup === undefined ? "" : `suppress_ifgroup ${r.suppressIfgroup}`,
  ]
    .filter((w) => w !== "")
    .join(" ");

/** Whether two prefixes (canonical text; undefined is "all") share an address. */
function prefixesMeet(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  if (pa === undefined || pb === undefined) return true;
  return prefixContains(pa, pb) || prefixContains(pb, pa);
}

/**
 * Whether some packet can match both rules (conservative: a selector it does not model counts as
 * matching). Disjoint only when a selector both set tells them apart.
 */
export function mayOverlap(a: Rule, b: Rule): boolean {
  if (a.not === true || b.not === true) return true;
  if (!prefixesMeet(a.from, b.from) || !prefixesMeet(a.to, b.to)) return false;
  if (a.iif !== undefined && b.iif !== undefined && a.iif !== b.iif) return false;
  if (a.oif !== undefined && b.oif !== undefined && a.oif !== b.oif) return false;
  if (a.fwmark !== undefined && b.fwmark !== undefined) {
    const common = (a.fwmask ?? 0xffffffff) & (b.fwmask ?? 0xffffffff);
    if (((a.fwmark ^ b.fwmark) & common) !== 0) return false;
  }
  if (a.ipproto !== undefined && b.ipproto !== undefined && a.ipproto !== b.ipproto) return false;
  return true;
}

/**
 * The firewall, compared by the keys carried in rule comments and, when a record of the rules as
 * the kernel listed them after the last apply is given, by their content; replaced whole, in one
 * transaction.
 */
export function diffFirewall(
  desired: DesiredState,
  observed: readonly OwnedFirewall[],
  recorded?: Partial<Record<FirewallBackend, readonly string[]>>,
): Change[] {
  const changes: Change[] = [];
  const wanted = desired.firewall === undefined ? [] : firewallRuleKeys(desired.firewall);
  for (const owned of observed) {
    if (desired.firewall?.backend === owned.backend) continue;
    if (owned.ruleKeys.length > 0)
      changes.push({
        kind: "firewall",
        action: "delete",
        backend: owned.backend,
        rules: owned.ruleKeys.length,
      });
  }
  if (desired.firewall !== undefined) {
    const current = observed.find((f) => f.backend === desired.firewall?.backend);
    const have = current?.ruleKeys ?? [];
    const record = recorded?.[desired.firewall.backend];
    const contents = current?.contents;
    // Sorted copies only when the counts agree: a count that differs already decides.
    const keysDiffer = have.length !== wanted.length || !sameSorted(have, wanted);
    const contentDiffers =
      record !== undefined &&
      contents !== undefined &&
      (record.length !== contents.length ||
        (!sameSorted(record, contents) && !sameSorted(record.map(setsSorted), contents.map(setsSorted))));
    if (keysDiffer || contentDiffers) {
      changes.push({
        kind: "firewall",
        action: "replace",
        backend: desired.firewall.backend,
        rules: wanted.length,
      });
    }
  }

  return changes;
}

/** Links symroute created and no longer wants: they go last. */
export function diffLinkDeletes(
  desired: DesiredState,
  links: readonly Link[],
  own: OwnershipMarks,
): Change[] {
  const changes: Change[] = [];
  for (const ifname of leavingLinks(own.createdLinks, desired.vlans)) {
    const link = links.find((l) => l.ifname === ifname);
    if (link !== undefined) {
      changes.push({
        kind: "link",
        action: "delete",
        vlan: { ifname, parent: link.link ?? "", id: link.vlanId ?? 0 },
      });
    }
  }
  return changes;
}
