// The sysctls symroute manages, and the values that keep every other interface's effective
// rp_filter as it was (KERNEL-FACTS 5): effective = max(conf.all, conf.IFACE).

import type { KubeProxyMode } from "../config/schema.ts";
import type { RoutingState } from "../model/state.ts";
import type { NetworkDecision } from "./types.ts";

export const rpFilterName = (ifname: string): string => `net/ipv4/conf/${ifname}/rp_filter`;
/** 1: IPv6 is off on the interface (no addresses, no routes through it, arriving packets dropped). */
export const disableIpv6Name = (ifname: string): string => `net/ipv6/conf/${ifname}/disable_ipv6`;
export const ARP_IGNORE = "net/ipv4/conf/all/arp_ignore";
export const ARP_ANNOUNCE = "net/ipv4/conf/all/arp_announce";
const ALL = rpFilterName("all");
const DEFAULT = rpFilterName("default");

export interface SysctlInput {
  readonly decisions: readonly NetworkDecision[];
  readonly node: RoutingState;
  /** Values before symroute first changed them: the baseline to keep for everything else. */
  readonly previous: Readonly<Record<string, string>>;
  readonly kubeProxyMode: Exclude<KubeProxyMode, "auto">;
  /** Links this plan deletes (VLANs symroute created that no network wants): nothing to keep on them. */
  readonly leaving?: ReadonlySet<string>;
  /** Links this plan creates (VLANs not on the node yet): they come with conf.default's values. */
  readonly creating?: ReadonlySet<string>;
}

/** The VLAN links the config wants that are not on the node yet: the plan adds them. */
export function creatingLinks(
  wanted: readonly { readonly ifname: string }[],
  present: ReadonlySet<string>,
): Set<string> {
  return new Set(wanted.flatMap((v) => (present.has(v.ifname) ? [] : [v.ifname])));
}

/** The VLAN links symroute created that no network wants any more: the plan deletes them. */
export function leavingLinks(
  createdLinks: readonly string[],
  wanted: readonly { readonly ifname: string }[],
): Set<string> {
  const names = new Set(wanted.map((v) => v.ifname));
  return new Set(createdLinks.filter((l) => !names.has(l)));
}

/** What the node would have if symroute had never touched a sysctl. */
function original(input: SysctlInput, name: string): number | undefined {
  const text = input.previous[name] ?? input.node.sysctls[name];
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isInteger(n) ? n : undefined;
}

/**
 * An interface's own rp_filter before symroute; for a link the plan creates, what the kernel gives a
 * new link (conf.default's value), which the apply's writes, made after the link is added, correct.
 */
function originalRpFilter(input: SysctlInput, ifname: string): number | undefined {
  const own = original(input, rpFilterName(ifname));
  return own === undefined && input.creating?.has(ifname) === true ? original(input, DEFAULT) : own;
}

export function desiredSysctls(input: SysctlInput): Record<string, string> {
  const out: Record<string, string> = {};
  const { node } = input;
  const hasIpv4 = (ifname: string): boolean =>
    node.addresses.some((a) => a.family === 4 && a.ifname === ifname);
  const external = new Set(
    input.decisions.filter((d) => d.family === 4 && d.method === "connmark").map((d) => d.interface),
  );
  const oldAll = original(input, ALL) ?? 0;
  let lowerAll = false;
  for (const ifname of [...external].sort()) {
    const own = originalRpFilter(input, ifname) ?? 0;
    if (Math.max(oldAll, own) === 0) continue;
    if (hasIpv4(ifname)) {
      // Loose mode passes once the interface has an address: no need to touch conf.all.
      if (Math.max(oldAll, own) === 1) out[rpFilterName(ifname)] = "2";
    } else {
      // No IPv4 address: strict and loose both drop (the kernel's last-resort path); only 0 works.
      out[rpFilterName(ifname)] = "0";
      if (oldAll !== 0) lowerAll = true;
    }
  }
  if (lowerAll) {
    out[ALL] = "0";
    // Every other interface (and default, for interfaces created later) keeps max(old all, own).
    const others = [...node.links.map((l) => l.ifname), ...(input.creating ?? []), "default"].filter(
      (n) => !external.has(n) && n !== "all" && input.leaving?.has(n) !== true,
    );
    for (const ifname of others) {
      const name = rpFilterName(ifname);
      const own = originalRpFilter(input, ifname);
      if (own !== undefined && own < oldAll) out[name] = String(oldAll);
    }
  }
  if (input.kubeProxyMode === "ipvs" && input.decisions.some((d) => d.method !== "none")) {
    // IPVS puts LB addresses on kube-ipvs0: without strict ARP every node would answer for them.
    const ignore = original(input, ARP_IGNORE) ?? 0;
    const announce = original(input, ARP_ANNOUNCE) ?? 0;
    if (ignore === 0) out[ARP_IGNORE] = "1";
    if (announce < 2) out[ARP_ANNOUNCE] = "2";
  }
  return out;
}

/** The sysctls the observer must read for planning: fixed names, and templates per link. */
export const SYSCTLS_TO_READ = {
  sysctls: [ALL, DEFAULT, ARP_IGNORE, ARP_ANNOUNCE],
  linkSysctls: [rpFilterName("{}"), disableIpv6Name("{}")],
} as const;

/**
 * Pool interfaces whose effective IPv4 rp_filter (max of conf.all and the interface's own) the
 * desired sysctls lower, with the effective value they had before symroute (1 strict, 2 loose):
 * those need the check back in the firewall (KERNEL-FACTS 5, 11).
 */
export function loweredRpFilter(
  input: SysctlInput,
  desired: Readonly<Record<string, string>>,
  interfaces: Iterable<string>,
): Map<string, 1 | 2> {
  const before = (name: string): number => original(input, name) ?? 0;
  const after = (name: string): number => {
    // What the apply leaves: the desired value, else a recorded one going back to its value before
    // symroute (the diff restores those no longer desired), else the node's.
    const text = desired[name] ?? input.previous[name] ?? input.node.sysctls[name];
    const n = Number(text ?? "0");
    return Number.isInteger(n) ? n : 0;
  };
  // A link the plan creates starts with conf.default's value, as the kernel gives it.
  const afterRpFilter = (ifname: string): number =>
    input.creating?.has(ifname) === true && desired[rpFilterName(ifname)] === undefined
      ? after(DEFAULT)
      : after(rpFilterName(ifname));
  const out = new Map<string, 1 | 2>();
  for (const ifname of interfaces) {
    const was = Math.max(before(ALL), originalRpFilter(input, ifname) ?? 0);
    const now = Math.max(after(ALL), afterRpFilter(ifname));
    // Effective values order as 0 (off) < 2 (loose) < 1 (strict).
    const strength = (v: number): number => (v === 1 ? 2 : v === 2 ? 1 : 0);
    if (strength(now) < strength(was)) out.set(ifname, was === 1 ? 1 : 2);
  }
  return out;
}

/**
 * The sysctls symroute may have changed, with their values now, in dotted form
 * ("net.ipv4.conf.all.rp_filter=0"): what a delete without the state file cannot put back, since
 * only the state records the values from before symroute.
 */
export function managedSysctlsNow(node: Pick<RoutingState, "sysctls" | "links">): string[] {
  const names = [
    ALL,
    DEFAULT,
    ...node.links.map((l) => rpFilterName(l.ifname)).sort(),
    ARP_IGNORE,
    ARP_ANNOUNCE,
  ];
  return [...new Set(names)]
    .filter((name) => node.sysctls[name] !== undefined)
    .map((name) => `${name.replaceAll("/", ".")}=${node.sysctls[name]}`);
}
