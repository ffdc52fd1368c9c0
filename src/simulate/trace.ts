// The kernel's routing decision for one packet, after net/core/fib_rules.c (rule walk),
// net/ipv4/fib_trie.c and net/ipv6/route.c (table lookup), net/ipv4/route.c (input and output
// paths) and net/ipv4/fib_frontend.c (fib_validate_source: rp_filter). Each behaviour here was
// checked against `ip route get` by the differential test (test/simulate/fidelity.e2e.test.ts).

import type { Family } from "../model/address.ts";
import { formatHex } from "../model/marks.ts";
import { TABLE_LOCAL } from "../model/state.ts";
import {
  selectorCandidates,
  type CompiledRoute,
  type CompiledRule,
  type FamilyIndex,
  type RoutingIndex,
  type TableIndex,
  type TrieNode,
  USE_REFUSE,
  USE_THROW,
} from "./compile.ts";
import { protoName } from "./format.ts";
import type { SpoofGuard } from "../model/firewall.ts";
import type { FirewallBackend } from "../model/state.ts";
import type {
  GuardVerdict,
  Packet,
  RouteErrno,
  RpFilterMode,
  RpFilterVerdict,
  Step,
  Trace,
  TraceOptions,
  Verdict,
} from "./types.ts";
import {
  bitAt,
  fastIpv4,
  ipv4Class,
  parseAddressWords,
  parseWordPrefix,
  prefixMatches,
  wordsKey,
  zeroWords,
  type Words,
} from "./words.ts";

/** The kernel's flow key (struct flowi4/flowi6) as far as rules and lookups read it. */
interface Flow {
  readonly family: Family;
  readonly src: Words;
  readonly srcText: string | undefined;
  readonly dst: Words;
  readonly dstText: string;
  /** "lo" for locally generated packets (LOOPBACK_IFINDEX), as the kernel does. */
  readonly iif: string;
  readonly oif: string | undefined;
  /**
   * IPv6: `oif` only picks, among the routes of the prefix found, one out of it if there is one
   * (a lookup without RT6_LOOKUP_F_IFACE: ip6tables' strict rpfilter); otherwise it binds the lookup.
   */
  readonly oifPreferred?: boolean;
  readonly mark: number;
  readonly tos: number;
  readonly ipproto: number;
  readonly sport: number;
  readonly dport: number;
  readonly uid: number;
}

/** Outcome of a policy lookup (`fib_lookup`). */
interface FibResult {
  readonly kind: "route" | "refused" | "none" | "unsupported";
  readonly route?: CompiledRoute;
  readonly table?: number;
  readonly rule?: CompiledRule;
  readonly errno?: RouteErrno;
  readonly verdict?: Verdict;
  readonly reason?: string;
}

const NO_MATCH: FibResult = {
  kind: "none",
  errno: "ENETUNREACH",
  verdict: "unreachable",
  reason: "no rule led to a route",
};

const RULE_ERRNO: Readonly<Record<string, RouteErrno>> = {
  unreachable: "ENETUNREACH",
  prohibit: "EACCES",
  blackhole: "EINVAL",
};
const ROUTE_ERRNO: Readonly<Record<string, RouteErrno>> = {
  unreachable: "EHOSTUNREACH",
  prohibit: "EACCES",
  blackhole: "EINVAL",
};

// ---------------------------------------------------------------------------------------------
// Rule selectors (fib_rule_match + fib4_rule_match / fib6_rule_match)

function matchRule(r: CompiledRule, flow: Flow): boolean {
  let ok = selectorsMatch(r, flow);
  if (r.not) ok = !ok;
  return ok;
}

function selectorsMatch(r: CompiledRule, flow: Flow): boolean {
  if (r.iif !== undefined && r.iif !== flow.iif) return false;
  if (r.oif !== undefined && r.oif !== flow.oif) return false;
  if (r.hasMark && ((r.fwmark ^ flow.mark) & r.fwmask) !== 0) return false;
  if (r.from !== undefined) {
    // IPv6 without a source address: a rule with a source prefix does not match (no HAS_SADDR).
    if (flow.family === 6 && flow.srcText === undefined) return false;
    if (!prefixMatches(r.from, flow.src)) return false;
  }
  if (r.to !== undefined && !prefixMatches(r.to, flow.dst)) return false;
  if (r.tos !== 0 && !tosMatches(r, flow)) return false;
  if (r.ipproto !== 0 && r.ipproto !== flow.ipproto) return false;
  if (r.sportStart !== 0 && (flow.sport < r.sportStart || flow.sport > r.sportEnd)) return false;
  if (r.dportStart !== 0 && (flow.dport < r.dportStart || flow.dport > r.dportEnd)) return false;
  if (r.hasUid) {
    // Last, so that reaching it means the uid alone decides.
    if (flow.uid < 0) {
      throw new UnsupportedError(
        `rule ${r.rule.priority} has a uidrange and the packet is IPv6 input: real packets route as uid 0, ` +
          "`ip route get ... iif` as an invalid uid; not modelled",
      );
    }
    if (flow.uid < r.uidStart || flow.uid > r.uidEnd) return false;
  }
  return true;
}

/** IPv4: a legacy `tos` rule compares the TOS bits (0x1c) only; IPv6: the whole DSCP. */
function tosMatches(r: CompiledRule, flow: Flow): boolean {
  if (flow.family === 4) return (r.tos & 0x1c) === (flow.tos & 0x1c);
  return (r.tos & 0xfc) === (flow.tos & 0xfc);
}

/** Why a rule's selectors did or did not match, for the explanation. */
function describeMatch(r: CompiledRule, flow: Flow): string {
  const misses: string[] = [];
  const hits: string[] = [];
  const check = (ok: boolean, what: string): void => {
    (ok ? hits : misses).push(what);
  };
  if (r.iif !== undefined)
    check(r.iif === flow.iif, `iif is ${flow.iif === "lo" ? "lo (locally generated)" : flow.iif}`);
  if (r.oif !== undefined) check(r.oif === flow.oif, `oif is ${flow.oif ?? "unset"}`);
  if (r.hasMark) check(((r.fwmark ^ flow.mark) & r.fwmask) === 0, `mark ${formatHex(flow.mark)}`);
  if (r.hasUid)
    check(
      flow.uid >= r.uidStart && flow.uid <= r.uidEnd,
      flow.uid < 0 ? "uid unknown (IPv6 input)" : `uid ${flow.uid}`,
    );
  if (r.from !== undefined) {
    if (flow.family === 6 && flow.srcText === undefined) check(false, "no source address yet");
    else
      check(
        prefixMatches(r.from, flow.src),
        `source ${flow.srcText ?? (flow.family === 4 ? "0.0.0.0" : "::")}`,
      );
  }
  if (r.to !== undefined) check(prefixMatches(r.to, flow.dst), `destination ${flow.dstText}`);
  if (r.tos !== 0) check(tosMatches(r, flow), `tos ${formatHex(flow.tos)}`);
  if (r.ipproto !== 0)
    check(r.ipproto === flow.ipproto, `ipproto ${flow.ipproto === 0 ? "unset" : protoName(flow.ipproto)}`);
  if (r.sportStart !== 0)
    check(flow.sport >= r.sportStart && flow.sport <= r.sportEnd, `sport ${flow.sport}`);
  if (r.dportStart !== 0)
    check(flow.dport >= r.dportStart && flow.dport <= r.dportEnd, `dport ${flow.dport}`);
  const matched = misses.length === 0;
  if (r.not) {
    return matched
      ? `no match ("not": the selectors match: ${hits.join(", ") || "all"})`
      : `match ("not": ${misses.join(", ")})`;
  }
  return matched
    ? `match${hits.length === 0 ? "" : ` (${hits.join(", ")})`}`
    : `no match (${misses.join(", ")})`;
}

// ---------------------------------------------------------------------------------------------
// Table lookup (fib_table_lookup / fib6_table_lookup)

/** IPv6 with forwarding off and a router to choose: the kernel scores neighbours (not modelled). */
const AMBIGUOUS_V6: CompiledRoute = {
  route: { family: 6, table: 0, type: "unicast", dst: "default" },
  text: "(several routes)",
  use: 3,
  type: "unicast",
  len: 0,
  metric: 0,
  dev: undefined,
  gateway: undefined,
  unsupported:
    "IPv6 forwarding is off and the route has a gateway that a shorter prefix could stand in for, or shares its prefix: the kernel then scores routers by neighbour reachability, which the snapshot does not hold (not modelled)",
};

/** The route the table gives (check `unsupported` on it), or undefined when it has none. */
function lookupTable(
  index: FamilyIndex,
  table: TableIndex,
  flow: Flow,
  v6Strict: boolean,
): CompiledRoute | undefined {
  if (index.family === 4) return lookupTable4(table, flow.dst, flow.oif);
  if (flow.oif !== undefined)
    return flow.oifPreferred === true
      ? lookupTable6Preferring(table, flow.dst, flow.oif)
      : lookupTable6Bound(table, flow.dst, flow.oif);
  let deepest: TrieNode | undefined;
  /** Whether a shorter prefix than the deepest on the path has routes (where the kernel may backtrack to). */
  let shorterPrefixHasRoutes = false;
  let node: TrieNode | undefined = table.root;
  for (let i = 0; node !== undefined; i++) {
    if (node.routes !== undefined) {
      if (deepest !== undefined) shorterPrefixHasRoutes = true;
      deepest = node;
    }
    if (i === 128) break;
    node = bitAt(flow.dst, i) === 0 ? node.zero : node.one;
  }
  // The longest prefix with routes decides; among its routes the lowest metric (no oif modelled for
  // IPv6, so every route is acceptable: with forwarding on, no backtracking happens).
  if (deepest === undefined) return undefined;
  const routes = deepest.routes as CompiledRoute[];
  const first = routes[0] as CompiledRoute;
  // With forwarding off the kernel prefers routes whose gateway's neighbour entry is reachable
  // (fib6_table_lookup with RT6_LOOKUP_F_REACHABLE): it may take another route of the deepest
  // prefix, or backtrack to a shorter prefix of this table, and only when neither gives one does it
  // look again without the preference. The snapshot (no neighbour table) cannot make that choice
  // when there is one to make; a lone route with a gateway and nothing shorter (a reply table's
  // default) is taken whatever its neighbour's state.
  if (
    first.unsupported === undefined &&
    v6Strict &&
    (routes.length > 1 || (first.gateway !== undefined && shorterPrefixHasRoutes))
  ) {
    return AMBIGUOUS_V6;
  }
  return first;
}

/**
 * IPv6 bound to a device (RT6_LOOKUP_F_IFACE, as nft's `fib` and xt_rpfilter look up a link-local
 * source: on the interface it arrived on): of the deepest prefix, the first route in metric order
 * out of `oif`; a prefix without one is passed over for a shorter one (fib6_backtrack), and a table
 * without one gives nothing (the rule walk goes on). A route the simulator cannot read stops it.
 */
function lookupTable6Bound(table: TableIndex, dst: Words, oif: string): CompiledRoute | undefined {
  const path: CompiledRoute[][] = [];
  let node: TrieNode | undefined = table.root;
  for (let i = 0; node !== undefined; i++) {
    if (node.routes !== undefined) path.push(node.routes);
    if (i === 128) break;
    node = bitAt(dst, i) === 0 ? node.zero : node.one;
  }
  for (let k = path.length - 1; k >= 0; k--) {
    for (const route of path[k] as CompiledRoute[]) {
      if (route.unsupported !== undefined) return route;
      if (route.dev === oif) return route;
    }
  }
  return undefined;
}

/**
 * IPv6 with a device preferred, not bound (rt6_device_match without RT6_LOOKUP_F_IFACE): the
 * deepest prefix with routes decides, as without one; among its routes the first out of `oif`,
 * else the first.
 */
function lookupTable6Preferring(table: TableIndex, dst: Words, oif: string): CompiledRoute | undefined {
  let deepest: CompiledRoute[] | undefined;
  let node: TrieNode | undefined = table.root;
  for (let i = 0; node !== undefined; i++) {
    if (node.routes !== undefined) deepest = node.routes;
    if (i === 128) break;
    node = bitAt(dst, i) === 0 ? node.zero : node.one;
  }
  if (deepest === undefined) return undefined;
  for (const route of deepest) {
    if (route.unsupported !== undefined) return route;
    if (route.dev === oif) return route;
  }
  return deepest[0];
}

/**
 * IPv4 (fib_table_lookup): longest prefix first; within a prefix, aliases in metric order; a next
 * hop on another device than the bound socket's is skipped, and the lookup backtracks to shorter
 * prefixes. The trie's route lists are kept by prefix length so empty levels cost nothing.
 */
function lookupTable4(
  table: TableIndex,
  dstWords: Words,
  oif: string | undefined,
): CompiledRoute | undefined {
  const dst = dstWords[0] as number;
  const lengths = table.lengths;
  for (let l = 0; l < lengths.length; l++) {
    const routes = (table.byLength[l] as Map<number, CompiledRoute[]>).get(
      (dst & (table.masks[l] as number)) >>> 0,
    );
    if (routes === undefined) continue;
    for (let k = 0; k < routes.length; k++) {
      const route = routes[k] as CompiledRoute;
      if (oif !== undefined && route.unsupported === undefined) {
        const t = route.type;
        if ((t === "unicast" || t === "local" || t === "broadcast") && route.dev !== oif) continue;
      }
      return route;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The rule walk (fib_rules_lookup)

const CACHE_LIMIT = 4096;

function markCandidates(f: FamilyIndex["filter"], mark: number): Int32Array {
  const cache = f.markCache;
  let set = cache.get(mark);
  if (set !== undefined) return set;
  set = Int32Array.from(f.noMark);
  for (const group of f.markGroups) {
    const matched = group.byValue.get((mark & group.mask) >>> 0);
    if (matched !== undefined)
      for (let w = 0; w < set.length; w++) set[w] = (set[w] as number) | (matched[w] as number);
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(mark, set);
  return set;
}

function ifaceCandidates(f: FamilyIndex["filter"], iif: string, oif: string | undefined): Int32Array {
  const cache = f.ifaceCache;
  const key = oif === undefined ? iif : `${iif}\u0000${oif}`;
  let set = cache.get(key);
  if (set !== undefined) return set;
  const iifSet = f.byIif.get(iif);
  const oifSet = oif === undefined ? undefined : f.byOif.get(oif);
  set = new Int32Array(f.words);
  for (let w = 0; w < f.words; w++) {
    const i = (f.noIif[w] as number) | (iifSet === undefined ? 0 : (iifSet[w] as number));
    const o = (f.noOif[w] as number) | (oifSet === undefined ? 0 : (oifSet[w] as number));
    set[w] = i & o;
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, set);
  return set;
}

/**
 * Rules that may match, as ascending rule indices: the AND over selector kinds of the rules each
 * selector admits. Packets share few distinct selector sets, so the lists are cached per set tuple.
 */
function candidateList(index: FamilyIndex, flow: Flow): Int32Array {
  const f = index.filter;
  const fromSet = selectorCandidates(f.fromRoot, flow.src);
  const toSet = selectorCandidates(f.toRoot, flow.dst);
  const markSet = markCandidates(f, flow.mark);
  const ifaceSet = ifaceCandidates(f, flow.iif, flow.oif);
  let byTo = f.listCache.get(fromSet);
  if (byTo === undefined) f.listCache.set(fromSet, (byTo = new Map()));
  let byMark = byTo.get(toSet);
  if (byMark === undefined) byTo.set(toSet, (byMark = new Map()));
  let byIface = byMark.get(markSet);
  if (byIface === undefined) byMark.set(markSet, (byIface = new Map()));
  const cached = byIface.get(ifaceSet);
  if (cached !== undefined) return cached;
  const indices: number[] = [];
  for (let w = 0; w < f.words; w++) {
    let word =
      (fromSet[w] as number) & (toSet[w] as number) & (markSet[w] as number) & (ifaceSet[w] as number);
    while (word !== 0) {
      const low = word & -word;
      indices.push((w << 5) + (31 - Math.clz32(low)));
      word ^= low;
    }
  }
  const list = Int32Array.from(indices);
  if (++f.listCacheSize > CACHE_LIMIT) {
    f.listCache.clear();
    f.listCacheSize = 0;
  }
  byIface.set(ifaceSet, list);
  return list;
}

/** What a matched rule's action does, when the walk goes on. */
function actionNote(r: CompiledRule): string {
  if (r.action === "nop") return "; nop: next rule";
  if (r.action !== "goto") return "";
  return r.gotoIndex >= 0
    ? `; goto: continue at priority ${r.rule.goto ?? "?"}`
    : `; goto ${r.rule.goto ?? "?"}: no rule has that priority, so it is ignored`;
}

function fibLookup(index: FamilyIndex, flow: Flow, v6Strict: boolean, steps: Step[] | undefined): FibResult {
  const rules = index.rules;
  const n = rules.length;
  // Fast walk: only the candidate rules (a rule left out cannot match); explaining walk: every rule.
  const candidates = steps === undefined ? candidateList(index, flow) : undefined;
  let pos = 0;
  let i = candidates === undefined ? 0 : (candidates[0] ?? n);
  while (i < n) {
    const r = rules[i] as CompiledRule;
    const matched = matchRule(r, flow);
    if (steps !== undefined) {
      steps.push({
        stage: "rule",
        priority: r.rule.priority,
        rule: r.text,
        matched,
        reason: `${describeMatch(r, flow)}${matched ? actionNote(r) : ""}`,
      });
    }
    let next = i + 1;
    if (matched) {
      if (r.unsupported !== undefined) {
        return {
          kind: "unsupported",
          rule: r,
          verdict: "unsupported",
          reason: `rule ${r.rule.priority}: ${r.unsupported}`,
        };
      }
      switch (r.action) {
        case "goto":
          if (r.gotoIndex >= 0) next = r.gotoIndex;
          break;
        case "nop":
          break;
        case "unreachable":
        case "prohibit":
        case "blackhole":
          return {
            kind: "refused",
            rule: r,
            errno: RULE_ERRNO[r.action],
            verdict: r.action,
            reason: `rule ${r.rule.priority} says ${r.action}`,
          };
        case "lookup": {
          const root = r.tableRef;
          const route = root === undefined ? undefined : lookupTable(index, root, flow, v6Strict);
          if (route?.unsupported !== undefined) {
            const shown = route === AMBIGUOUS_V6 ? undefined : route;
            steps?.push({ stage: "lookup", table: r.table, route: route.text, reason: "not modelled" });
            return {
              kind: "unsupported",
              rule: r,
              table: r.table,
              route: shown,
              verdict: "unsupported",
              reason: route.unsupported,
            };
          }
          if (route === undefined) {
            steps?.push({
              stage: "lookup",
              table: r.table,
              reason: root === undefined ? "table is empty, next rule" : "no route, next rule",
            });
            break;
          }
          if (route.use === USE_THROW) {
            steps?.push({
              stage: "lookup",
              table: r.table,
              route: route.text,
              reason: "throw: back to the rule walk",
            });
            break;
          }
          if (route.use === USE_REFUSE) {
            const refusal = ROUTE_ERRNO[route.type];
            steps?.push({
              stage: "lookup",
              table: r.table,
              route: route.text,
              reason: `route type ${route.type}`,
            });
            return {
              kind: "refused",
              route,
              rule: r,
              table: r.table,
              errno: refusal,
              verdict: route.type as Verdict,
              reason: `route ${route.text}`,
            };
          }
          if (route.len <= r.suppressPrefixlength) {
            steps?.push({
              stage: "lookup",
              table: r.table,
              route: route.text,
              reason: `suppressed: prefix length ${route.len} <= suppress_prefixlength ${r.suppressPrefixlength}`,
            });
            break;
          }
          steps?.push({ stage: "lookup", table: r.table, route: route.text, reason: "found" });
          return { kind: "route", route, rule: r, table: r.table };
        }
      }
    }
    if (candidates === undefined) {
      i = next;
    } else {
      // `next` is past `i` (the next rule, or a goto target, which the kernel only allows forward).
      while (pos < candidates.length && (candidates[pos] as number) < next) pos++;
      i = pos < candidates.length ? (candidates[pos] as number) : n;
    }
  }
  return NO_MATCH;
}

// ---------------------------------------------------------------------------------------------
// sysctls

const confName = (dev: string, key: string): string => `net/ipv4/conf/${dev}/${key}`;

/** The per-interface sysctls an IPv4 input decision reads ("{}" stands for the interface). */
const INPUT_SYSCTL_KEYS = [
  "rp_filter",
  "accept_local",
  "src_valid_mark",
  "send_redirects",
  "forwarding",
  "bc_forwarding",
] as const;

/** Every sysctl name the simulator may read for packets arriving on `iif`. */
export function sysctlsForInterface(iif: string): string[] {
  return [
    ...INPUT_SYSCTL_KEYS.map((k) => confName("all", k)),
    ...INPUT_SYSCTL_KEYS.map((k) => confName(iif, k)),
  ];
}

class MissingSysctl extends Error {}
class UnsupportedError extends Error {}

function sysctlInt(index: RoutingIndex, name: string): number {
  const raw = index.sysctls[name];
  const value = raw === undefined ? Number.NaN : Number(raw.trim());
  if (!Number.isInteger(value))
    throw new MissingSysctl(`sysctl ${name.replaceAll("/", ".")} is not in the state`);
  return value;
}
const orConf = (index: RoutingIndex, dev: string, key: string): boolean =>
  sysctlInt(index, confName("all", key)) !== 0 || sysctlInt(index, confName(dev, key)) !== 0;
const andConf = (index: RoutingIndex, dev: string, key: string): boolean =>
  sysctlInt(index, confName("all", key)) !== 0 && sysctlInt(index, confName(dev, key)) !== 0;

export function effectiveRpFilter(index: RoutingIndex, dev: string): RpFilterMode {
  const value = Math.max(
    sysctlInt(index, confName("all", "rp_filter")),
    sysctlInt(index, confName(dev, "rp_filter")),
  );
  return (value >= 2 ? 2 : value <= 0 ? 0 : 1) as RpFilterMode;
}

// ---------------------------------------------------------------------------------------------
// rp_filter (fib_validate_source, KERNEL-FACTS 5)

function validateSource(
  index: RoutingIndex,
  flow: Flow,
  dst: Words,
  dstText: string,
  oif: string | undefined,
  steps: Step[] | undefined,
): RpFilterVerdict {
  const fam = index.v4;
  const dev = flow.iif;
  const mode = effectiveRpFilter(index, dev);
  const acceptLocal = orConf(index, dev, "accept_local");
  const srcText = flow.srcText ?? "0.0.0.0";
  const modeText = mode === 0 ? "rp_filter 0" : mode === 1 ? "strict rp_filter (1)" : "loose rp_filter (2)";
  const verdict = (accepted: boolean, why: string): RpFilterVerdict => {
    const reason = `${modeText} on ${dev}: ${why}`;
    steps?.push({ stage: "rp_filter", reason: `${accepted ? "accepted" : "rejected"}: ${reason}` });
    return { mode, accepted, reason };
  };
  if (mode === 0 && !(oif === dev && orConf(index, dev, "send_redirects"))) {
    if (acceptLocal) return verdict(true, "accept_local is set");
    if (!fam.customRules && !fam.customLocalRoutes) {
      if (fam.localAddresses.has(wordsKey(flow.src)))
        return verdict(false, `source ${srcText} is a local address (martian)`);
      return verdict(true, "no source check");
    }
  }
  // The reverse lookup: source and destination swapped, the forward output device as input device.
  const reverse: Flow = {
    family: 4,
    src: dst,
    srcText: dstText,
    dst: flow.src,
    dstText: srcText,
    iif: oif ?? "lo",
    oif: undefined,
    mark: orConf(index, dev, "src_valid_mark") ? flow.mark : 0,
    tos: flow.tos,
    ipproto: fam.requireDissect ? flow.ipproto : 0,
    sport: fam.requireDissect ? flow.dport : 0,
    dport: fam.requireDissect ? flow.sport : 0,
    uid: 0,
  };
  const res = fibLookup(fam, reverse, false, undefined);
  const noAddr = !fam.addressedLinks.has(dev);
  const back = `reverse lookup of ${srcText} (from ${dstText}, iif ${reverse.iif}${reverse.mark !== 0 ? `, mark ${formatHex(reverse.mark)}` : ""})`;
  if (res.kind === "unsupported")
    throw new UnsupportedError(`rp_filter ${back}: ${res.reason ?? "not modelled"}`);
  if (res.kind !== "route" || res.route === undefined) {
    return mode !== 0
      ? verdict(false, `${back} finds no route (${res.reason ?? res.verdict ?? ""})`)
      : verdict(true, `${back} finds no route, accepted as a last resort`);
  }
  const route = res.route;
  const where = `${route.text}${res.rule === undefined ? "" : ` (rule ${res.rule.rule.priority})`}`;
  if (route.type !== "unicast" && !(route.type === "local" && acceptLocal)) {
    return verdict(false, `${back} gives a ${route.type} route, ${where}: martian source`);
  }
  if (route.dev === dev || (route.type === "local" && dev === "lo")) {
    return verdict(true, `${back} leaves by ${dev} itself: ${where}`);
  }
  if (noAddr) {
    return mode !== 0
      ? verdict(
          false,
          `${back} leaves by ${route.dev ?? "?"}, not ${dev}, and ${dev} has no IPv4 address (the kernel's last resort rejects)`,
        )
      : verdict(true, `${dev} has no IPv4 address, accepted as a last resort`);
  }
  if (mode === 1) return verdict(false, `${back} leaves by ${route.dev ?? "?"}, not ${dev}: ${where}`);
  return verdict(true, `${back} finds a route (any device will do): ${where}`);
}

// ---------------------------------------------------------------------------------------------
// Entry point

type MutableTrace = { -readonly [K in keyof Trace]: Trace[K] };

/** The trace object, built in place (the hot path allocates one object per answer). */
function finish(
  base: { family: Family; steps: Step[] | undefined },
  fields: Omit<Trace, "family" | "steps">,
  res?: FibResult,
): Trace {
  const trace = fields as MutableTrace;
  trace.family = base.family;
  if (res !== undefined) {
    if (res.table !== undefined) trace.table = res.table;
    if (res.route !== undefined) trace.route = res.route.route;
    if (res.rule !== undefined) trace.rule = res.rule.rule;
  }
  if (base.steps !== undefined) trace.steps = base.steps;
  return trace;
}

function unsupportedTrace(base: { family: Family; steps: Step[] | undefined }, reason: string): Trace {
  return finish(base, { result: "unsupported", reason });
}

function refusal(res: FibResult): Omit<Trace, "family" | "steps"> {
  return { result: res.verdict ?? "unreachable", errno: res.errno, reason: res.reason };
}

/** Reused IPv4 address words: a trace keeps no reference to them once it returns. */
const DST4: number[] = [0];
const SRC4: number[] = [0];

function addressWords(text: string, scratch4: number[]): Words | undefined {
  const v4 = text.includes(":") ? undefined : fastIpv4(text);
  if (v4 !== undefined) {
    scratch4[0] = v4;
    return scratch4;
  }
  return parseAddressWords(text)?.words;
}

/**
 * symroute's guard (KERNEL-FACTS 11): a packet addressed to one of the interface's pools passes;
 * any other passes only if a lookup of its source (the reverse of the packet, as nft's `fib saddr
 * . iif oif` and xt_rpfilter do it: from the local side, mark 0) finds a unicast route out of the
 * same interface (strict) or out of any (loose). A local or missing route drops it.
 */
function runGuard(
  index: RoutingIndex,
  fam: FamilyIndex,
  g: SpoofGuard,
  dst: Words,
  packet: Packet,
  src: Words | undefined,
  frontEnd: FirewallBackend,
): GuardVerdict {
  const iif = g.iif;
  const base = { iif, mode: g.mode };
  const exempt = g.exempt.find((p) => {
    const prefix = parseWordPrefix(p, fam.family);
    return prefix !== undefined && prefixMatches(prefix, dst);
  });
  if (
    fam.family === 4 &&
    (packet.from === undefined || packet.from === "0.0.0.0") &&
    packet.to === "255.255.255.255"
  )
    return { ...base, result: "exempt", reason: "DHCP from 0.0.0.0 to 255.255.255.255: not checked" };
  if (exempt !== undefined)
    return {
      ...base,
      result: "exempt",
      reason: `${packet.to} is in ${exempt}, a pool of ${iif}: accepted without a source check`,
    };
  const from = packet.from ?? (fam.family === 4 ? "0.0.0.0" : "::");
  const linkLocalSource = fam.family === 6 && src !== undefined && special6(src) === "link-local";
  const ip6tablesStrict = fam.family === 6 && g.mode === "strict" && frontEnd === "iptables";
  const reverse: Flow = {
    family: fam.family,
    src: dst,
    srcText: packet.to,
    dst: src ?? zeroWords(fam.family),
    dstText: from,
    iif: "lo",
    // Unbound, then the device compared (strict): nft's `fib saddr . iif` binds an IPv4 lookup to
    // no device (6.18: only to the interface's VRF; measured, a source whose prefix has a route on
    // eth0 before one on ext0 is dropped by ext0's guard in both front ends). IPv6 binds the
    // lookup of a link-local source, in both modes (the address means nothing off its link:
    // fe80::/64 has a route on every interface).
    // ip6tables' strict rpfilter sets the input interface without binding the lookup to it.
    oif: linkLocalSource || ip6tablesStrict ? iif : undefined,
    ...(ip6tablesStrict && !linkLocalSource ? { oifPreferred: true } : {}),
    mark: 0,
    tos: 0,
    ipproto: 0,
    sport: 0,
    dport: 0,
    uid: 0,
  };
  // nft's fib and ip6tables' rpfilter look up with ip6_route_lookup, which never scores routers by
  // their neighbours (that is ip6_pol_route's, with forwarding off): the first route decides.
  const res = fibLookup(fam, reverse, false, undefined);
  const what = `lookup of the source ${from}${linkLocalSource ? ` (link-local: on ${iif} only)` : ""}`;
  if (res.kind === "unsupported")
    throw new UnsupportedError(`guard on ${iif}: ${what}: ${res.reason ?? "not modelled"}`);
  const route = res.route;
  if ((res.kind !== "route" || route === undefined) && reverse.oif !== undefined) {
    // Bound to the interface, the lookup found nothing: say where the source is routed instead.
    const free = fibLookup(fam, { ...reverse, oif: undefined }, false, undefined);
    if (free.kind === "route" && free.route !== undefined)
      return {
        ...base,
        result: "drop",
        reason: `${g.mode} guard on ${iif}: ${what} leaves by ${free.route.dev ?? "?"}, not ${iif}: ${free.route.text}: spoofed source, dropped`,
      };
  }
  if (res.kind !== "route" || route === undefined)
    return {
      ...base,
      result: "drop",
      reason: `${g.mode} guard on ${iif}: ${what} finds no route: spoofed source, dropped`,
    };
  const where = `${route.text}${res.rule === undefined ? "" : ` (rule ${res.rule.rule.priority})`}`;
  if (route.type !== "unicast")
    return {
      ...base,
      result: "drop",
      reason: `${g.mode} guard on ${iif}: ${what} gives a ${route.type} route, ${where}: dropped`,
    };
  if (g.mode === "loose" || route.dev === iif)
    return {
      ...base,
      result: "pass",
      reason: `${g.mode} guard on ${iif}: ${what} leaves by ${route.dev ?? "?"}: ${where}`,
    };
  return {
    ...base,
    result: "drop",
    reason: `strict guard on ${iif}: ${what} leaves by ${route.dev ?? "?"}, not ${iif}: ${where}: spoofed source, dropped`,
  };
}

/**
 * Route one packet through the compiled state. Input packets (with `iif`) take the kernel's input
 * path (forwarding, martians, rp_filter for IPv4); others the local output path.
 */
export function tracePacket(index: RoutingIndex, original: Packet, options?: TraceOptions): Trace {
  let packet = original;
  let dst = addressWords(packet.to, DST4);
  const family: Family = dst?.length === 4 ? 6 : 4;
  const steps: Step[] | undefined = options?.explain === true ? [] : undefined;
  const base = { family, steps };
  if (dst === undefined) return unsupportedTrace(base, `"${packet.to}" is not an IP address`);
  const src = packet.from === undefined ? undefined : addressWords(packet.from, SRC4);
  if (packet.from !== undefined && src === undefined)
    return unsupportedTrace(base, `"${packet.from}" is not an IP address`);
  if (src !== undefined && src.length !== dst.length)
    return unsupportedTrace(base, "source and destination are of different families");
  if (packet.iif !== undefined && !index.links.has(packet.iif))
    return unsupportedTrace(base, `no interface named ${packet.iif} in the state`);
  if (packet.oif !== undefined && !index.links.has(packet.oif))
    return unsupportedTrace(base, `no interface named ${packet.oif} in the state`);
  const input = packet.iif !== undefined;
  const fam = family === 4 ? index.v4 : index.v6;
  if (steps !== undefined) {
    steps.push({ stage: "packet", reason: describePacket(original, input) });
  }
  let guard: GuardVerdict | undefined;
  if (input && options?.guards !== undefined) {
    const g = options.guards.find((x) => x.iif === packet.iif && x.family === family);
    if (g === undefined) {
      steps?.push({
        stage: "guard",
        reason: `none of symroute's on ${packet.iif ?? ""} for IPv${family}${family === 6 ? ": Linux has no rp_filter for IPv6, the source is not checked" : ""}`,
      });
    } else {
      try {
        guard = runGuard(index, fam, g, dst, packet, src, options.guardFrontEnd ?? "nftables");
      } catch (error) {
        if (error instanceof MissingSysctl || error instanceof UnsupportedError)
          return unsupportedTrace(base, error.message);
        throw error;
      }
      steps?.push({ stage: "guard", reason: `${guard.result}: ${guard.reason}` });
      if (guard.result === "drop") return finish(base, { result: "rejected", guard, reason: guard.reason });
    }
  }
  // Routing and rp_filter come after kube-proxy's DNAT.
  if (packet.dnatTo !== undefined) {
    const routed = addressWords(packet.dnatTo, DST4);
    if (routed === undefined || routed.length !== dst.length)
      return unsupportedTrace(base, `"${packet.dnatTo}" is not an address of the packet's family`);
    dst = routed;
    packet = { ...packet, to: packet.dnatTo };
  }
  // `ip route get` without ipproto asks IPv4 about UDP (a test packet with a UDP header); IPv6 about 0.
  const ipproto = packet.ipproto ?? (family === 4 ? 17 : 0);
  let sport = packet.sport ?? 0;
  let dport = packet.dport ?? 0;
  if (input && ipproto !== 6 && ipproto !== 17) {
    // `ip route get ... iif` builds a test packet with a transport header for tcp and udp only.
    sport = 0;
    dport = 0;
  }
  const flow: Flow = {
    family,
    src: src ?? zeroWords(family),
    srcText: packet.from === undefined ? undefined : packet.from,
    dst,
    dstText: packet.to,
    iif: packet.iif ?? "lo",
    oif: packet.oif,
    mark: (packet.mark ?? 0) >>> 0,
    tos: packet.tos ?? 0,
    // Input packets carry protocol and ports to the rules only when a rule asks for them.
    ipproto: input && !fam.requireDissect ? 0 : ipproto,
    sport: input && !fam.requireDissect ? 0 : sport,
    dport: input && !fam.requireDissect ? 0 : dport,
    // IPv4 input routing runs as uid 0; IPv6 input is ambiguous (-1, see selectorsMatch); output
    // defaults to root, as `ip route get` run by root does.
    uid: input ? (family === 4 ? 0 : -1) : (packet.uid ?? 0),
  };
  try {
    const trace =
      family === 4
        ? trace4(index, fam, flow, input, packet, base)
        : trace6(index, fam, flow, input, packet, base);
    if (guard !== undefined) (trace as MutableTrace).guard = guard;
    return trace;
  } catch (error) {
    if (error instanceof MissingSysctl || error instanceof UnsupportedError)
      return unsupportedTrace(base, error.message);
    throw error;
  }
}

function describePacket(p: Packet, input: boolean): string {
  const parts = [`to ${p.to}`, `from ${p.from ?? "(unset)"}`];
  parts.push(input ? `iif ${p.iif ?? ""} (input)` : "locally generated");
  if (p.oif !== undefined) parts.push(`oif ${p.oif}`);
  if (p.mark !== undefined) parts.push(`mark ${formatHex(p.mark)}`);
  if (p.tos !== undefined) parts.push(`tos ${formatHex(p.tos)}`);
  if (p.ipproto !== undefined) parts.push(`ipproto ${protoName(p.ipproto)}`);
  if (p.sport !== undefined) parts.push(`sport ${p.sport}`);
  if (p.dport !== undefined) parts.push(`dport ${p.dport}`);
  if (p.uid !== undefined) parts.push(`uid ${p.uid}`);
  if (p.dnatTo !== undefined) parts.push(`DNAT to ${p.dnatTo}`);
  return parts.join(" ");
}

function trace4(
  index: RoutingIndex,
  fam: FamilyIndex,
  flow: Flow,
  input: boolean,
  packet: Packet,
  base: { family: Family; steps: Step[] | undefined },
): Trace {
  const steps = base.steps;
  const dstWord = flow.dst[0] as number;
  const dstClass = ipv4Class(dstWord);
  const srcClass = packet.from === undefined ? "zeronet" : ipv4Class(flow.src[0] as number);
  if (
    dstClass === "multicast" ||
    dstClass === "lbcast" ||
    dstClass === "loopback" ||
    dstClass === "zeronet"
  ) {
    return finish(base, {
      result: "unsupported",
      reason: `destination ${flow.dstText} is ${dstClass}: special-cased by the kernel, not modelled`,
    });
  }
  if (packet.tos !== undefined && (packet.tos & 0x03) !== 0) {
    return finish(base, { result: "unsupported", reason: "tos with ECN bits set is not modelled" });
  }
  if (!input) {
    if (packet.from !== undefined) {
      if (srcClass === "multicast" || srcClass === "lbcast" || srcClass === "zeronet") {
        return finish(base, {
          result: "rejected",
          errno: "EINVAL",
          reason: `source ${flow.srcText ?? ""} is ${srcClass}`,
        });
      }
      if (srcClass === "loopback")
        return finish(base, { result: "unsupported", reason: "loopback source addresses are not modelled" });
      if (!isLocalSource4(fam, flow.src)) {
        return finish(base, {
          result: "rejected",
          errno: "ENETUNREACH",
          reason: `source ${flow.srcText ?? ""} is not an address of this node (a local socket cannot send from it)`,
        });
      }
    }
    const res = fibLookup(fam, flow, false, steps);
    if (res.kind === "unsupported")
      return finish(base, { result: "unsupported", reason: res.reason ?? "" }, res);
    if (res.kind !== "route" || res.route === undefined) {
      if (flow.oif !== undefined) {
        // The kernel then assumes the destination is on the bound device's link.
        steps?.push({
          stage: "lookup",
          reason: `no usable route, the socket is bound to ${flow.oif}: assume on-link`,
        });
        return finish(base, {
          result: "unicast",
          dev: flow.oif,
          reason: "on-link fallback for a bound socket",
        });
      }
      return finish(base, refusal(res), res);
    }
    const route = res.route;
    if (route.type === "local") return finish(base, { result: "local", dev: "lo" }, res);
    if (route.type === "broadcast") return finish(base, { result: "broadcast", dev: route.dev }, res);
    return finish(base, { result: "unicast", dev: route.dev, gateway: route.gateway }, res);
  }
  // Input path (ip_route_input_slow).
  const iif = flow.iif;
  if (srcClass === "multicast" || srcClass === "lbcast") {
    return finish(base, {
      result: "rejected",
      errno: "EINVAL",
      reason: `martian source ${flow.srcText ?? ""} (${srcClass})`,
    });
  }
  if (packet.from === undefined || srcClass === "zeronet") {
    return finish(base, {
      result: "rejected",
      errno: "EINVAL",
      reason: `martian source ${flow.srcText ?? "0.0.0.0"} (zero network)`,
    });
  }
  if (srcClass === "loopback")
    return finish(base, { result: "unsupported", reason: "loopback source addresses are not modelled" });
  const res = fibLookup(fam, flow, false, steps);
  if (res.kind === "unsupported")
    return finish(base, { result: "unsupported", reason: res.reason ?? "" }, res);
  const forwarding = sysctlInt(index, confName(iif, "forwarding")) !== 0;
  if (res.kind !== "route" || res.route === undefined) {
    if (!forwarding) {
      const reason = `${res.reason ?? "no route"}; forwarding is off on ${iif}`;
      return finish(base, { result: "unreachable", errno: "EHOSTUNREACH", reason }, res);
    }
    return finish(base, refusal(res), res);
  }
  const route = res.route;
  if (route.type === "broadcast") {
    if (andConf(index, iif, "bc_forwarding"))
      return finish(base, { result: "unsupported", reason: "bc_forwarding is not modelled" });
    const rp = validateSource(index, flow, zeroWords(4), "0.0.0.0", undefined, steps);
    if (!rp.accepted)
      return finish(base, { result: "rejected", errno: "EINVAL", rpFilter: rp, reason: rp.reason }, res);
    return finish(base, { result: "broadcast", dev: "lo", rpFilter: rp }, res);
  }
  if (route.type === "local") {
    const rp = validateSource(index, flow, flow.dst, flow.dstText, undefined, steps);
    if (!rp.accepted)
      return finish(base, { result: "rejected", errno: "EINVAL", rpFilter: rp, reason: rp.reason }, res);
    return finish(base, { result: "local", dev: "lo", rpFilter: rp }, res);
  }
  if (!forwarding) {
    return finish(
      base,
      { result: "unreachable", errno: "EHOSTUNREACH", reason: `forwarding is off on ${iif}` },
      res,
    );
  }
  if (route.type !== "unicast") {
    return finish(
      base,
      { result: "rejected", errno: "EINVAL", reason: `martian destination (route type ${route.type})` },
      res,
    );
  }
  const rp = validateSource(index, flow, flow.dst, flow.dstText, route.dev, steps);
  if (!rp.accepted)
    return finish(base, { result: "rejected", errno: "EINVAL", rpFilter: rp, reason: rp.reason }, res);
  return finish(base, { result: "unicast", dev: route.dev, gateway: route.gateway, rpFilter: rp }, res);
}

/**
 * May a local socket send from this IPv4 address (`__ip_dev_find`)? An interface address, or else an
 * address the local table routes as type local (a `local` route over a whole prefix counts).
 */
function isLocalSource4(fam: FamilyIndex, src: Words): boolean {
  if (fam.localAddresses.has(wordsKey(src))) return true;
  const local = fam.tables.get(TABLE_LOCAL);
  return local !== undefined && lookupTable4(local, src, undefined)?.type === "local";
}

function special6(w: Words): string | undefined {
  const top = (w[0] as number) >>> 16;
  if (top >= 0xff00) return "multicast";
  if ((top & 0xffc0) === 0xfe80) return "link-local";
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && (w[3] === 0 || w[3] === 1)) return "unspecified or loopback";
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return "IPv4-mapped";
  return undefined;
}

function trace6(
  index: RoutingIndex,
  fam: FamilyIndex,
  flow: Flow,
  input: boolean,
  packet: Packet,
  base: { family: Family; steps: Step[] | undefined },
): Trace {
  const steps = base.steps;
  const dstSpecial = special6(flow.dst);
  if (dstSpecial !== undefined)
    return finish(base, {
      result: "unsupported",
      reason: `destination ${flow.dstText} is ${dstSpecial}: not modelled`,
    });
  if (packet.from !== undefined) {
    const srcSpecial = special6(flow.src);
    if (srcSpecial !== undefined)
      return finish(base, {
        result: "unsupported",
        reason: `source ${flow.srcText ?? ""} is ${srcSpecial}: not modelled`,
      });
  }
  if (flow.oif !== undefined)
    return finish(base, {
      result: "unsupported",
      reason: "IPv6 with an output interface (oif) is not modelled",
    });
  if (flow.tos !== 0)
    return finish(base, { result: "unsupported", reason: "IPv6 traffic class is not modelled" });
  if (input && packet.from === undefined)
    return finish(base, { result: "unsupported", reason: "IPv6 input packets need a source address" });
  const forwardingAll = index.sysctls["net/ipv6/conf/all/forwarding"];
  if (forwardingAll === undefined) {
    return finish(base, {
      result: "unsupported",
      reason: "sysctl net.ipv6.conf.all.forwarding is not in the state",
    });
  }
  const v6Strict = forwardingAll.trim() === "0";
  const res = fibLookup(fam, flow, v6Strict, steps);
  if (res.kind === "unsupported")
    return finish(base, { result: "unsupported", reason: res.reason ?? "" }, res);
  if (res.kind !== "route" || res.route === undefined) return finish(base, refusal(res), res);
  const route = res.route;
  if (route.type === "local") return finish(base, { result: "local", dev: "lo" }, res);
  if (route.type !== "unicast") {
    return finish(
      base,
      { result: "unsupported", reason: `IPv6 route type ${route.type} is not modelled` },
      res,
    );
  }
  return finish(base, { result: "unicast", dev: route.dev, gateway: route.gateway }, res);
}

/** sysctl names to read for explaining packets (IPv4 input on any of `links`, and IPv6). */
export function simulatorSysctls(links: readonly string[]): string[] {
  const names = new Set<string>(["net/ipv6/conf/all/forwarding"]);
  for (const k of INPUT_SYSCTL_KEYS) names.add(confName("all", k));
  for (const l of links) for (const k of INPUT_SYSCTL_KEYS) names.add(confName(l, k));
  return [...names];
}
