// kube-proxy's DNAT targets from its own rules, as the node lists them: `iptables-save -t nat`
// (KUBE-SERVICES -> KUBE-EXT/KUBE-FW -> KUBE-SVC/KUBE-SVL -> KUBE-SEP `-j DNAT --to-destination`)
// and `nft -j list table ip|ip6 kube-proxy` (the `service-ips` verdict map -> service/external chains
// -> `numgen` vmap -> endpoint chains `dnat to`). Pure: text in, services out.
//
// Both readers walk the rules from the nat hooks (PREROUTING/OUTPUT, nat-prerouting/nat-output),
// carrying the destination, protocol and port the path has matched so far, and record every DNAT
// they reach. Source matches, statistics and `fib`/`addrtype` tests are not evaluated: a path is
// kept whatever they say, so a backend that only some sources reach (pods short-circuited past an
// externalTrafficPolicy Local chain) is listed too. A DNAT reached without a specific destination
// address (NodePorts) is not a service of an address, and is left out.

import { canonicalIp, type Family } from "../model/address.ts";
import type { DnatService, ServiceBackend } from "../model/services.ts";

/** What a path through the rules has matched so far. */
interface Matched {
  readonly address?: string;
  readonly proto?: string;
  readonly port?: number;
}

/** Adds a match to a path; undefined when the path cannot match both (another address or port). */
function narrow(path: Matched, add: Matched): Matched | undefined {
  const out: { address?: string; proto?: string; port?: number } = { ...path };
  for (const key of ["address", "proto", "port"] as const) {
    const value = add[key];
    if (value === undefined) continue;
    if (path[key] !== undefined && path[key] !== value) return undefined;
    (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

/** Collects DNAT targets per destination, each backend once. */
class Collector {
  private readonly byKey = new Map<string, { service: Matched; backends: Map<string, ServiceBackend> }>();

  constructor(private readonly family: Family) {}

  add(path: Matched, backend: ServiceBackend): void {
    if (path.address === undefined) return;
    const key = `${path.address} ${path.proto ?? ""} ${path.port ?? ""}`;
    let entry = this.byKey.get(key);
    if (entry === undefined) {
      entry = { service: path, backends: new Map() };
      this.byKey.set(key, entry);
    }
    entry.backends.set(`${backend.address} ${backend.port ?? ""}`, backend);
  }

  services(): DnatService[] {
    return [...this.byKey.values()]
      .map(({ service, backends }) => ({
        family: this.family,
        address: service.address as string,
        ...(service.proto === undefined ? {} : { proto: service.proto }),
        ...(service.port === undefined ? {} : { port: service.port }),
        backends: [...backends.values()].sort(compareBackends),
      }))
      .sort(compareServices);
  }
}

function compareBackends(a: ServiceBackend, b: ServiceBackend): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : (a.port ?? 0) - (b.port ?? 0);
}

function compareServices(a: DnatService, b: DnatService): number {
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  if ((a.proto ?? "") !== (b.proto ?? "")) return (a.proto ?? "") < (b.proto ?? "") ? -1 : 1;
  return (a.port ?? 0) - (b.port ?? 0);
}

/** An address of the family, canonical; undefined for anything else (a prefix, a set, garbage). */
function addressOf(text: string, family: Family): string | undefined {
  const ip = canonicalIp(text);
  if (ip === undefined || ip.includes(":") !== (family === 6)) return undefined;
  return ip;
}

const MAX_DEPTH = 32;

/** Appends to the list a map holds for `key`. */
function append<V>(map: Map<string, V[]>, key: string, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** Where a rule sends the walk next: a chain, with what the path has matched by then. */
type Follow = (chain: string, path: Matched) => void;

/**
 * Walks the chains from the entry chains: each rule of a chain is handed to `onRule` with the path
 * that reached the chain; each chain is walked once per path, and only so deep (loops end).
 */
function walkChains<R>(
  entries: readonly string[],
  chains: ReadonlyMap<string, readonly R[]>,
  onRule: (rule: R, path: Matched, follow: Follow) => void,
): void {
  const seen = new Set<string>();
  const visit = (chain: string, path: Matched, depth: number): void => {
    const key = `${chain} ${path.address ?? ""} ${path.proto ?? ""} ${path.port ?? ""}`;
    if (depth > MAX_DEPTH || seen.has(key)) return;
    seen.add(key);
    for (const rule of chains.get(chain) ?? []) onRule(rule, path, (next, at) => visit(next, at, depth + 1));
  };
  for (const chain of entries) visit(chain, {}, 0);
}

// ---------------------------------------------------------------------------------------------
// iptables-save

interface IptablesRule {
  readonly match: Matched;
  /** `-j` or `-g`: a chain of the table, or a target (DNAT, MARK, RETURN...). */
  readonly target?: string;
  readonly goto: boolean;
  readonly toDestination?: string;
}

/** Splits an iptables-save rule line into words, honouring double quotes (comments). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) out.push(m[1] ?? m[2] ?? "");
  return out;
}

function parseIptablesRule(args: readonly string[], family: Family): IptablesRule | undefined {
  const match: { address?: string; proto?: string; port?: number } = {};
  let target: string | undefined;
  let goto = false;
  let toDestination: string | undefined;
  let negated = false;
  for (let i = 0; i < args.length; i++) {
    const word = args[i] as string;
    if (word === "!") {
      negated = true;
      continue;
    }
    const value = args[i + 1];
    const wasNegated = negated;
    negated = false;
    switch (word) {
      case "-d":
      case "--destination": {
        i++;
        if (wasNegated || value === undefined) break;
        const [addr, len] = value.split("/");
        const full = family === 4 ? "32" : "128";
        // A destination that is a whole subnet is no service address: the rule cannot be taken as one.
        if (len !== undefined && len !== full) return undefined;
        const address = addressOf(addr ?? "", family);
        if (address === undefined) return undefined;
        match.address = address;
        break;
      }
      case "-p":
      case "--protocol":
        i++;
        if (!wasNegated && value !== undefined) match.proto = value.toLowerCase();
        break;
      case "--dport":
      case "--destination-port":
        i++;
        if (!wasNegated && value !== undefined && /^[0-9]+$/.test(value)) match.port = Number(value);
        break;
      case "-j":
      case "--jump":
        i++;
        target = value;
        break;
      case "-g":
      case "--goto":
        i++;
        target = value;
        goto = true;
        break;
      case "--to-destination":
        i++;
        toDestination = value;
        break;
      default:
        break;
    }
  }
  return {
    match,
    ...(target === undefined ? {} : { target }),
    goto,
    ...(toDestination === undefined ? {} : { toDestination }),
  };
}

/** `10.0.0.1:80`, `10.0.0.1`, `[fd00::1]:80`, `fd00::1`, a range `A-B:P` (its first address). */
function parseToDestination(text: string, family: Family): ServiceBackend | undefined {
  let host = text;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::([0-9]+)(?:-[0-9]+)?)?$/.exec(text);
  if (bracket !== null) {
    host = bracket[1] ?? "";
    port = bracket[2];
  } else if (family === 4) {
    const [h, p] = text.split(":");
    host = h ?? "";
    port = p?.split("-")[0];
  }
  const address = addressOf(host.split("-")[0] ?? "", family);
  if (address === undefined) return undefined;
  return port === undefined ? { address } : { address, port: Number(port) };
}

/** kube-proxy's services in the output of `iptables-save -t nat` (or `ip6tables-save`, family 6). */
export function parseIptablesNatServices(text: string, family: Family): DnatService[] {
  const chains = new Map<string, IptablesRule[]>();
  let inNat = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      inNat = line === "*nat";
      continue;
    }
    if (!inNat) continue;
    if (line.startsWith(":")) {
      const name = line.slice(1).split(/\s+/)[0];
      if (name !== undefined && !chains.has(name)) chains.set(name, []);
      continue;
    }
    if (!line.startsWith("-A ")) continue;
    const [, chain, ...args] = words(line);
    if (chain === undefined) continue;
    const rule = parseIptablesRule(args, family);
    if (rule !== undefined) append(chains, chain, rule);
  }
  const out = new Collector(family);
  walkChains(["PREROUTING", "OUTPUT"], chains, (rule, path, follow) => {
    const here = narrow(path, rule.match);
    if (here === undefined || rule.target === undefined) return;
    if (rule.target === "DNAT") {
      const backend =
        rule.toDestination === undefined ? undefined : parseToDestination(rule.toDestination, family);
      if (backend !== undefined) out.add(here, backend);
    } else if (chains.has(rule.target)) {
      follow(rule.target, here);
    }
  });
  return out.services();
}

// ---------------------------------------------------------------------------------------------
// nft -j

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** What a key expression of a match or a map binds: the destination address, protocol or port. */
function bindingOf(expr: unknown): keyof Matched | undefined {
  if (!isObject(expr)) return undefined;
  const payload = expr["payload"];
  if (isObject(payload)) {
    const field = payload["field"];
    const protocol = payload["protocol"];
    if (field === "daddr" && (protocol === "ip" || protocol === "ip6")) return "address";
    if (field === "dport") return "port";
    return undefined;
  }
  const meta = expr["meta"];
  if (isObject(meta) && meta["key"] === "l4proto") return "proto";
  return undefined;
}

/** The transport protocol a port match implies (`tcp dport 80`). */
function protoOfPortMatch(expr: unknown): string | undefined {
  const payload = isObject(expr) ? expr["payload"] : undefined;
  const protocol = isObject(payload) ? payload["protocol"] : undefined;
  return protocol === "tcp" || protocol === "udp" || protocol === "sctp" ? protocol : undefined;
}

/** A value bound to a key; undefined when it is not a single address / protocol / port. */
function boundValue(key: keyof Matched, value: unknown, family: Family): Matched | undefined {
  if (key === "address") {
    const address = typeof value === "string" ? addressOf(value, family) : undefined;
    return address === undefined ? undefined : { address };
  }
  if (key === "port") return typeof value === "number" ? { port: value } : undefined;
  return typeof value === "string" ? { proto: value } : undefined;
}

/** A chain a verdict goes to (`jump X`, `goto X`). */
function verdictTarget(v: unknown): string | undefined {
  if (!isObject(v)) return undefined;
  for (const kind of ["jump", "goto"]) {
    const t = v[kind];
    if (isObject(t) && typeof t["target"] === "string") return t["target"];
  }
  return undefined;
}

/** kube-proxy's services in `nft -j list table ip kube-proxy` (or `ip6`, family 6). */
export function parseNftKubeProxyServices(json: string | unknown, family: Family): DnatService[] {
  const doc: unknown = typeof json === "string" ? JSON.parse(json === "" ? "{}" : json) : json;
  const items = isObject(doc) && Array.isArray(doc["nftables"]) ? (doc["nftables"] as unknown[]) : [];
  const entries: string[] = [];
  const rules = new Map<string, unknown[][]>();
  const maps = new Map<string, unknown[]>();
  for (const item of items) {
    if (!isObject(item)) continue;
    const chain = item["chain"];
    if (isObject(chain) && typeof chain["name"] === "string") {
      if (chain["type"] === "nat" && (chain["hook"] === "prerouting" || chain["hook"] === "output"))
        entries.push(chain["name"]);
      if (!rules.has(chain["name"])) rules.set(chain["name"], []);
    }
    const map = item["map"];
    if (isObject(map) && typeof map["name"] === "string" && Array.isArray(map["elem"]))
      maps.set(map["name"], map["elem"] as unknown[]);
    const rule = item["rule"];
    if (isObject(rule) && typeof rule["chain"] === "string" && Array.isArray(rule["expr"]))
      append(rules, rule["chain"], rule["expr"] as unknown[]);
  }

  const out = new Collector(family);

  /** One map or set element [key, verdict]: bind the key's parts, follow the verdict. */
  const followElement = (keyExpr: unknown, element: unknown, path: Matched, follow: Follow): void => {
    if (!Array.isArray(element) || element.length !== 2) return;
    let [value, verdict] = element as [unknown, unknown];
    if (isObject(value) && isObject(value["elem"])) value = value["elem"]["val"];
    const target = verdictTarget(verdict);
    if (target === undefined) return;
    const keys =
      isObject(keyExpr) && Array.isArray(keyExpr["concat"]) ? (keyExpr["concat"] as unknown[]) : [keyExpr];
    const values =
      isObject(value) && Array.isArray(value["concat"]) ? (value["concat"] as unknown[]) : [value];
    let here: Matched | undefined = path;
    for (const [i, k] of keys.entries()) {
      const binding = bindingOf(k);
      if (binding === undefined) continue;
      const bound = boundValue(binding, values[i], family);
      // A part that is not a single value (an interval, a prefix) does not narrow the path.
      if (bound !== undefined) here = here === undefined ? undefined : narrow(here, bound);
    }
    if (here !== undefined) follow(target, here);
  };

  const walkRule = (expr: readonly unknown[], start: Matched, follow: Follow): void => {
    let path: Matched | undefined = start;
    for (const statement of expr) {
      if (path === undefined || !isObject(statement)) return;
      const match = statement["match"];
      if (isObject(match)) {
        if (match["op"] !== "==") continue;
        const binding = bindingOf(match["left"]);
        if (binding === undefined) continue;
        const bound = boundValue(binding, match["right"], family);
        if (bound === undefined) continue;
        const proto = binding === "port" ? protoOfPortMatch(match["left"]) : undefined;
        path = narrow(path, proto === undefined ? bound : { ...bound, proto });
        continue;
      }
      const vmap = statement["vmap"];
      if (isObject(vmap)) {
        const data = vmap["data"];
        const elements =
          typeof data === "string" && data.startsWith("@")
            ? (maps.get(data.slice(1)) ?? [])
            : isObject(data) && Array.isArray(data["set"])
              ? (data["set"] as unknown[])
              : [];
        for (const element of elements) followElement(vmap["key"], element, path, follow);
        return;
      }
      const target = verdictTarget(statement);
      if (target !== undefined) {
        follow(target, path);
        if (isObject(statement["goto"])) return;
        continue;
      }
      const dnat = statement["dnat"];
      if (isObject(dnat)) {
        const address = typeof dnat["addr"] === "string" ? addressOf(dnat["addr"], family) : undefined;
        if (address !== undefined)
          out.add(path, typeof dnat["port"] === "number" ? { address, port: dnat["port"] } : { address });
        return;
      }
    }
  };

  walkChains(entries, rules, walkRule);
  return out.services();
}
