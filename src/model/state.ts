// The node as symroute sees it: the words are those of `ip link`, `ip addr`, `ip route`, `ip rule`.
// Addresses and prefixes are canonical text (see address.ts) so states compare and serialise as is.

import type { Family } from "./address.ts";
import type { KubeProxyServices } from "./services.ts";

export interface Link {
  readonly ifname: string;
  readonly ifindex: number;
  /** IFF_UP is set. */
  readonly up: boolean;
  readonly operstate?: string;
  /** linkinfo kind: "vlan", "veth", "bridge"...; undefined for plain devices. */
  readonly kind?: string;
  /** The lower device of a VLAN. */
  readonly link?: string;
  readonly vlanId?: number;
  /** The device this one is a port of (a bridge's or a bond's), which receives its packets. */
  readonly master?: string;
}

export interface InterfaceAddress {
  readonly ifname: string;
  readonly family: Family;
  readonly local: string;
  readonly prefixlen: number;
  readonly scope?: string;
}

export type RouteType =
  | "unicast"
  | "local"
  | "broadcast"
  | "anycast"
  | "multicast"
  | "blackhole"
  | "unreachable"
  | "prohibit"
  | "throw"
  | "nat";

export interface Route {
  readonly family: Family;
  readonly table: number;
  readonly type: RouteType;
  /** Canonical prefix; "default" for /0. */
  readonly dst: string;
  readonly gateway?: string;
  readonly dev?: string;
  /** Route metric ("priority" in netlink). */
  readonly metric?: number;
  readonly protocol?: number;
  /** 0 universe, 200 site, 253 link, 254 host, 255 nowhere. */
  readonly scope?: number;
  readonly prefsrc?: string;
  /** IPv6 source-specific routing: `ip -6 route add DST from SRC ...` (canonical prefix). */
  readonly src?: string;
  readonly tos?: number;
  readonly onlink?: boolean;
}

export type RuleAction = "lookup" | "goto" | "nop" | "unreachable" | "blackhole" | "prohibit";

export interface PortRange {
  readonly start: number;
  readonly end: number;
}

export interface Rule {
  readonly family: Family;
  readonly priority: number;
  readonly not?: boolean;
  /** Canonical prefix; undefined means "all". */
  readonly from?: string;
  readonly to?: string;
  readonly iif?: string;
  readonly oif?: string;
  readonly fwmark?: number;
  /** With fwmark; undefined means 0xffffffff. */
  readonly fwmask?: number;
  readonly tos?: number;
  readonly ipproto?: number;
  readonly sport?: PortRange;
  readonly dport?: PortRange;
  readonly uidrange?: PortRange;
  readonly action: RuleAction;
  /** With action "lookup". */
  readonly table?: number;
  /** With action "goto": the priority to continue at. */
  readonly goto?: number;
  readonly suppressPrefixlength?: number;
  readonly suppressIfgroup?: number;
  readonly protocol?: number;
}

/** sysctl name in path form ("net/ipv4/conf/all/rp_filter": interface names may hold dots) to its value. */
export type Sysctls = Readonly<Record<string, string>>;

export type FirewallBackend = "nftables" | "iptables";

/** symroute's own firewall objects as read back: one key per rule, carried in the rule's comment. */
export interface OwnedFirewall {
  readonly backend: FirewallBackend;
  readonly ruleKeys: readonly string[];
  /**
   * Each rule as the kernel lists it, canonicalised (counters zeroed), in no particular order: what
   * drift detection compares, since a rule changed under the same comment keeps its key.
   * Undefined when the reader does not list contents.
   */
  readonly contents?: readonly string[];
}

/** What the node says about kube-proxy's mode, for `kubeProxyMode: auto`. */
export interface KubeProxyHints {
  readonly iptablesChains: boolean;
  readonly nftablesTable: boolean;
  readonly ipvsLink: boolean;
}

/** One entry of the neighbour table (`ip -j neigh show`): what the kernel knows of a next hop. */
export interface Neighbour {
  readonly ifname: string;
  readonly family: Family;
  /** Canonical address. */
  readonly dst: string;
  readonly lladdr?: string;
  /** NUD states as `ip neigh` prints them: "REACHABLE", "STALE", "INCOMPLETE", "FAILED", "PERMANENT"... */
  readonly state: readonly string[];
}

/** A BPF program attached where it sees packets before netfilter does. */
export interface AttachedProgram {
  readonly ifname: string;
  readonly hook: "xdp" | "tc ingress";
  /** The program's name, and for tc the object/section name `tc` shows (`bpf_netdev.o:[from-netdev]`). */
  readonly name: string;
}

/**
 * Traces of datapaths that handle service traffic outside netfilter (Cilium's kube-proxy
 * replacement, Calico's eBPF dataplane): read only when asked for (ReadScope.datapath).
 */
export interface DatapathTraces {
  /** Names pinned under /sys/fs/bpf/tc/globals, where Cilium and Calico pin their maps. */
  readonly pinnedMaps: readonly string[];
  /** Programs on XDP of any link and on tc ingress of the pools' interfaces. */
  readonly programs: readonly AttachedProgram[];
  /** kube-proxy's traces, read only when Cilium or Calico shows (the link list says whether kube-ipvs0 exists). */
  readonly kubeProxy?: Omit<KubeProxyHints, "ipvsLink">;
}

export interface NodeState {
  readonly links: readonly Link[];
  readonly addresses: readonly InterfaceAddress[];
  readonly routes: readonly Route[];
  readonly rules: readonly Rule[];
  readonly sysctls: Sysctls;
  readonly firewall: readonly OwnedFirewall[];
  readonly kubeProxy?: KubeProxyHints;
  /** Only when read with ReadScope.neighbours. */
  readonly neighbours?: readonly Neighbour[];
  /** Only when read with ReadScope.datapath. */
  readonly datapath?: DatapathTraces;
  /** Only when read with ReadScope.kubeProxyServices. */
  readonly kubeProxyServices?: KubeProxyServices;
}

/**
 * The node without symroute's firewall objects: all that planning the desired state looks at, so
 * that it can run while the firewall (the slower read) is still being read.
 */
export type RoutingState = Omit<NodeState, "firewall">;

export const TABLE_LOCAL = 255;
export const TABLE_MAIN = 254;
export const TABLE_DEFAULT = 253;
const TABLE_UNSPEC = 0;
export const RESERVED_TABLES: readonly number[] = [TABLE_UNSPEC, TABLE_DEFAULT, TABLE_MAIN, TABLE_LOCAL];

export const SCOPE_UNIVERSE = 0;
export const SCOPE_LINK = 253;
export const SCOPE_HOST = 254;
