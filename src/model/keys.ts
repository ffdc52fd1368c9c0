// Identity of kernel objects: two objects with one key cannot both exist, so a differing one is
// replaced, not added.

import type { Route, Rule } from "./state.ts";

/** The kernel's route identity: table, destination, tos and metric, and for IPv6 the source prefix. */
export function routeKey(route: Route): string {
  return `${route.family}|${route.table}|${route.dst}|${route.src ?? ""}|${route.tos ?? 0}|${route.metric ?? 0}`;
}

/** Every field of a rule; the kernel refuses exact duplicates but allows one priority twice. */
export function ruleKey(rule: Rule): string {
  return [
    rule.family,
    rule.priority,
    rule.not === true ? "not" : "",
    rule.from ?? "",
    rule.to ?? "",
    rule.iif ?? "",
    rule.oif ?? "",
    rule.fwmark ?? "",
    rule.fwmask ?? "",
    rule.tos ?? "",
    rule.ipproto ?? "",
    rule.sport === undefined ? "" : `${rule.sport.start}-${rule.sport.end}`,
    rule.dport === undefined ? "" : `${rule.dport.start}-${rule.dport.end}`,
    rule.uidrange === undefined ? "" : `${rule.uidrange.start}-${rule.uidrange.end}`,
    rule.action,
    rule.table ?? "",
    rule.goto ?? "",
    rule.suppressPrefixlength ?? "",
    rule.suppressIfgroup ?? "",
  ].join("|");
}

/** Route content beyond its identity: a route with the same key but another value is replaced. */
export function routeValue(route: Route): string {
  return [
    route.type,
    route.gateway ?? "",
    route.dev ?? "",
    route.protocol ?? "",
    route.scope ?? "",
    route.prefsrc ?? "",
    route.onlink === true ? "onlink" : "",
  ].join("|");
}

/** FNV-1a, 32 bits: short stable digests for rule comments without `node:crypto` in the core. */
export function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}
