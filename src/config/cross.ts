// Checks across fields, on what the schema accepted: a network's gateways against its pools and
// method, names and tables shared between networks, interfaces described two ways, overlapping
// pools and pod CIDRs, and room in the table range and the mark mask. Each check runs on the parts
// that are valid, so one bad field does not hide the problems of the others.

import { type Family, parsePrefix } from "../model/address.ts";
import { KNOWN_MARK_OWNERS, formatHex, popcount } from "../model/marks.ts";
import { type ConfigPath, formatPath, quoteString } from "./issues.ts";
import { type SpanEntry, findSpanOverlaps, prefixBounds } from "./overlaps.ts";
import type { Gateways, KubeProxyMode, MarkSettings, Method, Range, Vlan } from "./schema.ts";
import { MAX_POOLS } from "./schema.ts";
import { counted } from "../model/plural.ts";

export interface Issue {
  readonly path: ConfigPath;
  readonly message: string;
}

/** What the schema accepted of one network; undefined: missing or invalid. */
export interface NetworkDraft {
  readonly index: number;
  readonly name?: string;
  /** The valid entries of addresses, with their positions in the list. */
  readonly pools: readonly DraftPool[];
  /** Every entry of addresses is valid. */
  readonly poolsComplete: boolean;
  readonly interface?: string;
  readonly gateways?: Gateways;
  /** "invalid": given but wrong (then the interface's VLAN is unknown). */
  readonly vlan?: Vlan | "invalid";
  readonly table?: number | "invalid";
  readonly method?: Method;
}

/** A valid pool: its text, where it is in addresses, and its first and last address (poolSpan). */
interface DraftPool {
  readonly text: string;
  readonly position: number;
  readonly family: Family;
  readonly lo: bigint;
  readonly hi: bigint;
}

/** A pool's family and bounds, parsed once per network (a reused network keeps them). */
export function draftPool(text: string, position: number): DraftPool {
  const prefix = parsePrefix(text);
  if (prefix === undefined) throw new Error(`the schema let through ${text}`);
  const { lo, hi } = prefixBounds(prefix);
  return { text, position, family: prefix.family, lo, hi };
}

export interface Drafts {
  readonly networks: readonly NetworkDraft[];
  /** undefined when any entry is invalid. */
  readonly podCIDRs?: readonly string[];
  readonly tables?: Range;
  readonly marks?: MarkSettings;
  readonly kubeProxyMode?: KubeProxyMode;
}

const familyName = (family: Family): string => (family === 4 ? "IPv4" : "IPv6");
const GATEWAY_METHODS: readonly Method[] = ["source", "connmark"];

function networkLabel(d: NetworkDraft): string {
  return d.name === undefined ? `networks[${d.index}]` : `networks[${d.index}] (${quoteString(d.name)})`;
}

const vlanText = (v: Vlan): string => `{parent: ${v.parent}, id: ${v.id}}`;
const sameVlan = (a: Vlan | undefined, b: Vlan | undefined): boolean =>
  a === undefined || b === undefined ? a === b : a.parent === b.parent && a.id === b.id;

/** A network's own consistency: its VLAN's parent, its gateways against its pools and method. */
function checkNetwork(d: NetworkDraft, out: Issue[]): NetworkDraft {
  const at = (key: string): ConfigPath => ["networks", d.index, key];
  let vlan = d.vlan;
  if (vlan !== undefined && vlan !== "invalid" && vlan.parent === d.interface) {
    out.push({
      path: at("vlan"),
      message:
        `vlan.parent ${quoteString(vlan.parent)} is the interface itself; the parent is the ` +
        `link the VLAN interface ${quoteString(d.interface)} is created on`,
    });
    vlan = "invalid";
  }
  const gateways = d.gateways;
  if (gateways !== undefined && d.poolsComplete) {
    // The pools' families, in the order they first appear.
    const families = [...new Set(d.pools.map((p) => (p.text.includes(":") ? 6 : 4) as Family))];
    for (const family of [4, 6] as const) {
      const gateway = gateways[family];
      if (gateway !== undefined && !families.includes(family))
        out.push({
          path: at("gateway"),
          message:
            `gateway ${quoteString(gateway)} is ${familyName(family)} but addresses has no ${familyName(family)} ` +
            `entry; a gateway routes the replies of the pool of its own family`,
        });
    }
    const method = d.method;
    if (method !== undefined && GATEWAY_METHODS.includes(method)) {
      if (gateways[4] === undefined && gateways[6] === undefined) {
        out.push({
          path: at("method"),
          message:
            `method ${quoteString(method)} needs a gateway to send replies to; add gateway, or use method ` +
            `auto, route or none`,
        });
      } else {
        for (const family of families)
          if (gateways[family] === undefined)
            out.push({
              path: at("gateway"),
              message:
                `method ${quoteString(method)} needs an ${familyName(family)} gateway for the ` +
                `${familyName(family)} addresses of this network; add one to gateway`,
            });
      }
    }
  }
  return vlan === d.vlan ? d : { ...d, vlan };
}

/** Names, tables, interfaces and VLANs that two networks claim differently. */
function checkShared(drafts: readonly NetworkDraft[], out: Issue[]): void {
  const names = new Map<string, number>();
  const tables = new Map<number, NetworkDraft>();
  const interfaces = new Map<string, NetworkDraft>();
  const vlans = new Map<string, NetworkDraft>();
  for (const d of drafts) {
    const at = (key: string): ConfigPath => ["networks", d.index, key];
    if (d.name !== undefined) {
      const first = names.get(d.name);
      if (first === undefined) names.set(d.name, d.index);
      else
        out.push({
          path: at("name"),
          message: `name ${quoteString(d.name)} is already used by networks[${first}]; names must be unique`,
        });
    }
    if (typeof d.table === "number") {
      const first = tables.get(d.table);
      if (first === undefined) tables.set(d.table, d);
      else
        out.push({
          path: at("table"),
          message: `table ${d.table} is also the table of ${networkLabel(first)}; each network needs its own`,
        });
    }
    if (d.interface === undefined || d.vlan === "invalid") continue;
    const first = interfaces.get(d.interface);
    if (first === undefined) interfaces.set(d.interface, d);
    else if (first.vlan !== "invalid" && !sameVlan(first.vlan, d.vlan)) {
      const a = first.vlan === undefined ? "no vlan" : `vlan ${vlanText(first.vlan)}`;
      const b = d.vlan === undefined ? "no vlan" : `vlan ${vlanText(d.vlan)}`;
      out.push({
        path: at(d.vlan === undefined ? "interface" : "vlan"),
        message:
          `interface ${quoteString(d.interface)} has ${b} here but ${a} in ${networkLabel(first)}; ` +
          `networks sharing an interface must describe it the same way`,
      });
    }
    if (d.vlan === undefined) continue;
    const key = `${d.vlan.parent}|${d.vlan.id}`;
    const owner = vlans.get(key);
    if (owner === undefined) vlans.set(key, d);
    else if (owner.interface !== d.interface)
      out.push({
        path: at("vlan"),
        message:
          `vlan ${vlanText(d.vlan)} is also ${networkLabel(owner)}, named ${quoteString(owner.interface ?? "")}; ` +
          `the kernel allows one VLAN per id on a parent, so use the same interface name`,
      });
  }
}

/**
 * A gateway that is itself an LB address (an entry of addresses of a single address, in any
 * network): the router replies go back through and an address MetalLB announces from a node cannot
 * be one address, so such a network can never work. A gateway inside a pool's subnet is the usual
 * layout and stays accepted.
 */
function checkGatewaysAmongPools(drafts: readonly NetworkDraft[], out: Issue[]): void {
  const singles = new Map<string, { readonly owner: NetworkDraft; readonly pool: DraftPool }>();
  for (const owner of drafts)
    for (const pool of owner.pools)
      if (pool.lo === pool.hi) singles.set(`${pool.family}|${pool.lo}`, { owner, pool });
  if (singles.size === 0) return;
  for (const d of drafts) {
    for (const family of [4, 6] as const) {
      const gateway = d.gateways?.[family];
      const parsed = gateway === undefined ? undefined : parsePrefix(gateway);
      if (gateway === undefined || parsed === undefined || parsed.family !== family) continue;
      const hit = singles.get(`${family}|${prefixBounds(parsed).lo}`);
      if (hit === undefined) continue;
      const where =
        hit.owner === d
          ? "this network's addresses"
          : `the addresses of ${hit.owner.name === undefined ? "another network" : `network ${quoteString(hit.owner.name)}`}`;
      out.push({
        path: ["networks", d.index, "gateway"],
        message:
          `gateway ${quoteString(gateway)} is also an LB address, in ${where} ` +
          `(${formatPath(["networks", hit.owner.index, "addresses", hit.pool.position])}): the router replies go ` +
          `back through cannot be an address MetalLB announces from a node; give the router's own address ` +
          `as gateway, and leave it out of addresses`,
      });
    }
  }
}

interface PoolEntry extends SpanEntry {
  readonly text: string;
  /** The index in podCIDRs (a pod CIDR) or in the network's addresses. */
  readonly position: number;
}

const entryPath = (e: PoolEntry): ConfigPath =>
  e.network === undefined ? ["podCIDRs", e.position] : ["networks", e.network, "addresses", e.position];

/** Pools that overlap each other or a pod CIDR, in one sorted sweep (overlaps.ts). */
function checkOverlaps(
  drafts: readonly NetworkDraft[],
  podCIDRs: readonly string[] | undefined,
  out: Issue[],
) {
  const pods = podCIDRs ?? [];
  const entries: PoolEntry[] = pods.map((text, i) => {
    const { family, lo, hi } = draftPool(text, i);
    return { family, lo, hi, network: undefined, order: i - pods.length, text, position: i };
  });
  for (const d of drafts)
    for (const p of d.pools)
      entries.push({
        family: p.family,
        lo: p.lo,
        hi: p.hi,
        network: d.index,
        order: entries.length,
        text: p.text,
        position: p.position,
      });
  const overlaps = findSpanOverlaps(entries);
  overlaps.sort((a, b) => a.entry.order - b.entry.order || a.other.order - b.other.order);
  for (const { entry, other, kind } of overlaps) {
    const owner = other.network === undefined ? undefined : drafts[other.network];
    const where = `(${formatPath(entryPath(other))})`;
    const what =
      kind === "pod"
        ? `pod CIDR ${quoteString(other.text)} ${where}; load-balancer addresses must not be pod addresses`
        : kind === "same-network"
          ? `${quoteString(other.text)} ${where} of the same network; list each address once`
          : `${quoteString(other.text)} of ${owner?.name === undefined ? "another network" : `network ${quoteString(owner.name)}`} ` +
            `${where}; the pools of different networks must not overlap`;
    out.push({ path: entryPath(entry), message: `address ${quoteString(entry.text)} overlaps ${what}` });
  }
}

/** Room for a table per network that needs one, and a mark value per network that may need one. */
function checkCapacity(
  drafts: readonly NetworkDraft[],
  tables: Range | undefined,
  marks: MarkSettings | undefined,
  out: Issue[],
) {
  if (tables !== undefined) {
    const need = drafts.filter(
      (d) => d.table === undefined && d.method !== "none" && d.method !== "route",
    ).length;
    const size = tables.to - tables.from + 1;
    if (need > size)
      out.push({
        path: ["tables"],
        message:
          `tables ${tables.from}-${tables.to} holds ${counted(size, "table")} but ${need} networks need one ` +
          `(those without table whose method is auto, source or connmark); widen the range`,
      });
  }
  if (marks === undefined) return;
  for (const name of marks.avoid) {
    const bits = KNOWN_MARK_OWNERS[name] ?? 0;
    const shared = (marks.mask & bits) >>> 0;
    if (shared !== 0)
      out.push({
        path: ["marks", "mask"],
        message:
          `marks.mask ${formatHex(marks.mask)} shares bits ${formatHex(shared)} with ${name} (which uses ` +
          `${formatHex(bits)}); choose a mask clear of them, or remove ${quoteString(name)} from marks.avoid`,
      });
  }
  const need = drafts.filter((d) => {
    const hasGateway =
      d.gateways !== undefined && (d.gateways[4] !== undefined || d.gateways[6] !== undefined);
    return d.method === "connmark" || (d.method === "auto" && hasGateway);
  }).length;
  const room = 2 ** popcount(marks.mask) - 1;
  if (need > room)
    out.push({
      path: ["marks", "mask"],
      message:
        `marks.mask ${formatHex(marks.mask)} has room for ${counted(room, "network")} with a gateway but ${need} ` +
        `may need a mark (method connmark, or auto with a gateway); give the mask more bits`,
    });
}

/** Every problem across fields; the drafts come from what the schema accepted. */
export function checkAcrossFields(drafts: Drafts): Issue[] {
  const out: Issue[] = [];
  const networks = drafts.networks.map((d) => checkNetwork(d, out));
  const pools = networks.reduce((n, d) => n + d.pools.length, 0);
  if (pools > MAX_POOLS)
    out.push({
      path: ["networks"],
      message: `networks list ${pools} addresses in all; symroute handles at most ${MAX_POOLS}`,
    });
  else {
    checkShared(networks, out);
    checkOverlaps(networks, drafts.podCIDRs, out);
    checkGatewaysAmongPools(networks, out);
  }
  checkCapacity(networks, drafts.tables, drafts.marks, out);
  const mode = drafts.kubeProxyMode;
  if (mode === "iptables" || mode === "nftables") {
    for (const d of networks) {
      if (d.method !== "source") continue;
      // KERNEL-FACTS 2: the reply is routed before the DNAT is undone, with the backend's source.
      out.push({
        path: ["networks", d.index, "method"],
        message:
          `method "source" does not work with kubeProxyMode ${mode}: kube-proxy DNATs the LB address, ` +
          `so replies are routed with the backend's address and never match "from POOL"; use method ` +
          `connmark (or auto)`,
      });
    }
  }
  return out;
}
