// Parsers for `ip -j -N [-d]` output into the model. Kept apart from the process plumbing so that
// they can be tested on recorded dumps.

import { canonicalIp, canonicalPrefix, type Family } from "../model/address.ts";
import type {
  InterfaceAddress,
  Link,
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
    const n = value.startsWith("0x") ? parseInt(value, 16) : Number(value);
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
    return {
      ifname: String(l["ifname"]),
      ifindex: num(l["ifindex"]) ?? 0,
      up: flags.includes("UP"),
      operstate: str(l["operstate"]),
      kind,
      link: str(l["link"]),
      vlanId: kind === "vlan" ? num(infoData?.["id"]) : undefined,
    };
  });
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

export function parseRoutes(family: Family, json: readonly Json[]): Route[] {
  const out: Route[] = [];
  for (const r of json) {
    const dstText = str(r["dst"]) ?? "default";
    const dst = dstText === "default" ? "default" : (canonicalPrefix(dstText, family) ?? dstText);
    const flags = Array.isArray(r["flags"]) ? (r["flags"] as unknown[]) : [];
    const scopeRaw = r["scope"];
    const route: Route = {
      family,
      table: num(r["table"]) ?? 254,
      type: ROUTE_TYPES[String(r["type"] ?? "1")] ?? "unicast",
      dst,
      gateway: canonicalAddress(str(r["gateway"])),
      dev: str(r["dev"]),
      metric: num(r["metric"]),
      protocol: num(r["protocol"]),
      scope: typeof scopeRaw === "string" && scopeRaw in SCOPES ? SCOPES[scopeRaw] : num(scopeRaw),
      prefsrc: canonicalAddress(str(r["prefsrc"])),
      src:
        str(r["from"]) === undefined
          ? undefined
          : (canonicalPrefix(str(r["from"]) ?? "", family) ?? str(r["from"])),
      tos: num(r["tos"]) || undefined,
      onlink: flags.includes("onlink") ? true : undefined,
    };
    out.push(stripUndefined(route));
  }
  return out;
}

function portRange(r: Json, name: string): PortRange | undefined {
  const single = num(r[name]);
  if (single !== undefined) return { start: single, end: single };
  const start = num(r[`${name}_start`]);
  const end = num(r[`${name}_end`]);
  return start === undefined || end === undefined ? undefined : { start, end };
}

function selector(family: Family, r: Json, key: "src" | "dst"): string | undefined {
  const addr = str(r[key]);
  if (addr === undefined || addr === "all") return undefined;
  const len = num(r[`${key}len`]);
  return canonicalPrefix(len === undefined ? addr : `${addr}/${len}`, family);
}

export function parseRules(family: Family, json: readonly Json[]): Rule[] {
  return json.map((r) => {
    let action: RuleAction = "lookup";
    if ("goto" in r) action = "goto";
    else if ("nop" in r) action = "nop";
    else if (r["action"] !== undefined) action = RULE_ACTIONS[String(r["action"])] ?? "unreachable";
    const ipprotoText = str(r["ipproto"]);
    const ipproto =
      ipprotoText === undefined
        ? undefined
        : ipprotoText.startsWith("ipproto-")
          ? Number(ipprotoText.slice(8))
          : ({ tcp: 6, udp: 17, icmp: 1, "ipv6-icmp": 58, sctp: 132 } as Record<string, number>)[ipprotoText];
    const uidStart = num(r["uid_start"]);
    const uidEnd = num(r["uid_end"]);
    const fwmark = num(r["fwmark"]);
    const rule: Rule = {
      family,
      priority: num(r["priority"]) ?? 0,
      not: "not" in r ? true : undefined,
      from: selector(family, r, "src"),
      to: selector(family, r, "dst"),
      iif: str(r["iif"]),
      oif: str(r["oif"]),
      fwmark,
      fwmask: fwmark === undefined ? undefined : num(r["fwmask"]),
      tos: num(r["tos"]) || num(r["dsfield"]) || undefined,
      ipproto,
      sport: portRange(r, "sport"),
      dport: portRange(r, "dport"),
      uidrange: uidStart === undefined || uidEnd === undefined ? undefined : { start: uidStart, end: uidEnd },
      action,
      table: action === "lookup" ? num(r["table"]) : undefined,
      goto: action === "goto" ? num(r["goto"]) : undefined,
      suppressPrefixlength: num(r["suppress_prefixlen"]),
      suppressIfgroup: num(r["suppress_ifgroup"]),
      protocol: num(r["protocol"]),
    };
    return stripUndefined(rule);
  });
}

/** Drop undefined fields so states compare and print cleanly. */
export function stripUndefined<T extends object>(value: T): T {
  // for-in, not Object.entries: no pair arrays for each of a dump's thousands of objects.
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k in source) if (source[k] !== undefined) out[k] = source[k];
  return out as T;
}
