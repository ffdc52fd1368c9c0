// A NodeState compiled once for fast lookups: per family, the rules in kernel order with parsed
// selectors and a candidate filter (bitsets per selector), and a binary trie per table whose nodes
// hold their routes in the kernel's alias order (metric ascending).

import type { Family } from "../model/address.ts";
import type { NodeState, Route, RouteType, Rule, RuleAction } from "../model/state.ts";
import { formatRoute, formatRule } from "./format.ts";
import { bitAt, parseAddressWords, parseWordPrefix, wordsKey, type WordPrefix, type Words } from "./words.ts";

export interface CompiledRule {
  readonly rule: Rule;
  readonly text: string;
  readonly not: boolean;
  readonly from: WordPrefix | undefined;
  readonly to: WordPrefix | undefined;
  readonly iif: string | undefined;
  readonly oif: string | undefined;
  readonly hasMark: boolean;
  readonly fwmark: number;
  readonly fwmask: number;
  /** 0: no tos selector. */
  readonly tos: number;
  /** 0: no ipproto selector. */
  readonly ipproto: number;
  readonly sportStart: number;
  readonly sportEnd: number;
  readonly dportStart: number;
  readonly dportEnd: number;
  readonly hasUid: boolean;
  readonly uidStart: number;
  readonly uidEnd: number;
  readonly action: RuleAction;
  readonly table: number;
  /** Index of the goto target (first rule with exactly that priority), -1 when unresolved. */
  readonly gotoIndex: number;
  /** -1: no suppress_prefixlength. */
  readonly suppressPrefixlength: number;
  /** Set when the rule uses something the simulator does not model. */
  readonly unsupported: string | undefined;
  /** With action "lookup": the table, resolved once (undefined: the kernel has no such table). */
  tableRef: TableIndex | undefined;
}

export interface CompiledRoute {
  readonly route: Route;
  readonly text: string;
  readonly type: RouteType;
  readonly len: number;
  readonly metric: number;
  readonly dev: string | undefined;
  readonly gateway: string | undefined;
  readonly unsupported: string | undefined;
  /** What a lookup does with it: use it, refuse, throw back to the rules, or report it unsupported. */
  readonly use: RouteUse;
}

/** 0 a route to use, 1 a refusal (blackhole, unreachable, prohibit), 2 throw, 3 not modelled. */
type RouteUse = 0 | 1 | 2 | 3;
const USE_ROUTE = 0;
export const USE_REFUSE = 1;
export const USE_THROW = 2;
const USE_UNSUPPORTED = 3;

export interface TrieNode {
  zero: TrieNode | undefined;
  one: TrieNode | undefined;
  routes: CompiledRoute[] | undefined;
  readonly depth: number;
}

/**
 * One routing table: the binary trie, and for IPv4 the same nodes' route lists keyed by masked
 * destination per prefix length present (longest first), which skips the empty trie levels.
 */
export interface TableIndex {
  readonly root: TrieNode;
  readonly lengths: number[];
  readonly masks: number[];
  readonly byLength: Map<number, CompiledRoute[]>[];
}

/** Selector trie of the candidate filter: `cumulative` ORs the rules of every prefix on the path. */
interface FilterNode {
  zero: FilterNode | undefined;
  one: FilterNode | undefined;
  own: Int32Array;
  cumulative: Int32Array;
}

interface RuleFilter {
  readonly words: number;
  readonly fromRoot: FilterNode;
  readonly toRoot: FilterNode;
  readonly noMark: Int32Array;
  readonly markGroups: readonly { readonly mask: number; readonly byValue: Map<number, Int32Array> }[];
  readonly noIif: Int32Array;
  readonly byIif: Map<string, Int32Array>;
  readonly noOif: Int32Array;
  readonly byOif: Map<string, Int32Array>;
  /** Candidate sets computed so far per mark value and per "iif oif" pair (bounded, see trace.ts). */
  readonly markCache: Map<number, Int32Array>;
  readonly ifaceCache: Map<string, Int32Array>;
  /** Candidate rule lists per (from, to, mark, iface) set tuple, and how many are cached. */
  readonly listCache: Map<Int32Array, Map<Int32Array, Map<Int32Array, Map<Int32Array, Int32Array>>>>;
  listCacheSize: number;
}

export interface FamilyIndex {
  readonly family: Family;
  readonly rules: readonly CompiledRule[];
  readonly filter: RuleFilter;
  readonly tables: ReadonlyMap<number, TableIndex>;
  /** Exact interface addresses (what `__ip_dev_find` knows). */
  readonly localAddresses: ReadonlySet<string | number>;
  /** Interfaces with at least one address of this family. */
  readonly addressedLinks: ReadonlySet<string>;
  /** Some rule needs ports/protocol from the packet (the kernel's `fib_rules_require_fldissect`). */
  readonly requireDissect: boolean;
  /** Rules other than the three defaults exist (`fib_has_custom_rules`). */
  readonly customRules: boolean;
  /** Local routes added by something else than the kernel (`fib_has_custom_local_routes`). */
  readonly customLocalRoutes: boolean;
  /** Routes that could not be placed in a trie, with why. */
  readonly skippedRoutes: readonly { readonly route: Route; readonly reason: string }[];
}

export interface RoutingIndex {
  readonly v4: FamilyIndex;
  readonly v6: FamilyIndex;
  readonly links: ReadonlySet<string>;
  readonly sysctls: Readonly<Record<string, string>>;
}

const ALL_ONES = 0xffffffff;

function compileRule(rule: Rule, index: number, rules: readonly Rule[]): CompiledRule {
  const family = rule.family;
  let unsupported: string | undefined;
  const from = rule.from === undefined ? undefined : parseWordPrefix(rule.from, family);
  const to = rule.to === undefined ? undefined : parseWordPrefix(rule.to, family);
  if (rule.from !== undefined && from === undefined) unsupported = `cannot parse "from ${rule.from}"`;
  if (rule.to !== undefined && to === undefined) unsupported = `cannot parse "to ${rule.to}"`;
  if (rule.suppressIfgroup !== undefined) unsupported = "suppress_ifgroup is not modelled";
  if (rule.action === "lookup" && rule.table === undefined) {
    unsupported = "a lookup without a table (an l3mdev/VRF rule?) is not modelled";
  }
  let gotoIndex = -1;
  if (rule.action === "goto" && rule.goto !== undefined) {
    // The kernel binds a goto to the first rule whose priority equals the target; none: unresolved.
    gotoIndex = rules.findIndex((r) => r.priority === rule.goto);
    if (gotoIndex <= index) gotoIndex = -1;
  }
  return {
    rule,
    text: formatRule(rule),
    not: rule.not === true,
    from: from?.len === 0 ? undefined : from,
    to: to?.len === 0 ? undefined : to,
    iif: rule.iif,
    oif: rule.oif,
    hasMark: rule.fwmark !== undefined && (rule.fwmask ?? ALL_ONES) >>> 0 !== 0,
    fwmark: (rule.fwmark ?? 0) >>> 0,
    fwmask: (rule.fwmask ?? ALL_ONES) >>> 0,
    tos: rule.tos ?? 0,
    ipproto: rule.ipproto ?? 0,
    sportStart: rule.sport?.start ?? 0,
    sportEnd: rule.sport?.end ?? 0,
    dportStart: rule.dport?.start ?? 0,
    dportEnd: rule.dport?.end ?? 0,
    hasUid: rule.uidrange !== undefined,
    uidStart: rule.uidrange?.start ?? 0,
    uidEnd: rule.uidrange?.end ?? 0,
    action: rule.action,
    table: rule.table ?? 0,
    gotoIndex,
    suppressPrefixlength: rule.suppressPrefixlength ?? -1,
    unsupported,
    tableRef: undefined,
  };
}

// Fields a reader may carry for what is not modelled: next hop lists and objects, encapsulation, an
// IPv4 route via an IPv6 gateway, IPv6 source-specific routes (`ip -6 route ... from PREFIX`).
const UNMODELLED_ROUTE_FIELDS = ["multipath", "nexthops", "nhid", "encap", "via", "from", "src"] as const;

function compileRoute(route: Route, prefix: WordPrefix): CompiledRoute {
  let unsupported: string | undefined;
  if (route.type === "anycast" || route.type === "multicast" || route.type === "nat") {
    unsupported = `route type ${route.type} is not modelled`;
  } else if (route.tos !== undefined && route.tos !== 0) {
    unsupported = "routes with a tos selector are not modelled";
  } else if (
    (route.type === "unicast" || route.type === "local" || route.type === "broadcast") &&
    route.dev === undefined
  ) {
    // Only a multipath route or a nexthop object lacks a device; the reader does not carry either.
    unsupported = "a route without a device (multipath or nexthop object) is not modelled";
  } else {
    const extra = UNMODELLED_ROUTE_FIELDS.find((f) => Object.hasOwn(route, f));
    if (extra !== undefined)
      unsupported = `routes with "${extra}" (multipath, nexthop objects, encapsulation) are not modelled`;
  }
  return {
    route,
    text: formatRoute(route),
    type: route.type,
    len: prefix.len,
    metric: route.metric ?? 0,
    dev: route.dev,
    gateway: route.gateway,
    unsupported,
    use:
      unsupported !== undefined
        ? USE_UNSUPPORTED
        : route.type === "throw"
          ? USE_THROW
          : route.type === "blackhole" || route.type === "unreachable" || route.type === "prohibit"
            ? USE_REFUSE
            : USE_ROUTE,
  };
}

function insertRoute(root: TrieNode, prefix: WordPrefix, route: CompiledRoute): void {
  let node = root;
  for (let i = 0; i < prefix.len; i++) {
    const bit = bitAt(prefix.value, i);
    let next = bit === 0 ? node.zero : node.one;
    if (next === undefined) {
      next = { zero: undefined, one: undefined, routes: undefined, depth: i + 1 };
      if (bit === 0) node.zero = next;
      else node.one = next;
    }
    node = next;
  }
  const routes = (node.routes ??= []);
  // Alias order: metric ascending; equal metrics keep dump order (stable insertion).
  let at = routes.length;
  while (at > 0 && (routes[at - 1]?.metric ?? 0) > route.metric) at--;
  routes.splice(at, 0, route);
}

function indexLengths(table: TableIndex): void {
  const byLen = new Map<number, Map<number, CompiledRoute[]>>();
  const visit = (node: TrieNode, value: number): void => {
    if (node.routes !== undefined) {
      let map = byLen.get(node.depth);
      if (map === undefined) byLen.set(node.depth, (map = new Map()));
      map.set(value >>> 0, node.routes);
    }
    const bit = 2 ** (31 - node.depth);
    if (node.zero !== undefined) visit(node.zero, value);
    if (node.one !== undefined) visit(node.one, value + bit);
  };
  visit(table.root, 0);
  for (const len of [...byLen.keys()].sort((a, b) => b - a)) {
    table.lengths.push(len);
    table.masks.push(len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
    table.byLength.push(byLen.get(len) as Map<number, CompiledRoute[]>);
  }
}

function newFilterNode(words: number): FilterNode {
  return { zero: undefined, one: undefined, own: new Int32Array(words), cumulative: new Int32Array(words) };
}

const setBit = (set: Int32Array, i: number): void => {
  set[i >>> 5] = (set[i >>> 5] ?? 0) | (1 << (i & 31));
};

function insertSelector(root: FilterNode, prefix: WordPrefix, ruleIndex: number, words: number): void {
  let node = root;
  for (let i = 0; i < prefix.len; i++) {
    const bit = bitAt(prefix.value, i);
    let next = bit === 0 ? node.zero : node.one;
    if (next === undefined) {
      next = newFilterNode(words);
      if (bit === 0) node.zero = next;
      else node.one = next;
    }
    node = next;
  }
  setBit(node.own, ruleIndex);
}

function accumulate(node: FilterNode, parent: Int32Array | undefined): void {
  for (let w = 0; w < node.own.length; w++) node.cumulative[w] = (parent?.[w] ?? 0) | (node.own[w] ?? 0);
  if (node.zero !== undefined) accumulate(node.zero, node.cumulative);
  if (node.one !== undefined) accumulate(node.one, node.cumulative);
}

function buildFilter(rules: readonly CompiledRule[]): RuleFilter {
  const words = Math.max(1, Math.ceil(rules.length / 32));
  const fromRoot = newFilterNode(words);
  const toRoot = newFilterNode(words);
  const noMark = new Int32Array(words);
  const noIif = new Int32Array(words);
  const noOif = new Int32Array(words);
  const byIif = new Map<string, Int32Array>();
  const byOif = new Map<string, Int32Array>();
  const groups = new Map<number, Map<number, Int32Array>>();
  const setIn = (map: Map<string | number, Int32Array>, key: string | number, i: number): void => {
    let set = map.get(key);
    if (set === undefined) map.set(key, (set = new Int32Array(words)));
    setBit(set, i);
  };
  rules.forEach((r, i) => {
    // An inverted rule can match whatever the packet carries: it is a candidate in every dimension.
    const open = r.not || r.unsupported !== undefined;
    if (open || r.from === undefined) setBit(fromRoot.own, i);
    else insertSelector(fromRoot, r.from, i, words);
    if (open || r.to === undefined) setBit(toRoot.own, i);
    else insertSelector(toRoot, r.to, i, words);
    if (open || !r.hasMark) setBit(noMark, i);
    else {
      let group = groups.get(r.fwmask);
      if (group === undefined) groups.set(r.fwmask, (group = new Map()));
      setIn(group as Map<string | number, Int32Array>, (r.fwmark & r.fwmask) >>> 0, i);
    }
    if (open || r.iif === undefined) setBit(noIif, i);
    else setIn(byIif as Map<string | number, Int32Array>, r.iif, i);
    if (open || r.oif === undefined) setBit(noOif, i);
    else setIn(byOif as Map<string | number, Int32Array>, r.oif, i);
  });
  accumulate(fromRoot, undefined);
  accumulate(toRoot, undefined);
  return {
    words,
    fromRoot,
    toRoot,
    noMark,
    markGroups: [...groups].map(([mask, byValue]) => ({ mask, byValue })),
    noIif,
    byIif,
    noOif,
    byOif,
    markCache: new Map(),
    ifaceCache: new Map(),
    listCache: new Map(),
    listCacheSize: 0,
  };
}

/** The deepest selector-trie node on the address's path: its cumulative set. */
export function selectorCandidates(root: FilterNode, addr: Words): Int32Array {
  let node = root;
  const bits = addr.length * 32;
  for (let i = 0; i < bits; i++) {
    const next = bitAt(addr, i) === 0 ? node.zero : node.one;
    if (next === undefined) break;
    node = next;
  }
  return node.cumulative;
}

const isDefaultRule = (r: Rule): boolean =>
  r.action === "lookup" &&
  r.not !== true &&
  r.from === undefined &&
  r.to === undefined &&
  r.iif === undefined &&
  r.oif === undefined &&
  r.fwmark === undefined &&
  r.tos === undefined &&
  r.ipproto === undefined &&
  r.sport === undefined &&
  r.dport === undefined &&
  r.uidrange === undefined &&
  r.suppressPrefixlength === undefined &&
  ((r.priority === 0 && r.table === 255) ||
    (r.priority === 32766 && r.table === 254) ||
    (r.priority === 32767 && r.table === 253));

function compileFamily(state: NodeState, family: Family): FamilyIndex {
  // Kernel order: priority ascending, equal priorities in list order (as `ip rule show` prints them).
  const ordered = state.rules
    .filter((r) => r.family === family)
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.priority - b.r.priority || a.i - b.i)
    .map(({ r }) => r);
  const rules = ordered.map((r, i) => compileRule(r, i, ordered));
  const tables = new Map<number, TableIndex>();
  const skippedRoutes: { route: Route; reason: string }[] = [];
  let customLocalRoutes = false;
  for (const route of state.routes) {
    if (route.family !== family) continue;
    const prefix = parseWordPrefix(route.dst, family);
    if (prefix === undefined) {
      skippedRoutes.push({ route, reason: `cannot parse destination "${route.dst}"` });
      continue;
    }
    let table = tables.get(route.table);
    if (table === undefined) {
      table = {
        root: { zero: undefined, one: undefined, routes: undefined, depth: 0 },
        lengths: [],
        masks: [],
        byLength: [],
      };
      tables.set(route.table, table);
    }
    insertRoute(table.root, prefix, compileRoute(route, prefix));
    if (route.type === "local" && route.protocol !== 2) customLocalRoutes = true;
  }
  if (family === 4) for (const table of tables.values()) indexLengths(table);
  for (const r of rules) if (r.action === "lookup") r.tableRef = tables.get(r.table);
  const localAddresses = new Set<string | number>();
  const addressedLinks = new Set<string>();
  for (const a of state.addresses) {
    if (a.family !== family) continue;
    const parsed = parseAddressWords(a.local);
    if (parsed !== undefined) localAddresses.add(wordsKey(parsed.words));
    addressedLinks.add(a.ifname);
  }
  return {
    family,
    rules,
    filter: buildFilter(rules),
    tables,
    localAddresses,
    addressedLinks,
    requireDissect: rules.some(
      (r) => r.iif !== "lo" && (r.ipproto !== 0 || r.sportStart !== 0 || r.dportStart !== 0),
    ),
    customRules: ordered.some((r) => !isDefaultRule(r)),
    customLocalRoutes,
    skippedRoutes,
  };
}

/** Compile once, look up many times. */
export function compileRoutingState(state: NodeState): RoutingIndex {
  return {
    v4: compileFamily(state, 4),
    v6: compileFamily(state, 6),
    links: new Set(state.links.map((l) => l.ifname)),
    sysctls: state.sysctls,
  };
}
