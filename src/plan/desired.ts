// config + observed node -> the objects symroute wants on the node, with a reason for each network.
// Pure: the same inputs always give the same desired state (allocations come from the saved state).

import {
  familyBits,
  formatCidr,
  formatIp,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixContainsIp,
  type Family,
  type Prefix,
} from "../model/address.ts";
import type { Config, KubeProxyMode, NetworkConfig } from "../config/schema.ts";
import { SymrouteError } from "../model/errors.ts";
import { formatHex, markIndexOf, markValueForIndex, popcount } from "../model/marks.ts";
import {
  SCOPE_LINK,
  SCOPE_UNIVERSE,
  TABLE_MAIN,
  RESERVED_TABLES,
  type FirewallBackend,
  type Link,
  type RoutingState,
  type Route,
  type Rule,
} from "../model/state.ts";
import type { ArpProbe, MarkEntry, SpoofGuard } from "../model/firewall.ts";
import {
  warningMessages,
  type Allocation,
  type Allocations,
  type CaseName,
  type DesiredState,
  type NetworkDecision,
  type PlanWarning,
  type ResolvedMethod,
  type RuleSkip,
} from "./types.ts";
import type { VlanSpec } from "../model/change.ts";
import {
  creatingLinks,
  desiredSysctls,
  disableIpv6Name,
  leavingLinks,
  loweredRpFilter,
  type SysctlInput,
} from "./sysctls.ts";
import { describeRule, formerProtocols, mayOverlap, ownsProtocol } from "./diff.ts";
import { counted } from "../model/plural.ts";

export interface SavedPlanningState {
  readonly allocations: Allocations;
  /** Values networks held before and none holds now, by that network (new ones avoid them). */
  readonly freedAllocations?: Allocations;
  readonly previousSysctls: Readonly<Record<string, string>>;
  /** The protocol symroute's routes and rules carried when the state was written, and former ones. */
  readonly routeProtocol?: number;
  readonly formerRouteProtocols?: readonly number[];
  /** VLAN links symroute created (the diff deletes those no network wants any more). */
  readonly createdLinks?: readonly string[];
}

export interface DesiredInput {
  readonly config: Config;
  readonly node: RoutingState;
  readonly saved: SavedPlanningState | undefined;
  readonly firewall: FirewallBackend;
  readonly kubeProxyMode: Exclude<KubeProxyMode, "auto">;
}

/**
 * Where the kube-proxy mode came from: the config, kube-proxy's traces on the node (`auto`), or
 * nothing found (`auto` assumes iptables, which is wrong on an IPVS node whose kube-proxy has not
 * started yet: worth saying).
 */
export type KubeProxyModeSource = "config" | "detected" | "assumed";

/** The desired state of no configuration (delete, or nothing to plan): symroute wants nothing. */
export const EMPTY_DESIRED: DesiredState = {
  decisions: [],
  routes: [],
  rules: [],
  sysctls: {},
  firewall: undefined,
  vlans: [],
  allocations: {},
  warnings: [],
  warningDetails: [],
};

/** kube-proxy's mode for the plan, and where it came from. */
export function resolveKubeProxyMode(
  config: Config,
  node: RoutingState,
): { readonly mode: Exclude<KubeProxyMode, "auto">; readonly source: KubeProxyModeSource } {
  if (config.kubeProxyMode !== "auto") return { mode: config.kubeProxyMode, source: "config" };
  const traces = node.kubeProxy;
  if (traces?.ipvsLink === true) return { mode: "ipvs", source: "detected" };
  if (traces?.nftablesTable === true && traces.iptablesChains !== true) {
    return { mode: "nftables", source: "detected" };
  }
  const found = traces?.nftablesTable === true || traces?.iptablesChains === true;
  return { mode: "iptables", source: found ? "detected" : "assumed" };
}

export function resolveFirewall(config: Config, available: readonly FirewallBackend[]): FirewallBackend {
  const wanted = config.firewall;
  if (wanted !== "auto") {
    if (!available.includes(wanted)) {
      throw new SymrouteError("dependency", `firewall: ${wanted} is not usable on this node`, {
        hint: `install the Debian package ${wanted} or set firewall: auto`,
      });
    }
    return wanted;
  }
  const pick = available.includes("nftables")
    ? "nftables"
    : available.includes("iptables")
      ? "iptables"
      : undefined;
  if (pick === undefined) {
    throw new SymrouteError("dependency", "neither nft nor iptables works on this node", {
      hint: "install the Debian package nftables (or iptables)",
    });
  }
  return pick;
}

interface FamilyContext {
  readonly network: NetworkConfig;
  readonly family: Family;
  readonly pools: readonly Prefix[];
  /** The pools as text, in the same order: formatted once, used by reasons, routes and marks. */
  readonly poolTexts: readonly string[];
  readonly gateway: string | undefined;
}

/** The network's pools of each family it has, every address parsed and formatted once. */
function familyContexts(network: NetworkConfig): FamilyContext[] {
  const v4: Prefix[] = [];
  const v6: Prefix[] = [];
  for (const address of network.addresses) {
    const p = parsePrefix(address);
    if (p !== undefined) (p.family === 4 ? v4 : v6).push(p);
  }
  const contexts: FamilyContext[] = [];
  if (v4.length > 0) contexts.push(familyContext(network, 4, v4));
  if (v6.length > 0) contexts.push(familyContext(network, 6, v6));
  return contexts;
}

const familyContext = (network: NetworkConfig, family: Family, pools: readonly Prefix[]): FamilyContext => ({
  network,
  family,
  pools,
  poolTexts: pools.map(formatPrefixText),
  gateway: network.gateways[family],
});

/** What classification needs from the node, indexed once (thousands of networks share it). */
interface NodeFacts {
  /** Connected subnets by family, then interface. */
  readonly subnets: ReadonlyMap<Family, ReadonlyMap<string, readonly Prefix[]>>;
  readonly mainDefaults: ReadonlyMap<Family, readonly Route[]>;
  /** Where main's default route sends replies today, in words, by family. */
  readonly mainDefaultText: Readonly<Record<Family, string>>;
  /** subnetsKey's texts, by interface, made when first asked for. */
  readonly subnetKeys: Map<string, string>;
}

function nodeFacts(node: RoutingState): NodeFacts {
  const subnets = new Map<Family, Map<string, Prefix[]>>([
    [4, new Map()],
    [6, new Map()],
  ]);
  for (const a of node.addresses) {
    const p = parsePrefix(`${a.local}/${a.prefixlen}`);
    const byInterface = subnets.get(a.family);
    if (p === undefined || byInterface === undefined) continue;
    byInterface.set(a.ifname, [...(byInterface.get(a.ifname) ?? []), p]);
  }
  const mainDefaults = new Map<Family, Route[]>();
  for (const r of node.routes) {
    if (r.table !== TABLE_MAIN || r.dst !== "default" || r.type !== "unicast") continue;
    mainDefaults.set(r.family, [...(mainDefaults.get(r.family) ?? []), r]);
  }
  const describe = (family: Family): string => {
    const current = mainDefaults.get(family)?.[0];
    return current === undefined
      ? "main has no default route"
      : `main would send them via ${current.gateway ?? "a direct route"} on ${current.dev ?? "?"}`;
  };
  return {
    subnets,
    mainDefaults,
    mainDefaultText: { 4: describe(4), 6: describe(6) },
    subnetKeys: new Map(),
  };
}

interface Classified {
  readonly ctx: FamilyContext;
  readonly method: ResolvedMethod;
  readonly case: CaseName;
  readonly reason: string;
}

function classify(
  ctx: FamilyContext,
  facts: NodeFacts,
  kubeProxyMode: Exclude<KubeProxyMode, "auto">,
): Classified {
  const { network, family, pools, gateway } = ctx;
  const poolText = ctx.poolTexts.join(", ");

  if (network.method !== "auto") {
    const m = network.method;
    return {
      ctx,
      method: m,
      case: caseOf(m),
      reason: `method ${m} is set in the configuration for ${poolText}`,
    };
  }
  if (gateway === undefined) {
    const connected = facts.subnets.get(family)?.get(network.interface) ?? [];
    const onNodeSubnet = pools.every((pool) => connected.some((subnet) => prefixContains(subnet, pool)));
    if (onNodeSubnet) {
      return {
        ctx,
        method: "none",
        case: "nothing-to-do",
        reason: `${poolText} is on a subnet of ${network.interface}: replies already use the node's own routes`,
      };
    }
    return {
      ctx,
      method: "route",
      case: "route",
      // Only the interface's own subnets: a part is kept while they are unchanged (desired-memo);
      // a pool on another interface's subnet is warned about for the whole plan (otherSubnetWarnings).
      reason: `${poolText} is on no subnet of ${network.interface} and has no gateway: it needs a route via ${network.interface}`,
    };
  }
  // With a gateway: what would the kernel do with a reply today? main's default route decides.
  const mainDefaults = facts.mainDefaults.get(family) ?? [];
  const viaSameGateway = mainDefaults.some((r) => r.gateway === gateway && r.dev === network.interface);
  if (viaSameGateway) {
    return {
      ctx,
      method: "none",
      case: "nothing-to-do",
      reason: `replies from ${poolText} already leave through ${gateway} on ${network.interface} (main's default route)`,
    };
  }
  const today = facts.mainDefaultText[family];
  if (kubeProxyMode === "ipvs") {
    return {
      ctx,
      method: "source",
      case: "source-routing",
      reason: `${poolText} has gateway ${gateway} but ${today}; with IPVS the LB address is local, so a source rule routes replies`,
    };
  }
  return {
    ctx,
    method: "connmark",
    case: "policy-routing",
    reason: `${poolText} has gateway ${gateway} but ${today}: replies need a table of their own, chosen by a connection mark`,
  };
}

/**
 * A network whose pools of one family have no gateway while the other family has one: most likely a
 * forgotten gateway. The kernel routes replies of that family by main: a client beyond a router gets
 * its reply through main's default route, not back through the pool's interface (where a router that
 * checks sources drops it, or it never arrives). A warning rather than an error: clients on the
 * interface's own link are served, and that setup is legitimate (docs/config.md).
 */
function halfGatewayWarnings(
  classified: readonly Classified[],
  facts: NodeFacts,
  warnings: PlanWarning[],
): void {
  for (const c of classified) {
    const { network, family, gateway, poolTexts } = c.ctx;
    if (gateway !== undefined) continue;
    const other: Family = family === 4 ? 6 : 4;
    const otherGateway = network.gateways[other];
    if (otherGateway === undefined) continue;
    warnings.push({
      kind: "half-gateway",
      message:
        `network "${network.name}": IPv${family} pools ${poolTexts.join(", ")} have no IPv${family} gateway while IPv${other} has ${otherGateway}: ` +
        `symroute treats them as on-link on ${network.interface} (method ${c.method}), and the kernel routes replies to IPv${family} clients beyond that link by main, ` +
        `not back through ${network.interface} (${facts.mainDefaultText[family]}); add the IPv${family} router to gateway if such clients exist`,
      networks: [network.name],
    });
  }
}

/**
 * A pool on a subnet of another interface than its network's (most often the wrong `interface:`):
 * symroute's routes for it take those addresses away from that interface. A warning: a pool carved
 * out of a subnet and delivered on another link is possible, but rare. Over the final decisions, not
 * in a network's part: it depends on every interface's subnets, which a kept part does not.
 */
function otherSubnetWarnings(
  decisions: readonly NetworkDecision[],
  facts: NodeFacts,
  warnings: PlanWarning[],
): void {
  const texts = new Map<Family, string>();
  for (let i = 0; i < decisions.length; i++) {
    const d = decisions[i] as NetworkDecision;
    if (d.method === "none") continue;
    let subnets = texts.get(d.family);
    if (subnets === undefined) texts.set(d.family, (subnets = allSubnetsText(facts, d.family)));
    const kept = otherSubnetFindings.get(d);
    const warning =
      kept !== undefined && kept.subnets === subnets ? kept.warning : otherSubnetWarning(d, facts);
    if (kept?.subnets !== subnets) otherSubnetFindings.set(d, { subnets, warning });
    if (warning !== undefined) warnings.push(warning);
  }
}

/**
 * otherSubnetWarning's answer for a decision object (kept with its network's part, so the same
 * object plan after plan), with every interface's subnets of its family it was made from, as text:
 * the same decision against the same subnets finds the same.
 */
const otherSubnetFindings = new WeakMap<
  NetworkDecision,
  { readonly subnets: string; readonly warning: PlanWarning | undefined }
>();

/** Every interface's subnets of `family`, in the facts' order, as text. */
function allSubnetsText(facts: NodeFacts, family: Family): string {
  let text = "";
  for (const [ifname, subnets] of facts.subnets.get(family) ?? [])
    text += `${ifname} ${subnets.map(formatCidr).join(",")}|`;
  return text;
}

function otherSubnetWarning(d: NetworkDecision, facts: NodeFacts): PlanWarning | undefined {
  const found: string[] = [];
  for (const [ifname, subnets] of facts.subnets.get(d.family) ?? []) {
    if (ifname === d.interface) continue;
    for (const subnet of subnets)
      if (d.pools.some((pool) => prefixContains(subnet, parsePrefix(pool) ?? subnet)))
        found.push(`${ifname}'s ${formatPrefixText(subnet)}`);
  }
  if (found.length === 0) return undefined;
  return {
    kind: "pool-on-other-interface",
    message:
      `network "${d.name}": ${d.pools.join(", ")} is on ${found.join(", ")}, but its interface is ${d.interface}: ` +
      `symroute's routes for it (method ${d.method}) take these addresses away from that link; if MetalLB announces them there, set interface to it`,
    networks: [d.name],
  };
}

const usesTable = (c: Classified): boolean => c.method === "source" || c.method === "connmark";
const usesMark = (c: Classified): boolean => c.method === "connmark";

const caseOf = (method: ResolvedMethod): CaseName =>
  method === "none"
    ? "nothing-to-do"
    : method === "route"
      ? "route"
      : method === "connmark"
        ? "policy-routing"
        : "source-routing";

/**
 * Tables and marks stay where the saved state put them; new ones take the lowest value no network
 * held in the previous record, and only when the room has none left, the lowest one a network held
 * and no longer does (its connections still in conntrack carry that mark: computeDesired warns).
 */
class Allocator {
  private readonly usedTables = new Set<number>();
  private readonly usedMarks = new Set<number>();
  private nextTable: number;
  private nextMarkIndex = 1;
  private nextHeldTable: number;
  private nextHeldMarkIndex = 1;

  constructor(
    private readonly config: Config,
    foreignTables: ReadonlySet<number>,
    /** Values a network held in the previous record (or one removed before, still remembered). */
    private readonly heldTables: ReadonlySet<number>,
    private readonly heldMarks: ReadonlySet<number>,
  ) {
    for (const t of foreignTables) this.usedTables.add(t);
    for (const t of RESERVED_TABLES) this.usedTables.add(t);
    for (const n of config.networks) if (n.table !== undefined) this.usedTables.add(n.table);
    this.nextTable = config.tables.from;
    this.nextHeldTable = config.tables.from;
  }

  claim(table: number | undefined, mark: number | undefined): void {
    if (table !== undefined) this.usedTables.add(table);
    if (mark !== undefined) this.usedMarks.add(mark);
  }

  tableFree(table: number): boolean {
    return !this.usedTables.has(table);
  }

  markFree(mark: number): boolean {
    return !this.usedMarks.has(mark);
  }

  table(): number {
    while (this.usedTables.has(this.nextTable) || this.heldTables.has(this.nextTable)) this.nextTable++;
    if (this.nextTable <= this.config.tables.to) {
      const t = this.nextTable;
      this.usedTables.add(t);
      return t;
    }
    while (this.usedTables.has(this.nextHeldTable)) this.nextHeldTable++;
    if (this.nextHeldTable > this.config.tables.to) {
      throw new SymrouteError(
        "invalid-argument",
        `tables: the range ${this.config.tables.from}..${this.config.tables.to} has no free table left`,
        { hint: "widen tables.to, or give networks an explicit table" },
      );
    }
    const t = this.nextHeldTable;
    this.usedTables.add(t);
    return t;
  }

  mark(): number {
    const mask = this.config.marks.mask;
    for (;;) {
      const value = markValueForIndex(this.nextMarkIndex, mask);
      if (value === undefined) break;
      this.nextMarkIndex++;
      if (!this.usedMarks.has(value) && !this.heldMarks.has(value)) {
        this.usedMarks.add(value);
        return value;
      }
    }
    for (;;) {
      const value = markValueForIndex(this.nextHeldMarkIndex, mask);
      if (value === undefined) {
        throw new SymrouteError(
          "invalid-argument",
          `marks.mask ${formatHex(mask)} has ${popcount(mask)} bits: room for ${2 ** popcount(mask) - 1} networks with a gateway, and more are configured`,
          { hint: "widen marks.mask with bits no other component on the node uses" },
        );
      }
      this.nextHeldMarkIndex++;
      if (!this.usedMarks.has(value)) {
        this.usedMarks.add(value);
        return value;
      }
    }
  }
}

/**
 * The values a network held in the saved record (or one removed earlier, still remembered) that no
 * network holds now, by the network that held them: new networks avoid them while the room has
 * others, and a network of that name that comes back takes its own again.
 */
function freedAllocations(
  config: Config,
  saved: SavedPlanningState | undefined,
  held: Allocations,
): Record<string, { table?: number; mark?: number }> {
  const heldTables = new Set<number>();
  const heldMarks = new Set<number>();
  for (const name in held) {
    const a = held[name] as Allocation;
    if (a.table !== undefined) heldTables.add(a.table);
    if (a.mark !== undefined) heldMarks.add(a.mark);
  }
  for (let i = 0; i < config.networks.length; i++) {
    const table = (config.networks[i] as NetworkConfig).table;
    if (table !== undefined) heldTables.add(table);
  }
  const kinds = [
    { key: "table", held: heldTables, fits: (v: number) => tableInRange(config, v) },
    { key: "mark", held: heldMarks, fits: (v: number) => markUnderMask(config, v) },
  ] as const;
  const freed: Record<string, { table?: number; mark?: number }> = {};
  // The saved record's own values first: a network's latest value is the one its connections carry.
  for (const record of [saved?.allocations ?? {}, saved?.freedAllocations ?? {}]) {
    for (const name in record) {
      const a = record[name] as Allocation;
      // Most saved values are held by a network still there: nothing is made for them.
      let entry = freed[name];
      for (const kind of kinds) {
        const value = a[kind.key];
        if (entry?.[kind.key] !== undefined || value === undefined) continue;
        if (!kind.fits(value) || kind.held.has(value)) continue;
        entry ??= {};
        entry[kind.key] = value;
        kind.held.add(value);
      }
      if (entry !== undefined) freed[name] = entry;
    }
  }
  return freed;
}

const tableInRange = (config: Config, table: number): boolean =>
  table >= config.tables.from && table <= config.tables.to;
const markUnderMask = (config: Config, mark: number): boolean =>
  mark !== 0 && (mark & ~config.marks.mask) === 0;

/** plan's warning for a new network given a mark another network held: its open connections. */
function markReuseWarning(
  network: NetworkConfig,
  mark: number,
  table: number | undefined,
  heldBy: string,
  mask: number,
): string {
  const check = `${formatHex(mark)}/${formatHex(mask)}`;
  const gateways = Object.values(network.gateways).filter((g) => g !== undefined);
  return (
    `network "${network.name}" takes mark ${formatHex(mark)}, which network "${heldBy}" held ` +
    `(marks.mask ${formatHex(mask)} has no value left that no network held): connections to "${heldBy}"'s pools ` +
    `still open carry ${formatHex(mark)} in their ct mark, so their replies are routed by ` +
    `${table === undefined ? `network "${network.name}"'s table` : `table ${table} (network "${network.name}"'s)`} ` +
    `and leave by ${gateways.length === 0 ? "its gateway" : `its gateway ${gateways.join(", ")}`} until they close. ` +
    `List them with conntrack -L -m ${check}, or end them with conntrack -D -m ${check}`
  );
}

/**
 * The bridge (or bond, team, Open vSwitch datapath) `link` is a port of: that device's receive
 * handler takes every packet arriving on the port, so the IP layer sees the master as the input
 * interface (measured with a bridge and real traffic: br0's rp_filter decides, ARP replies land on
 * br0; `ip route get ... iif PORT` does not show it). A VRF is left out: its ports keep their packets.
 */
export function portOf(link: Link | undefined, links: ReadonlyMap<string, Link>): Link | undefined {
  if (link?.master === undefined) return undefined;
  const master = links.get(link.master);
  return master === undefined || master.kind === "vrf" ? undefined : master;
}

/** A network's field named as the configuration's checks name it: its path, then the network's name. */
const whereInConfig = (index: number, network: NetworkConfig, field: string): string =>
  `networks[${index}].${field} (network "${network.name}")`;

export function computeDesired(input: DesiredInput): DesiredState {
  const { config, node, saved } = input;
  const proto = config.routeProtocol;
  const linkNames = new Set(node.links.map((l) => l.ifname));
  const problems: string[] = [];
  const warnings: PlanWarning[] = [];
  const vlans: VlanSpec[] = [];

  const linksByName = new Map(node.links.map((l) => [l.ifname, l]));
  // Interfaces the config names that are administratively down: no route through them can be added
  // (measured: IPv4 and IPv6 refuse it, and the kernel deletes those routes when the link goes down),
  // so they are left out and every other network still converges; the link's event brings them.
  const downInterfaces = new Set<string>();
  const ipv6DisabledInterfaces = new Set<string>();
  // Indexed loops over the networks here and below: under the agent's --lite-mode every step of a
  // for-of allocates (its iterator's result, the entries' pairs), a thousand networks at a time.
  for (let index = 0; index < config.networks.length; index++) {
    const network = config.networks[index] as NetworkConfig;
    const where = (field: string): string => whereInConfig(index, network, field);
    const link = linksByName.get(network.interface);
    if (network.vlan !== undefined) {
      if (link === undefined) {
        if (!linkNames.has(network.vlan.parent)) {
          problems.push(
            `${where("vlan.parent")}: interface "${network.vlan.parent}" does not exist on this node`,
          );
        }
      } else if (
        link.kind !== undefined &&
        (link.kind !== "vlan" || link.vlanId !== network.vlan.id || link.link !== network.vlan.parent)
      ) {
        problems.push(
          `${where("interface")}: interface "${network.interface}" exists but is not VLAN ${network.vlan.id} on ${network.vlan.parent}`,
        );
      }
      // Wanted whether or not it is there yet: the diff adds it when missing, and keeps the one
      // symroute created (listed only when missing, the next run deleted it as no longer wanted).
      vlans.push({ ifname: network.interface, parent: network.vlan.parent, id: network.vlan.id });
    } else if (link === undefined) {
      problems.push(`${where("interface")}: interface "${network.interface}" does not exist on this node`);
    }
    const master = portOf(link, linksByName);
    if (master !== undefined) {
      warnings.push({
        kind: "interface-is-port",
        message:
          `interface "${network.interface}" (network "${network.name}") is a port of ${master.kind ?? "device"} "${master.ifname}": ` +
          `the kernel hands every packet arriving on it to ${master.ifname}, so rp_filter, routing and ARP see ${master.ifname}, ` +
          `and requests for its pools and replies sent through ${network.interface} fail: set interface: ${master.ifname}`,
        networks: [network.name],
      });
    }
    // A VLAN symroute created and someone set down, too.
    if (link !== undefined && !link.up) {
      warnings.push({
        kind: "interface-down",
        message:
          `interface "${network.interface}" (network "${network.name}") is down: requests cannot arrive; ` +
          `its routes are left out until it is up (the kernel refuses a route through a down interface, and removed those it had)`,
        networks: [network.name],
      });
      downInterfaces.add(network.interface);
    } else if (
      link !== undefined &&
      node.sysctls[disableIpv6Name(network.interface)] === "1" &&
      network.addresses.some((a) => a.includes(":"))
    ) {
      // IPv6 off on the interface: the kernel refuses an IPv6 route through it ("IPv6 is disabled
      // on nexthop device") and drops every IPv6 packet arriving there (measured), so its IPv6
      // routes are left out like a down link's; turning IPv6 on (an address event) brings them.
      warnings.push({
        kind: "ipv6-disabled",
        message:
          `IPv6 is disabled on interface "${network.interface}" (network "${network.name}", net.ipv6.conf.${network.interface}.disable_ipv6 1): ` +
          `requests for its IPv6 pools cannot arrive; its IPv6 routes are left out until IPv6 is on there ` +
          `(the kernel refuses an IPv6 route through it): sysctl -w net.ipv6.conf.${network.interface}.disable_ipv6=0`,
        networks: [network.name],
      });
      ipv6DisabledInterfaces.add(network.interface);
    }
  }
  // A gateway that is an address of this node (the node's own address written for the router's) is
  // accepted by the kernel, with the gateway's host route on the pool's interface: replies are then
  // sent to an address nothing on that link answers for. Said, not refused.
  const localAddresses = new Map<string, string>(
    node.addresses.map((a) => [`${a.family}|${a.local}`, a.ifname]),
  );
  for (let i = 0; i < config.networks.length; i++) {
    const network = config.networks[i] as NetworkConfig;
    for (const family in network.gateways) {
      const gateway = network.gateways[Number(family) as Family];
      const ifname = localAddresses.get(`${family}|${gateway}`);
      if (ifname !== undefined)
        warnings.push({
          kind: "gateway-is-node-address",
          message: `network "${network.name}": gateway ${gateway} is an address of this node (on ${ifname}), not a router: replies for its pools would be sent to the node itself and never leave; give the address of the router behind ${network.interface}`,
          networks: [network.name],
        });
    }
  }
  if (problems.length > 0) {
    throw new SymrouteError(
      "dependency",
      `${counted(problems.length, "problem")} with interfaces on this node`,
      {
        details: problems,
        hint: "create the interfaces (or add vlan: to the network), correct interface: in the configuration, or run on the right node or namespace (ip -br link lists this one's); `symroute doctor` diagnoses the other networks",
      },
    );
  }

  // Tables that something else uses are never handed out. Objects under a protocol symroute had
  // before a move of routeProtocol are its own (diff.ts deletes or re-makes them).
  const owns = ownsProtocol({ routeProtocol: proto, formerRouteProtocols: formerProtocols(proto, saved) });
  const foreign = (protocol: number | undefined): boolean => !owns(protocol);
  const foreignTables = new Set<number>();
  for (const r of node.routes) if (foreign(r.protocol)) foreignTables.add(r.table);
  for (const r of node.rules) if (foreign(r.protocol) && r.table !== undefined) foreignTables.add(r.table);
  const savedAllocations = saved?.allocations ?? {};
  const freedBefore = saved?.freedAllocations ?? {};
  // Who held each value in the previous record: the saved networks', over those removed before.
  const tableHolders = new Map<number, string>();
  const markHolders = new Map<number, string>();
  for (const record of [freedBefore, savedAllocations]) {
    for (const name in record) {
      const a = record[name] as Allocation;
      if (a.table !== undefined) tableHolders.set(a.table, name);
      if (a.mark !== undefined) markHolders.set(a.mark, name);
    }
  }
  const allocator = new Allocator(
    config,
    foreignTables,
    new Set(tableHolders.keys()),
    new Set(markHolders.keys()),
  );
  // Each network's previous values that stay its own: its saved ones, else (it was removed and is
  // back) the ones it held then, if no other network took them since.
  const previousOf = new Map<string, { table?: number; mark?: number }>();
  for (let i = 0; i < config.networks.length; i++) {
    const network = config.networks[i] as NetworkConfig;
    const a = savedAllocations[network.name];
    if (a === undefined) continue;
    // A foreign object that appeared in a table symroute already uses does not move it (the
    // operator's route would silently lose its effect): it is reported as a conflict (diff.ts).
    const table = a.table !== undefined && tableInRange(config, a.table) ? a.table : undefined;
    const mark = a.mark !== undefined && markUnderMask(config, a.mark) ? a.mark : undefined;
    allocator.claim(table, mark);
    previousOf.set(network.name, {
      ...(table === undefined ? {} : { table }),
      ...(mark === undefined ? {} : { mark }),
    });
  }
  for (let i = 0; i < config.networks.length; i++) {
    const network = config.networks[i] as NetworkConfig;
    const a = freedBefore[network.name];
    if (a === undefined || savedAllocations[network.name] !== undefined) continue;
    const table =
      a.table !== undefined && tableInRange(config, a.table) && allocator.tableFree(a.table)
        ? a.table
        : undefined;
    const mark =
      a.mark !== undefined && markUnderMask(config, a.mark) && allocator.markFree(a.mark)
        ? a.mark
        : undefined;
    allocator.claim(table, mark);
    previousOf.set(network.name, {
      ...(table === undefined ? {} : { table }),
      ...(mark === undefined ? {} : { mark }),
    });
  }

  const facts = nodeFacts(node);
  const decisions: NetworkDecision[] = [];
  const routes: Route[] = [];
  const rules: Rule[] = [];
  const marks: MarkEntry[] = [];
  const allocations: Record<string, { table?: number; mark?: number }> = {};
  const allocatedTables = new Set<number>();
  const settings = partSettings(config, input.kubeProxyMode);
  const global = `${input.kubeProxyMode}|${mainDefaultsKey(facts)}`;

  for (let i = 0; i < config.networks.length; i++) {
    const network = config.networks[i] as NetworkConfig;
    // What this network adds depends on the network, the node's facts it was classified by, the
    // settings and its table and mark alone: kept per network object (the agent's config re-read
    // keeps the objects of unchanged entries), and made again when any of them differs.
    const kept = networkParts.get(network);
    const subnets = subnetsKey(facts, network.interface);
    const classified =
      kept !== undefined && kept.global === global && kept.subnets === subnets
        ? kept.classified
        : familyContexts(network).map((c) => classify(c, facts, input.kubeProxyMode));
    const needsTable = classified.some(usesTable);
    const needsMark = classified.some(usesMark);
    const previous = previousOf.get(network.name);
    let table: number | undefined;
    let mark: number | undefined;
    if (needsTable) {
      table = network.table ?? previous?.table ?? allocator.table();
      if (network.table === undefined) allocatedTables.add(table);
    }
    if (needsMark) {
      mark = previous?.mark;
      if (mark === undefined) {
        mark = allocator.mark();
        const heldBy = markHolders.get(mark);
        if (heldBy !== undefined && heldBy !== network.name)
          // About this network: the one that held the mark is named, not concerned.
          warnings.push({
            kind: "mark-reused",
            message: markReuseWarning(network, mark, table, heldBy, config.marks.mask),
            networks: [network.name],
          });
      }
    }
    const part =
      kept !== undefined &&
      kept.classified === classified &&
      kept.settings === settings.key &&
      kept.table === table &&
      kept.mark === mark
        ? kept.part
        : networkPart(network, classified, facts, settings, table, mark);
    if (part !== kept?.part)
      networkParts.set(network, { global, subnets, classified, settings: settings.key, table, mark, part });
    if (part.allocation !== undefined) allocations[network.name] = part.allocation;
    warnings.push(...part.warnings);
    decisions.push(...part.decisions);
    routes.push(...part.routes);
    rules.push(...part.rules);
    marks.push(...part.marks);
  }
  otherSubnetWarnings(decisions, facts, warnings);

  if (downInterfaces.size > 0 || ipv6DisabledInterfaces.size > 0) {
    const kept = routes.filter(
      (r) =>
        r.dev === undefined ||
        (!downInterfaces.has(r.dev) && !(r.family === 6 && ipv6DisabledInterfaces.has(r.dev))),
    );
    routes.length = 0;
    routes.push(...kept);
  }
  refuseGatewayHijack(node, routes);
  // Other tools' rules in the band: the groups are not laid over one (see groupFwmarkRules).
  const foreignInBand = node.rules.filter(
    (r) =>
      foreign(r.protocol) &&
      r.priority >= config.rulePriorities.from &&
      r.priority <= config.rulePriorities.to,
  );
  const ruleSkips = skipRules(rules, settings.layout, config.marks.mask, proto, foreignInBand);

  const sysctlInput: SysctlInput = {
    decisions,
    node,
    previous: saved?.previousSysctls ?? {},
    kubeProxyMode: input.kubeProxyMode,
    leaving: leavingLinks(saved?.createdLinks ?? [], vlans),
    creating: creatingLinks(vlans, linkNames),
  };
  const sysctls = desiredSysctls(sysctlInput);
  const guards = spoofGuards(decisions, sysctlInput, sysctls);
  const arpProbes = probesFor(decisions, facts);
  const wantsFirewall = marks.length > 0 || guards.length > 0 || arpProbes.length > 0;
  return {
    decisions,
    routes,
    rules,
    sysctls,
    firewall: wantsFirewall
      ? {
          backend: input.firewall,
          mask: config.marks.mask,
          entries: marks,
          ...(guards.length > 0 ? { guards } : {}),
          ...(arpProbes.length > 0 ? { arpProbes } : {}),
        }
      : undefined,
    vlans,
    allocations,
    ...freedField(freedAllocations(config, saved, allocations)),
    warnings: warningMessages(warnings),
    warningDetails: warnings,
    ...(allocatedTables.size > 0 ? { allocatedTables: [...allocatedTables].sort((a, b) => a - b) } : {}),
    ...(ruleSkips.length > 0 ? { ruleSkips } : {}),
  };
}

const freedField = (
  freed: Record<string, { table?: number; mark?: number }>,
): { freedAllocations?: Allocations } => (Object.keys(freed).length === 0 ? {} : { freedAllocations: freed });

const ALL_MARK_BITS = 0xffffffff;

/** What one network adds to the desired state (computeDesired appends them in the networks' order). */
interface NetworkPart {
  readonly decisions: readonly NetworkDecision[];
  readonly routes: readonly Route[];
  readonly rules: readonly Rule[];
  readonly marks: readonly MarkEntry[];
  readonly warnings: readonly PlanWarning[];
  readonly allocation: Allocation | undefined;
}

/** The configuration's settings a network's part depends on, and all of them as one text. */
interface PartSettings {
  readonly key: string;
  readonly protocol: number;
  readonly layout: BandLayout;
  readonly fwmask: number | undefined;
  readonly podCidrs: Readonly<Record<Family, readonly string[]>>;
}

function partSettings(config: Config, kubeProxyMode: Exclude<KubeProxyMode, "auto">): PartSettings {
  const podCidrs: Record<Family, string[]> = { 4: [], 6: [] };
  for (const cidr of config.podCIDRs) {
    const family = parsePrefix(cidr)?.family;
    if (family !== undefined) podCidrs[family].push(cidr);
  }
  const { from, to } = config.rulePriorities;
  return {
    key: `${kubeProxyMode}|${config.routeProtocol}|${from}-${to}|${config.marks.mask}|${config.podCIDRs.join(",")}`,
    protocol: config.routeProtocol,
    layout: bandLayout(config.rulePriorities),
    fwmask: config.marks.mask === ALL_MARK_BITS ? undefined : config.marks.mask,
    podCidrs,
  };
}

/**
 * The last part made for each network object, with what it was made from: the node's facts its
 * classification read (main's default routes, the subnets on its interface, as text), the settings,
 * its table and mark. A part is only ever reused for the same inputs (computeDesired is pure); the
 * WeakMap lets parts go with the configuration's objects.
 */
const networkParts = new WeakMap<
  NetworkConfig,
  {
    readonly global: string;
    readonly subnets: string;
    readonly classified: readonly Classified[];
    readonly settings: string;
    readonly table: number | undefined;
    readonly mark: number | undefined;
    readonly part: NetworkPart;
  }
>();

/** main's default routes as classification reads them, both families (a handful of routes). */
function mainDefaultsKey(facts: NodeFacts): string {
  let key = `${facts.mainDefaultText[4]}|${facts.mainDefaultText[6]}`;
  for (const family of [4, 6] as const)
    for (const r of facts.mainDefaults.get(family) ?? [])
      key += `|${family} ${r.gateway ?? ""} ${r.dev ?? ""}`;
  return key;
}

/** The subnets of an interface, both families, as text (formatted once per interface and facts). */
function subnetsKey(facts: NodeFacts, ifname: string): string {
  let key = facts.subnetKeys.get(ifname);
  if (key === undefined) {
    key = [4, 6]
      .map((f) => (facts.subnets.get(f as Family)?.get(ifname) ?? []).map(formatCidr).join(","))
      .join("|");
    facts.subnetKeys.set(ifname, key);
  }
  return key;
}

/** The network's decisions, routes, rules, marks, warnings and allocation, from its classification. */
function networkPart(
  network: NetworkConfig,
  classified: readonly Classified[],
  facts: NodeFacts,
  settings: PartSettings,
  table: number | undefined,
  mark: number | undefined,
): NetworkPart {
  const { protocol: proto, layout, fwmask, podCidrs } = settings;
  const warnings: PlanWarning[] = [];
  const decisions: NetworkDecision[] = [];
  const routes: Route[] = [];
  const rules: Rule[] = [];
  const marks: MarkEntry[] = [];
  halfGatewayWarnings(classified, facts, warnings);
  for (const c of classified) {
    const { family, pools, poolTexts, gateway } = c.ctx;
    decisions.push(decisionOf(c, usesTable(c) ? table : undefined, usesMark(c) ? mark : undefined));
    if (c.method === "none") continue;
    if (c.method === "route") {
      for (const pool of poolTexts)
        routes.push(linkRoute(family, TABLE_MAIN, pool, network.interface, proto));
      continue;
    }
    if (gateway === undefined || table === undefined) {
      throw new SymrouteError(
        "invalid-argument",
        `networks "${network.name}": method ${c.method} needs a gateway for IPv${family}`,
      );
    }
    for (const pool of poolTexts) routes.push(linkRoute(family, table, pool, network.interface, proto));
    const gw = parseIp(gateway);
    if (gw !== undefined && !pools.some((p) => prefixContainsIp(p, gw))) {
      // The gateway must be reachable on the link inside the table too.
      routes.push(linkRoute(family, table, gateway, network.interface, proto));
    }
    routes.push(defaultRoute(family, table, gateway, network.interface, proto));
    if (c.method === "source") {
      for (const pool of poolTexts) {
        for (const pod of podCidrs[family]) {
          rules.push({
            family,
            priority: layout.exemptions,
            from: pool,
            to: pod,
            action: "lookup",
            table: TABLE_MAIN,
            protocol: proto,
          });
        }
        rules.push({
          family,
          priority: layout.sourceRules,
          from: pool,
          action: "lookup",
          table,
          protocol: proto,
        });
      }
    } else if (mark !== undefined) {
      // Literals, not spreads: `ip -j rule` leaves out an all-ones mask, so it is left out here too.
      rules.push(
        fwmask === undefined
          ? { family, priority: layout.fwmarkRules, fwmark: mark, action: "lookup", table, protocol: proto }
          : {
              family,
              priority: layout.fwmarkRules,
              fwmark: mark,
              fwmask,
              action: "lookup",
              table,
              protocol: proto,
            },
      );
      marks.push({
        network: network.name,
        family,
        iif: network.interface,
        pools: poolTexts.map(toCidr),
        value: mark,
      });
    }
  }
  // Literals, not spreads of optional fields: thousands of these are built on every plan.
  const allocation =
    table === undefined && mark === undefined
      ? undefined
      : mark === undefined
        ? { table }
        : table === undefined
          ? { mark }
          : { table, mark };
  return { decisions, routes, rules, marks, warnings, allocation };
}

/** Where each kind of symroute's rules goes in its band of priorities. */
export interface BandLayout {
  /** The skip rule (`fwmark 0x0/MASK goto nop`); undefined: the band has no room for it. */
  readonly skip: number | undefined;
  /** Every connmark network's `fwmark MARK/MASK lookup TABLE`. */
  readonly fwmarkRules: number;
  /** The `nop` rule the skip lands on; undefined with skip. */
  readonly nop: number | undefined;
  /** Method source's `from POOL to POD lookup main`, which must come before its network rules. */
  readonly exemptions: number;
  /** Method source's `from POOL lookup TABLE`. */
  readonly sourceRules: number;
  /**
   * With many fwmark rules in a family (FWMARK_GROUPS_FROM), where their groups start: a second
   * skip rule at this priority, group G's fwmark rules at this + 1 + G, then a `nop` (see
   * `skipRules`); undefined: the band has no room for it (the layout without a skip).
   */
  readonly groups: number | undefined;
  /** The band's last priority: the groups and their `nop` must fit before it or on it. */
  readonly last: number;
}

/** Priorities the layout with a skip rule needs: skip, fwmark rules, nop, exemptions, source rules. */
export const SKIP_LAYOUT_PRIORITIES = 5;

/**
 * The band from B holds, in order: B the skip rule, B+1 the fwmark rules, B+2 the nop, B+3 the
 * exemptions, B+4 the source rules. The rules a packet without a mark needs (method source's)
 * come after the nop, so the skip cannot take such a packet past them; the fwmark rules keep the
 * priority they always had. A band too narrow for that (validation allows 2 priorities) keeps the
 * layout without a skip: exemptions at B, every network rule at B+1.
 */
export function bandLayout(band: { readonly from: number; readonly to: number }): BandLayout {
  const b = band.from;
  if (band.to - band.from + 1 < SKIP_LAYOUT_PRIORITIES) {
    return {
      skip: undefined,
      fwmarkRules: b + 1,
      nop: undefined,
      exemptions: b,
      sourceRules: b + 1,
      groups: undefined,
      last: band.to,
    };
  }
  return {
    skip: b,
    fwmarkRules: b + 1,
    nop: b + 2,
    exemptions: b + 3,
    sourceRules: b + 4,
    groups: b + 5,
    last: band.to,
  };
}

/**
 * From this many fwmark rules in a family on, a skip rule is added. Counted, not timed: without
 * it a packet without a mark tries every fwmark rule; with it, two rules (the skip and the nop),
 * while a marked packet (a reply symroute routes) tries one more than before. Most packets that
 * reach the rules are unmarked (every new flow through the node), so two rules saved per flow
 * outweigh one rule more per routed reply flow from three on.
 */
export const SKIP_FROM_FWMARK_RULES = 3;

/**
 * From this many fwmark rules in a family on, they are put in groups (below). Counted, not timed:
 * a marked packet (a reply symroute routes) tries every fwmark rule before its own, about 2.3 ns
 * each on Linux 6.18 (2.3 us for the last of 1,000; docs/architecture.md), and the groups cost a
 * packet one `goto` per group before its own plus the rules of its group before its own.
 */
export const FWMARK_GROUPS_FROM = 64;

/** Marks per group: the index's low 5 bits (markIndexOf) pick the rule within its group. */
export const FWMARK_GROUP_SIZE = 32;

/**
 * For each family with fwmark rules: the skip rule and its nop appended to `rules` when they pay,
 * and the decision in words either way. From FWMARK_GROUPS_FROM fwmark rules on, with room in the
 * band, the fwmark rules go in groups of FWMARK_GROUP_SIZE mark values (by the value's index under
 * the mask, markIndexOf, so a network's rule keeps its group while others come and go): group G at
 * priority `groups + 1 + G`, and at the fwmark rules' own priority one `fwmark GROUP/GROUPMASK goto`
 * per group, so a marked packet tries at most one goto per group and the rules of its own group,
 * not every network's rule. After the last group a `nop`. A packet without a mark goes past all of
 * it: the skip rule jumps to that nop, or, when the family has rules the band's unmarked packets
 * need (method source's, at the exemptions and source priorities), to the first nop as before, and
 * a second skip rule at `groups` takes it from there past the groups.
 */
function skipRules(
  rules: Rule[],
  layout: BandLayout,
  mask: number,
  protocol: number,
  foreignInBand: readonly Rule[],
): RuleSkip[] {
  const counts: Record<Family, number> = { 4: 0, 6: 0 };
  for (const r of rules) if (r.fwmark !== undefined) counts[r.family]++;
  const maskText = formatHex(mask);
  const skips: RuleSkip[] = [];
  for (const family of [4, 6] as const) {
    const fwmarkRules = counts[family];
    if (fwmarkRules === 0) continue;
    if (layout.skip === undefined || layout.nop === undefined) {
      skips.push({
        family,
        fwmarkRules,
        reason: `rulePriorities has fewer than ${SKIP_LAYOUT_PRIORITIES} priorities, too few for a skip rule: every packet without a mark in ${maskText} tries the ${counted(fwmarkRules, "fwmark rule")}`,
      });
      continue;
    }
    if (fwmarkRules < SKIP_FROM_FWMARK_RULES) {
      skips.push({
        family,
        fwmarkRules,
        reason: `only ${counted(fwmarkRules, "fwmark rule")}: a skip rule and its nop would cost a packet without a mark as many rules as it saves`,
      });
      continue;
    }
    // Never laid over another tool's rule: the skip would take the packets it can match past it.
    const { skip: from, nop: to } = layout;
    const skipRule = markZero(family, from, to, mask, protocol);
    const inTheWay = foreignInBand.find(
      (r) => r.family === family && r.priority > from && r.priority < to && mayOverlap(r, skipRule),
    );
    if (inTheWay !== undefined) {
      skips.push({
        family,
        fwmarkRules,
        reason: `no skip rule: rule ${describeRule(inTheWay)} is not symroute's and sits between the skip's priority ${layout.skip} and its nop ${layout.nop}, where packets without a mark reach it; every packet without a mark in ${maskText} tries the ${counted(fwmarkRules, "fwmark rule")}`,
      });
      continue;
    }
    const grouped =
      fwmarkRules >= FWMARK_GROUPS_FROM
        ? groupFwmarkRules(rules, family, layout, mask, protocol, foreignInBand)
        : undefined;
    const reason = `packets without a mark in ${maskText} (every new flow through the node that is not a reply symroute routes) jump from priority ${layout.skip} to ${layout.nop}, past the ${fwmarkRules} fwmark rules, instead of trying each`;
    if (grouped === undefined || typeof grouped === "string") {
      // The nop first: a goto whose target does not exist yet is ignored by the kernel, never wrong,
      // but this way the skip works from the moment it is added.
      rules.push({ family, priority: layout.nop, action: "nop", protocol });
      rules.push(skipRule);
      skips.push({
        family,
        fwmarkRules,
        skip: { priority: layout.skip, goto: layout.nop },
        reason: grouped === undefined ? reason : `${reason}; ${grouped}`,
      });
      continue;
    }
    const { groups, nop, unmarked } = grouped;
    const target = unmarked ? layout.nop : nop;
    skips.push({
      family,
      fwmarkRules,
      skip: { priority: layout.skip, goto: target },
      groups: {
        dispatch: layout.fwmarkRules,
        groups: groups.length,
        from: (layout.groups ?? 0) + 1,
        to: nop - 1,
        nop,
      },
      reason: `packets without a mark in ${maskText} (every new flow through the node that is not a reply symroute routes) jump from priority ${layout.skip} to ${target}${unmarked ? ` (the rules of method source after it), then from ${layout.groups ?? "?"} to ${nop},` : ","} past the ${fwmarkRules} fwmark rules; a marked packet (a reply symroute routes) tries one goto per group of ${FWMARK_GROUP_SIZE} mark values at ${layout.fwmarkRules} until its own (${groups.length} groups at ${(layout.groups ?? 0) + 1}-${nop - 1}), then the rules of its group, not each network's in turn`,
    });
  }
  return skips;
}

/**
 * `family`'s fwmark rules moved to their groups' priorities in `rules`, and the nops and gotos
 * appended (targets first: a goto whose target does not exist yet is ignored by the kernel, never
 * wrong, but this way each works from the moment it is added). Returns the groups, or why not:
 * also when another tool's rule sits in the priorities the skips would newly jump over (from the
 * first nop, or after the second skip, up to the groups' nop): one list's skip lands before it, so
 * every packet without a mark reaches it today, and the groups would take such packets past it.
 */
function groupFwmarkRules(
  rules: Rule[],
  family: Family,
  layout: BandLayout,
  mask: number,
  protocol: number,
  foreignInBand: readonly Rule[],
): { groups: { priority: number; value: number }[]; nop: number; unmarked: boolean } | string {
  const { groups: base, skip, nop: firstNop } = layout;
  if (base === undefined || skip === undefined || firstNop === undefined)
    return "the band has no room for groups";
  const low = markValueForIndex(FWMARK_GROUP_SIZE - 1, mask);
  if (low === undefined || popcount(mask) <= Math.log2(FWMARK_GROUP_SIZE))
    return "the mask is too small for groups";
  const groupMask = (mask & ~low) >>> 0;
  const groupOf = (mark: number): number => Math.floor(markIndexOf(mark, mask) / FWMARK_GROUP_SIZE);
  /** Each fwmark rule's group, from its kept move when the same rule object was grouped before. */
  const groupOfRule = new Map<Rule, number>();
  let last = 0;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i] as Rule;
    if (
      r.family === family &&
      r.fwmark !== undefined &&
      r.action === "lookup" &&
      r.priority === layout.fwmarkRules
    ) {
      const kept = groupedRules.get(r);
      const g = kept !== undefined && kept.mask === mask ? kept.group : groupOf(r.fwmark);
      groupOfRule.set(r, g);
      if (g > last) last = g;
    }
  }
  const nop = base + 2 + last;
  if (nop > layout.last)
    return `no room in rulePriorities for groups of fwmark rules (priorities ${layout.fwmarkRules}-${nop} needed, the band ends at ${layout.last}): a marked packet tries each fwmark rule before its own`;
  // Jumped over by packets without a mark: from the first nop with one skip, after the second skip
  // with two (method source's rules stay before it). One at the groups' nop is still reached.
  const withSourceRules = rules.some(
    (r) => r.family === family && (r.priority === layout.exemptions || r.priority === layout.sourceRules),
  );
  const jumped = withSourceRules ? base + 1 : firstNop;
  const inTheWay = foreignInBand.find((r) => r.family === family && r.priority >= jumped && r.priority < nop);
  if (inTheWay !== undefined)
    return `no groups of fwmark rules: rule priority ${inTheWay.priority}${inTheWay.table === undefined ? "" : ` lookup ${inTheWay.table}`} is not symroute's and sits where they would go (${jumped}-${nop - 1}), where packets without a mark reach it; a marked packet tries each fwmark rule before its own`;
  const used = new Map<number, number>();
  let unmarked = false;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i] as Rule;
    if (r.family !== family) continue;
    if (r.priority === layout.exemptions || r.priority === layout.sourceRules) unmarked = true;
    const g = groupOfRule.get(r);
    if (g === undefined) continue;
    const priority = base + 1 + g;
    const kept = groupedRules.get(r);
    if (kept !== undefined && kept.mask === mask && kept.moved.priority === priority) rules[i] = kept.moved;
    else {
      const moved = { ...r, priority };
      groupedRules.set(r, { mask, group: g, moved });
      rules[i] = moved;
    }
    if (!used.has(g)) used.set(g, (markValueForIndex(g * FWMARK_GROUP_SIZE, mask) ?? 0) >>> 0);
  }
  rules.push({ family, priority: nop, action: "nop", protocol });
  if (unmarked) {
    rules.push({ family, priority: firstNop, action: "nop", protocol });
    rules.push(markZero(family, base, nop, mask, protocol));
  }
  rules.push(markZero(family, skip, unmarked ? firstNop : nop, mask, protocol));
  const groups = [...used.entries()].sort((a, b) => a[0] - b[0]);
  for (const [g, value] of groups)
    rules.push({
      family,
      priority: layout.fwmarkRules,
      fwmark: value,
      fwmask: groupMask,
      action: "goto",
      goto: base + 1 + g,
      protocol,
    });
  return { groups: groups.map(([g, value]) => ({ priority: base + 1 + g, value })), nop, unmarked };
}

/**
 * A fwmark rule's group under a mask and the rule moved to its group's priority, kept per rule
 * object (a network's kept part gives the same rule object on every plan): the same moved object
 * comes back, so its route-rule key (src/model/keys.ts) is not built again on every plan, and
 * markIndexOf is not asked again. A WeakMap lets them go with the parts.
 */
const groupedRules = new WeakMap<
  Rule,
  { readonly mask: number; readonly group: number; readonly moved: Rule }
>();

/** `fwmark 0x0/MASK goto TARGET`: a packet without symroute's mark bits goes on at TARGET. */
function markZero(family: Family, priority: number, goto: number, mask: number, protocol: number): Rule {
  // Literals, not spreads: `ip -j rule` leaves out an all-ones mask, so it is left out here too.
  return mask === ALL_MARK_BITS
    ? { family, priority, fwmark: 0, action: "goto", goto, protocol }
    : { family, priority, fwmark: 0, fwmask: mask, action: "goto", goto, protocol };
}

/** Unique, in first-seen order. */
const unique = (xs: readonly string[]): string[] => [...new Set(xs)];

/**
 * Anti-spoofing guards (KERNEL-FACTS 5, 11): IPv4 on each pool interface whose effective rp_filter
 * the sysctls lower, in the mode it had; IPv6 (no rp_filter in Linux) strict on each interface
 * with an IPv6 pool symroute routes. Every network kind counts; each guard exempts all the pools
 * of its family on its interface (requests to them arrive with any source).
 */
function spoofGuards(
  decisions: readonly NetworkDecision[],
  sysctlInput: SysctlInput,
  sysctls: Readonly<Record<string, string>>,
): SpoofGuard[] {
  const pools: Record<Family, Map<string, string[]>> = { 4: new Map(), 6: new Map() };
  const routed: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  for (const d of decisions) {
    const byIf = pools[d.family];
    let list = byIf.get(d.interface);
    if (list === undefined) byIf.set(d.interface, (list = []));
    // Pushed, not spread: thousands of networks may share one interface.
    for (const pool of d.pools) list.push(toCidr(pool));
    if (d.method !== "none") routed[d.family].add(d.interface);
  }
  const guards: SpoofGuard[] = [];
  const lowered = loweredRpFilter(sysctlInput, sysctls, [...routed[4]].sort());
  for (const [iif, was] of lowered) {
    const exempt = unique(pools[4].get(iif) ?? []);
    const mode = was === 1 ? "strict" : "loose";
    guards.push({
      family: 4,
      iif,
      mode,
      exempt,
      reason: `symroute lowers the effective rp_filter of ${iif} (${mode} before): the firewall checks sources instead, except for packets to ${exempt.join(", ")}`,
    });
  }
  for (const iif of [...routed[6]].sort()) {
    const exempt = unique(pools[6].get(iif) ?? []);
    guards.push({
      family: 6,
      iif,
      mode: "strict",
      exempt,
      reason: `Linux has no IPv6 rp_filter: symroute makes ${iif} stricter than before, dropping sources not routed back through it, except for packets to ${exempt.join(", ")}`,
    });
  }
  return guards;
}

/**
 * ARP probes (KERNEL-FACTS 10): every next hop symroute routes through (a gateway; the on-link
 * clients of a pool routed to its link) on an interface without an IPv4 address in its subnet.
 */
function probesFor(decisions: readonly NetworkDecision[], facts: NodeFacts): ArpProbe[] {
  const targets = new Map<string, string[]>();
  for (const d of decisions) {
    if (d.family !== 4 || d.method === "none") continue;
    const subnets = facts.subnets.get(4)?.get(d.interface) ?? [];
    const hops =
      d.method === "route" ? d.pools.map(toCidr) : d.gateway === undefined ? [] : [toCidr(d.gateway)];
    for (const hop of hops) {
      const p = parsePrefix(hop);
      if (p === undefined || subnets.some((s) => prefixContains(s, p))) continue;
      let list = targets.get(d.interface);
      if (list === undefined) targets.set(d.interface, (list = []));
      list.push(hop);
    }
  }
  return [...targets.keys()].sort().map((oif) => {
    const list = unique(targets.get(oif) ?? []);
    return {
      oif,
      targets: list,
      reason: `${oif} has no IPv4 address in the subnet of ${list.join(", ")}: ARP requests for them leave as RFC 5227 probes (sender 0.0.0.0), which routers that check senders answer`,
    };
  });
}

/** Like formatPrefix, but /0 stays "0.0.0.0/0": a pool is never "default". */
const formatPrefixText = (p: Prefix): string =>
  p.len === familyBits(p.family) ? formatIp(p.family, p.value) : formatCidr(p);

const toCidr = (text: string): string =>
  text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`;

/** IPv6 routes without a metric get 1024 from the kernel; saying so keeps the route's identity stable. */
const IPV6_METRIC = 1024;

function linkRoute(family: Family, table: number, dst: string, dev: string, protocol: number): Route {
  return family === 6
    ? { family, table, type: "unicast", dst, dev, protocol, scope: SCOPE_UNIVERSE, metric: IPV6_METRIC }
    : { family, table, type: "unicast", dst, dev, protocol, scope: SCOPE_LINK };
}

function defaultRoute(family: Family, table: number, gateway: string, dev: string, protocol: number): Route {
  const dst = "default";
  const scope = SCOPE_UNIVERSE;
  return family === 6
    ? { family, table, type: "unicast", dst, gateway, dev, protocol, scope, metric: IPV6_METRIC }
    : { family, table, type: "unicast", dst, gateway, dev, protocol, scope };
}

/** The decision's fields in their documented order, the optional ones only when set. */
function decisionOf(c: Classified, table: number | undefined, mark: number | undefined): NetworkDecision {
  const { network, family, poolTexts, gateway } = c.ctx;
  const decision: { -readonly [K in keyof NetworkDecision]?: NetworkDecision[K] } = {
    name: network.name,
    family,
    pools: poolTexts,
    interface: network.interface,
  };
  if (gateway !== undefined) decision.gateway = gateway;
  decision.case = c.case;
  decision.method = c.method;
  decision.reason = c.reason;
  if (table !== undefined) decision.table = table;
  if (mark !== undefined) decision.mark = mark;
  return decision as NetworkDecision;
}

/** A route of ours in main that covers the node's own default gateway would cut the node off. */
function refuseGatewayHijack(node: RoutingState, routes: readonly Route[]): void {
  const gateways = node.routes
    .filter((r) => r.table === TABLE_MAIN && r.dst === "default" && r.gateway !== undefined)
    .map((r) => ({ route: r, ip: parseIp(r.gateway ?? "") }));
  for (const route of routes) {
    if (route.table !== TABLE_MAIN) continue;
    const dst = parsePrefix(route.dst);
    if (dst === undefined) continue;
    for (const g of gateways) {
      if (g.ip !== undefined && prefixContainsIp(dst, g.ip) && route.dev !== g.route.dev) {
        throw new SymrouteError(
          "invalid-argument",
          `a route for ${route.dst} via ${route.dev ?? "?"} would change how this node reaches its own default gateway ${g.route.gateway} (on ${g.route.dev ?? "?"})`,
          { hint: "check the network's addresses: the pool must not contain the node's gateway" },
        );
      }
    }
  }
}
