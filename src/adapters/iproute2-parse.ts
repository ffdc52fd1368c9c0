// Parsers for `ip -j -N [-d]` output into the model. Kept apart from the process plumbing so that
// they can be tested on recorded dumps.

import { canonicalIp, canonicalPrefix, type Family } from "../model/address.ts";
import type {
  InterfaceAddress,
  Link,
  Neighbour,
  PortRange,
  Route,
  RouteType,
  Rule,
  RuleAction,
} from "../model/state.ts";

type Json = Record<string, unknown>;

const ROUTE_TYPES: Readonly<Record<string, RouteType>> = {
  "1": "unicast",
  "2": "local",
  "3": "broadcast",
  "4": "anycast",
  "5": "multicast",
  "6": "blackhole",
  "7": "unreachable",
  "8": "prohibit",
  "9": "throw",
  "10": "nat",
};

const RULE_ACTIONS: Readonly<Record<string, RuleAction>> = {
  "6": "blackhole",
  "7": "unreachable",
  "8": "prohibit",
  blackhole: "blackhole",
  unreachable: "unreachable",
  prohibit: "prohibit",
};

const SCOPES: Readonly<Record<string, number>> = {
  global: 0,
  universe: 0,
  site: 200,
  link: 253,
  host: 254,
  nowhere: 255,
};

function num(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "string" && value !== "") {
    // Character codes, not startsWith("0x"): this runs for most fields of every object of a dump.
    const n = value.charCodeAt(1) === 120 && value.charCodeAt(0) === 48 ? parseInt(value, 16) : Number(value);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function canonicalAddress(text: string | undefined): string | undefined {
  return text === undefined ? undefined : (canonicalIp(text) ?? text);
}

export function parseLinks(json: readonly Json[]): Link[] {
  return json.map((l) => {
    const flags = Array.isArray(l["flags"]) ? (l["flags"] as unknown[]) : [];
    const linkinfo = l["linkinfo"] as Json | undefined;
    const infoData = linkinfo?.["info_data"] as Json | undefined;
    const kind = str(linkinfo?.["info_kind"]);
    const master = str(l["master"]);
    return {
      ifname: String(l["ifname"]),
      ifindex: num(l["ifindex"]) ?? 0,
      up: flags.includes("UP"),
      operstate: str(l["operstate"]),
      kind,
      link: str(l["link"]),
      vlanId: kind === "vlan" ? num(infoData?.["id"]) : undefined,
      ...(master === undefined ? {} : { master }),
    };
  });
}

/** `ip -j neigh show` of one family; entries without an interface or address are skipped. */
export function parseNeighbours(family: Family, json: readonly Json[]): Neighbour[] {
  const out: Neighbour[] = [];
  for (const n of json) {
    const dst = str(n["dst"]);
    const ifname = str(n["dev"]);
    if (dst === undefined || ifname === undefined) continue;
    const lladdr = str(n["lladdr"]);
    const state = Array.isArray(n["state"]) ? (n["state"] as unknown[]).map(String) : [];
    out.push({
      ifname,
      family,
      dst: canonicalAddress(dst) ?? dst,
      ...(lladdr === undefined ? {} : { lladdr }),
      state,
    });
  }
  return out;
}

export function parseAddresses(json: readonly Json[]): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const l of json) {
    const infos = Array.isArray(l["addr_info"]) ? (l["addr_info"] as Json[]) : [];
    for (const a of infos) {
      const family: Family | undefined = a["family"] === "inet" ? 4 : a["family"] === "inet6" ? 6 : undefined;
      const local = str(a["local"]);
      if (family === undefined || local === undefined) continue;
      out.push({
        ifname: String(l["ifname"]),
        family,
        local: canonicalAddress(local) ?? local,
        prefixlen: num(a["prefixlen"]) ?? (family === 4 ? 32 : 128),
        scope: str(a["scope"]),
      });
    }
  }
  return out;
}

// The route and rule parsers run on every read of a node, twice per apply, over thousands of
// objects, in a process too short-lived for the JIT to warm up: they build each object once, in the
// model's field order, with only its defined fields (states compare and print cleanly), and look the
// JSON up by constant keys.

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function parseRoutes(family: Family, json: readonly Json[]): Route[] {
  const out: Route[] = new Array(json.length);
  for (let i = 0; i < json.length; i++) {
    const r = json[i] as Json;
    const dstText = r["dst"];
    const route: Mutable<Route> = {
      family,
      table: num(r["table"]) ?? 254,
      type: ROUTE_TYPES[String(r["type"] ?? "1")] ?? "unicast",
      dst:
        typeof dstText !== "string" || dstText === "default"
          ? "default"
          : (canonicalPrefix(dstText, family) ?? dstText),
    };
    // typeof inline rather than str(): a call less per field, thousands of times, interpreted.
    const gateway = r["gateway"];
    if (typeof gateway === "string") route.gateway = canonicalIp(gateway) ?? gateway;
    const dev = r["dev"];
    if (typeof dev === "string") route.dev = dev;
    const metric = num(r["metric"]);
    if (metric !== undefined) route.metric = metric;
    const protocol = num(r["protocol"]);
    if (protocol !== undefined) route.protocol = protocol;
    const scopeRaw = r["scope"];
    const scope = typeof scopeRaw === "string" && scopeRaw in SCOPES ? SCOPES[scopeRaw] : num(scopeRaw);
    if (scope !== undefined) route.scope = scope;
    const prefsrc = r["prefsrc"];
    if (typeof prefsrc === "string") route.prefsrc = canonicalIp(prefsrc) ?? prefsrc;
    const from = r["from"];
    if (typeof from === "string") route.src = canonicalPrefix(from, family) ?? from;
    const tos = num(r["tos"]);
    if (tos) route.tos = tos;
    const flags = r["flags"];
    if (Array.isArray(flags) && flags.includes("onlink")) route.onlink = true;
    out[i] = route;
  }
  return out;
}

function portRange(single: unknown, start: unknown, end: unknown): PortRange | undefined {
  const port = num(single);
  if (port !== undefined) return { start: port, end: port };
  const first = num(start);
  const last = num(end);
  return first === undefined || last === undefined ? undefined : { start: first, end: last };
}

function selector(family: Family, addrValue: unknown, lenValue: unknown): string | undefined {
  const addr = str(addrValue);
  if (addr === undefined || addr === "all") return undefined;
  const len = num(lenValue);
  return canonicalPrefix(len === undefined ? addr : `${addr}/${len}`, family);
}

const IPPROTO_NAMES: Readonly<Record<string, number>> = {
  tcp: 6,
  udp: 17,
  icmp: 1,
  "ipv6-icmp": 58,
  sctp: 132,
};

export function parseRules(family: Family, json: readonly Json[]): Rule[] {
  const out: Rule[] = new Array(json.length);
  for (let i = 0; i < json.length; i++) {
    const r = json[i] as Json;
    let action: RuleAction = "lookup";
    if ("goto" in r) action = "goto";
    else if ("nop" in r) action = "nop";
    else if (r["action"] !== undefined) action = RULE_ACTIONS[String(r["action"])] ?? "unreachable";
    const rule: Mutable<Rule> = { family, priority: num(r["priority"]) ?? 0 } as Mutable<Rule>;
    if ("not" in r) rule.not = true;
    const from = selector(family, r["src"], r["srclen"]);
    if (from !== undefined) rule.from = from;
    const to = selector(family, r["dst"], r["dstlen"]);
    if (to !== undefined) rule.to = to;
    const iif = r["iif"];
    if (typeof iif === "string") rule.iif = iif;
    const oif = r["oif"];
    if (typeof oif === "string") rule.oif = oif;
    const fwmark = num(r["fwmark"]);
    if (fwmark !== undefined) {
      rule.fwmark = fwmark;
      const fwmask = num(r["fwmask"]);
      if (fwmask !== undefined) rule.fwmask = fwmask;
    }
    const tos = num(r["tos"]) || num(r["dsfield"]);
    if (tos) rule.tos = tos;
    const ipprotoText = str(r["ipproto"]);
    if (ipprotoText !== undefined) {
      const ipproto = ipprotoText.startsWith("ipproto-")
        ? Number(ipprotoText.slice(8))
        : IPPROTO_NAMES[ipprotoText];
      if (ipproto !== undefined) rule.ipproto = ipproto;
    }
    const sport = portRange(r["sport"], r["sport_start"], r["sport_end"]);
    if (sport !== undefined) rule.sport = sport;
    const dport = portRange(r["dport"], r["dport_start"], r["dport_end"]);
    if (dport !== undefined) rule.dport = dport;
    const uidStart = num(r["uid_start"]);
    const uidEnd = num(r["uid_end"]);
    if (uidStart !== undefined && uidEnd !== undefined) rule.uidrange = { start: uidStart, end: uidEnd };
    // Set here, not in the literal: the model's field order puts the action after the selectors.
    rule.action = action;
    if (action === "lookup") {
      const table = num(r["table"]);
      if (table !== undefined) rule.table = table;
    }
    if (action === "goto") {
      const target = num(r["goto"]);
      if (target !== undefined) rule.goto = target;
    }
    const suppressPrefixlength = num(r["suppress_prefixlen"]);
    if (suppressPrefixlength !== undefined) rule.suppressPrefixlength = suppressPrefixlength;
    const suppressIfgroup = num(r["suppress_ifgroup"]);
    if (suppressIfgroup !== undefined) rule.suppressIfgroup = suppressIfgroup;
    const protocol = num(r["protocol"]);
    if (protocol !== undefined) rule.protocol = protocol;
    out[i] = rule;
  }
  return out;
}
