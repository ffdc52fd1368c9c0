// Changes -> `ip -batch` lines, one batch per family (`ip -batch` refuses `-6` on a line).

import type { Family } from "../model/address.ts";
import { SymrouteError } from "../model/errors.ts";
import type { Route, Rule } from "../model/state.ts";
import type { Change, VlanSpec } from "../model/change.ts";
import { ruleKey } from "../model/keys.ts";
import { addressToken, hexToken, ifnameToken, prefixToken, uintToken } from "../model/tokens.ts";

export interface IpBatch {
  readonly family: Family;
  readonly lines: readonly string[];
  /** For each line, the index of the change it comes from, to name the culprit on failure. */
  readonly changeIndex: readonly number[];
}

function routeArgs(route: Route): string[] {
  const args: string[] = [];
  if (route.type !== "unicast") args.push(route.type);
  args.push(prefixToken(route.dst));
  if (route.src !== undefined) args.push("from", prefixToken(route.src));
  if (route.gateway !== undefined) args.push("via", addressToken(route.gateway));
  if (route.dev !== undefined) args.push("dev", ifnameToken(route.dev));
  args.push("table", uintToken(route.table));
  if (route.protocol !== undefined) args.push("proto", uintToken(route.protocol, 255));
  if (route.scope !== undefined) args.push("scope", uintToken(route.scope, 255));
  if (route.metric !== undefined) args.push("metric", uintToken(route.metric));
  if (route.prefsrc !== undefined) args.push("src", addressToken(route.prefsrc));
  if (route.tos !== undefined) args.push("tos", hexToken(route.tos));
  if (route.onlink === true) args.push("onlink");
  return args;
}

const ALL_ONES = 0xffffffff;

export function ruleArgs(rule: Rule): string[] {
  const args: string[] = ["priority", uintToken(rule.priority)];
  if (rule.not === true) args.push("not");
  if (rule.from !== undefined) args.push("from", prefixToken(rule.from));
  if (rule.to !== undefined) args.push("to", prefixToken(rule.to));
  if (rule.iif !== undefined) args.push("iif", ifnameToken(rule.iif));
  if (rule.oif !== undefined) args.push("oif", ifnameToken(rule.oif));
  if (rule.fwmark !== undefined) {
    // `fwmark 0` without a mask gets mask 0 from the kernel (it matches every packet): the model's
    // all-ones mask is written out for it.
    const mask = rule.fwmask ?? (rule.fwmark === 0 ? ALL_ONES : undefined);
    args.push(
      "fwmark",
      mask === undefined ? hexToken(rule.fwmark) : `${hexToken(rule.fwmark)}/${hexToken(mask)}`,
    );
  }
  if (rule.tos !== undefined) args.push("tos", hexToken(rule.tos));
  if (rule.ipproto !== undefined) args.push("ipproto", uintToken(rule.ipproto, 255));
  if (rule.sport !== undefined)
    args.push("sport", `${uintToken(rule.sport.start, 65535)}-${uintToken(rule.sport.end, 65535)}`);
  if (rule.dport !== undefined)
    args.push("dport", `${uintToken(rule.dport.start, 65535)}-${uintToken(rule.dport.end, 65535)}`);
  if (rule.uidrange !== undefined)
    args.push("uidrange", `${uintToken(rule.uidrange.start)}-${uintToken(rule.uidrange.end)}`);
  switch (rule.action) {
    case "lookup":
      args.push("lookup", uintToken(rule.table ?? 254));
      break;
    case "goto":
      args.push("goto", uintToken(rule.goto ?? 0));
      break;
    default:
      args.push(rule.action);
  }
  if (rule.suppressPrefixlength !== undefined)
    args.push("suppress_prefixlength", uintToken(rule.suppressPrefixlength, 128));
  if (rule.protocol !== undefined) args.push("proto", uintToken(rule.protocol, 255));
  return args;
}

function vlanLines(vlan: VlanSpec, action: "add" | "delete"): string[] {
  const name = ifnameToken(vlan.ifname);
  if (action === "delete") return [`link del ${name}`];
  return [
    `link add link ${ifnameToken(vlan.parent)} name ${name} type vlan id ${uintToken(vlan.id, 4094)}`,
    `link set ${name} up`,
  ];
}

type RouteOrRuleChange = Extract<Change, { kind: "route" | "rule" }>;

/** The one line of a route or rule change. */
function routeOrRuleLine(change: RouteOrRuleChange): string {
  return change.kind === "route"
    ? `route ${change.action === "delete" ? "del" : change.action} ${routeArgs(change.route).join(" ")}`
    : `rule ${change.action === "delete" ? "del" : "add"} ${ruleArgs(change.rule).join(" ")}`;
}

/** The lines for one change (several for a VLAN). */
export function changeLines(change: Change): string[] {
  switch (change.kind) {
    case "link":
      return vlanLines(change.vlan, change.action);
    case "route":
    case "rule":
      return [routeOrRuleLine(change)];
    default:
      throw new SymrouteError("invalid-argument", `a ${change.kind} change has no ip batch line`);
  }
}

const isRouteOrRule = (change: Change): change is RouteOrRuleChange =>
  change.kind === "route" || change.kind === "rule";

const familyOf = (change: RouteOrRuleChange): Family =>
  change.kind === "route" ? change.route.family : change.rule.family;

/**
 * What the kernel compares when it refuses an added route as already there (`File exists`), made
 * coarser on purpose: table, destination and source prefix, leaving out tos and metric. An added
 * route with the same such key as a deleted one waits for the deletion; any other runs before it.
 */
const routeClashKey = (route: Route): string =>
  `${route.family}|${route.table}|${route.dst}|${route.src ?? ""}`;

/**
 * What the kernel compares when it refuses an added rule as a duplicate. Measured (6.18): it leaves
 * out `not` and the `goto` target, and takes `fwmark M` as `fwmark M/0xffffffff`; the protocol
 * counts.
 */
const ruleClashKey = (rule: Rule): string =>
  `${ruleKey({
    ...rule,
    not: undefined,
    goto: undefined,
    fwmask: rule.fwmark === undefined ? rule.fwmask : (rule.fwmask ?? ALL_ONES),
  })}|${rule.protocol ?? ""}`;

const clashKey = (change: RouteOrRuleChange): string =>
  change.kind === "route" ? `route|${routeClashKey(change.route)}` : `rule|${ruleClashKey(change.rule)}`;

/**
 * A change's place in its batch. Additions run before deletions, so that an object that moves (a
 * rule to another priority, a route to another table) exists at every moment: link routes, gateway
 * routes, rules are added; then rules, gateway routes, link routes deleted. A deletion that clashes
 * with an addition (the kernel would refuse the addition while the old object is there) keeps the
 * old order and runs first.
 */
function rankOf(change: RouteOrRuleChange, clashes: boolean): number {
  if (change.action === "delete") {
    const base = clashes ? 0 : 6;
    if (change.kind === "rule") return base;
    return base + (change.route.gateway === undefined ? 2 : 1);
  }
  if (change.kind === "route") return change.route.gateway === undefined ? 3 : 4;
  return 5;
}

/**
 * Route and rule changes of one family, ordered so that each line's dependencies exist (routes are
 * added before the rules that lead to them and deleted after) and so that nothing symroute keeps
 * is missing for a moment: see rankOf.
 */
export function renderIpBatch(changes: readonly Change[], family: Family): IpBatch {
  const ours: { change: RouteOrRuleChange; index: number }[] = [];
  changes.forEach((change, index) => {
    if (isRouteOrRule(change) && familyOf(change) === family) ours.push({ change, index });
  });
  // Clash keys only when the batch both adds and deletes (a first apply or a delete does one).
  const added = new Set<string>();
  if (ours.some(({ change }) => change.action === "delete"))
    for (const { change } of ours) if (change.action !== "delete") added.add(clashKey(change));
  // A stable sort by rank in one pass: a bucket per rank, each filled in change order.
  const byRank: { change: RouteOrRuleChange; index: number }[][] = [[], [], [], [], [], [], [], [], []];
  for (const item of ours) {
    const clashes = item.change.action === "delete" && added.size > 0 && added.has(clashKey(item.change));
    byRank[rankOf(item.change, clashes)]?.push(item);
  }
  const lines: string[] = [];
  const changeIndex: number[] = [];
  for (const bucket of byRank) {
    bucket.forEach(({ change, index }) => {
      lines.push(routeOrRuleLine(change));
      changeIndex.push(index);
    });
  }
  return { family, lines, changeIndex };
}

/** VLAN changes: a batch of their own, run before sysctls (a new link's sysctls exist only then). */
export function renderLinkBatch(changes: readonly Change[], action: "add" | "delete"): IpBatch {
  const lines: string[] = [];
  const changeIndex: number[] = [];
  changes.forEach((change, index) => {
    if (change.kind !== "link" || change.action !== action) return;
    for (const line of changeLines(change)) {
      lines.push(line);
      changeIndex.push(index);
    }
  });
  return { family: 4, lines, changeIndex };
}
