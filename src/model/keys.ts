// Identity of kernel objects: two objects with one key cannot both be added, so a differing one is
// replaced, not added. (The kernel keeps an appended IPv4 route beside one with its key, as it does
// an address's connected route: the diff compares symroute's own, src/plan/diff.ts.)

import type { Route, Rule } from "./state.ts";

/** The kernel's route identity: table, destination, tos and metric, and for IPv6 the source prefix. */
export function routeKey(route: Route): string {
  let key = routeKeys.get(route);
  if (key === undefined) {
    key = freshRouteKey(route);
    routeKeys.set(route, key);
  }
  return key;
}

// Routes and rules are immutable, and the agent plans against the objects its last read gave
// (kept while the kernel showed no change) and verifies against the plan's own: each object's key
// is built once, not on every diff (thousands per plan, costly under the agent's `--lite-mode`).
// WeakMaps let them go with the objects.
const routeKeys = new WeakMap<Route, string>();
const ruleKeys = new WeakMap<Rule, string>();

export function freshRouteKey(route: Route): string {
  return `${route.family}|${route.table}|${route.dst}|${route.src ?? ""}|${route.tos ?? 0}|${route.metric ?? 0}`;
}

/** Every field of a rule; the kernel refuses exact duplicates but allows one priority twice. */
export function ruleKey(rule: Rule): string {
  let key = ruleKeys.get(rule);
  if (key === undefined) {
    key = freshRuleKey(rule);
    ruleKeys.set(rule, key);
  }
  return key;
}

export function freshRuleKey(rule: Rule): string {
  // One template, not an array joined: the diff keys thousands of rules, twice per apply.
  return `${rule.family}|${rule.priority}|${rule.not === true ? "not" : ""}|${rule.from ?? ""}|${rule.to ?? ""}|${rule.iif ?? ""}|${rule.oif ?? ""}|${rule.fwmark ?? ""}|${rule.fwmask ?? ""}|${rule.tos ?? ""}|${rule.ipproto ?? ""}|${rangeText(rule.sport)}|${rangeText(rule.dport)}|${rangeText(rule.uidrange)}|${rule.action}|${rule.table ?? ""}|${rule.goto ?? ""}|${rule.suppressPrefixlength ?? ""}|${rule.suppressIfgroup ?? ""}`;
}

const rangeText = (range: { readonly start: number; readonly end: number } | undefined): string =>
  range === undefined ? "" : `${range.start}-${range.end}`;

/**
 * Route content beyond its identity: a route with the same key but another value is replaced.
 * Field by field, not through joined text: the diff compares thousands of routes.
 */
export function sameRouteValue(a: Route, b: Route): boolean {
  return (
    a.type === b.type &&
    (a.gateway ?? "") === (b.gateway ?? "") &&
    (a.dev ?? "") === (b.dev ?? "") &&
    a.protocol === b.protocol &&
    a.scope === b.scope &&
    (a.prefsrc ?? "") === (b.prefsrc ?? "") &&
    (a.onlink === true) === (b.onlink === true)
  );
}

const FNV_OFFSET = 0x811c9dc5 | 0;

/** The FNV-1a state after `text`; int32 throughout (xor and Math.imul keep it there). */
function fnvUpdate(hash: number, text: string): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h;
}

const fnvHex = (hash: number): string => (hash >>> 0).toString(16).padStart(8, "0");

/** FNV-1a, 32 bits: short stable digests for rule comments without `node:crypto` in the core. */
function fnv1a(text: string): string {
  return fnvHex(fnvUpdate(FNV_OFFSET, text));
}

/** fnv1a(`${first}\n${second}`), without building the joined text (thousands of rules are hashed). */
export function fnv1aOfLines(first: string, second: string): string {
  return fnvHex(fnvUpdate(fnvUpdate(fnvUpdate(FNV_OFFSET, first), "\n"), second));
}
