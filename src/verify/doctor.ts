// `symroute doctor`: for each network, walk a request from an outside client to an LB address and
// its reply through the simulator, for a pod backend and a host-network backend, and say in plain
// words what is broken, why, and what fixes it. Pure: the node, the config's decisions and a few
// facts about the host come in; findings go out.

import {
  formatIp,
  parseIp,
  parsePrefix,
  prefixContainsIp,
  type Family,
  type Prefix,
} from "../model/address.ts";
import { formatHex } from "../model/marks.ts";
import { formatBackend, formatServiceAddress } from "../model/services.ts";
import type { NodeState, Route } from "../model/state.ts";
import { ARP_KEY_PREFIX, firewallRuleKeys, type FirewallSpec } from "../model/firewall.ts";
import type { NetworkDecision } from "../plan/types.ts";
import { compileRoutingState, tracePacket, type Trace } from "../simulate/index.ts";
import { nodeChecks } from "./node-checks.ts";

export interface HostFacts {
  /** systemd-networkd runs and deletes routing rules it did not create (ManageForeignRoutingPolicyRules). */
  readonly networkdDeletesForeignRules?: boolean;
}

export interface DoctorInput {
  readonly node: NodeState;
  readonly decisions: readonly NetworkDecision[];
  /** The firewall symroute wants; its rules must be on the node for replies to get their mark. */
  readonly firewall: FirewallSpec | undefined;
  readonly podCIDRs: readonly string[];
  readonly routeProtocol: number;
  readonly kubeProxyMode: string | undefined;
  /** Changes `plan` would make: symroute's objects are not all in place. */
  readonly pendingChanges: number;
  readonly host: HostFacts;
  /** The outside clients to simulate, per family (default 203.0.113.10 / 2001:db8:ffff::10). */
  readonly clients?: Partial<Record<Family, string | readonly string[]>>;
  /** Networks left out of the plan because their interface (or its VLAN parent) is not on the node. */
  readonly missingInterfaces?: readonly MissingInterface[];
  /** The command that applies this configuration, named in fixes (default `symroute apply -c FILE`). */
  readonly applyCommand?: string;
}

export interface MissingInterface {
  readonly network: string;
  readonly interface: string;
  /** The families of the network's pools: one finding each. */
  readonly families: readonly Family[];
  /** With `vlan:`: the parent symroute would create the interface on, missing too. */
  readonly vlanParent?: string;
}

export type PathName =
  | "interface"
  | "client to LB, pod backend"
  | "client to LB, host-network backend"
  | "client to LB, pod on another node"
  | "pod to LB"
  | "gateway"
  | "anti-spoofing"
  | "node"
  | "symroute";

export interface Finding {
  readonly network: string;
  readonly family: Family | undefined;
  readonly path: PathName;
  readonly ok: boolean;
  /** What happens, in plain words. */
  readonly summary: string;
  /** Why, when broken. */
  readonly cause?: string;
  /** What fixes it, when broken. */
  readonly fix?: string;
  /** Client paths: the client whose request and reply were simulated. */
  readonly client?: string;
  /** Client paths: the backend the request was DNAT'ed to (the LB address itself with IPVS). */
  readonly backend?: string;
  /** Client paths: kube-proxy's services behind this path, `LB:PORT/PROTO → BACKEND:PORT`, as read from the node. */
  readonly services?: readonly string[];
  /** What doctor could not read from the node and assumed instead (an invented LB address or backend). */
  readonly assumed?: string;
}

export interface DoctorReport {
  readonly healthy: boolean;
  readonly findings: readonly Finding[];
}

const DEFAULT_CLIENTS: Record<Family, string> = { 4: "203.0.113.10", 6: "2001:db8:ffff::10" };

/** An address inside `prefix` that is not `avoid` and not the network address of a subnet. */
function hostIn(prefix: Prefix, avoid: readonly string[], skip = 0): string {
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

function describe(trace: Trace): string {
  if (trace.result === "unicast")
    return `leaves by ${trace.dev ?? "?"}${trace.gateway === undefined ? " (direct)" : ` via ${trace.gateway}`} (table ${trace.table ?? "?"})`;
  if (trace.result === "local") return "is delivered locally";
  return `${trace.result}${trace.reason === undefined ? "" : `: ${trace.reason}`}`;
}

export function diagnose(input: DoctorInput): DoctorReport {
  const { node } = input;
  const findings: Finding[] = [];
  const index = compileRoutingState(node);
  const localAddrs = node.addresses.map((a) => a.local);
  // symroute's marking, its anti-spoofing guards and its ARP probes, each in place as planned or
  // not: a missing probe is a gateway problem, a missing mark rule leaves the guards working.
  const keysInPlace = (keys: readonly string[]): boolean =>
    keys.every((k) =>
      node.firewall.some((f) => f.backend === input.firewall?.backend && f.ruleKeys.includes(k)),
    );
  const fw = input.firewall;
  const wantedKeys = fw === undefined ? [] : firewallRuleKeys(fw);
  const markingInPlace = keysInPlace(wantedKeys.filter((k) => !k.startsWith(ARP_KEY_PREFIX)));
  const probesInPlace = keysInPlace(wantedKeys.filter((k) => k.startsWith(ARP_KEY_PREFIX)));
  // The guards' own rules: those a firewall of guards alone has beyond an empty one.
  const guardKeys = (() => {
    if (fw === undefined) return [];
    const empty = new Set(firewallRuleKeys({ ...fw, entries: [], arpProbes: [], guards: [] }));
    return firewallRuleKeys({ ...fw, entries: [], arpProbes: [] }).filter((k) => !empty.has(k));
  })();
  const guardRulesInPlace = keysInPlace(guardKeys);
  const apply = input.applyCommand ?? "symroute apply -c FILE";
  // symroute's anti-spoofing guards, simulated only when its firewall is on the node as planned.
  const guardsInPlace = guardRulesInPlace ? (fw?.guards ?? []) : [];

  if (input.pendingChanges > 0) {
    findings.push({
      network: "*",
      family: undefined,
      path: "symroute",
      ok: false,
      summary: `symroute's objects are not all in place: ${input.pendingChanges} change(s) pending`,
      cause: "the node drifted from the configuration, or it was never applied",
      fix: `run \`${apply}\` (or run the agent to keep the node converged)`,
    });
  }
  if (input.host.networkdDeletesForeignRules === true) {
    findings.push({
      network: "*",
      family: undefined,
      path: "node",
      ok: false,
      summary: "systemd-networkd is set to delete routing policy rules it did not create",
      cause: "ManageForeignRoutingPolicyRules is not `no`: a networkd reload removes symroute's rules",
      fix: "set ManageForeignRoutingPolicyRules=no (and ManageForeignRoutes=no) in /etc/systemd/networkd.conf, or run the symroute agent",
    });
  }
  if (input.kubeProxyMode === "ipvs") {
    const ignore = node.sysctls["net/ipv4/conf/all/arp_ignore"];
    const announce = node.sysctls["net/ipv4/conf/all/arp_announce"];
    const ok = ignore === "1" && announce === "2";
    findings.push({
      network: "*",
      family: 4,
      path: "node",
      ok,
      summary: ok
        ? "strict ARP is on (IPVS)"
        : `strict ARP is off with IPVS (arp_ignore ${ignore ?? "?"}, arp_announce ${announce ?? "?"})`,
      ...(ok
        ? {}
        : {
            cause: "IPVS puts every LB address on kube-ipvs0, and the node answers ARP for all of them",
            fix: "set net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 (symroute apply does, with kubeProxyMode ipvs)",
          }),
    });
  }

  for (const m of input.missingInterfaces ?? []) {
    for (const family of m.families) {
      findings.push({
        network: m.network,
        family,
        path: "interface",
        ok: false,
        summary:
          m.vlanParent === undefined
            ? `interface ${m.interface} does not exist on this node`
            : `interface ${m.interface} does not exist, nor its VLAN parent ${m.vlanParent}`,
        cause:
          "requests for the pool arrive on it: no path of this network can work, and apply refuses the configuration",
        fix: `create it (or give the network \`vlan:\` so symroute does), or correct \`interface:\` in the configuration; then run \`${apply}\``,
      });
    }
  }

  for (const d of input.decisions) {
    const link = node.links.find((l) => l.ifname === d.interface);
    if (link === undefined || !link.up) {
      findings.push({
        network: d.name,
        family: d.family,
        path: "interface",
        ok: false,
        summary: `interface ${d.interface} is ${link === undefined ? "missing" : "down"}`,
        cause: "requests for the pool arrive on it: no path of this network can work",
        fix:
          link === undefined
            ? `create it (or give the network \`vlan:\` so symroute does), then run \`${apply}\``
            : `ip link set ${d.interface} up`,
      });
      continue;
    }
    const pools = d.pools.map((p) => parsePrefix(p)).filter((p): p is Prefix => p !== undefined);
    if (pools.length === 0) continue;
    const wantsGateway = d.method === "connmark" || d.method === "source";
    const linkFix = `symroute apply adds \`ip route ${d.pools.join(", ")} dev ${d.interface}\``;
    const mark = d.method === "connmark" && markingInPlace ? d.mark : undefined;
    const { sims, notes } = simulatedBackends(input, d, pools, index);
    findings.push(...notes);

    for (const client of clientsOf(input, d, pools, [...sims.map((b) => b.lb), ...localAddrs])) {
      for (const b of sims) {
        const onLink = client.onLink;
        const base = {
          network: d.name,
          family: d.family,
          path: b.path,
          client: client.address,
          services: b.services,
          backend: b.backend,
          ...(b.assumed === undefined ? {} : { assumed: b.assumed }),
        };
        const port = { ipproto: b.ipproto, dport: b.port, sport: 40000 };
        // As it arrives: to the LB address (symroute's guards, before DNAT, exempt it), then DNAT'ed
        // (rp_filter runs after the DNAT: KERNEL-FACTS 5).
        const request = tracePacket(
          index,
          {
            from: client.address,
            to: b.lb,
            ...(b.backend === b.lb ? {} : { dnatTo: b.backend }),
            iif: d.interface,
            ...port,
          },
          { guards: guardsInPlace },
        );
        const asked = `the request from ${client.address} to ${b.lb}${b.backend === b.lb ? "" : ` (DNAT to ${b.backend})`}`;
        if (request.result === "unsupported") {
          findings.push({
            ...base,
            ok: false,
            summary: `cannot tell: ${request.reason ?? "not modelled"}`,
            cause: "the simulator does not model this state",
            fix: "see `symroute explain` for details",
          });
          continue;
        }
        if (request.guard?.result === "drop") {
          findings.push({
            ...base,
            ok: false,
            summary: `${asked} is dropped on ${d.interface} by symroute's anti-spoofing guard`,
            cause: request.guard.reason,
            fix: "the guard exempts the pools of its interface: check the network's `addresses` and `interface`, and `symroute plan`",
          });
          continue;
        }
        if (request.result === "rejected" || (request.rpFilter !== undefined && !request.rpFilter.accepted)) {
          findings.push({
            ...base,
            ok: false,
            summary: `${asked} is dropped on ${d.interface}`,
            cause: onLink
              ? `no route for the pool's link: the reverse-path check finds ${client.address} behind another interface`
              : `rp_filter drops it: ${request.rpFilter?.reason ?? request.reason ?? "reverse path check failed"} (effective rp_filter ${request.rpFilter?.mode ?? "?"})`,
            fix: onLink
              ? linkFix
              : `symroute apply sets net.ipv4.conf.${d.interface}.rp_filter (and conf.all, raising every other interface first): run \`${apply}\``,
          });
          continue;
        }
        if (request.result !== "local" && request.result !== "unicast") {
          findings.push({
            ...base,
            ok: false,
            summary: `${asked} ${describe(request)}`,
            cause: "no usable route to the backend",
            fix: "check the node's routes to its pods",
          });
          continue;
        }
        // The reply: from the backend (or the LB address itself with IPVS), with the restored mark.
        const reply = tracePacket(index, {
          from: b.backend,
          to: client.address,
          ...(b.iif === undefined ? {} : { iif: b.iif }),
          ...(mark === undefined ? {} : { mark }),
          ipproto: b.ipproto,
          sport: b.port,
          dport: 40000,
        });
        // Replies to a client beyond the pool's link must leave by its gateway; to an on-link client,
        // directly on the pool's interface; a network with nothing to do keeps the node's own routes.
        const expectDev = wantsGateway || d.gateway === undefined ? d.interface : undefined;
        const good =
          reply.result === "unicast" &&
          (expectDev === undefined ||
            (reply.dev === expectDev && (d.gateway === undefined || reply.gateway === d.gateway)));
        const reached = `request reaches ${b.backend === b.lb ? b.lb : b.backend}`;
        if (reply.result === "unsupported") {
          findings.push({
            ...base,
            ok: false,
            summary: `${reached}; the reply cannot be told: ${reply.reason ?? "not modelled"}`,
            cause: "the simulator does not model this state",
            fix: "see `symroute explain` for details",
          });
          continue;
        }
        if (good) {
          findings.push({ ...base, ok: true, summary: `${reached}; the reply ${describe(reply)}` });
          continue;
        }
        if (!onLink && d.gateway === undefined) {
          // A client beyond the link of a network without a gateway of this family (plan warns).
          findings.push({
            ...base,
            ok: false,
            summary: `${reached}; the reply to ${client.address}, beyond ${d.interface}'s link, ${describe(reply)}: it does not go back through ${d.interface}`,
            cause: `network ${d.name} has no IPv${d.family} gateway${d.method === "none" ? "" : `, so symroute treats its IPv${d.family} pools as on-link on ${d.interface}`}: replies to clients beyond that link follow the node's own routes`,
            fix: `add the IPv${d.family} router of ${d.interface}'s link to the network's \`gateway\`, then run \`${apply}\``,
          });
          continue;
        }
        const shadow =
          reply.rule !== undefined &&
          reply.rule.protocol !== input.routeProtocol &&
          reply.rule.priority !== 0 &&
          reply.rule.priority < 32766;
        const cause =
          d.method === "connmark" && !markingInPlace
            ? "symroute's firewall rules are missing, so replies get no mark"
            : shadow
              ? `rule ${reply.rule?.priority} (not symroute's) decides before symroute's rule`
              : onLink
                ? `no route for the pool's link: replies to ${client.address} follow ${reply.gateway === undefined ? "another route" : `the default route via ${reply.gateway}`}`
                : wantsGateway
                  ? `replies are routed by table ${reply.table ?? "?"}${mark === undefined ? " (no mark)" : ` with mark ${formatHex(mark)}`}, not by a table whose default route is ${d.gateway ?? "?"}`
                  : "no route back to the client";
        findings.push({
          ...base,
          ok: false,
          summary: onLink
            ? `the reply to ${client.address} ${describe(reply)}, not directly on ${d.interface}`
            : `the reply ${describe(reply)}${wantsGateway ? `, not via ${d.gateway ?? "?"} on ${d.interface}` : ""}: upstream routers drop it`,
          cause,
          fix: shadow
            ? `remove or re-prioritise rule ${reply.rule?.priority}, or move symroute's rulePriorities before it`
            : onLink
              ? linkFix
              : `run \`${apply}\``,
        });
      }
    }
    const lb = sims[0]?.lb ?? formatIp(pools[0]?.family ?? d.family, pools[0]?.value ?? 0n);
    const podCidr = input.podCIDRs
      .map((p) => parsePrefix(p))
      .find((p): p is Prefix => p !== undefined && p.family === d.family);

    // Case 4: a pod reaching the LB address. With a source rule, the LB's replies to pods must stay inside.
    if (podCidr !== undefined && d.method === "source") {
      const pod = hostIn(podCidr, localAddrs, 1);
      const reply = tracePacket(index, { from: lb, to: pod, ipproto: 6, sport: 8080, dport: 40000 });
      const ok = reply.result === "unicast" && reply.dev !== d.interface;
      findings.push({
        network: d.name,
        family: d.family,
        path: "pod to LB",
        ok,
        summary: ok
          ? `replies from ${lb} to pods ${describe(reply)}`
          : `replies from ${lb} to pod ${pod} ${describe(reply)}`,
        ...(ok
          ? {}
          : {
              cause: "the source rule sends them to the pool's gateway",
              fix: "list the pod networks in podCIDRs: symroute adds `from POOL to PODCIDR lookup main`",
            }),
      });
    }
  }
  // Below routing: the next hop's resolution on each pool's interface (KERNEL-FACTS 10), and the
  // source checks of those interfaces (KERNEL-FACTS 5, 11).
  const below = nodeChecks({
    node,
    decisions: input.decisions,
    firewall: input.firewall,
    firewallInPlace: markingInPlace,
    probesInPlace,
    guardsInPlace: guardRulesInPlace,
    applyCommand: apply,
  });
  // A reply routed right still goes nowhere when its next hop cannot be resolved: the paths of that
  // network and family fail with it, so that each path's verdict is what its traffic does.
  const unresolved = below.filter((f) => f.path === "gateway" && !f.ok);
  const paths = findings.map((f) => {
    const hop = unresolved.find((g) => g.network === f.network && g.family === f.family);
    if (hop === undefined || !f.ok || !f.path.startsWith("client to LB")) return f;
    return {
      ...f,
      ok: false,
      summary: `${f.summary}, but the next hop is not resolved (see the gateway finding)`,
      cause: hop.summary,
      ...(hop.fix === undefined ? {} : { fix: hop.fix }),
    };
  });
  const all = [...paths, ...below];
  return { healthy: all.every((f) => f.ok), findings: all };
}

/** One backend the doctor simulates a client's request to, and the backend's reply from. */
interface SimulatedBackend {
  readonly path: PathName;
  /** The address the client connects to. */
  readonly lb: string;
  /** Where the request goes after kube-proxy's DNAT (the LB address itself with IPVS). */
  readonly backend: string;
  /** Where the backend's reply enters the node; undefined: a local socket sends it. */
  readonly iif: string | undefined;
  /** The services (`1.2.3.4:80/tcp`) that DNAT the LB address to this backend, when read. */
  readonly services?: readonly string[];
  readonly ipproto: number;
  readonly port: number;
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
function simulatedBackends(
  input: DoctorInput,
  d: NetworkDecision,
  pools: readonly Prefix[],
  index: ReturnType<typeof compileRoutingState>,
): { sims: SimulatedBackend[]; notes: Finding[] } {
  const { node } = input;
  const localAddrs = node.addresses.map((a) => a.local);
  const inPool = (address: string): boolean => {
    const ip = parseIp(address);
    return ip !== undefined && pools.some((p) => prefixContainsIp(p, ip));
  };
  const poolText = d.pools.join(", ");
  const notes: Finding[] = [];
  const note = (summary: string): void => {
    notes.push({ network: d.name, family: d.family, path: "client to LB, pod backend", ok: true, summary });
  };
  const tcp = { ipproto: 6, port: 8080 };

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
      { lb: string; backend: string; services: string[]; ipproto: number; port: number }
    >();
    for (const s of services) {
      for (const b of s.backends) {
        const key = `${s.address} ${b.address}`;
        const pair = pairs.get(key) ?? {
          lb: s.address,
          backend: b.address,
          services: [],
          ipproto: IPPROTO[s.proto ?? "tcp"] ?? 6,
          port: b.port ?? s.port ?? 8080,
        };
        pair.services.push(`${formatServiceAddress(s)} → ${formatBackend(s.family, b)}`);
        pairs.set(key, pair);
      }
    }
    const all = [...pairs.values()];
    if (all.length > MAX_SIMULATED)
      note(
        `${all.length - MAX_SIMULATED} more backend(s) of LB addresses in ${poolText} not simulated (the first ${MAX_SIMULATED} are)`,
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
 * network's gateway; without a gateway, a host of the pool's own link, and also an outside client
 * when one is given or when the network's other family has a gateway (a forgotten one: plan warns).
 */
function clientsOf(
  input: DoctorInput,
  d: NetworkDecision,
  pools: readonly Prefix[],
  avoid: readonly string[],
): { address: string; onLink: boolean }[] {
  const wanted = input.clients?.[d.family];
  const given = wanted === undefined ? [] : typeof wanted === "string" ? [wanted] : [...wanted];
  const outside = given.length > 0 ? given : [DEFAULT_CLIENTS[d.family]];
  if (d.gateway !== undefined) return outside.map((address) => ({ address, onLink: false }));
  const inPool = (address: string): boolean => {
    const ip = parseIp(address);
    return ip !== undefined && pools.some((p) => prefixContainsIp(p, ip));
  };
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
