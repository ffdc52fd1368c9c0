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
import type { NodeState, Route } from "../model/state.ts";
import { firewallRuleKeys, type FirewallSpec } from "../model/firewall.ts";
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
  /** The outside client to simulate, per family. */
  readonly clients?: Partial<Record<Family, string>>;
  /** The command that applies this configuration, named in fixes (default `symroute apply -c FILE`). */
  readonly applyCommand?: string;
}

export type PathName =
  | "interface"
  | "client to LB, pod backend"
  | "client to LB, host-network backend"
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
  const firewallInPlace =
    input.firewall === undefined ||
    firewallRuleKeys(input.firewall).every((k) =>
      node.firewall.some((f) => f.backend === input.firewall?.backend && f.ruleKeys.includes(k)),
    );
  const apply = input.applyCommand ?? "symroute apply -c FILE";
  // symroute's anti-spoofing guards, simulated only when its firewall is on the node as planned.
  const guardsInPlace = firewallInPlace ? (input.firewall?.guards ?? []) : [];

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

  for (const d of input.decisions) {
    const link = node.links.find((l) => l.ifname === d.interface);
    if (link === undefined || !link.up) {
      findings.push({
        network: d.name,
        family: d.family,
        path: "interface",
        ok: false,
        summary: `interface ${d.interface} is ${link === undefined ? "missing" : "down"}`,
        cause: "requests for the pool arrive on it",
        fix:
          link === undefined
            ? "create it (or give the network `vlan:` so symroute does)"
            : `ip link set ${d.interface} up`,
      });
      continue;
    }
    const pool = parsePrefix(d.pools[0] ?? "");
    if (pool === undefined) continue;
    const lb = hostIn(
      pool,
      [d.gateway ?? "", ...localAddrs],
      pool.len >= (pool.family === 4 ? 31 : 127) ? 0 : 3,
    );
    // Without a gateway the clients are the hosts of the pool's own link (the article's case 2).
    const onLink = d.gateway === undefined;
    const client = onLink
      ? hostIn(pool, [lb, ...localAddrs], 9)
      : (input.clients?.[d.family] ?? DEFAULT_CLIENTS[d.family]);
    const wantsGateway = d.method === "connmark" || d.method === "source";
    const linkFix = `symroute apply adds \`ip route ${d.pools.join(", ")} dev ${d.interface}\``;
    const mark = d.method === "connmark" && firewallInPlace ? d.mark : undefined;

    // Backends: a pod in a pod CIDR routed on this node, and the node's own address (host network).
    const backends: { path: PathName; addr: string; iif: string | undefined }[] = [];
    const podCidr = input.podCIDRs
      .map((p) => parsePrefix(p))
      .find((p): p is Prefix => p !== undefined && p.family === d.family);
    if (podCidr !== undefined) {
      const podRoute = node.routes.find(
        (r) =>
          r.family === d.family &&
          r.table === 254 &&
          r.dst !== "default" &&
          r.gateway === undefined &&
          (() => {
            const p = parsePrefix(r.dst);
            return (
              p !== undefined &&
              p.len >= podCidr.len &&
              prefixContainsIp(podCidr, { family: p.family, value: p.value })
            );
          })(),
      );
      if (podRoute === undefined) {
        findings.push({
          network: d.name,
          family: d.family,
          path: "client to LB, pod backend",
          ok: true,
          summary: `no pod network of ${podCidr.family === 4 ? "IPv4" : "IPv6"} podCIDRs is routed on this node: pod backends not checked`,
        });
      } else {
        const pod = hostIn(parsePrefix(podRoute.dst) ?? podCidr, localAddrs, 1);
        backends.push({
          path: "client to LB, pod backend",
          addr: pod,
          iif: routeDev(node, d.family, pod)?.dev,
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
      backends.push({ path: "client to LB, host-network backend", addr: hostAddr, iif: undefined });

    for (const b of backends) {
      // The request after kube-proxy's DNAT (rp_filter runs after it: KERNEL-FACTS 5).
      const requestTo = d.method === "source" ? lb : b.addr;
      // As it arrives: to the LB address (symroute's guards, before DNAT, exempt it), then DNAT'ed.
      const request = tracePacket(
        index,
        {
          from: client,
          to: lb,
          ...(requestTo === lb ? {} : { dnatTo: requestTo }),
          iif: d.interface,
          ipproto: 6,
          dport: 8080,
          sport: 40000,
        },
        { guards: guardsInPlace },
      );
      if (request.result === "unsupported") {
        findings.push({
          network: d.name,
          family: d.family,
          path: b.path,
          ok: false,
          summary: `cannot tell: ${request.reason ?? "not modelled"}`,
          cause: "the simulator does not model this state",
          fix: "see `symroute explain` for details",
        });
        continue;
      }
      if (request.guard?.result === "drop") {
        findings.push({
          network: d.name,
          family: d.family,
          path: b.path,
          ok: false,
          summary: `the request from ${client} to ${lb} is dropped on ${d.interface} by symroute's anti-spoofing guard`,
          cause: request.guard.reason,
          fix: "the guard exempts the pools of its interface: check the network's `addresses` and `interface`, and `symroute plan`",
        });
        continue;
      }
      if (request.result === "rejected" || (request.rpFilter !== undefined && !request.rpFilter.accepted)) {
        findings.push({
          network: d.name,
          family: d.family,
          path: b.path,
          ok: false,
          summary: `the request from ${client} to ${lb} (DNAT to ${requestTo}) is dropped on ${d.interface}`,
          cause: onLink
            ? `no route for the pool's link: the reverse-path check finds ${client} behind another interface`
            : `rp_filter drops it: ${request.rpFilter?.reason ?? request.reason ?? "reverse path check failed"} (effective rp_filter ${request.rpFilter?.mode ?? "?"})`,
          fix: onLink
            ? linkFix
            : `symroute apply sets net.ipv4.conf.${d.interface}.rp_filter (and conf.all, raising every other interface first)`,
        });
        continue;
      }
      if (request.result !== "local" && request.result !== "unicast") {
        findings.push({
          network: d.name,
          family: d.family,
          path: b.path,
          ok: false,
          summary: `the request to ${requestTo} ${describe(request)}`,
          cause: "no usable route to the backend",
          fix: "check the node's routes to its pods",
        });
        continue;
      }
      // The reply: from the backend (or the LB address itself with IPVS), with the restored mark.
      const replyFrom = d.method === "source" ? lb : b.addr;
      const reply = tracePacket(index, {
        from: replyFrom,
        to: client,
        ...(b.iif === undefined || d.method === "source" ? {} : { iif: b.iif }),
        ...(mark === undefined ? {} : { mark }),
        ipproto: 6,
        sport: 8080,
        dport: 40000,
      });
      const expectDev = wantsGateway || onLink ? d.interface : undefined;
      const good =
        reply.result === "unicast" &&
        (expectDev === undefined ||
          (reply.dev === expectDev && (d.gateway === undefined || reply.gateway === d.gateway)));
      if (good) {
        findings.push({
          network: d.name,
          family: d.family,
          path: b.path,
          ok: true,
          summary: `request reaches ${requestTo}; the reply ${describe(reply)}`,
        });
        continue;
      }
      const shadow =
        reply.rule !== undefined &&
        reply.rule.protocol !== input.routeProtocol &&
        reply.rule.priority !== 0 &&
        reply.rule.priority < 32766;
      const cause =
        d.method === "connmark" && !firewallInPlace
          ? "symroute's firewall rules are missing, so replies get no mark"
          : shadow
            ? `rule ${reply.rule?.priority} (not symroute's) decides before symroute's rule`
            : onLink
              ? `no route for the pool's link: replies to ${client} follow ${reply.gateway === undefined ? "another route" : `the default route via ${reply.gateway}`}`
              : wantsGateway
                ? `replies are routed by table ${reply.table ?? "?"}${mark === undefined ? " (no mark)" : ` with mark ${formatHex(mark)}`}, not by a table whose default route is ${d.gateway ?? "?"}`
                : "no route back to the client";
      findings.push({
        network: d.name,
        family: d.family,
        path: b.path,
        ok: false,
        summary: onLink
          ? `the reply to ${client} ${describe(reply)}, not directly on ${d.interface}`
          : `the reply ${describe(reply)}${wantsGateway ? `, not via ${d.gateway ?? "?"} on ${d.interface}` : ""}: upstream routers drop it`,
        cause,
        fix: shadow
          ? `remove or re-prioritise rule ${reply.rule?.priority}, or move symroute's rulePriorities before it`
          : onLink
            ? linkFix
            : `run \`${apply}\``,
      });
    }

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
  findings.push(
    ...nodeChecks({
      node,
      decisions: input.decisions,
      firewall: input.firewall,
      firewallInPlace,
      applyCommand: apply,
    }),
  );
  return { healthy: findings.every((f) => f.ok), findings };
}
