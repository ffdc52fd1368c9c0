// The configuration's shape, stated once: zod schemas that give the TypeScript types (z.output),
// check every field with a message naming the field, the value and what is allowed, and produce
// the validated value (canonical addresses, defaults filled in). The CRD's openAPIV3Schema is
// generated from them (crd-schema.ts). Checks that need more than one field live in cross.ts.

import { z } from "zod";
import {
  type Family,
  type Prefix,
  formatIp,
  formatPrefix,
  parseIp,
  parsePrefix,
  prefixesOverlap,
  rangePrefixes,
} from "../model/address.ts";
import { KNOWN_MARK_OWNERS } from "../model/marks.ts";
import { RESERVED_TABLES, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN } from "../model/state.ts";
import { describe, quoteString } from "./issues.ts";
import { closestChoice } from "./suggest.ts";
import { INTERFACE_RULE, NETWORK_NAME_RULE, interfaceNameProblem, networkNameProblem } from "./names.ts";

export const METHODS = ["auto", "none", "route", "source", "connmark"] as const;
export const FIREWALLS = ["auto", "nftables", "iptables"] as const;
export const KUBE_PROXY_MODES = ["auto", "iptables", "nftables", "ipvs"] as const;
const MARK_OWNER_NAMES = Object.keys(KNOWN_MARK_OWNERS) as [string, ...string[]];

/** Far above any real cluster; they bound the checks across networks on hostile input. */
export const MAX_NETWORKS = 16384;
export const MAX_POOLS = 65536;
const MAX_POD_CIDRS = 256;

const TABLE_MAX = 4294967295;
const MARK_MASK_MAX = 0xffffffff;

/**
 * Route protocols registered to other software (linux/rtnetlink.h, iproute2 rt_protos). symroute
 * treats routes and rules with its protocol as its own and removes them, so these are refused.
 */
export const REGISTERED_ROUTE_PROTOCOLS: Readonly<Record<number, string>> = Object.fromEntries(
  "8 gated 9 ra 10 mrt 11 zebra 12 bird 13 dnrouted 14 xorp 15 ntk 16 dhcp 17 mrouted 18 keepalived 42 babel 99 openr 186 bgp 187 isis 188 ospf 189 rip 192 eigrp"
    .match(/\d+ \S+/g)
    ?.map((pair) => pair.split(" ")) ?? [],
);

const list = (items: readonly (string | number)[]): string => items.join(", ");
const familyName = (family: Family): string => (family === 4 ? "IPv4" : "IPv6");
const isInteger = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

/** An integer field: one message for a value of the wrong type, one for a value out of range. */
function integer(field: string, min: number, max: number, required?: string) {
  return z
    .int({
      error: (iss) =>
        iss.input === undefined && required !== undefined
          ? `${field} is required${required}`
          : isInteger(iss.input)
            ? `${field} ${iss.input} is out of range; allowed: ${min} to ${max}`
            : `${field} must be an integer from ${min} to ${max}; got ${describe(iss.input)}`,
    })
    .min(min)
    .max(max);
}

/** `; did you mean "calico"?` when `input` is a typo of one of `choices`, else nothing. */
function suggestChoice(input: unknown, choices: readonly string[]): string {
  const close = typeof input === "string" ? closestChoice(input, choices) : undefined;
  return close === undefined ? "" : `; did you mean ${quoteString(close)}?`;
}

function choice<const T extends readonly [string, ...string[]]>(field: string, choices: T) {
  return z.enum(choices, {
    error: (iss) =>
      `${field} must be one of ${list(choices)}; got ${describe(iss.input)}${suggestChoice(iss.input, choices)}`,
  });
}

/** The keys each mapping allows, by the mapping's name in messages (mapping's `field`). */
const keysOfMappings = new Map<string, readonly string[]>();

/**
 * The keys the mapping named `name` allows ("vlan", "marks": the key path messages use), for the
 * did-you-mean of an unknown key there (validate.ts); none for a name no mapping has.
 */
export function mappingKeys(name: string): readonly string[] {
  return keysOfMappings.get(name) ?? [];
}

/**
 * A mapping with exactly these keys; unknown keys are reported one by one (validate.ts). `field`:
 * its name in messages, the key path to it (vlan, marks), by which mappingKeys finds its keys.
 */
function mapping<S extends z.core.$ZodLooseShape>(field: string, shape: S) {
  keysOfMappings.set(field, Object.keys(shape));
  const keys = list(Object.keys(shape));
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === "unrecognized_keys"
        ? `allowed: ${keys}`
        : `${field} must be a mapping with the keys ${keys}; got ${describe(iss.input)}`,
  });
}

function interfaceName(field: string, required: string) {
  const problem = (v: unknown): string =>
    typeof v === "string"
      ? `${field} ${quoteString(v)} ${interfaceNameProblem(v) ?? "is not allowed"}; ${INTERFACE_RULE}`
      : v === undefined
        ? `${field} is required: ${required}`
        : `${field} must be an interface name (a string); got ${describe(v)}`;
  return z
    .string({ error: (iss) => problem(iss.input) })
    .min(1)
    .max(15)
    .regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$/)
    .refine((v) => interfaceNameProblem(v) === undefined, { error: (iss) => problem(iss.input) });
}

/** Prefixes no load-balancer pool (or gateway) may touch: they are never unicast on a link. */
const SPECIAL_PREFIXES = [
  ["0.0.0.0/8", '"this network" (0.0.0.0/8)'],
  ["127.0.0.0/8", "loopback (127.0.0.0/8)"],
  ["224.0.0.0/4", "multicast (224.0.0.0/4)"],
  ["255.255.255.255", "broadcast (255.255.255.255)"],
  ["::", "the unspecified address (::)"],
  ["::1", "loopback (::1)"],
  ["ff00::/8", "multicast (ff00::/8)"],
  ["::ffff:0.0.0.0/96", "IPv4-mapped IPv6 (::ffff:0:0/96; write the IPv4 address itself)"],
].map(([text, what]) => ({ prefix: parsePrefix(text as string) as Prefix, what: what as string }));

const specialOverlap = (prefix: Prefix): string | undefined =>
  SPECIAL_PREFIXES.find((s) => prefixesOverlap(s.prefix, prefix))?.what;

/**
 * A MetalLB range (`FIRST-LAST`, MetalLB's IPAddressPool form) where a CIDR was expected: the CIDRs
 * that cover it, to write instead. Undefined when the text is not such a range.
 */
function rangeMessage(field: string, text: string): string | undefined {
  const match = /^\s*([^\s-]+)\s*-\s*([^\s-]+)\s*$/.exec(text);
  if (match === null) return undefined;
  const first = parseIp(match[1] as string);
  const last = parseIp(match[2] as string);
  if (first === undefined || last === undefined || first.family !== last.family || first.value > last.value)
    return undefined;
  const cover = rangePrefixes(first.family, first.value, last.value).map(formatPrefix);
  const shown =
    cover.length <= 16 ? cover.join(", ") : `${cover.slice(0, 16).join(", ")}, ... (${cover.length} in all)`;
  return `${field} ${quoteString(text)} is a range (MetalLB's form), not a CIDR; write the CIDRs that cover it instead: [${shown}]`;
}

/** A pool or pod CIDR, strict about host bits; the canonical text, or an issue and z.NEVER. */
function prefixText(field: string, listField: string, what: string, unicast: boolean) {
  const notAddress = (text: string): string =>
    rangeMessage(field, text) ??
    `${field} ${quoteString(text)} is not an IP address or CIDR; ` +
      `allowed: an IPv4 or IPv6 subnet like 1.2.3.0/24 or 2001:db8::/64, or a single address`;
  return z
    .string({
      error: (iss) =>
        typeof iss.input === "string"
          ? notAddress(iss.input)
          : `${listField} entries must be ${what}; got ${describe(iss.input)}`,
    })
    .min(1)
    .max(64)
    .transform((text, ctx) => {
      const issue = (message: string): never => {
        ctx.issues.push({ code: "custom", message, input: text });
        return z.NEVER;
      };
      const loose = parsePrefix(text);
      if (loose === undefined) return issue(notAddress(text));
      if (loose.len === 0)
        return issue(`${field} ${quoteString(text)} covers every address; give the subnet itself`);
      const prefix = parsePrefix(text, { strict: true });
      if (prefix === undefined) {
        const host = formatIp(loose.family, parseIp(text.slice(0, text.indexOf("/")))?.value ?? 0n);
        return issue(
          `${field} ${quoteString(text)} has host bits set; did you mean ${quoteString(formatPrefix(loose))}` +
            ` (the subnet) or ${quoteString(host)} (the single address)?`,
        );
      }
      const special = unicast ? specialOverlap(prefix) : undefined;
      if (special !== undefined)
        return issue(`${field} ${quoteString(text)} overlaps ${special}; a pool must hold unicast addresses`);
      return formatPrefix(prefix);
    });
}

const GATEWAY_SHAPE = "one IP address, or a list of at most one IPv4 and one IPv6 address";

const gatewayAddress = z
  .string({ error: (iss) => `gateway must be ${GATEWAY_SHAPE}; got ${describe(iss.input)}` })
  .transform((text, ctx) => {
    const issue = (message: string): never => {
      ctx.issues.push({ code: "custom", message, input: text });
      return z.NEVER;
    };
    const ip = parseIp(text);
    if (ip === undefined) {
      return issue(
        text.includes("/") && parseIp(text.slice(0, text.indexOf("/"))) !== undefined
          ? `gateway ${quoteString(text)} must be an address without a prefix length`
          : `gateway ${quoteString(text)} is not an IP address; allowed: ${GATEWAY_SHAPE}`,
      );
    }
    const special = specialOverlap({ family: ip.family, value: ip.value, len: ip.family === 4 ? 32 : 128 });
    if (special !== undefined)
      return issue(`gateway ${quoteString(text)} is ${special}; give the router's unicast address`);
    return { family: ip.family, text: formatIp(ip.family, ip.value) };
  });

export type Gateways = Partial<Record<Family, string>>;

/** One address, or a list of at most one per family: the gateways by family. */
const gateway = z
  .union([gatewayAddress, z.array(gatewayAddress)], {
    error: (iss) => `gateway must be ${GATEWAY_SHAPE}; got ${describe(iss.input)}`,
  })
  .describe("The router replies go back through: at most one IPv4 and one IPv6 address.")
  .transform((value, ctx) => {
    const gateways: Gateways = {};
    const entries = Array.isArray(value) ? value : [value];
    entries.forEach((g, i) => {
      const first = gateways[g.family];
      if (first === undefined) gateways[g.family] = g.text;
      else
        ctx.issues.push({
          code: "custom",
          path: Array.isArray(value) ? [i] : [],
          input: g.text,
          message:
            `gateway ${quoteString(g.text)} is a second ${familyName(g.family)} gateway (the first is ` +
            `${quoteString(first)}); give at most one per family`,
        });
    });
    return gateways;
  });

const table = z
  .int({
    error: (iss) =>
      !isInteger(iss.input)
        ? `table must be an integer from 1 to ${TABLE_MAX}; got ${describe(iss.input)}`
        : iss.input === 0 || RESERVED_TABLES.includes(iss.input)
          ? `table ${iss.input} is reserved (0 unspec, ${TABLE_DEFAULT} default, ${TABLE_MAIN} main, ` +
            `${TABLE_LOCAL} local); allowed: 1 to ${TABLE_MAX} except those`
          : `table ${iss.input} is out of range; allowed: 1 to ${TABLE_MAX}`,
  })
  .min(1)
  .max(TABLE_MAX)
  .refine((t) => !RESERVED_TABLES.includes(t))
  .describe("Routing table; allocated from `tables` when not given. Not 0, 253, 254, 255.");

export const networkSchema = mapping("the network", {
  name: z
    .string({
      error: (iss) =>
        iss.input === undefined
          ? "name is required: a short name for the network, like public"
          : typeof iss.input === "string"
            ? `name ${quoteString(iss.input)} ${networkNameProblem(iss.input) ?? "is not allowed"}; ${NETWORK_NAME_RULE}`
            : `name must be a string; got ${describe(iss.input)}; ${NETWORK_NAME_RULE}`,
    })
    .min(1)
    .max(63)
    .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/)
    .describe("Unique name: lowercase letters, digits and '-'."),
  addresses: z
    .array(prefixText("address", "addresses", "CIDRs or single addresses, like 1.2.3.0/24", true), {
      error: (iss) =>
        iss.input === undefined
          ? "addresses is required: the MetalLB pool(s) of this network, like [1.2.3.0/24]"
          : Array.isArray(iss.input)
            ? "addresses must list at least one CIDR or address; got an empty list"
            : `addresses must be a list of CIDRs or single addresses, like 1.2.3.0/24; got ${describe(iss.input)}`,
    })
    .min(1)
    .describe("The MetalLB pool(s): CIDRs or single addresses."),
  interface: interfaceName("interface", "the interface requests for these addresses arrive on").describe(
    "Where requests for these addresses arrive.",
  ),
  gateway: gateway.optional(),
  vlan: mapping("vlan", {
    parent: interfaceName("vlan.parent", "the interface the VLAN is created on, like eth0").describe(
      "The link the VLAN is created on.",
    ),
    id: integer("vlan.id", 1, 4094, ": the 802.1Q id, 1 to 4094"),
  })
    .describe("Create `interface` as an 802.1Q VLAN on `parent`.")
    .optional(),
  table: table.optional(),
  method: choice("method", METHODS).default("auto").describe("Default auto."),
});

/** For checks across the fields of one mapping: only once each field is valid. */
const whenValid = { when: (payload: { issues: readonly unknown[] }) => payload.issues.length === 0 };

/** `{from, to}`: a band of rule priorities or tables. */
function range(field: string, min: number, max: number, from: number, to: number) {
  const end = (key: string) =>
    integer(`${field}.${key}`, min, max, ` when ${field} is given: an integer from ${min} to ${max}`);
  return mapping(field, { from: end("from"), to: end("to") })
    .refine((r) => r.from <= r.to, {
      ...whenValid,
      error: (iss) => {
        const r = iss.input as { from: number; to: number };
        return `${field} is empty: from ${r.from} is greater than to ${r.to}`;
      },
    })
    .default({ from, to });
}

const maskError = (iss: { input?: unknown }): string =>
  isInteger(iss.input)
    ? `marks.mask ${describe(iss.input)} is out of range; ${MASK_ALLOWED}`
    : `marks.mask must be an integer or hex text; got ${describe(iss.input)}; ${MASK_ALLOWED}`;
const markMask = z
  .union(
    [
      z.int({ error: maskError }).min(1).max(MARK_MASK_MAX),
      z.string({ error: maskError }).regex(/^0[xX][0-9a-fA-F]{1,8}$/),
    ],
    { error: maskError },
  )
  .transform((v, ctx) => {
    const mask = typeof v === "number" ? v : parseInt(v.slice(2), 16);
    if (mask > 0) return mask;
    ctx.issues.push({
      code: "custom",
      input: v,
      message: `marks.mask ${describe(v)} is out of range; ${MASK_ALLOWED}`,
    });
    return z.NEVER;
  });
const MASK_ALLOWED = `allowed: a non-zero 32-bit integer, or hex text like "0xff"`;

const DEFAULT_AVOID = ["kube-proxy", "calico", "cilium"];

const marks = mapping("marks", {
  mask: markMask.default(0xff),
  avoid: z
    .array(
      z.enum(MARK_OWNER_NAMES, {
        error: (iss) =>
          typeof iss.input === "string"
            ? `marks.avoid entry ${quoteString(iss.input)} is not a known component; allowed: ${list(MARK_OWNER_NAMES)}${suggestChoice(iss.input, MARK_OWNER_NAMES)}`
            : `marks.avoid entries must be component names; got ${describe(iss.input)}`,
      }),
      { error: (iss) => `marks.avoid must be a list of component names; got ${describe(iss.input)}` },
    )
    .transform((names) => [...new Set(names)])
    .default([...DEFAULT_AVOID]),
})
  .describe("Firewall mark bits symroute may use.")
  .default({ mask: 0xff, avoid: [...DEFAULT_AVOID] });

const STATE_DIR_ALLOWED =
  "allowed: an absolute path like /var/lib/symroute, of A-Z a-z 0-9 / . _ - + @ and without '..'";

function stateDirProblem(value: string): string | undefined {
  const bad = Array.from(value).find((ch) => !/^[A-Za-z0-9/._+@-]$/.test(ch));
  if (!value.startsWith("/")) return "is not absolute";
  if (bad !== undefined) return `contains ${quoteString(bad)}`;
  if (value.split("/").includes("..")) return "contains '..'";
  if (value.length > 1024) return "is longer than 1024 characters";
  return undefined;
}

/** The networks list, with `item` for each entry (validate.ts checks entries one by one). */
export function networkList<T extends z.ZodType>(item: T) {
  return z
    .array(item, {
      error: (iss) =>
        iss.input === undefined
          ? "networks is required: a list of networks, each {name, addresses, interface} (it may be empty)"
          : Array.isArray(iss.input)
            ? `networks has ${iss.input.length} entries; symroute handles at most ${MAX_NETWORKS}`
            : `networks must be a list of networks, each {name, addresses, interface}; got ${describe(iss.input)}`,
    })
    .max(MAX_NETWORKS)
    .describe("One entry per external network whose MetalLB pool needs its replies routed.");
}

export const configSchema = mapping("the configuration", {
  podCIDRs: z
    .array(prefixText("podCIDRs entry", "podCIDRs", "CIDRs like 10.112.0.0/12", false), {
      error: (iss) =>
        Array.isArray(iss.input)
          ? `podCIDRs has ${iss.input.length} entries; symroute handles at most ${MAX_POD_CIDRS}`
          : `podCIDRs must be a list of CIDRs like 10.112.0.0/12; got ${describe(iss.input)}`,
    })
    .max(MAX_POD_CIDRS)
    .default([])
    .describe("Pod CIDRs of the cluster; pools must not overlap them."),
  networks: networkList(networkSchema),
  firewall: choice("firewall", FIREWALLS).default("auto").describe("Default auto."),
  kubeProxyMode: choice("kubeProxyMode", KUBE_PROXY_MODES).default("auto").describe("Default auto."),
  rulePriorities: range("rulePriorities", 1, 32765, 1000, 1999)
    .refine((r) => r.from < r.to, {
      ...whenValid,
      error: (iss) => {
        const r = iss.input as { from: number; to: number };
        return (
          `rulePriorities ${r.from}-${r.to} holds one priority; symroute needs at least 2 ` +
          `(exemption rules go before the network rules)`
        );
      },
    })
    .describe("The band of `ip rule` priorities symroute owns."),
  tables: range("tables", 1, TABLE_MAX, 20000, 29999)
    .refine((r) => !RESERVED_TABLES.some((t) => t >= r.from && t <= r.to), {
      ...whenValid,
      error: (iss) => {
        const r = iss.input as { from: number; to: number };
        const reserved = RESERVED_TABLES.filter((t) => t >= r.from && t <= r.to);
        return (
          `tables ${r.from}-${r.to} includes reserved table ${list(reserved)} ` +
          `(${TABLE_DEFAULT} default, ${TABLE_MAIN} main, ${TABLE_LOCAL} local); choose a range that avoids ` +
          `${TABLE_DEFAULT}-${TABLE_LOCAL}, such as 20000-29999`
        );
      },
    })
    .describe("Where tables are allocated from; must avoid 253-255."),
  marks,
  routeProtocol: integer("routeProtocol", 5, 255)
    .refine((p) => REGISTERED_ROUTE_PROTOCOLS[p] === undefined, {
      error: (iss) =>
        `routeProtocol ${String(iss.input)} is registered to ${REGISTERED_ROUTE_PROTOCOLS[iss.input as number]}; ` +
        `symroute treats routes with its protocol as its own and removes them, so pick an unregistered ` +
        `number such as 201`,
    })
    .default(201)
    .describe("The `proto` of symroute's routes and rules."),
  stateDir: z
    .string({
      error: (iss) =>
        typeof iss.input === "string"
          ? `stateDir ${quoteString(iss.input)} ${stateDirProblem(iss.input) ?? "is not allowed"}; ${STATE_DIR_ALLOWED}`
          : `stateDir must be a path (a string); got ${describe(iss.input)}; ${STATE_DIR_ALLOWED}`,
    })
    .regex(/^\//)
    .max(1024)
    .refine((v) => stateDirProblem(v) === undefined)
    .describe("Absolute path of symroute's state directory.")
    .optional(),
}).describe("symroute configuration (see docs/config.md).");

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

type NetworkFields = z.output<typeof networkSchema>;

/** A network as the rest of symroute sees it: `gateway` read into one address per family. */
export type NetworkConfig = DeepReadonly<Omit<NetworkFields, "gateway"> & { gateways: Gateways }>;
export type Config = DeepReadonly<Omit<z.output<typeof configSchema>, "networks">> & {
  readonly networks: readonly NetworkConfig[];
};
export type Method = NetworkConfig["method"];
export type FirewallChoice = Config["firewall"];
export type KubeProxyMode = Config["kubeProxyMode"];
export type Vlan = NonNullable<NetworkConfig["vlan"]>;
export type Range = Config["tables"];
export type MarkSettings = Config["marks"];

/** Defaults the schema fills in, for code that runs without a config (a delete without -c). */
export const CONFIG_DEFAULTS = {
  routeProtocol: configSchema.shape.routeProtocol.parse(undefined),
  rulePriorities: configSchema.shape.rulePriorities.parse(undefined),
} as const;

/**
 * The network as the rest of symroute sees it. The same checked fields give the same object (the
 * agent's config re-read reuses the fields of unchanged entries, and the plan keeps what it made
 * for a network object: src/plan/desired.ts); both are immutable.
 */
export function toNetworkConfig(n: NetworkFields): NetworkConfig {
  let network = networkConfigs.get(n);
  if (network === undefined) {
    network = freshNetworkConfig(n);
    networkConfigs.set(n, network);
  }
  return network;
}

const networkConfigs = new WeakMap<NetworkFields, NetworkConfig>();

/** A network's fields as the schema gives them, in NetworkConfig's key order. */
function freshNetworkConfig(n: NetworkFields): NetworkConfig {
  return {
    name: n.name,
    addresses: n.addresses,
    interface: n.interface,
    gateways: n.gateway ?? {},
    ...(n.vlan === undefined ? {} : { vlan: n.vlan }),
    ...(n.table === undefined ? {} : { table: n.table }),
    method: n.method,
  };
}
