// Two doctor checks below the routing layer (issue 13 item 5): can the node resolve its next hop
// on a pool's interface (KERNEL-FACTS 10; for IPv6, has the interface a link-local address), and
// does a pool's interface still check sources (KERNEL-FACTS 5, 11)? Pure: the observed node (with
// its neighbour table), the decisions, and the firewall symroute wants and whether it is in place.

import { parseIp, parsePrefix, prefixContainsIp, prefixesOverlap, type Prefix } from "../model/address.ts";
import type { Neighbour, NodeState } from "../model/state.ts";
import type { FirewallSpec } from "../model/firewall.ts";
import type { NetworkDecision } from "../plan/types.ts";
import { disableIpv6Name } from "../plan/sysctls.ts";

interface NodeCheckInput {
  readonly node: NodeState;
  readonly decisions: readonly NetworkDecision[];
  /** The firewall symroute wants (plan), with its ARP probes and anti-spoofing guards. */
  readonly firewall: FirewallSpec | undefined;
  /** Every rule of that firewall is on the node (its ARP probes aside: probesInPlace). */
  readonly firewallInPlace: boolean;
  /** symroute's ARP probes are on the node as planned (default: as firewallInPlace). */
  readonly probesInPlace?: boolean;
  /** symroute's anti-spoofing guards are on the node as planned (default: as firewallInPlace). */
  readonly guardsInPlace?: boolean;
  /** The command that applies the configuration, for fixes: `symroute apply -c /etc/symroute.yaml`. */
  readonly applyCommand: string;
}

export interface NodeCheckFinding {
  readonly network: string;
  readonly family: 4 | 6;
  readonly path: "gateway" | "anti-spoofing";
  readonly ok: boolean;
  readonly summary: string;
  readonly cause?: string;
  readonly fix?: string;
  /** An ok finding's risk to watch (it does not make the finding or the node unhealthy). */
  readonly warning?: string;
}

/** NUD states in which the kernel has (or keeps trying with) a link-layer address. */
const RESOLVED = ["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"];
const UNRESOLVED = ["INCOMPLETE", "FAILED"];

const conf = (node: NodeState, dev: string, key: string): number | undefined => {
  const raw = node.sysctls[`net/ipv4/conf/${dev}/${key}`];
  const n = raw === undefined ? Number.NaN : Number(raw);
  return Number.isInteger(n) ? n : undefined;
};

/** max(conf.all.KEY, conf.DEV.KEY), the effective value for rp_filter and arp_announce. */
function effective(node: NodeState, dev: string, key: string): number | undefined {
  const all = conf(node, "all", key);
  const own = conf(node, dev, key);
  if (all === undefined && own === undefined) return undefined;
  return Math.max(all ?? 0, own ?? 0);
}

/** What the node's next hops on the pool's interface are: the gateway, or the pools' own link. */
function nextHops(d: NetworkDecision): { text: string; prefixes: Prefix[] } | undefined {
  if (d.family !== 4 || d.method === "none") return undefined;
  if (d.gateway !== undefined) {
    const p = parsePrefix(d.gateway);
    return p === undefined ? undefined : { text: `gateway ${d.gateway}`, prefixes: [p] };
  }
  if (d.method !== "route") return undefined;
  const prefixes = d.pools.map((p) => parsePrefix(p)).filter((p): p is Prefix => p !== undefined);
  return { text: `on-link clients in ${d.pools.join(", ")}`, prefixes };
}

/**
 * The sender address the kernel would put in an ARP request on `dev` (KERNEL-FACTS 10): with
 * arp_announce 0 the packet's own source when it is local (an LB address on kube-ipvs0 under
 * IPVS), else, and always with 2, the first global address of another interface.
 */
function arpSender(node: NodeState, d: NetworkDecision, announce: number): { text: string; usable: boolean } {
  const pools = d.pools.map((p) => parsePrefix(p)).filter((p): p is Prefix => p !== undefined);
  if (announce === 0) {
    const lb = node.addresses.find((a) => {
      const ip = a.family === 4 ? parseIp(a.local) : undefined;
      return ip !== undefined && pools.some((p) => prefixContainsIp(p, ip));
    });
    if (lb !== undefined) return { text: `${lb.local} (a local LB address, on ${lb.ifname})`, usable: true };
  }
  const other = node.addresses.find(
    (a) => a.family === 4 && a.ifname !== d.interface && a.ifname !== "lo" && a.scope !== "host",
  );
  return { text: other === undefined ? "none" : `${other.local} (from ${other.ifname})`, usable: false };
}

function gatewayCheck(input: NodeCheckInput, d: NetworkDecision): NodeCheckFinding | undefined {
  const hops = nextHops(d);
  if (hops === undefined || hops.prefixes.length === 0) return undefined;
  const { node } = input;
  const base = { network: d.name, family: 4 as const, path: "gateway" as const };
  const own = node.addresses.filter((a) => a.family === 4 && a.ifname === d.interface);
  const subnetAddr = own.find((a) => {
    const subnet = parsePrefix(`${a.local}/${a.prefixlen}`);
    return subnet !== undefined && hops.prefixes.some((p) => prefixesOverlap(subnet, p));
  });
  if (subnetAddr !== undefined) {
    return {
      ...base,
      ok: true,
      summary: `${hops.text}: ${d.interface} has ${subnetAddr.local}/${subnetAddr.prefixlen} in that subnet, ARP requests carry it`,
    };
  }
  // The neighbour table, when it was read: entries for the next hops on the pool's interface.
  const entries: Neighbour[] = (node.neighbours ?? []).filter((n) => {
    const ip = n.family === 4 && n.ifname === d.interface ? parseIp(n.dst) : undefined;
    return ip !== undefined && hops.prefixes.some((p) => prefixContainsIp(p, ip));
  });
  if (node.neighbours === undefined) return undefined;
  const unresolved = entries.filter((n) => n.state.some((s) => UNRESOLVED.includes(s)));
  const resolved = entries.filter((n) => n.state.some((s) => RESOLVED.includes(s)));
  const probe = (input.firewall?.arpProbes ?? []).find(
    (p) =>
      p.oif === d.interface &&
      hops.prefixes.every((h) =>
        p.targets.some((t) => {
          const tp = parsePrefix(t);
          return tp !== undefined && prefixesOverlap(tp, h);
        }),
      ),
  );
  const probing = probe !== undefined && (input.probesInPlace ?? input.firewallInPlace);
  const announce = effective(node, d.interface, "arp_announce") ?? 0;
  const sender = arpSender(node, d, announce);
  const list = (ns: readonly Neighbour[]) => ns.map((n) => `${n.dst} ${n.state.join(",")}`).join(", ");
  const probeFix = `\`${input.applyCommand}\`: symroute sends ARP requests on ${d.interface} as RFC 5227 probes (sender 0.0.0.0, nft table arp symroute), which routers answer; \`arping -D -I ${d.interface} ${d.gateway ?? "CLIENT"}\` shows whether this router does`;
  const why =
    announce >= 2
      ? `${d.interface} has no IPv4 address in that subnet and strict ARP (arp_announce ${announce}) takes the ARP sender from another interface: ${sender.text}`
      : `${d.interface} has no IPv4 address in that subnet, so ARP requests carry ${sender.text} as sender`;
  if (unresolved.length > 0) {
    return {
      ...base,
      ok: false,
      summary: `${hops.text} is not resolved on ${d.interface} (neighbour ${list(unresolved)}): replies cannot leave`,
      cause: probing
        ? `symroute's ARP probes are in place but the next hop does not answer them: check it is up on ${d.interface}'s link`
        : `${why}; a router that checks ARP senders (Linux with rp_filter, many hardware routers) ignores such requests`,
      fix: probing ? `arping -D -I ${d.interface} ${d.gateway ?? "CLIENT"}` : probeFix,
    };
  }
  if (probing) {
    return {
      ...base,
      ok: true,
      summary: `${hops.text}: ARP requests on ${d.interface} leave as RFC 5227 probes${resolved.length > 0 ? ` (neighbour ${list(resolved)})` : ""}`,
    };
  }
  if (resolved.length > 0) {
    const pinned = resolved.every((n) => n.state.includes("PERMANENT"));
    return {
      ...base,
      ok: true,
      summary: `${hops.text} is resolved on ${d.interface} (neighbour ${list(resolved)})${pinned ? ": pinned by hand, a new MAC of the router will not be learned" : ""}`,
      ...(pinned
        ? {
            warning: `the neighbour entry is PERMANENT: if the router's MAC changes (a failover, a new box), replies go to the old one; \`ip neigh del ${d.gateway ?? "ADDRESS"} dev ${d.interface}\` lets the node resolve it`,
          }
        : {}),
    };
  }
  if (sender.usable || announce < 2) {
    // Nothing asked yet; without strict ARP the outcome depends on the router (a host on the link,
    // or a router without source checks, answers): a warning, not a failure.
    return {
      ...base,
      ok: true,
      summary: `${hops.text}: not resolved yet; ARP requests on ${d.interface} would carry ${sender.text} (arp_announce ${announce})${sender.usable ? "" : ", which routers that check ARP senders ignore"}`,
      ...(sender.usable
        ? {}
        : {
            warning: `${why}; a router that checks ARP senders would ignore the node's requests: ${probeFix}`,
          }),
    };
  }
  return {
    ...base,
    ok: false,
    summary: `${hops.text} cannot be resolved from ${d.interface}: no usable ARP sender`,
    cause: `${why}; routers that check ARP senders ignore the request, the neighbour entry stays INCOMPLETE`,
    fix: probeFix,
  };
}

/**
 * IPv6 next hops on a pool's interface: the kernel sends a neighbour solicitation only from a
 * link-local address of the interface, or from the packet's own source when that is an address of
 * the interface, which a reply's LB address is not (ndisc_solicit, ndisc_send_ns). On an interface
 * without one (IPv6 off there, address generation off: netplan `link-local: []`, systemd-networkd
 * `LinkLocalAddressing=no`) it sends none: measured, the gateway's entry stays INCOMPLETE and not one
 * solicitation reaches the router, so every reply is lost although the routing is right. An entry
 * pinned by hand (PERMANENT) needs none.
 */
const LINK_LOCAL = parsePrefix("fe80::/10") as Prefix;

/** IPv6 is off on the interface (its disable_ipv6 read as 1). */
export const ipv6Disabled = (node: NodeState, ifname: string): boolean =>
  node.sysctls[disableIpv6Name(ifname)] === "1";

function neighbourSolicitationCheck(input: NodeCheckInput, d: NetworkDecision): NodeCheckFinding | undefined {
  if (d.family !== 6 || d.method === "none") return undefined;
  const hops =
    d.gateway !== undefined
      ? `gateway ${d.gateway}`
      : d.method === "route"
        ? `on-link clients in ${d.pools.join(", ")}`
        : undefined;
  const { node } = input;
  // Like the IPv4 check, only where the neighbour table was read (doctor reads it). With IPv6 off
  // on the interface the interface finding says so, with its fix.
  if (hops === undefined || node.neighbours === undefined || ipv6Disabled(node, d.interface))
    return undefined;
  // A missing or down interface is reported as such; its addresses say nothing then.
  if (!node.links.some((l) => l.ifname === d.interface && l.up)) return undefined;
  const linkLocal = node.addresses.find((a) => {
    const ip = a.family === 6 && a.ifname === d.interface ? parseIp(a.local) : undefined;
    return ip !== undefined && prefixContainsIp(LINK_LOCAL, ip);
  });
  if (linkLocal !== undefined) return undefined;
  const pinned = node.neighbours.some(
    (n) => n.family === 6 && n.ifname === d.interface && n.dst === d.gateway && n.state.includes("PERMANENT"),
  );
  if (pinned) return undefined;
  const dev = d.interface;
  return {
    network: d.name,
    family: 6,
    path: "gateway",
    ok: false,
    summary: `${hops} cannot be resolved from ${dev}: it has no IPv6 link-local address, so the node sends no neighbour solicitation there and replies cannot leave`,
    cause: `the kernel solicits a neighbour only from a link-local address of the interface (or from the packet's source when that is an address of ${dev}, which an LB address replied from is not); ${dev} has none: IPv6 is off there, or its address generation is (netplan \`link-local: []\`, systemd-networkd \`LinkLocalAddressing=no\`, \`ip link set ${dev} addrgenmode none\`)`,
    fix: `give ${dev} a link-local address: in the network configuration, or by hand \`sysctl -w net.ipv6.conf.${dev}.disable_ipv6=0 net.ipv6.conf.${dev}.addr_gen_mode=0\` (the kernel makes it when either value changes)`,
  };
}

function antiSpoofCheck(input: NodeCheckInput, d: NetworkDecision): NodeCheckFinding | undefined {
  if (d.method === "none") return undefined;
  const { node } = input;
  const base = { network: d.name, family: d.family, path: "anti-spoofing" as const };
  const wanted = (input.firewall?.guards ?? []).find((g) => g.family === d.family && g.iif === d.interface);
  const guarded = wanted !== undefined && (input.guardsInPlace ?? input.firewallInPlace);
  const exempt = wanted === undefined ? "" : ` (except to ${wanted.exempt.join(", ")})`;
  if (guarded) {
    return {
      ...base,
      ok: true,
      summary: `packets arriving on ${d.interface} whose source would not be routed back through it are dropped by symroute's guard (${wanted.mode})${exempt}`,
    };
  }
  const fixApply =
    wanted === undefined
      ? undefined
      : `\`${input.applyCommand}\`: symroute's guard restores the check in the firewall${exempt}`;
  if (d.family === 6 && ipv6Disabled(node, d.interface)) {
    return {
      ...base,
      ok: true,
      summary: `IPv6 is off on ${d.interface}: the kernel drops every IPv6 packet arriving on it`,
    };
  }
  if (d.family === 6) {
    return {
      ...base,
      ok: false,
      summary: `nothing checks the sources of IPv6 packets arriving on ${d.interface}`,
      cause:
        "Linux has no rp_filter for IPv6: any host on that link can send packets with any source to pods and to the node",
      fix:
        fixApply ??
        `a guard in the firewall: nft \`iifname "${d.interface}" ip6 daddr != { ${d.pools.join(", ")} } fib saddr . iif oif missing drop\` in a netdev chain at ingress of ${d.interface} (ND exempted)`,
    };
  }
  const mode = effective(node, d.interface, "rp_filter");
  if (mode === undefined) return undefined;
  const hasAddr = node.addresses.some((a) => a.family === 4 && a.ifname === d.interface);
  // With no address loose mode drops like strict (KERNEL-FACTS 5); with one it accepts any source
  // the node can route anywhere.
  const weak = mode === 0 || (mode === 2 && hasAddr);
  const all = conf(node, "all", "rp_filter") ?? 0;
  const own = conf(node, d.interface, "rp_filter") ?? 0;
  if (!weak) {
    return {
      ...base,
      ok: true,
      summary: `rp_filter checks the sources of packets arriving on ${d.interface} (effective ${mode}: conf.all ${all}, conf.${d.interface} ${own})`,
    };
  }
  return {
    ...base,
    ok: false,
    summary: `the sources of packets arriving on ${d.interface} are ${mode === 0 ? "not checked" : "checked only loosely"} (effective rp_filter ${mode}: conf.all ${all}, conf.${d.interface} ${own}) and no guard is in place`,
    cause: `any host on ${d.interface}'s link can send packets with ${mode === 0 ? "any source" : "a source routed through another interface"} to pods and to the node`,
    fix:
      fixApply ??
      `sysctl -w net.ipv4.conf.${d.interface}.rp_filter=1${all > 1 ? " net.ipv4.conf.all.rp_filter=1" : ""}, then \`${input.applyCommand}\`: where symroute has to lower it, it keeps the check in its firewall`,
  };
}

export function nodeChecks(input: NodeCheckInput): NodeCheckFinding[] {
  const out: NodeCheckFinding[] = [];
  const seenSpoof = new Set<string>();
  for (const d of input.decisions) {
    const g = gatewayCheck(input, d) ?? neighbourSolicitationCheck(input, d);
    if (g !== undefined) out.push(g);
    // One anti-spoofing finding per interface and family, however many networks share it.
    const key = `${d.family} ${d.interface}`;
    if (seenSpoof.has(key)) continue;
    const s = antiSpoofCheck(input, d);
    if (s !== undefined) {
      seenSpoof.add(key);
      out.push(s);
    }
  }
  return out;
}
