// The read-only commands that observe the node, in one place: the kernel adapter runs them, and the
// benchmarks time the same command lines.

import type { Family } from "../model/address.ts";

/** `ip -4|-6 -j -N -d -batch -`: one JSON array per command of the input. */
export function ipReadArgs(family: Family): string[] {
  return [`-${family}`, "-j", "-N", "-d", "-batch", "-"];
}

/** What one family's read lists (see ipReadCommands). */
export interface IpReadParts {
  /** The link list (read once, by one family). */
  readonly links: boolean;
  /** Addresses, routes and rules of the family. */
  readonly objects: boolean;
  /** The neighbour table too, last (with `objects` only). */
  readonly neighbours?: boolean;
  /** The routes of only these tables (one command each); default every table. */
  readonly routeTables?: readonly number[];
  /** The rules of only these priorities (one command each); default every rule. */
  readonly rulePriorities?: readonly number[];
}

/** The commands of one family's read, in the order the answers are taken apart. */
export function ipReadCommands(parts: IpReadParts): string[] {
  const { links, objects, neighbours = false, routeTables, rulePriorities } = parts;
  return [
    ...(links ? ["link show"] : []),
    ...(objects ? ["addr show", ...routeReadCommands(routeTables), ...ruleReadCommands(rulePriorities)] : []),
    ...(objects && neighbours ? ["neigh show"] : []),
  ];
}

/** Every table's routes, or those of `tables` (ids: numbers only reach the batch), one command each. */
export function routeReadCommands(tables?: readonly number[]): string[] {
  if (tables === undefined) return ["route show table all"];
  return tables.map((table) => {
    if (!Number.isInteger(table) || table < 0 || table > 0xffffffff)
      throw new Error(`not a route table id: ${String(table)}`);
    return `route show table ${table}`;
  });
}

/** Every rule, or those of `priorities` (numbers only reach the batch), one command each. */
export function ruleReadCommands(priorities?: readonly number[]): string[] {
  if (priorities === undefined) return ["rule show"];
  return priorities.map((priority) => {
    if (!Number.isInteger(priority) || priority < 0 || priority > 0xffffffff)
      throw new Error(`not a rule priority: ${String(priority)}`);
    return `rule show pref ${priority}`;
  });
}

/** The batch input for a list of commands. */
export const batchInput = (commands: readonly string[]): string => `${commands.join("\n")}\n`;

/**
 * `nft -t list table inet symroute` (the table is model/firewall.ts's NFT_TABLE; a test keeps the
 * two equal). Terse text, not JSON: at thousands of rules `nft -j` costs three times as much, and
 * the comment keys are all the reader needs.
 */
export const NFT_READ_ARGS: readonly string[] = ["-t", "list", "table", "inet", "symroute"];

/** `nft -t list table netdev symroute`: the anti-spoofing guards, one ingress chain per interface. */
export const NFT_GUARD_READ_ARGS: readonly string[] = ["-t", "list", "table", "netdev", "symroute"];

/** `nft -t list table arp symroute`: the ARP probes (either front end puts them there). */
export const NFT_ARP_READ_ARGS: readonly string[] = ["-t", "list", "table", "arp", "symroute"];

/** `iptables-save -t mangle` and `ip6tables-save -t mangle`: where symroute's iptables chains live. */
export const IPTABLES_READ_ARGS: readonly string[] = ["-t", "mangle"];

/**
 * kube-proxy's traces, for `kubeProxyMode: auto`: its nft table shows in `nft list chains` (a
 * fraction of the cost of `nft list tables`, which caches every rule: 20 ms against 150 ms next to
 * 10,000 rules), its iptables chains in the nat table.
 */
export const KUBE_PROXY_NFT_ARGS: readonly string[] = ["list", "chains"];
export const KUBE_PROXY_IPTABLES_ARGS: readonly string[] = ["-t", "nat"];

/**
 * kube-proxy's DNAT targets (doctor, explain): its nftables table of one family as JSON (the rules
 * are walked, src/adapters/kube-proxy-parse.ts), and its iptables rules in `iptables-save -t nat`
 * / `ip6tables-save -t nat` (KUBE_PROXY_IPTABLES_ARGS).
 */
export const kubeProxyNftArgs = (family: Family): string[] => [
  "-j",
  "list",
  "table",
  family === 4 ? "ip" : "ip6",
  "kube-proxy",
];

/**
 * Where Cilium and Calico's eBPF dataplane pin their maps (cilium_lb4_services_v2, cali_v4_nat_fe...):
 * one directory listing tells whether either runs on the node.
 */
export const BPF_GLOBALS_DIR = "/sys/fs/bpf/tc/globals";

/** `tc -j filter show dev IF ingress`: the BPF programs that see the interface's packets before netfilter. */
export const tcIngressArgs = (ifname: string): string[] => ["-j", "filter", "show", "dev", ifname, "ingress"];

/** `ipset save`: every set (symroute's are picked out by their prefix), in restore syntax. */
export const IPSET_READ_ARGS: readonly string[] = ["save"];
