// `symroute doctor`: for each network, walk a request from an outside client to an LB address and
// its reply through the simulator, for each backend (./backends.ts chooses them: kube-proxy's DNAT
// targets read from the node, or what it assumed), and say in plain words what is broken, why, and
// what fixes it. Pure: the node, the config's decisions and a few facts about the host come in;
// findings go out.

import { formatIp, parsePrefix, type Family, type Prefix } from "../model/address.ts";
import { formatHex } from "../model/marks.ts";
import type { NodeState } from "../model/state.ts";
import { ARP_KEY_PREFIX, firewallRuleKeys, type FirewallSpec } from "../model/firewall.ts";
import { portOf } from "../plan/desired.ts";
import { ruleDeleteCommand } from "../plan/diff.ts";
import type { Conflict, NetworkDecision } from "../plan/types.ts";
import { compileRoutingState, tracePacket, type Packet, type Trace } from "../simulate/index.ts";
import { clientsOf, hostIn, simulatedBackends, type ClientPath } from "./backends.ts";
import { ipv6Disabled, nodeChecks } from "./node-checks.ts";
import { counted } from "../model/plural.ts";

/**
 * Why a running agent may not have repaired it yet: no kernel event reports a change to an ipset
 * (the kernel's ipset has no netlink notifications), so only the next reconcile, at the latest
 * the periodic resync, compares the sets' elements.
 */
const IPSET_REPAIR_BOUND =
  "; a running agent repairs an element changed in symroute's ipsets only at its next reconcile (no kernel event reports it): at the latest after its --resync-interval, 60 s by default";

export interface HostFacts {
  /** systemd-networkd runs and deletes routing rules it did not create (ManageForeignRoutingPolicyRules). */
  readonly networkdDeletesForeignRules?: boolean;
}

interface DoctorInput {
  readonly node: NodeState;
  readonly decisions: readonly NetworkDecision[];
  /** The firewall symroute wants; its rules must be on the node for replies to get their mark. */
  readonly firewall: FirewallSpec | undefined;
  readonly podCIDRs: readonly string[];
  readonly routeProtocol: number;
  /**
   * Protocols symroute's state records from before a move of routeProtocol that no apply has
   * finished (the state's routeProtocol and formerRouteProtocols): rules under them are symroute's.
   */
  readonly formerRouteProtocols?: readonly number[];
  readonly kubeProxyMode: string | undefined;
  /** Changes `plan` would make: symroute's objects are not all in place. */
  readonly pendingChanges: number;
  /** Foreign objects `plan` finds in symroute's way (apply and plan exit 4); absent: none. */
  readonly conflicts?: readonly Conflict[];
  readonly host: HostFacts;
  /** The outside clients to simulate, per family (default 203.0.113.10 / 2001:db8:ffff::10). */
  readonly clients?: Partial<Record<Family, string | readonly string[]>>;
  /** Networks left out of the plan because their interface (or its VLAN parent) is not on the node. */
  readonly missingInterfaces?: readonly MissingInterface[];
  /** The command that applies this configuration, named in fixes (default `symroute apply -c FILE`). */
  readonly applyCommand?: string;
  /**
   * The agent converges this node (`doctor --kubernetes`; applyCommand is its command line): pending
   * changes mean it has not, and its log and the networks' status say why.
   */
  readonly agentConverges?: boolean;
  /**
   * `symroute explain` with the state directory its guards come from, completed with a packet in
   * the fix of a path the simulator cannot tell (default `symroute explain`).
   */
  readonly explainCommand?: string;
}

const PROTOCOL_NAMES: Readonly<Record<number, string>> = { 1: "icmp", 6: "tcp", 17: "udp" };

/** The explain command line that asks about exactly this packet, to see the step it stops at. */
export function explainPacketCommand(base: string, packet: Packet): string {
  const words = [base];
  if (packet.from !== undefined) words.push("--from", packet.from);
  words.push("--to", packet.to);
  if (packet.iif !== undefined) words.push("--iif", packet.iif);
  if (packet.dnatTo !== undefined) words.push("--dnat-to", packet.dnatTo);
  if (packet.mark !== undefined && packet.mark !== 0) words.push("--mark", formatHex(packet.mark));
  if (packet.ipproto !== undefined)
    words.push("--proto", PROTOCOL_NAMES[packet.ipproto] ?? String(packet.ipproto));
  if (packet.sport !== undefined) words.push("--sport", String(packet.sport));
  if (packet.dport !== undefined) words.push("--dport", String(packet.dport));
  return words.join(" ");
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
  "interface" | ClientPath | "pod to LB" | "gateway" | "anti-spoofing" | "node" | "symroute" | "conflict";

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
  /** An ok finding's risk to watch, with what to do about it; it leaves the finding ok (exit 0). */
  readonly warning?: string;
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
  const explain = input.explainCommand ?? "symroute explain";
  // symroute's anti-spoofing guards, simulated only when its firewall is on the node as planned.
  const guardsInPlace = guardRulesInPlace ? (fw?.guards ?? []) : [];

  if (input.pendingChanges > 0) {
    findings.push({
      network: "*",
      family: undefined,
      path: "symroute",
      ok: false,
      summary: `symroute's objects are not all in place: ${counted(input.pendingChanges, "change")} pending`,
      cause: "the node drifted from the configuration, or it was never applied",
      fix: `${
        input.agentConverges === true
          ? `the agent (\`${apply}\`) converges this node: if it runs, its log and the SymrouteNetworks' status (\`kubectl get srn -o yaml\`) say why it has not`
          : `run \`${apply}\` (or run the agent to keep the node converged)`
      }${fw?.backend === "iptables" ? IPSET_REPAIR_BOUND : ""}`,
    });
  }
  // What plan and apply report as conflicts: another tool's object that symroute leaves alone and
  // that is in its way, or that one of its rules takes packets past (a goto over a foreign rule).
  for (const c of input.conflicts ?? []) {
    const family = /^IPv([46]) /.exec(c.object)?.[1];
    findings.push({
      network: c.networks?.length === 1 ? (c.networks[0] ?? "*") : "*",
      family: family === undefined ? undefined : (Number(family) as Family),
      path: "conflict",
      ok: false,
      summary: `conflict with another tool's object ${c.object} (symroute leaves it alone; plan and apply exit 4)`,
      cause: c.reason,
      fix: `move or remove that object as the cause says, then run \`${apply}\`: symroute never changes another tool's object`,
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

  const linksByName = new Map(node.links.map((l) => [l.ifname, l]));
  for (const d of input.decisions) {
    const link = linksByName.get(d.interface);
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
    const master = portOf(link, linksByName);
    if (master !== undefined) {
      findings.push({
        network: d.name,
        family: d.family,
        path: "interface",
        ok: false,
        summary: `interface ${d.interface} is a port of ${master.kind ?? "device"} ${master.ifname}: its packets arrive on ${master.ifname}`,
        cause: `the kernel hands every packet arriving on ${d.interface} to ${master.ifname}: rp_filter (${master.ifname}'s), routing and ARP see ${master.ifname}, not ${d.interface}, so requests for the pool are dropped and replies sent through ${d.interface} find no neighbour there`,
        fix: `set \`interface: ${master.ifname}\` for network ${d.name} in the configuration, then run \`${apply}\``,
      });
      continue;
    }
    if (d.family === 6 && ipv6Disabled(node, d.interface)) {
      findings.push({
        network: d.name,
        family: 6,
        path: "interface",
        ok: false,
        summary: `IPv6 is disabled on interface ${d.interface} (net.ipv6.conf.${d.interface}.disable_ipv6 1)`,
        cause:
          "the kernel drops every IPv6 packet arriving on it and refuses IPv6 routes through it: no IPv6 path of this network can work, and apply leaves its IPv6 routes out",
        fix: `sysctl -w net.ipv6.conf.${d.interface}.disable_ipv6=0 (and in the node's network configuration, so that it stays on), then run \`${apply}\``,
      });
      continue;
    }
    const pools = d.pools.map((p) => parsePrefix(p)).filter((p): p is Prefix => p !== undefined);
    if (pools.length === 0) continue;
    const wantsGateway = d.method === "connmark" || d.method === "source";
    const linkFix = `symroute apply adds \`ip route ${d.pools.join(", ")} dev ${d.interface}\``;
    const mark = d.method === "connmark" && markingInPlace ? d.mark : undefined;
    const { sims, notes } = simulatedBackends(input, d, pools, index);
    for (const summary of notes)
      findings.push({
        network: d.name,
        family: d.family,
        path: "client to LB, pod backend",
        ok: true,
        summary,
      });

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
        const requestPacket: Packet = {
          from: client.address,
          to: b.lb,
          ...(b.backend === b.lb ? {} : { dnatTo: b.backend }),
          iif: d.interface,
          ...port,
        };
        const request = tracePacket(index, requestPacket, {
          guards: guardsInPlace,
          ...(fw === undefined ? {} : { guardFrontEnd: fw.backend }),
        });
        const asked = `the request from ${client.address} to ${b.lb}${b.backend === b.lb ? "" : ` (DNAT to ${b.backend})`}`;
        if (request.result === "unsupported") {
          findings.push({
            ...base,
            ok: false,
            summary: `cannot tell: ${request.reason ?? "not modelled"}`,
            cause: "the simulator does not model this state",
            fix: `run \`${explainPacketCommand(explain, requestPacket)}\` to see the step it stops at, and check that path on the node with real traffic`,
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
        const replyPacket: Packet = {
          from: b.backend,
          to: client.address,
          ...(b.iif === undefined ? {} : { iif: b.iif }),
          ...(mark === undefined ? {} : { mark }),
          ipproto: b.ipproto,
          sport: b.backendPort,
          dport: 40000,
        };
        const reply = tracePacket(index, replyPacket);
        // Replies to a client beyond the pool's link must leave by its gateway; to an on-link client,
        // directly on the pool's interface; a network with nothing to do keeps the node's own routes.
        const expectDev = wantsGateway || d.gateway === undefined || onLink ? d.interface : undefined;
        const expectGateway = onLink ? undefined : d.gateway;
        const good =
          reply.result === "unicast" &&
          (expectDev === undefined ||
            (reply.dev === expectDev && (expectGateway === undefined || reply.gateway === expectGateway)));
        const reached = `request reaches ${b.backend === b.lb ? b.lb : b.backend}`;
        if (reply.result === "unsupported") {
          findings.push({
            ...base,
            ok: false,
            summary: `${reached}; the reply cannot be told: ${reply.reason ?? "not modelled"}`,
            cause: "the simulator does not model this state",
            fix: `run \`${explainPacketCommand(explain, replyPacket)}\` to see the step it stops at, and check that path on the node with real traffic`,
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
          !(input.formerRouteProtocols ?? []).includes(reply.rule.protocol ?? -1) &&
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
            ? `remove that rule (${reply.rule === undefined ? "?" : ruleDeleteCommand(reply.rule)}) or move it after symroute's, or move symroute's rulePriorities before it`
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
