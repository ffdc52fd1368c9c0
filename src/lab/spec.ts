// What a lab topology is made of: the article's four cases, the kube-proxy stand-ins, the firewall
// front end symroute is asked to use, and the addresses of every host. Pure data, no I/O.

import type { Family } from "../model/address.ts";

export type LabCase = 1 | 2 | 3 | 4;
export const LAB_CASES: readonly LabCase[] = [1, 2, 3, 4];

/** How the LB address reaches a backend on the node. */
export type KubeProxyVariant =
  /** iptables nat PREROUTING/OUTPUT DNAT, as kube-proxy's iptables mode. */
  | "iptables"
  /** `table ip kube-proxy` / `table ip6 kube-proxy` nat chains, as kube-proxy's nftables mode. */
  | "nftables"
  /** The LB address is a local address on kube-ipvs0 (IPVS mode); the pod port is DNAT'ed in
   * place of IPVS forwarding (this kernel has no IPVS), the host-network port is a local socket. */
  | "ipvs-like";
export const KUBE_PROXY_VARIANTS: readonly KubeProxyVariant[] = ["iptables", "nftables", "ipvs-like"];

export type FirewallFrontEnd = "nftables" | "iptables";

export interface LabSpec {
  readonly case: LabCase;
  readonly kubeProxy: KubeProxyVariant;
  /** IPv4 only, or IPv4 and IPv6. */
  readonly dualStack: boolean;
  /** The `firewall:` symroute's config asks for. */
  readonly firewall: FirewallFrontEnd;
  /** One node, or two on shared links (the second has a pod the first DNATs to); default 1. */
  readonly nodes?: 1 | 2;
}

export const nodeCountOf = (spec: LabSpec): 1 | 2 => spec.nodes ?? 1;

export const DEFAULT_SPEC: LabSpec = {
  case: 3,
  kubeProxy: "iptables",
  dualStack: true,
  firewall: "nftables",
};

/** The hosts of a topology; each is a network namespace. */
export type Host = "client" | "router" | "node" | "pod" | "podc" | "lan" | "node2" | "pod2";

/** The hosts symroute runs on. */
export const nodesOf = (spec: LabSpec): readonly ("node" | "node2")[] =>
  nodeCountOf(spec) === 2 ? ["node", "node2"] : ["node"];

export const POD_PORT = 8080;
export const HOST_NETWORK_PORT = 8081;
export const CLIENT_PORT = 9000;
/** Served by a pod on the second node: kube-proxy DNATs and masquerades across nodes. */
export const REMOTE_POD_PORT = 8082;
/** The router's table for packets from the external spoof source: out of the external link. */
export const SPOOF_TABLE = 78;

/** Every address of one family in the lab. */
export interface FamilyPlan {
  readonly family: Family;
  readonly client: string;
  readonly routerClientSide: string;
  readonly clientPrefixlen: number;
  readonly node: string;
  readonly router: string;
  readonly nodePrefixlen: number;
  /** The router's address on the external link (cases 3, 4): the gateway of the pool. */
  readonly routerExternal: string;
  readonly externalPrefixlen: number;
  /** The client on the pool's own link (case 2). */
  readonly lan: string;
  readonly lanPrefixlen: number;
  readonly podGateway: string;
  readonly pod: string;
  readonly podClientGateway: string;
  readonly podClient: string;
  readonly podPrefixlen: number;
  readonly podCIDR: string;
  /** The per-node pod subnets: node's pod, node's client pod, node2's pod. */
  readonly podSubnet: string;
  readonly podClientSubnet: string;
  readonly node2: string;
  readonly pod2Gateway: string;
  readonly pod2: string;
  readonly pod2Subnet: string;
  /** A pod-range source the router sends from into the node's eth0 (IPv4 only: IPv6 has no rp_filter). */
  readonly spoofSource?: string;
  /** A pod-range source the router sends from into the node's external interface (cases 3, 4). */
  readonly externalSpoofSource: string;
}

export const IPV4: FamilyPlan = {
  family: 4,
  client: "203.0.113.10",
  routerClientSide: "203.0.113.1",
  clientPrefixlen: 24,
  node: "192.168.1.10",
  router: "192.168.1.1",
  nodePrefixlen: 24,
  routerExternal: "1.2.3.1",
  externalPrefixlen: 24,
  lan: "10.9.8.10",
  lanPrefixlen: 24,
  podGateway: "10.112.0.1",
  pod: "10.112.0.5",
  podClientGateway: "10.112.1.1",
  podClient: "10.112.1.5",
  podPrefixlen: 24,
  podCIDR: "10.112.0.0/12",
  podSubnet: "10.112.0.0/24",
  podClientSubnet: "10.112.1.0/24",
  node2: "192.168.1.11",
  pod2Gateway: "10.112.2.1",
  pod2: "10.112.2.5",
  pod2Subnet: "10.112.2.0/24",
  spoofSource: "10.112.0.77",
  externalSpoofSource: "10.112.0.78",
};

export const IPV6: FamilyPlan = {
  family: 6,
  client: "2001:db8:c::10",
  routerClientSide: "2001:db8:c::1",
  clientPrefixlen: 64,
  node: "2001:db8:1::10",
  router: "2001:db8:1::1",
  nodePrefixlen: 64,
  routerExternal: "2001:db8:4::1",
  externalPrefixlen: 64,
  lan: "2001:db8:98::10",
  lanPrefixlen: 64,
  podGateway: "2001:db8:112::1",
  pod: "2001:db8:112::5",
  podClientGateway: "2001:db8:112:1::1",
  podClient: "2001:db8:112:1::5",
  podPrefixlen: 64,
  podCIDR: "2001:db8:112::/48",
  podSubnet: "2001:db8:112::/64",
  podClientSubnet: "2001:db8:112:1::/64",
  node2: "2001:db8:1::11",
  pod2Gateway: "2001:db8:112:2::1",
  pod2: "2001:db8:112:2::5",
  pod2Subnet: "2001:db8:112:2::/64",
  externalSpoofSource: "2001:db8:112::78",
};

/** The pool of a case: where MetalLB takes the LB address from, and which link answers for it. */
export interface Pool {
  readonly family: Family;
  readonly prefix: string;
  readonly lbAddress: string;
  /** The node's interface the LB address is answered on. */
  readonly interface: "eth0" | "eth1" | "ext0";
  readonly gateway?: string;
}

export function poolOf(labCase: LabCase, plan: FamilyPlan): Pool {
  const v4 = plan.family === 4;
  switch (labCase) {
    case 1:
      // On the node subnet: nothing to do.
      return v4
        ? { family: 4, prefix: "192.168.1.96/28", lbAddress: "192.168.1.100", interface: "eth0" }
        : { family: 6, prefix: "2001:db8:1::100/124", lbAddress: "2001:db8:1::100", interface: "eth0" };
    case 2:
      // On another link without a gateway: the node has no route for it.
      return v4
        ? { family: 4, prefix: "10.9.8.0/24", lbAddress: "10.9.8.4", interface: "eth1" }
        : { family: 6, prefix: "2001:db8:98::/64", lbAddress: "2001:db8:98::4", interface: "eth1" };
    case 3:
    case 4:
      // On its own VLAN with its own gateway (ext0 stands in for eth0.100).
      return v4
        ? {
            family: 4,
            prefix: "1.2.3.0/24",
            lbAddress: "1.2.3.4",
            interface: "ext0",
            gateway: plan.routerExternal,
          }
        : {
            family: 6,
            prefix: "2001:db8:4::/64",
            lbAddress: "2001:db8:4::4",
            interface: "ext0",
            gateway: plan.routerExternal,
          };
  }
}

export const familiesOf = (spec: LabSpec): readonly FamilyPlan[] => (spec.dualStack ? [IPV4, IPV6] : [IPV4]);

/** Hosts present in a case; the lan host exists only in case 2. */
export function hostsOf(spec: LabSpec): readonly Host[] {
  return [
    "client",
    "router",
    "node",
    "pod",
    "podc",
    ...(spec.case === 2 ? (["lan"] as const) : []),
    ...(nodeCountOf(spec) === 2 ? (["node2", "pod2"] as const) : []),
  ];
}

/** Fixed, locally administered MACs so that static neighbour entries need no lookup. */
export const MAC = {
  nodeEth0: "02:5e:00:00:01:10",
  routerNodeSide: "02:5e:00:00:01:01",
  nodeExt0: "02:5e:00:00:04:10",
  routerExternal: "02:5e:00:00:04:01",
  nodeEth1: "02:5e:00:00:98:10",
  lan: "02:5e:00:00:98:20",
  node2Eth0: "02:5e:00:00:01:11",
  node2Ext0: "02:5e:00:00:04:11",
  node2Eth1: "02:5e:00:00:98:11",
} as const;

export function describeSpec(spec: LabSpec): string {
  const nodes = nodeCountOf(spec) === 2 ? ", two nodes" : "";
  return `case ${spec.case}, kube-proxy ${spec.kubeProxy}, firewall ${spec.firewall}, ${spec.dualStack ? "dual-stack" : "IPv4"}${nodes}`;
}

export function parseLabCase(text: string): LabCase {
  const n = Number(text);
  if (n === 1 || n === 2 || n === 3 || n === 4) return n;
  throw new Error(`--case must be 1, 2, 3 or 4, not ${JSON.stringify(text)}`);
}
