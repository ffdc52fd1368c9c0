// What doctor simulates for each network: the LB addresses and backends (kube-proxy's DNAT targets
// read from the node, IPVS's LB addresses, or invented ones said to be so) and the clients whose
// requests and replies are walked. Pure: the node and the plan's decisions in, choices out.

import {
  formatIp,
  parseIp,
  parsePrefix,
  prefixContainsIp,
  type Family,
  type Prefix,
} from "../model/address.ts";
import { formatBackend, formatServiceAddress } from "../model/services.ts";
import type { NodeState, Route } from "../model/state.ts";
import type { NetworkDecision } from "../plan/types.ts";
import { tracePacket, type RoutingIndex } from "../simulate/index.ts";
import { counted } from "../model/plural.ts";

/** The client paths doctor reports, by where the backend is. */
export type ClientPath =
  "client to LB, pod backend" | "client to LB, host-network backend" | "client to LB, pod on another node";

/** What the choices below read: the node, the pod networks, the decisions, the clients asked for. */
interface BackendsInput {
  readonly node: NodeState;
  readonly decisions: readonly NetworkDecision[];
  readonly podCIDRs: readonly string[];
  readonly clients?: Partial<Record<Family, string | readonly string[]>>;
}

/** One backend the doctor simulates a client's request to, and the backend's reply from. */
interface SimulatedBackend {
  readonly path: ClientPath;
  /** The address the client connects to. */
  readonly lb: string;
  /** Where the request goes after kube-proxy's DNAT (the LB address itself with IPVS). */
  readonly backend: string;
  /** Where the backend's reply enters the node; undefined: a local socket sends it. */
  readonly iif: string | undefined;
  /** kube-proxy's services that DNAT the LB address to this backend (`1.2.3.4:80/tcp → 10.0.0.5:8080`), when read. */
  readonly services?: readonly string[];
  readonly ipproto: number;
  /** The port the client asks for. */
  readonly port: number;
  /** The port the backend answers from (the service's, unless the DNAT changes it). */
  readonly backendPort: number;
  /** What was not read from the node but assumed, in words. */
  readonly assumed?: string;
}

const IPPROTO: Readonly<Record<string, number>> = { tcp: 6, udp: 17, sctp: 132 };
/** Backends simulated per network and family; a pool with more says how many were left out. */
const MAX_SIMULATED = 8;

/**
 * The backends of a network's LB addresses: kube-proxy's DNAT targets read from the node's rules
 * (iptables or nftables mode), the LB addresses on kube-ipvs0 (IPVS, whose own backends are not
 * read), or, when neither is there, invented ones, each saying so in `assumed`.
 */
export function simulatedBackends(
  input: BackendsInput,
  d: NetworkDecision,
  pools: readonly Prefix[],
  index: RoutingIndex,
): { sims: SimulatedBackend[]; notes: string[] } {
  const { node } = input;
  const localAddrs = node.addresses.map((a) => a.local);
  const inPool = (address: string): boolean => {
    const ip = parseIp(address);
    return ip !== undefined && pools.some((p) => prefixContainsIp(p, ip));
  };
  const poolText = d.pools.join(", ");
  const notes: string[] = [];
  const note = (summary: string): void => void notes.push(summary);
  const tcp = { ipproto: 6, port: 8080, backendPort: 8080 };

  if (d.method === "source") {
    const ipvsBackends =
      "IPVS's backends are not read (symroute has no IPVS reader and does not use ipvsadm): the reply is simulated from the LB address itself, as a local socket sends it and as IPVS re-routes a pod's reply by its new source (net.ipv4.vs.snat_reroute)";
    const onNode = node.addresses.filter((a) => a.family === d.family && inPool(a.local));
    const lbs = [...new Map(onNode.map((a) => [a.local, a.ifname])).entries()].slice(0, MAX_SIMULATED);
    const chosen: [string, string | undefined][] =
      lbs.length > 0 ? lbs : [[hostIn(pools[0] as Prefix, [d.gateway ?? "", ...localAddrs], 3), undefined]];
    return {
      sims: chosen.flatMap(([lb, ifname]) => {
        const assumed =
          ifname === undefined
            ? `no address of ${poolText} is on the node (IPVS puts its LB addresses on kube-ipvs0): simulated with the invented LB address ${lb}; ${ipvsBackends}`
            : `LB address ${lb} read from ${ifname}; ${ipvsBackends}`;
        return (["client to LB, pod backend", "client to LB, host-network backend"] as const).map((path) => ({
          path,
          lb,
          backend: lb,
          iif: undefined,
          ...tcp,
          assumed,
        }));
      }),
      notes,
    };
  }

  const read = node.kubeProxyServices;
  const services = (read?.services ?? []).filter((s) => s.family === d.family && inPool(s.address));
  if (services.length > 0) {
    const pairs = new Map<
      string,
      { lb: string; backend: string; services: string[]; ipproto: number; port: number; backendPort: number }
    >();
    for (const s of services) {
      for (const b of s.backends) {
        const key = `${s.address} ${b.address}`;
        const pair = pairs.get(key) ?? {
          lb: s.address,
          backend: b.address,
          services: [],
          ipproto: IPPROTO[s.proto ?? "tcp"] ?? 6,
          port: s.port ?? b.port ?? 8080,
          backendPort: b.port ?? s.port ?? 8080,
        };
        pair.services.push(`${formatServiceAddress(s)} → ${formatBackend(s.family, b)}`);
        pairs.set(key, pair);
      }
    }
    const all = [...pairs.values()];
    if (all.length > MAX_SIMULATED)
      note(
        `${counted(all.length - MAX_SIMULATED, "more backend")} of LB addresses in ${poolText} not simulated (the first ${MAX_SIMULATED} are)`,
      );
    const sims = all.slice(0, MAX_SIMULATED).map((p): SimulatedBackend => {
      if (localAddrs.includes(p.backend))
        return { ...p, path: "client to LB, host-network backend", iif: undefined };
      // Where the backend is: on a pod link of this node, or behind another node.
      const toward = tracePacket(index, { to: p.backend });
      const remote = toward.result === "unicast" && toward.gateway !== undefined;
      return {
        ...p,
        path: remote ? "client to LB, pod on another node" : "client to LB, pod backend",
        iif: toward.result === "unicast" ? toward.dev : undefined,
        ...(remote
          ? {
              assumed: `kube-proxy masquerades requests to a backend on another node (externalTrafficPolicy Cluster), so ${p.backend}'s replies come back through this node (${toward.dev ?? "?"})`,
            }
          : {}),
      };
    });
    return { sims, notes };
  }

  // Nothing read for the pool: invent an LB address, a pod and the node's own address, and say so.
  const where =
    read === undefined
      ? "kube-proxy's rules were not read"
      : `kube-proxy's rules DNAT no address of ${poolText} (${read.sources.join("; ")})`;
  const lb = hostIn(
    pools[0] as Prefix,
    [d.gateway ?? "", ...localAddrs],
    (pools[0]?.len ?? 0) >= (d.family === 4 ? 31 : 127) ? 0 : 3,
  );
  const sims: SimulatedBackend[] = [];
  const podCidr = input.podCIDRs
    .map((p) => parsePrefix(p))
    .find((p): p is Prefix => p !== undefined && p.family === d.family);
  if (podCidr !== undefined) {
    const podRoute = node.routes.find((r) => {
      if (r.family !== d.family || r.table !== 254 || r.dst === "default" || r.gateway !== undefined)
        return false;
      const p = parsePrefix(r.dst);
      return (
        p !== undefined &&
        p.len >= podCidr.len &&
        prefixContainsIp(podCidr, { family: p.family, value: p.value })
      );
    });
    if (podRoute === undefined) {
      note(
        `no pod network of ${podCidr.family === 4 ? "IPv4" : "IPv6"} podCIDRs is routed on this node: pod backends not checked`,
      );
    } else {
      const pod = hostIn(parsePrefix(podRoute.dst) ?? podCidr, localAddrs, 1);
      sims.push({
        path: "client to LB, pod backend",
        lb,
        backend: pod,
        iif: routeDev(node, d.family, pod)?.dev,
        ...tcp,
        assumed: `${where}: simulated with an invented LB address ${lb} DNAT'ed to ${pod}, an address of the pod network on ${podRoute.dev ?? "?"}`,
      });
    }
  }
  const mainDefault = node.routes.find(
    (r) => r.family === d.family && r.table === 254 && r.dst === "default",
  );
  const hostAddr = node.addresses.find(
    (a) => a.family === d.family && a.ifname === mainDefault?.dev && a.scope !== "link",
  )?.local;
  if (hostAddr !== undefined)
    sims.push({
      path: "client to LB, host-network backend",
      lb,
      backend: hostAddr,
      iif: undefined,
      ...tcp,
      assumed: `${where}: simulated with an invented LB address ${lb} DNAT'ed to the node's own ${hostAddr}`,
    });
  return { sims, notes };
}

/**
 * The clients whose requests are simulated: the given (or default) outside client behind the
 * network's gateway (a given one inside a pool is on the pool's link); without a gateway, a host of the pool's own link, and also an outside client
 * when one is given or when the network's other family has a gateway (a forgotten one: plan warns).
 */
export function clientsOf(
  input: BackendsInput,
  d: NetworkDecision,
  pools: readonly Prefix[],
  avoid: readonly string[],
): { address: string; onLink: boolean }[] {
  const wanted = input.clients?.[d.family];
  const given = wanted === undefined ? [] : typeof wanted === "string" ? [wanted] : [...wanted];
  const outside = given.length > 0 ? given : [DEFAULT_CLIENTS[d.family]];
  const inPool = (address: string): boolean => {
    const ip = parseIp(address);
    return ip !== undefined && pools.some((p) => prefixContainsIp(p, ip));
  };
  // With a gateway too, a client given inside a pool is a host of the pool's own link: the network's
  // table holds the pool's link route, so its reply leaves directly on the interface.
  if (d.gateway !== undefined) return outside.map((address) => ({ address, onLink: inPool(address) }));
  const onLinkGiven = given.filter(inPool);
  const beyondGiven = given.filter((a) => !inPool(a));
  const half = input.decisions.some(
    (o) => o.name === d.name && o.family !== d.family && o.gateway !== undefined,
  );
  const beyond = beyondGiven.length > 0 ? beyondGiven : half ? [DEFAULT_CLIENTS[d.family]] : [];
  const onLink = onLinkGiven.length > 0 ? onLinkGiven : [hostIn(pools[0] as Prefix, avoid, 9)];
  return [
    ...onLink.map((address) => ({ address, onLink: true })),
    ...beyond.map((address) => ({ address, onLink: false })),
  ];
}

const DEFAULT_CLIENTS: Record<Family, string> = { 4: "203.0.113.10", 6: "2001:db8:ffff::10" };

/** An address inside `prefix` that is not `avoid` and not the network address of a subnet. */
export function hostIn(prefix: Prefix, avoid: readonly string[], skip = 0): string {
  const size = prefix.family === 4 ? 32 : 128;
  if (prefix.len === size) return formatIp(prefix.family, prefix.value);
  for (let i = 1n + BigInt(skip); i < 64n; i++) {
    const text = formatIp(prefix.family, prefix.value + i);
    if (!avoid.includes(text)) return text;
  }
  return formatIp(prefix.family, prefix.value + 1n);
}

function routeDev(node: NodeState, family: Family, address: string): Route | undefined {
  const ip = parseIp(address);
  if (ip === undefined) return undefined;
  let best: Route | undefined;
  let bestLen = -1;
  for (const r of node.routes) {
    if (r.family !== family || r.table !== 254 || r.type !== "unicast" || r.dst === "default") continue;
    const p = parsePrefix(r.dst);
    if (p !== undefined && prefixContainsIp(p, ip) && p.len > bestLen) {
      best = r;
      bestLen = p.len;
    }
  }
  return best;
}
