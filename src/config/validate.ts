// From an already-parsed value (a YAML document, or a custom resource's spec) to a validated Config.
// Hand-written rather than a schema library: every check reports its own message naming the field,
// the value and what is allowed, every problem is collected (not just the first), and the checks
// across fields (overlaps, shared tables, mark bits) sit next to the field checks they depend on.

import {
  type Family,
  type Prefix,
  formatIp,
  formatPrefix,
  parseIp,
  parsePrefix,
  prefixesOverlap,
} from "../model/address.ts";
import {
  CONFIG_DEFAULTS,
  type Config,
  type FirewallChoice,
  type KubeProxyMode,
  type MarkSettings,
  type Method,
  type NetworkConfig,
  type Range,
  type Vlan,
} from "../model/config.ts";
import { KNOWN_MARK_OWNERS, formatHex, popcount } from "../model/marks.ts";
import { RESERVED_TABLES, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN } from "../model/state.ts";
import {
  FIREWALLS,
  GATEWAY_METHODS,
  KUBE_PROXY_MODES,
  MARKS_KEYS,
  MARK_MASK_MAX,
  MARK_OWNER_NAMES,
  METHODS,
  NETWORK_KEYS,
  RANGE_KEYS,
  REGISTERED_ROUTE_PROTOCOLS,
  ROUTE_PROTOCOL_MAX,
  ROUTE_PROTOCOL_MIN,
  RULE_PRIORITY_MAX,
  RULE_PRIORITY_MIN,
  TABLE_MAX,
  TABLE_MIN,
  TOP_LEVEL_KEYS,
  VLAN_ID_MAX,
  VLAN_ID_MIN,
  VLAN_KEYS,
} from "./fields.ts";
import { type ConfigIssue, type ConfigPath, describe, formatPath, quoteString } from "./issues.ts";
import { ipv4Word, strictIpv4Prefix } from "./ipv4-text.ts";
import { type SpanEntry, findSpanOverlaps, ipv4Last, prefixBounds } from "./overlaps.ts";
import { INTERFACE_RULE, NETWORK_NAME_RULE, interfaceNameProblem, networkNameProblem } from "./names.ts";

export type ConfigResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

/** An issue before positions are known; `atKey` points it at the key rather than the value. */
export interface PendingIssue extends ConfigIssue {
  readonly atKey?: boolean;
}

type Mapping = Readonly<Record<string, unknown>>;

/** Far above any real cluster; they bound the pairwise overlap checks on hostile input. */
const MAX_NETWORKS = 16384;
const MAX_POOLS = 65536;
const MAX_POD_CIDRS = 256;

const familyName = (family: Family): string => (family === 4 ? "IPv4" : "IPv6");
const list = (items: readonly (string | number)[]): string => items.join(", ");

function isMapping(value: unknown): value is Mapping {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A key's value; null (an empty YAML value, `gateway:`) counts as not given. */
function own(mapping: Mapping, key: string): unknown {
  return Object.hasOwn(mapping, key) ? (mapping[key] ?? undefined) : undefined;
}

/** Prefixes no load-balancer pool (or gateway) may touch: they are never unicast on a link. */
const SPECIAL_PREFIXES: readonly { readonly text: string; readonly what: string }[] = [
  { text: "0.0.0.0/8", what: '"this network" (0.0.0.0/8)' },
  { text: "127.0.0.0/8", what: "loopback (127.0.0.0/8)" },
  { text: "224.0.0.0/4", what: "multicast (224.0.0.0/4)" },
  { text: "255.255.255.255", what: "broadcast (255.255.255.255)" },
  { text: "::", what: "the unspecified address (::)" },
  { text: "::1", what: "loopback (::1)" },
  { text: "ff00::/8", what: "multicast (ff00::/8)" },
  { text: "::ffff:0.0.0.0/96", what: "IPv4-mapped IPv6 (::ffff:0:0/96; write the IPv4 address itself)" },
];

// Parsed once: every pool of every network is checked against them.
const PARSED_SPECIALS = SPECIAL_PREFIXES.map((s) => ({ prefix: parsePrefix(s.text), what: s.what }));

// The IPv4 ones as numeric ranges, in the same order, for the 32-bit fast path.
const IPV4_SPECIALS = PARSED_SPECIALS.flatMap((s) =>
  s.prefix === undefined || s.prefix.family !== 4
    ? []
    : [{ lo: Number(s.prefix.value), hi: ipv4Last(Number(s.prefix.value), s.prefix.len), what: s.what }],
);

/** specialOverlap for an IPv4 prefix given as numbers: prefixes overlap exactly when their ranges meet. */
function ipv4SpecialOverlap(word: number, len: number): string | undefined {
  const last = ipv4Last(word, len);
  // Indexed loops here and below: for-of allocates an iterator result per step until the code is
  // optimised, which in a one-shot run over thousands of networks it mostly is not.
  for (let i = 0; i < IPV4_SPECIALS.length; i++) {
    const special = IPV4_SPECIALS[i];
    if (special !== undefined && word <= special.hi && special.lo <= last) return special.what;
  }
  return undefined;
}

function specialOverlap(prefix: Prefix): string | undefined {
  for (const special of PARSED_SPECIALS) {
    if (special.prefix !== undefined && prefixesOverlap(special.prefix, prefix)) return special.what;
  }
  return undefined;
}

/** A pool (with its network's index) or a pod CIDR (without), and where it is written. */
interface PoolEntry extends SpanEntry {
  readonly text: string;
  readonly network?: number;
  /** The index in its list (addresses or podCIDRs): the path is only built for a message. */
  readonly position: number;
  /** Document order across all pools (pod CIDRs negative, first): the order of the overlap messages. */
  readonly order: number;
}

const poolText = (entry: PoolEntry): string => entry.text;

function entryPath(entry: PoolEntry): ConfigPath {
  return entry.network === undefined
    ? ["podCIDRs", entry.position]
    : ["networks", entry.network, "addresses", entry.position];
}

class Checker {
  readonly issues: PendingIssue[] = [];
  /** Pools accepted so far, over all networks: the next pool's order. */
  poolCount = 0;
  /** The last interface name found valid: networks often share one, so it is checked once. */
  lastInterface: string | undefined;

  report(path: ConfigPath, message: string, atKey = false): void {
    this.issues.push(atKey ? { path, message, atKey } : { path, message });
  }

  /** A mapping with only the allowed keys; undefined (and reported) when it is not a mapping. */
  mapping(value: unknown, path: ConfigPath, field: string, keys: readonly string[]): Mapping | undefined {
    if (!isMapping(value)) {
      const shape = keys.join(", ");
      this.report(path, `${field} must be a mapping with the keys ${shape}; got ${describe(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) {
        this.report([...path, key], `unknown key ${quoteString(key)}; allowed: ${list(keys)}`, true);
      }
    }
    return value;
  }

  choice<T extends string>(
    value: unknown,
    path: ConfigPath,
    field: string,
    choices: readonly T[],
  ): T | undefined {
    if (typeof value === "string" && (choices as readonly string[]).includes(value)) return value as T;
    this.report(path, `${field} must be one of ${list(choices)}; got ${describe(value)}`);
    return undefined;
  }

  integer(value: unknown, path: ConfigPath, field: string, min: number, max: number): number | undefined {
    if (typeof value !== "number" || !Number.isInteger(value)) {
      this.report(path, `${field} must be an integer from ${min} to ${max}; got ${describe(value)}`);
      return undefined;
    }
    if (value < min || value > max) {
      this.report(path, `${field} ${value} is out of range; allowed: ${min} to ${max}`);
      return undefined;
    }
    return value;
  }

  stringList(
    value: unknown,
    path: ConfigPath,
    field: string,
    what: string,
  ): (string | undefined)[] | undefined {
    if (!Array.isArray(value)) {
      this.report(path, `${field} must be a list of ${what}; got ${describe(value)}`);
      return undefined;
    }
    return value.map((item: unknown, i) => {
      if (typeof item === "string") return item;
      this.report([...path, i], `${field} entries must be ${what}; got ${describe(item)}`);
      return undefined;
    });
  }

  /** A pool or pod CIDR: strict about host bits, canonical on output. */
  prefix(text: string, path: ConfigPath, field: string): Prefix | undefined {
    const prefix = parsePrefix(text, { strict: true });
    if (prefix === undefined) {
      const loose = parsePrefix(text);
      if (loose !== undefined && loose.len === 0) {
        this.report(path, `${field} ${quoteString(text)} covers every address; give the subnet itself`);
      } else if (loose !== undefined) {
        const host = formatIp(loose.family, parseIp(text.slice(0, text.indexOf("/")))?.value ?? 0n);
        this.report(
          path,
          `${field} ${quoteString(text)} has host bits set; did you mean ${quoteString(formatPrefix(loose))}` +
            ` (the subnet) or ${quoteString(host)} (the single address)?`,
        );
      } else {
        this.report(
          path,
          `${field} ${quoteString(text)} is not an IP address or CIDR; ` +
            `allowed: an IPv4 or IPv6 subnet like 1.2.3.0/24 or 2001:db8::/64, or a single address`,
        );
      }
      return undefined;
    }
    if (prefix.len === 0) {
      this.report(path, `${field} ${quoteString(text)} covers every address; give the subnet itself`);
      return undefined;
    }
    return prefix;
  }
}

function validatePodCidrs(c: Checker, value: unknown): PoolEntry[] | undefined {
  if (value === undefined) return [];
  const texts = c.stringList(value, ["podCIDRs"], "podCIDRs", "CIDRs like 10.112.0.0/12");
  if (texts === undefined) return undefined;
  if (texts.length > MAX_POD_CIDRS) {
    c.report(["podCIDRs"], `podCIDRs has ${texts.length} entries; symroute handles at most ${MAX_POD_CIDRS}`);
    return undefined;
  }
  const out: PoolEntry[] = [];
  let ok = true;
  texts.forEach((text, i) => {
    if (text === undefined) return void (ok = false);
    const prefix = c.prefix(text, ["podCIDRs", i], "podCIDRs entry");
    if (prefix === undefined) return void (ok = false);
    // Only used when every entry is valid, so the list is `texts` and these orders run up to -1.
    const { lo, hi } = prefixBounds(prefix);
    out.push({
      family: prefix.family,
      lo,
      hi,
      text: formatPrefix(prefix),
      network: undefined,
      position: i,
      order: i - texts.length,
    });
  });
  return ok ? out : undefined;
}

interface NetworkDraft {
  readonly index: number;
  readonly name: string | undefined;
  /** The valid entries of addresses, for the checks across networks even when others are wrong. */
  readonly pools: readonly PoolEntry[];
  readonly poolsComplete: boolean;
  readonly interface: string | undefined;
  readonly gateways: Partial<Record<Family, string>> | undefined;
  readonly vlan: Vlan | "invalid" | undefined;
  readonly table: number | "invalid" | undefined;
  readonly method: Method | undefined;
}

function validateInterfaceName(
  c: Checker,
  value: unknown,
  path: ConfigPath,
  field: string,
): string | undefined {
  if (typeof value !== "string") {
    c.report(path, `${field} must be an interface name (a string); got ${describe(value)}`);
    return undefined;
  }
  const problem = interfaceNameProblem(value);
  if (problem !== undefined) {
    c.report(path, `${field} ${quoteString(value)} ${problem}; ${INTERFACE_RULE}`);
    return undefined;
  }
  return value;
}

const GATEWAY_SHAPE = "one IP address, or a list of at most one IPv4 and one IPv6 address";

/** networks[index].gateway, or its entry `position` when gateway is a list (position >= 0). */
function gatewayPath(index: number, position: number): ConfigPath {
  return position < 0 ? ["networks", index, "gateway"] : ["networks", index, "gateway", position];
}

function validateGateways(
  c: Checker,
  value: unknown,
  index: number,
): Partial<Record<Family, string>> | undefined {
  const gateways: Partial<Record<Family, string>> = {};
  if (!Array.isArray(value)) return addGateway(c, value, index, -1, gateways) ? gateways : undefined;
  let ok = true;
  for (let i = 0; i < value.length; i++) {
    if (!addGateway(c, value[i], index, i, gateways)) ok = false;
  }
  return ok ? gateways : undefined;
}

/** Check one gateway and add its canonical text to `gateways`; false (and reported) when it is wrong. */
function addGateway(
  c: Checker,
  text: unknown,
  index: number,
  position: number,
  gateways: Partial<Record<Family, string>>,
): boolean {
  if (typeof text !== "string") {
    c.report(gatewayPath(index, position), `gateway must be ${GATEWAY_SHAPE}; got ${describe(text)}`);
    return false;
  }
  let family: Family;
  let canonical: string;
  let special: string | undefined;
  const word = ipv4Word(text);
  if (word !== undefined) {
    // A dotted quad this strict is its own canonical text.
    family = 4;
    canonical = text;
    special = ipv4SpecialOverlap(word, 32);
  } else {
    const ip = parseIp(text);
    if (ip === undefined) {
      const withLength = text.includes("/") && parseIp(text.slice(0, text.indexOf("/")));
      c.report(
        gatewayPath(index, position),
        withLength
          ? `gateway ${quoteString(text)} must be an address without a prefix length`
          : `gateway ${quoteString(text)} is not an IP address; allowed: ${GATEWAY_SHAPE}`,
      );
      return false;
    }
    family = ip.family;
    special = specialOverlap({ family: ip.family, value: ip.value, len: ip.family === 4 ? 32 : 128 });
    canonical = special === undefined ? formatIp(ip.family, ip.value) : "";
  }
  if (special !== undefined) {
    c.report(
      gatewayPath(index, position),
      `gateway ${quoteString(text)} is ${special}; give the router's unicast address`,
    );
    return false;
  }
  const first = gateways[family];
  if (first !== undefined) {
    c.report(
      gatewayPath(index, position),
      `gateway ${quoteString(text)} is a second ${familyName(family)} gateway (the first is ` +
        `${quoteString(first)}); give at most one per family`,
    );
    return false;
  }
  gateways[family] = canonical;
  return true;
}

function validateVlan(c: Checker, value: unknown, path: ConfigPath): Vlan | undefined {
  const vlan = c.mapping(value, path, "vlan", VLAN_KEYS);
  if (vlan === undefined) return undefined;
  let ok = true;
  const parentValue = own(vlan, "parent");
  const idValue = own(vlan, "id");
  if (parentValue === undefined) {
    c.report([...path, "parent"], "vlan.parent is required: the interface the VLAN is created on, like eth0");
    ok = false;
  }
  if (idValue === undefined) {
    c.report([...path, "id"], `vlan.id is required: the 802.1Q id, ${VLAN_ID_MIN} to ${VLAN_ID_MAX}`);
    ok = false;
  }
  const parent =
    parentValue === undefined
      ? undefined
      : validateInterfaceName(c, parentValue, [...path, "parent"], "vlan.parent");
  const id =
    idValue === undefined
      ? undefined
      : c.integer(idValue, [...path, "id"], "vlan.id", VLAN_ID_MIN, VLAN_ID_MAX);
  return ok && parent !== undefined && id !== undefined ? { parent, id } : undefined;
}

function validateTable(c: Checker, value: unknown, path: ConfigPath): number | undefined {
  const table = value === 0 ? 0 : c.integer(value, path, "table", TABLE_MIN, TABLE_MAX);
  if (table === undefined) return undefined;
  if (RESERVED_TABLES.includes(table)) {
    c.report(
      path,
      `table ${table} is reserved (0 unspec, ${TABLE_DEFAULT} default, ${TABLE_MAIN} main, ${TABLE_LOCAL} local); ` +
        `allowed: ${TABLE_MIN} to ${TABLE_MAX} except those`,
    );
    return undefined;
  }
  return table;
}

/** networks[index].key: built only for a message, not for every network. */
function networkPath(index: number, key: string): ConfigPath {
  return ["networks", index, key];
}

/** A key every network needs; reported when missing. */
function requiredField(c: Checker, net: Mapping, index: number, key: string, what: string): unknown {
  const v = own(net, key);
  if (v === undefined) c.report(networkPath(index, key), `${key} is required: ${what}`);
  return v;
}

const ADDRESSES_WHAT = "CIDRs or single addresses, like 1.2.3.0/24";

/** One entry of a network's addresses; undefined (and reported) when it is wrong. */
function poolEntry(c: Checker, text: string, index: number, position: number): PoolEntry | undefined {
  let family: Family;
  let lo: number | bigint;
  let hi: number | bigint;
  let canonical = "";
  let special: string | undefined;
  const fast = strictIpv4Prefix(text);
  if (fast !== undefined) {
    family = 4;
    lo = fast.word;
    hi = ipv4Last(fast.word, fast.len);
    canonical = fast.text;
    special = ipv4SpecialOverlap(fast.word, fast.len);
  } else {
    // IPv6, or anything wrong: the general parser, which also words the messages.
    const prefix = c.prefix(text, ["networks", index, "addresses", position], "address");
    if (prefix === undefined) return undefined;
    family = prefix.family;
    ({ lo, hi } = prefixBounds(prefix));
    special = specialOverlap(prefix);
    if (special === undefined) canonical = formatPrefix(prefix);
  }
  if (special !== undefined) {
    c.report(
      ["networks", index, "addresses", position],
      `address ${quoteString(text)} overlaps ${special}; a pool must hold unicast addresses`,
    );
    return undefined;
  }
  return { family, lo, hi, text: canonical, network: index, position, order: c.poolCount++ };
}

function reportGatewayWithoutPool(c: Checker, index: number, family: Family, gateway: string): void {
  c.report(
    networkPath(index, "gateway"),
    `gateway ${quoteString(gateway)} is ${familyName(family)} but addresses has no ${familyName(family)} ` +
      `entry; a gateway routes the replies of the pool of its own family`,
  );
}

function reportMissingGateway(c: Checker, index: number, method: Method, family: Family): void {
  c.report(
    networkPath(index, "gateway"),
    `method ${quoteString(method)} needs an ${familyName(family)} gateway for the ` +
      `${familyName(family)} addresses of this network; add one to gateway`,
  );
}

function validateNetwork(c: Checker, value: unknown, index: number): NetworkDraft {
  if (!isMapping(value)) {
    c.mapping(value, ["networks", index], `networks[${index}]`, NETWORK_KEYS);
    return {
      index,
      name: undefined,
      pools: [],
      poolsComplete: false,
      interface: undefined,
      gateways: undefined,
      vlan: undefined,
      table: undefined,
      method: undefined,
    };
  }
  const net = value;
  for (const key in net) {
    if (Object.hasOwn(net, key) && !(NETWORK_KEYS as readonly string[]).includes(key)) {
      c.report(
        ["networks", index, key],
        `unknown key ${quoteString(key)}; allowed: ${list(NETWORK_KEYS)}`,
        true,
      );
    }
  }

  let name: string | undefined;
  const nameValue = requiredField(c, net, index, "name", "a short name for the network, like public");
  if (nameValue !== undefined) {
    if (typeof nameValue !== "string") {
      c.report(
        networkPath(index, "name"),
        `name must be a string; got ${describe(nameValue)}; ${NETWORK_NAME_RULE}`,
      );
    } else {
      const problem = networkNameProblem(nameValue);
      if (problem === undefined) name = nameValue;
      else {
        c.report(
          networkPath(index, "name"),
          `name ${quoteString(nameValue)} ${problem}; ${NETWORK_NAME_RULE}`,
        );
      }
    }
  }

  let pools: PoolEntry[] = [];
  let poolsComplete = false;
  const addressesValue = requiredField(
    c,
    net,
    index,
    "addresses",
    "the MetalLB pool(s) of this network, like [1.2.3.0/24]",
  );
  if (addressesValue !== undefined) {
    if (!Array.isArray(addressesValue)) {
      c.report(
        networkPath(index, "addresses"),
        `addresses must be a list of ${ADDRESSES_WHAT}; got ${describe(addressesValue)}`,
      );
    } else {
      // Entries that are not strings first, then the addresses themselves: the order of the messages.
      let ok = true;
      for (let i = 0; i < addressesValue.length; i++) {
        const item: unknown = addressesValue[i];
        if (typeof item === "string") continue;
        c.report(
          ["networks", index, "addresses", i],
          `addresses entries must be ${ADDRESSES_WHAT}; got ${describe(item)}`,
        );
        ok = false;
      }
      if (addressesValue.length === 0) {
        c.report(
          networkPath(index, "addresses"),
          `addresses must list at least one CIDR or address; got an empty list`,
        );
      } else {
        const first: unknown = addressesValue[0];
        if (addressesValue.length === 1 && typeof first === "string") {
          // The usual single pool: an array of its exact size, not one grown by push.
          const entry = poolEntry(c, first, index, 0);
          if (entry === undefined) ok = false;
          else pools = [entry];
        } else {
          for (let i = 0; i < addressesValue.length; i++) {
            const text: unknown = addressesValue[i];
            if (typeof text !== "string") continue;
            const entry = poolEntry(c, text, index, i);
            if (entry === undefined) ok = false;
            else pools.push(entry);
          }
        }
        poolsComplete = ok;
      }
    }
  }

  const interfaceValue = requiredField(
    c,
    net,
    index,
    "interface",
    "the interface requests for these addresses arrive on",
  );
  let ifname: string | undefined;
  if (
    typeof interfaceValue === "string" &&
    (interfaceValue === c.lastInterface || interfaceNameProblem(interfaceValue) === undefined)
  ) {
    ifname = c.lastInterface = interfaceValue;
  } else if (interfaceValue !== undefined) {
    ifname = validateInterfaceName(c, interfaceValue, networkPath(index, "interface"), "interface");
  }

  const gatewayValue = own(net, "gateway");
  const gateways = gatewayValue === undefined ? {} : validateGateways(c, gatewayValue, index);

  const vlanValue = own(net, "vlan");
  let vlan: Vlan | "invalid" | undefined;
  if (vlanValue !== undefined) vlan = validateVlan(c, vlanValue, networkPath(index, "vlan")) ?? "invalid";
  if (vlan !== undefined && vlan !== "invalid" && ifname !== undefined && vlan.parent === ifname) {
    c.report(
      networkPath(index, "vlan"),
      `vlan.parent ${quoteString(vlan.parent)} is the interface itself; the parent is the ` +
        `link the VLAN interface ${quoteString(ifname)} is created on`,
    );
    vlan = "invalid";
  }

  const tableValue = own(net, "table");
  const table =
    tableValue === undefined
      ? undefined
      : (validateTable(c, tableValue, networkPath(index, "table")) ?? "invalid");

  const methodValue = own(net, "method");
  const method =
    methodValue === undefined
      ? CONFIG_DEFAULTS.method
      : typeof methodValue === "string" && (METHODS as readonly string[]).includes(methodValue)
        ? (methodValue as Method)
        : c.choice(methodValue, networkPath(index, "method"), "method", METHODS);

  // A gateway serves the pool of its own family; the method decides whether one is needed.
  if (gateways !== undefined && poolsComplete) {
    // The families of the pools, in the order they first appear.
    let firstFamily: Family | undefined;
    let secondFamily: Family | undefined;
    for (let i = 0; i < pools.length; i++) {
      const family = pools[i]?.family;
      if (family === undefined) continue;
      if (firstFamily === undefined) firstFamily = family;
      else if (family !== firstFamily) {
        secondFamily = family;
        break;
      }
    }
    if (gateways[4] !== undefined && firstFamily !== 4 && secondFamily !== 4) {
      reportGatewayWithoutPool(c, index, 4, gateways[4]);
    }
    if (gateways[6] !== undefined && firstFamily !== 6 && secondFamily !== 6) {
      reportGatewayWithoutPool(c, index, 6, gateways[6]);
    }
    if (method !== undefined && (GATEWAY_METHODS as readonly string[]).includes(method)) {
      if (gateways[4] === undefined && gateways[6] === undefined) {
        c.report(
          networkPath(index, "method"),
          `method ${quoteString(method)} needs a gateway to send replies to; add gateway, or use method ` +
            `auto, route or none`,
        );
      } else {
        if (firstFamily !== undefined && gateways[firstFamily] === undefined) {
          reportMissingGateway(c, index, method, firstFamily);
        }
        if (secondFamily !== undefined && gateways[secondFamily] === undefined) {
          reportMissingGateway(c, index, method, secondFamily);
        }
      }
    }
  }

  return {
    index,
    name,
    pools,
    poolsComplete,
    interface: ifname,
    gateways,
    vlan,
    table,
    method,
  };
}

function networkLabel(d: NetworkDraft): string {
  return d.name === undefined ? `networks[${d.index}]` : `networks[${d.index}] (${quoteString(d.name)})`;
}

const vlanText = (v: Vlan): string => `{parent: ${v.parent}, id: ${v.id}}`;

/** Whether two networks describe their interface's VLAN the same way (both without one counts). */
function sameVlan(a: Vlan | undefined, b: Vlan | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.parent === b.parent && a.id === b.id;
}

function checkAcrossNetworks(
  c: Checker,
  drafts: readonly NetworkDraft[],
  podCidrs: readonly PoolEntry[] | undefined,
) {
  const nameOwner = new Map<string, number>();
  const tableOwner = new Map<number, NetworkDraft>();
  const interfaceOwner = new Map<string, NetworkDraft>();
  const vlanOwner = new Map<string, NetworkDraft>();
  // Pod CIDRs, then the pools in document order: their `order` fields count the same way.
  const entries: PoolEntry[] = podCidrs === undefined ? [] : podCidrs.slice();

  for (let i = 0; i < drafts.length; i++) {
    const d = drafts[i];
    if (d === undefined) continue;
    if (d.name !== undefined) {
      const first = nameOwner.get(d.name);
      if (first === undefined) nameOwner.set(d.name, d.index);
      else
        c.report(
          networkPath(d.index, "name"),
          `name ${quoteString(d.name)} is already used by networks[${first}]; names must be unique`,
        );
    }
    if (typeof d.table === "number") {
      const first = tableOwner.get(d.table);
      if (first === undefined) tableOwner.set(d.table, d);
      else
        c.report(
          networkPath(d.index, "table"),
          `table ${d.table} is also the table of ${networkLabel(first)}; each network needs its own`,
        );
    }
    if (d.interface !== undefined && d.vlan !== "invalid") {
      const first = interfaceOwner.get(d.interface);
      if (first === undefined) interfaceOwner.set(d.interface, d);
      else if (first.vlan !== "invalid" && !sameVlan(first.vlan, d.vlan)) {
        const a = first.vlan === undefined ? "no vlan" : `vlan ${vlanText(first.vlan)}`;
        const b = d.vlan === undefined ? "no vlan" : `vlan ${vlanText(d.vlan)}`;
        c.report(
          networkPath(d.index, d.vlan === undefined ? "interface" : "vlan"),
          `interface ${quoteString(d.interface)} has ${b} here but ${a} in ${networkLabel(first)}; ` +
            `networks sharing an interface must describe it the same way`,
        );
      }
    }
    if (d.vlan !== undefined && d.vlan !== "invalid" && d.interface !== undefined) {
      const key = `${d.vlan.parent}|${d.vlan.id}`;
      const first = vlanOwner.get(key);
      if (first === undefined) vlanOwner.set(key, d);
      else if (first.interface !== d.interface) {
        c.report(
          networkPath(d.index, "vlan"),
          `vlan ${vlanText(d.vlan)} is also ${networkLabel(first)}, named ${quoteString(first.interface ?? "")}; ` +
            `the kernel allows one VLAN per id on a parent, so use the same interface name`,
        );
      }
    }
    for (let k = 0; k < d.pools.length; k++) {
      const pool = d.pools[k];
      if (pool !== undefined) entries.push(pool);
    }
  }

  const overlaps = findSpanOverlaps(entries);
  if (overlaps.length === 0) return;
  overlaps.sort((a, b) => a.entry.order - b.entry.order || a.other.order - b.other.order);
  for (const { entry, other, kind } of overlaps) {
    const otherDraft = other.network === undefined ? undefined : drafts[other.network];
    const otherPath = formatPath(entryPath(other));
    const what =
      kind === "pod"
        ? `pod CIDR ${quoteString(other.text)} (${otherPath}); load-balancer addresses must not be pod addresses`
        : kind === "same-network"
          ? `${quoteString(other.text)} (${otherPath}) of the same network; list each address once`
          : `${quoteString(other.text)} of ${otherDraft?.name === undefined ? "another network" : `network ${quoteString(otherDraft.name)}`} ` +
            `(${otherPath}); the pools of different networks must not overlap`;
    c.report(entryPath(entry), `address ${quoteString(entry.text)} overlaps ${what}`);
  }
}

function validateRange(
  c: Checker,
  value: unknown,
  field: string,
  min: number,
  max: number,
): Range | undefined {
  const range = c.mapping(value, [field], field, RANGE_KEYS);
  if (range === undefined) return undefined;
  const ends: (number | undefined)[] = RANGE_KEYS.map((key) => {
    const v = own(range, key);
    if (v === undefined) {
      c.report(
        [field, key],
        `${field}.${key} is required when ${field} is given: an integer from ${min} to ${max}`,
      );
      return undefined;
    }
    return c.integer(v, [field, key], `${field}.${key}`, min, max);
  });
  const [from, to] = ends;
  if (from === undefined || to === undefined) return undefined;
  if (from > to) {
    c.report([field], `${field} is empty: from ${from} is greater than to ${to}`);
    return undefined;
  }
  return { from, to };
}

function validateTables(c: Checker, value: unknown): Range | undefined {
  const range = validateRange(c, value, "tables", TABLE_MIN, TABLE_MAX);
  if (range === undefined) return undefined;
  const reserved = RESERVED_TABLES.filter((t) => t >= range.from && t <= range.to);
  if (reserved.length > 0) {
    c.report(
      ["tables"],
      `tables ${range.from}-${range.to} includes reserved table ${list(reserved)} ` +
        `(${TABLE_DEFAULT} default, ${TABLE_MAIN} main, ${TABLE_LOCAL} local); choose a range that avoids ` +
        `${TABLE_DEFAULT}-${TABLE_LOCAL}, such as 20000-29999`,
    );
    return undefined;
  }
  return range;
}

function parseMask(c: Checker, value: unknown): number | undefined {
  const path = ["marks", "mask"];
  const allowed = `allowed: a non-zero 32-bit integer, or hex text like "0xff"`;
  let mask: number | undefined;
  if (typeof value === "number" && Number.isInteger(value)) mask = value;
  else if (typeof value === "string" && /^0[xX][0-9a-fA-F]{1,8}$/.test(value))
    mask = parseInt(value.slice(2), 16);
  if (mask === undefined) {
    c.report(path, `marks.mask must be an integer or hex text; got ${describe(value)}; ${allowed}`);
    return undefined;
  }
  if (mask <= 0 || mask > MARK_MASK_MAX) {
    c.report(path, `marks.mask ${describe(value)} is out of range; ${allowed}`);
    return undefined;
  }
  return mask;
}

function validateMarks(c: Checker, value: unknown): MarkSettings | undefined {
  if (value === undefined) return CONFIG_DEFAULTS.marks;
  const marks = c.mapping(value, ["marks"], "marks", MARKS_KEYS);
  if (marks === undefined) return undefined;
  const maskValue = own(marks, "mask");
  const mask = maskValue === undefined ? CONFIG_DEFAULTS.marks.mask : parseMask(c, maskValue);
  const avoidValue = own(marks, "avoid");
  let avoid: string[] | undefined = [...CONFIG_DEFAULTS.marks.avoid];
  if (avoidValue !== undefined) {
    const names = c.stringList(avoidValue, ["marks", "avoid"], "marks.avoid", "component names");
    avoid = names === undefined ? undefined : [];
    names?.forEach((name, i) => {
      if (name === undefined || avoid === undefined) return void (avoid = undefined);
      if (!MARK_OWNER_NAMES.includes(name)) {
        c.report(
          ["marks", "avoid", i],
          `marks.avoid entry ${quoteString(name)} is not a known component; allowed: ${list(MARK_OWNER_NAMES)}`,
        );
        avoid = undefined;
        return;
      }
      if (!avoid.includes(name)) avoid.push(name);
    });
  }
  if (mask === undefined || avoid === undefined) return undefined;
  let ok = true;
  for (const name of avoid) {
    const bits = KNOWN_MARK_OWNERS[name] ?? 0;
    const shared = (mask & bits) >>> 0;
    if (shared !== 0) {
      c.report(
        ["marks", "mask"],
        `marks.mask ${formatHex(mask)} shares bits ${formatHex(shared)} with ${name} (which uses ` +
          `${formatHex(bits)}); choose a mask clear of them, or remove ${quoteString(name)} from marks.avoid`,
      );
      ok = false;
    }
  }
  return ok ? { mask, avoid } : undefined;
}

function validateStateDir(c: Checker, value: unknown): string | undefined {
  const allowed =
    "allowed: an absolute path like /var/lib/symroute, of A-Z a-z 0-9 / . _ - + @ and without '..'";
  if (typeof value !== "string") {
    c.report(["stateDir"], `stateDir must be a path (a string); got ${describe(value)}; ${allowed}`);
    return undefined;
  }
  const bad = Array.from(value).find((ch) => !/^[A-Za-z0-9/._+@-]$/.test(ch));
  const problem = !value.startsWith("/")
    ? "is not absolute"
    : bad !== undefined
      ? `contains ${quoteString(bad)}`
      : value.split("/").includes("..")
        ? "contains '..'"
        : value.length > 1024
          ? "is longer than 1024 characters"
          : undefined;
  if (problem === undefined) return value;
  c.report(["stateDir"], `stateDir ${quoteString(value)} ${problem}; ${allowed}`);
  return undefined;
}

/** Networks that will need a table from the `tables` range, and a mark value within the mask. */
function checkCapacity(
  c: Checker,
  drafts: readonly NetworkDraft[],
  tables: Range | undefined,
  marks: MarkSettings | undefined,
) {
  if (tables !== undefined) {
    let needTable = 0;
    for (let i = 0; i < drafts.length; i++) {
      const d = drafts[i];
      if (d !== undefined && d.table === undefined && d.method !== "none" && d.method !== "route") {
        needTable++;
      }
    }
    const size = tables.to - tables.from + 1;
    if (needTable > size) {
      c.report(
        ["tables"],
        `tables ${tables.from}-${tables.to} holds ${size} table(s) but ${needTable} networks need one ` +
          `(those without table whose method is auto, source or connmark); widen the range`,
      );
    }
  }
  if (marks !== undefined) {
    let needMark = 0;
    for (let i = 0; i < drafts.length; i++) {
      const d = drafts[i];
      if (d === undefined) continue;
      const hasGateway =
        d.gateways !== undefined && (d.gateways[4] !== undefined || d.gateways[6] !== undefined);
      if (d.method === "connmark" || (d.method === "auto" && hasGateway)) needMark++;
    }
    const room = 2 ** popcount(marks.mask) - 1;
    if (needMark > room) {
      c.report(
        ["marks", "mask"],
        `marks.mask ${formatHex(marks.mask)} has room for ${room} network(s) with a gateway but ${needMark} ` +
          `may need a mark (method connmark, or auto with a gateway); give the mask more bits`,
      );
    }
  }
}

/** Every entry of networks, as drafts appended to `drafts`. */
function validateNetworks(c: Checker, list: readonly unknown[], drafts: NetworkDraft[]): void {
  for (let i = 0; i < list.length; i++) drafts.push(validateNetwork(c, list[i], i));
}

/** The validated networks, or undefined when a draft is incomplete (not after a run without issues). */
function networkConfigs(drafts: readonly NetworkDraft[]): NetworkConfig[] | undefined {
  const networks: NetworkConfig[] = [];
  for (let i = 0; i < drafts.length; i++) {
    const d = drafts[i];
    if (d === undefined) continue;
    if (d.name === undefined || !d.poolsComplete || d.interface === undefined) return undefined;
    if (d.gateways === undefined || d.method === undefined || d.vlan === "invalid" || d.table === "invalid") {
      return undefined;
    }
    const addresses = d.pools.map(poolText);
    const { name, interface: ifname, gateways, vlan, table, method } = d;
    // The key order of NetworkConfig; vlan and table only when given.
    networks.push(
      vlan === undefined && table === undefined
        ? { name, addresses, interface: ifname, gateways, method }
        : {
            name,
            addresses,
            interface: ifname,
            gateways,
            ...(vlan === undefined ? {} : { vlan }),
            ...(table === undefined ? {} : { table }),
            method,
          },
    );
  }
  return networks;
}

/** Validate without positions; parseConfigText adds them. */
export function validatePending(value: unknown): { config?: Config; issues: PendingIssue[] } {
  const c = new Checker();
  const root = c.mapping(value, [], "the configuration", TOP_LEVEL_KEYS);
  if (root === undefined) return { issues: c.issues };
  const get = (key: string): unknown => own(root, key);

  const podCidrs = validatePodCidrs(c, get("podCIDRs"));

  const networksValue = get("networks");
  const drafts: NetworkDraft[] = [];
  if (networksValue === undefined) {
    c.report(
      ["networks"],
      "networks is required: a list of networks, each {name, addresses, interface} (it may be empty)",
    );
  } else if (!Array.isArray(networksValue)) {
    c.report(
      ["networks"],
      `networks must be a list of networks, each {name, addresses, interface}; got ${describe(networksValue)}`,
    );
  } else if (networksValue.length > MAX_NETWORKS) {
    c.report(
      ["networks"],
      `networks has ${networksValue.length} entries; symroute handles at most ${MAX_NETWORKS}`,
    );
  } else {
    validateNetworks(c, networksValue, drafts);
    // Every accepted pool was counted as it was added to its network.
    const pools = c.poolCount;
    if (pools > MAX_POOLS) {
      c.report(
        ["networks"],
        `networks list ${pools} addresses in all; symroute handles at most ${MAX_POOLS}`,
      );
    } else {
      checkAcrossNetworks(c, drafts, podCidrs);
    }
  }

  const firewallValue = get("firewall");
  const firewall: FirewallChoice | undefined =
    firewallValue === undefined
      ? CONFIG_DEFAULTS.firewall
      : c.choice(firewallValue, ["firewall"], "firewall", FIREWALLS);
  const kpValue = get("kubeProxyMode");
  const kubeProxyMode: KubeProxyMode | undefined =
    kpValue === undefined
      ? CONFIG_DEFAULTS.kubeProxyMode
      : c.choice(kpValue, ["kubeProxyMode"], "kubeProxyMode", KUBE_PROXY_MODES);
  const rpValue = get("rulePriorities");
  let rulePriorities =
    rpValue === undefined
      ? CONFIG_DEFAULTS.rulePriorities
      : validateRange(c, rpValue, "rulePriorities", RULE_PRIORITY_MIN, RULE_PRIORITY_MAX);
  if (rulePriorities !== undefined && rulePriorities.from === rulePriorities.to) {
    // The pod exemptions of method source must sit before the network rules, at a priority of their own.
    c.report(
      ["rulePriorities"],
      `rulePriorities ${rulePriorities.from}-${rulePriorities.to} holds one priority; symroute needs at least 2 ` +
        `(exemption rules go before the network rules)`,
    );
    rulePriorities = undefined;
  }
  const tablesValue = get("tables");
  const tables = tablesValue === undefined ? CONFIG_DEFAULTS.tables : validateTables(c, tablesValue);
  const marks = validateMarks(c, get("marks"));
  const protoValue = get("routeProtocol");
  const routeProtocol =
    protoValue === undefined
      ? CONFIG_DEFAULTS.routeProtocol
      : c.integer(protoValue, ["routeProtocol"], "routeProtocol", ROUTE_PROTOCOL_MIN, ROUTE_PROTOCOL_MAX);
  if (routeProtocol !== undefined) {
    const owner = REGISTERED_ROUTE_PROTOCOLS[routeProtocol];
    if (owner !== undefined) {
      c.report(
        ["routeProtocol"],
        `routeProtocol ${routeProtocol} is registered to ${owner}; symroute treats routes with its protocol ` +
          `as its own and removes them, so pick an unregistered number such as ${CONFIG_DEFAULTS.routeProtocol}`,
      );
    }
  }
  const stateDirValue = get("stateDir");
  const stateDir = stateDirValue === undefined ? undefined : validateStateDir(c, stateDirValue);

  checkCapacity(c, drafts, tables, marks);
  if (kubeProxyMode === "iptables" || kubeProxyMode === "nftables") {
    for (let i = 0; i < drafts.length; i++) {
      const d = drafts[i];
      if (d === undefined || d.method !== "source") continue;
      // KERNEL-FACTS 2: the reply is routed before the DNAT is undone, with the backend's source.
      c.report(
        ["networks", d.index, "method"],
        `method "source" does not work with kubeProxyMode ${kubeProxyMode}: kube-proxy DNATs the LB address, ` +
          `so replies are routed with the backend's address and never match "from POOL"; use method ` +
          `connmark (or auto)`,
      );
    }
  }

  if (c.issues.length > 0) return { issues: c.issues };
  // No issues means every draft is complete; the checks only narrow the types.
  const networks = networkConfigs(drafts);
  if (networks === undefined) return { issues: c.issues };
  if (
    podCidrs === undefined ||
    firewall === undefined ||
    kubeProxyMode === undefined ||
    rulePriorities === undefined ||
    tables === undefined ||
    marks === undefined ||
    routeProtocol === undefined
  ) {
    return { issues: c.issues };
  }
  const config: Config = {
    podCIDRs: podCidrs.map((p) => p.text),
    networks,
    firewall,
    kubeProxyMode,
    rulePriorities: { from: rulePriorities.from, to: rulePriorities.to },
    tables: { from: tables.from, to: tables.to },
    marks: { mask: marks.mask, avoid: [...marks.avoid] },
    routeProtocol,
    ...(stateDir === undefined ? {} : { stateDir }),
  };
  return { config, issues: [] };
}

const stripPending = (issue: PendingIssue): ConfigIssue => ({ path: issue.path, message: issue.message });

export function validateConfigObject(value: unknown): ConfigResult {
  const { config, issues } = validatePending(value);
  if (config !== undefined) return { ok: true, config };
  if (issues.length === 0) {
    // Unreachable by construction; kept so a bug shows up as an issue, not as a crash.
    return {
      ok: false,
      issues: [{ path: ["networks"], message: "the configuration could not be validated" }],
    };
  }
  return { ok: false, issues: issues.map(stripPending) };
}
