// Builds a lab topology in network namespaces from a LabSpec, and always tears it down.
//
//   client ── router ── node eth0 (management) ── pods behind vpod/vpodc
//               └── external link ── node ext0 (cases 3, 4)      lan ── node eth1 (case 2)
//   with two nodes, node2 (and its pod) joins each link; the shared ends become bridges.
//
// Every namespace name starts with a per-run prefix (srlab-<pid>-<n>-) so runs can go in parallel;
// `removeLabNamespaces` finds leftovers by the common "srlab-" prefix.

import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTool } from "../adapters/exec.ts";
import type { RunOptions, ToolResult } from "../adapters/exec.ts";
import { ProbeProcess } from "./probe-client.ts";
import type { ListenSpec } from "./probe.ts";
import {
  CLIENT_PORT,
  familiesOf,
  HOST_NETWORK_PORT,
  hostsOf,
  MAC,
  nodeCountOf,
  nodesOf,
  POD_PORT,
  poolOf,
  REMOTE_POD_PORT,
  SPOOF_TABLE,
} from "./spec.ts";
import { ingressCountersText } from "./spoof.ts";
import type { Host, LabSpec, Pool } from "./spec.ts";

export const LAB_PREFIX = "srlab-";

export interface Topology {
  readonly spec: LabSpec;
  readonly prefix: string;
  /** Namespace name of each host present in this case. */
  readonly namespaces: Readonly<Partial<Record<Host, string>>>;
  /** A private directory for this run: symroute's config and state live here. */
  readonly dir: string;
  readonly pools: readonly Pool[];
  namespaceOf(host: Host): string;
  /** Runs argv inside a host's namespace. */
  exec(host: Host, argv: readonly string[], options?: RunOptions): Promise<ToolResult>;
  probe(host: Host): ProbeProcess;
  teardown(): Promise<void>;
  /** Leaves the topology running after this process exits (`lab up`); `lab down` removes it. */
  detach(): void;
}

let runCounter = 0;

export function newPrefix(): string {
  runCounter += 1;
  return `${LAB_PREFIX}${process.pid}-${runCounter}-`;
}

const live = new Set<Topology>();

/** Tears down every topology this process built and has not torn down yet (signal handlers). */
export async function teardownAll(): Promise<void> {
  await Promise.allSettled([...live].map((t) => t.teardown()));
}

/** What one host's `ip -batch` holds, and the sysctls it gets before and after its links exist. */
interface HostSetup {
  readonly early: string[];
  readonly late: string[];
  /** Set if the kernel has them (`sysctl -e`): br_netfilter's knobs exist only with that module. */
  readonly ifPresent: string[];
  readonly batch: string[];
  /** Run after `batch` with `ip -6 -batch` (an IPv6 `rule add from` needs the family up front). */
  readonly batch6: string[];
}

/** What every host gets, as `ip -batch` lines and sysctls; `@host` stands for a namespace name. */
function hostSetups(spec: LabSpec): {
  setups: Record<Host, HostSetup>;
  /** Run first, in the router's namespace (the client's veth, the bridges of shared links). */
  routerLinks: string[];
  /** Run next, in each node's namespace: veths whose peers go straight into their namespaces. */
  nodeLinks: Record<"node" | "node2", string[]>;
} {
  const families = familiesOf(spec);
  const twoNodes = nodeCountOf(spec) === 2;
  const external = spec.case >= 3;
  const blank = (): HostSetup => ({
    // DAD would leave IPv6 addresses tentative for a second or two; the lab has no duplicates.
    early: ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"],
    late: [],
    ifPresent: [],
    batch: ["link set lo up"],
    batch6: [],
  });
  const setups: Record<Host, HostSetup> = {
    client: blank(),
    router: blank(),
    node: blank(),
    pod: blank(),
    podc: blank(),
    lan: blank(),
    node2: blank(),
    pod2: blank(),
  };
  // New namespaces may inherit the host's IPv4 defaults: make the end hosts' filtering explicit.
  for (const h of [setups.client, setups.pod, setups.podc, setups.pod2]) {
    h.early.push("net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0");
  }
  // The on-link client of case 2 checks sources like a router: it ignores an ARP request whose
  // sender is not on its subnet, so the node must resolve it by itself (KERNEL-FACTS 10).
  setups.lan.early.push("net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1");
  // A node forwards, and filters spoofed sources strictly (conf.all=1, the interfaces at their
  // default 0: symroute must raise them before it lowers conf.all).
  for (const h of [setups.node, setups.node2]) {
    h.early.push("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv4.conf.all.rp_filter=1");
  }
  // The router drops spoofed sources on every interface (uRPF), as real upstream routers do.
  setups.router.early.push(
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.rp_filter=1",
    "net.ipv4.conf.default.rp_filter=1",
  );

  // With two nodes the router's node-side and external links are shared segments: a bridge each,
  // holding the router's address; with one node, the router's end of the veth holds it.
  const nodeSide = twoNodes ? "brnode" : "rnode";
  const externalSide = twoNodes ? "brext" : "rext";
  const routerLinks = ["link add rclient type veth peer name eth0 netns @client"];
  const routerIfaces = ["lo", "rclient", "rnode", ...(external ? ["rext"] : [])];
  if (twoNodes) {
    // Frames the bridge forwards between the nodes must not meet the router's IP filters (the
    // IPv6 uRPF would drop pod-to-pod traffic): a switch does not route.
    setups.router.ifPresent.push(
      "net.bridge.bridge-nf-call-iptables=0",
      "net.bridge.bridge-nf-call-ip6tables=0",
      "net.bridge.bridge-nf-call-arptables=0",
    );
    routerLinks.push("link add brnode type bridge mcast_snooping 0");
    routerIfaces.push("brnode", "rnode2");
    if (external) {
      routerLinks.push("link add brext type bridge mcast_snooping 0");
      routerIfaces.push("brext", "rext2");
    }
  }
  setups.router.late.push(...routerIfaces.map((i) => `net.ipv4.conf.${i}.rp_filter=1`));

  const nodeLinks: Record<"node" | "node2", string[]> = { node: [], node2: [] };
  const veth = (
    from: "node" | "node2",
    local: string,
    localMac: string | undefined,
    peerHost: Host,
    peer: string,
    peerMac?: string,
  ) =>
    nodeLinks[from].push(
      [
        `link add ${local}`,
        ...(localMac === undefined ? [] : [`address ${localMac}`]),
        `type veth peer name ${peer}`,
        ...(peerMac === undefined ? [] : [`address ${peerMac}`]),
        `netns @${peerHost}`,
      ].join(" "),
    );
  veth("node", "eth0", MAC.nodeEth0, "router", "rnode", MAC.routerNodeSide);
  veth("node", "vpod", undefined, "pod", "eth0");
  veth("node", "vpodc", undefined, "podc", "eth0");
  if (external) veth("node", "ext0", MAC.nodeExt0, "router", "rext", MAC.routerExternal);
  if (spec.case === 2) veth("node", "eth1", MAC.nodeEth1, "lan", "eth0", MAC.lan);
  if (twoNodes) {
    // On a bridge the router's MAC is the bridge's; the port MACs are left to the kernel.
    veth("node2", "eth0", MAC.node2Eth0, "router", "rnode2");
    veth("node2", "vpod", undefined, "pod2", "eth0");
    if (external) veth("node2", "ext0", MAC.node2Ext0, "router", "rext2");
    if (spec.case === 2) veth("node2", "eth1", MAC.node2Eth1, "lan", "eth1");
  }
  // Case 2 with two nodes: the pool's link is a segment both nodes' eth1 are on, a bridge on the lan host.
  const lanSide = twoNodes ? "brlan" : "eth0";
  if (spec.case === 2 && twoNodes) {
    setups.lan.ifPresent.push(
      "net.bridge.bridge-nf-call-iptables=0",
      "net.bridge.bridge-nf-call-ip6tables=0",
      "net.bridge.bridge-nf-call-arptables=0",
    );
    setups.lan.batch.push(
      "link add brlan type bridge mcast_snooping 0",
      `link set brlan address ${MAC.lan}`,
      "link set eth0 master brlan",
      "link set eth1 master brlan",
    );
  }
  const routerExternalMac = MAC.routerExternal;
  if (twoNodes) {
    setups.router.batch.push(
      `link set brnode address ${MAC.routerNodeSide}`,
      "link set rnode master brnode",
      "link set rnode2 master brnode",
      ...(external
        ? [
            `link set brext address ${routerExternalMac}`,
            "link set rext master brext",
            "link set rext2 master brext",
          ]
        : []),
    );
  }

  const up = (h: HostSetup, ...links: string[]) => h.batch.push(...links.map((l) => `link set ${l} up`));
  up(
    setups.node,
    "eth0",
    "vpod",
    "vpodc",
    ...(external ? ["ext0"] : []),
    ...(spec.case === 2 ? ["eth1"] : []),
  );
  up(setups.router, "rnode", "rclient", ...(external ? ["rext"] : []));
  if (twoNodes) {
    up(setups.router, "brnode", "rnode2", ...(external ? ["brext", "rext2"] : []));
    up(setups.node2, "eth0", "vpod", ...(external ? ["ext0"] : []), ...(spec.case === 2 ? ["eth1"] : []));
    if (spec.case === 2) up(setups.lan, "brlan", "eth1");
    up(setups.pod2, "eth0");
  }
  up(setups.client, "eth0");
  up(setups.pod, "eth0");
  up(setups.podc, "eth0");
  if (spec.case === 2) up(setups.lan, "eth0");

  for (const f of families) {
    const pool = poolOf(spec.case, f);
    const addr = (h: HostSetup, a: string, len: number, dev: string) =>
      h.batch.push(`addr add ${a}/${len} dev ${dev}${f.family === 6 ? " nodad" : ""}`);
    const any = f.family === 4 ? "0.0.0.0/0" : "::/0";
    addr(setups.client, f.client, f.clientPrefixlen, "eth0");
    setups.client.batch.push(`route add ${any} via ${f.routerClientSide}`);
    addr(setups.router, f.routerClientSide, f.clientPrefixlen, "rclient");
    addr(setups.router, f.router, f.nodePrefixlen, nodeSide);
    if (external) addr(setups.router, f.routerExternal, f.externalPrefixlen, externalSide);
    addr(setups.node, f.node, f.nodePrefixlen, "eth0");
    setups.node.batch.push(`route add ${any} via ${f.router} dev eth0`);
    addr(setups.node, f.podGateway, f.podPrefixlen, "vpod");
    addr(setups.node, f.podClientGateway, f.podPrefixlen, "vpodc");
    addr(setups.pod, f.pod, f.podPrefixlen, "eth0");
    setups.pod.batch.push(`route add ${any} via ${f.podGateway}`);
    addr(setups.podc, f.podClient, f.podPrefixlen, "eth0");
    setups.podc.batch.push(`route add ${any} via ${f.podClientGateway}`);
    if (twoNodes) {
      // The pod network between the nodes: plain routes, as a routed CNI (Calico without overlay) has.
      addr(setups.node2, f.node2, f.nodePrefixlen, "eth0");
      setups.node2.batch.push(`route add ${any} via ${f.router} dev eth0`);
      addr(setups.node2, f.pod2Gateway, f.podPrefixlen, "vpod");
      addr(setups.pod2, f.pod2, f.podPrefixlen, "eth0");
      setups.pod2.batch.push(`route add ${any} via ${f.pod2Gateway}`);
      setups.node.batch.push(`route add ${f.pod2Subnet} via ${f.node2} dev eth0`);
      setups.node2.batch.push(
        `route add ${f.podSubnet} via ${f.node} dev eth0`,
        `route add ${f.podClientSubnet} via ${f.node} dev eth0`,
      );
    }
    // MetalLB's speaker answers ARP/NDP for the LB address with the node's MAC on the pool's link:
    // a permanent neighbour entry on the sender stands in for that answer.
    if (pool.interface === "eth0") {
      setups.router.batch.push(
        `neigh replace ${pool.lbAddress} lladdr ${MAC.nodeEth0} dev ${nodeSide} nud permanent`,
      );
    } else if (pool.interface === "ext0") {
      setups.router.batch.push(
        `neigh replace ${pool.lbAddress} lladdr ${MAC.nodeExt0} dev ${externalSide} nud permanent`,
      );
      // Nothing on the node side: ext0 has no IPv4 address, and the node resolves the gateway by
      // itself against a router that ignores ARP senders outside the link's subnet (KERNEL-FACTS 10).
    } else {
      addr(setups.lan, f.lan, f.lanPrefixlen, lanSide);
      setups.lan.batch.push(
        `neigh replace ${pool.lbAddress} lladdr ${MAC.nodeEth1} dev ${lanSide} nud permanent`,
      );
    }
    // The router holds a pod-range address so it can send a spoofed packet into the node's eth0.
    if (f.spoofSource !== undefined) setups.router.batch.push(`addr add ${f.spoofSource}/32 dev lo`);
    if (pool.interface !== "eth0") {
      // And the attacker on the pool's link (the router in cases 3, 4, the lan host in case 2): a
      // pod-range source whose packets leave by that link to the node's MAC there (through the LB
      // address's neighbour entry), whatever their destination.
      const attacker = external ? setups.router : setups.lan;
      const batch = f.family === 4 ? attacker.batch : attacker.batch6;
      batch.push(
        `addr add ${f.externalSpoofSource}/${f.family === 4 ? 32 : 128} dev lo`,
        `rule add from ${f.externalSpoofSource} lookup ${SPOOF_TABLE} priority ${SPOOF_TABLE}`,
        `route add ${any} via ${pool.lbAddress} dev ${external ? externalSide : lanSide} table ${SPOOF_TABLE}`,
      );
    }
    if (spec.kubeProxy === "ipvs-like") {
      addr(setups.node, pool.lbAddress, f.family === 4 ? 32 : 128, "kube-ipvs0");
    }
  }
  if (spec.kubeProxy === "ipvs-like") {
    // kube-proxy's IPVS mode holds every LB address on a down dummy device; this kernel has no
    // dummy, and a bridge without ports does the same job.
    setups.node.batch.splice(1, 0, "link add kube-ipvs0 type bridge", "link set kube-ipvs0 up");
  }
  return { setups, nodeLinks, routerLinks };
}

/** kube-proxy's bit for "masquerade this connection" (the real kube-proxy's default). */
const KUBE_MASQ_MARK = "0x4000";

/**
 * kube-proxy's DNAT of the LB address, in the variant's own front end (ruleset text for one tool),
 * the same on every node. With two nodes a third port goes to a pod on the second node, marked for
 * masquerade as kube-proxy does, so that its replies come back through the first.
 */
export function kubeProxyRules(
  spec: LabSpec,
): { tool: "iptables-restore" | "ip6tables-restore" | "nft"; text: string }[] {
  const out: { tool: "iptables-restore" | "ip6tables-restore" | "nft"; text: string }[] = [];
  for (const f of familiesOf(spec)) {
    const pool = poolOf(spec.case, f);
    const hostPort = (a: string, port: number) => (f.family === 4 ? `${a}:${port}` : `[${a}]:${port}`);
    // In IPVS mode the LB address is local and the host-network port is a local socket: no DNAT.
    // IPVS's forwarding to pods (with its snat_reroute of replies) has no stand-in on this kernel,
    // so the ipvs-like variant has no pod backend.
    if (spec.kubeProxy === "ipvs-like") continue;
    const targets = [
      { port: POD_PORT, to: hostPort(f.pod, POD_PORT), masquerade: false },
      { port: HOST_NETWORK_PORT, to: hostPort(f.node, HOST_NETWORK_PORT), masquerade: false },
      ...(nodeCountOf(spec) === 2
        ? [{ port: REMOTE_POD_PORT, to: hostPort(f.pod2, POD_PORT), masquerade: true }]
        : []),
    ];
    const len = f.family === 4 ? 32 : 128;
    if (spec.kubeProxy === "nftables") {
      const fam = f.family === 4 ? "ip" : "ip6";
      const lines = targets.flatMap((t) =>
        ["tcp", "udp"].map(
          (p) =>
            `    ${fam} daddr ${pool.lbAddress} ${p} dport ${t.port}` +
            `${t.masquerade ? ` meta mark set meta mark or ${KUBE_MASQ_MARK}` : ""} dnat to ${t.to}`,
        ),
      );
      out.push({
        tool: "nft",
        text: [
          `table ${fam} kube-proxy {`,
          "  chain services {",
          ...lines,
          "  }",
          "  chain nat-prerouting {",
          "    type nat hook prerouting priority dstnat; policy accept;",
          "    jump services",
          "  }",
          "  chain nat-output {",
          "    type nat hook output priority -100; policy accept;",
          "    jump services",
          "  }",
          "  chain nat-postrouting {",
          "    type nat hook postrouting priority srcnat; policy accept;",
          `    meta mark and ${KUBE_MASQ_MARK} == ${KUBE_MASQ_MARK} masquerade`,
          "  }",
          "}",
          "",
        ].join("\n"),
      });
    } else {
      out.push({
        tool: f.family === 4 ? "iptables-restore" : "ip6tables-restore",
        text: [
          "*nat",
          ":KUBE-SERVICES - [0:0]",
          ":KUBE-MARK-MASQ - [0:0]",
          ":KUBE-POSTROUTING - [0:0]",
          "-A PREROUTING -m comment --comment kubernetes-service-portals -j KUBE-SERVICES",
          "-A OUTPUT -m comment --comment kubernetes-service-portals -j KUBE-SERVICES",
          "-A POSTROUTING -m comment --comment kubernetes-postrouting-rules -j KUBE-POSTROUTING",
          `-A KUBE-MARK-MASQ -j MARK --or-mark ${KUBE_MASQ_MARK}`,
          `-A KUBE-POSTROUTING -m mark --mark ${KUBE_MASQ_MARK}/${KUBE_MASQ_MARK} -j MASQUERADE`,
          ...targets.flatMap((t) =>
            ["tcp", "udp"].flatMap((p) => {
              const match = `-A KUBE-SERVICES -d ${pool.lbAddress}/${len} -p ${p} -m ${p} --dport ${t.port}`;
              return [
                ...(t.masquerade ? [`${match} -j KUBE-MARK-MASQ`] : []),
                `${match} -j DNAT --to-destination ${t.to}`,
              ];
            }),
          ),
          "COMMIT",
          "",
        ].join("\n"),
      });
    }
  }
  return out;
}

/** IPv6 has no rp_filter: the router's uRPF for IPv6 is nftables' fib lookup. */
const ROUTER_IPV6_URPF = [
  "table ip6 lab-urpf {",
  "  chain prerouting {",
  "    type filter hook prerouting priority raw; policy accept;",
  "    fib saddr . iif oif missing drop",
  "  }",
  "}",
  "",
].join("\n");

function listensOf(spec: LabSpec, host: Host): ListenSpec[] {
  switch (host) {
    case "pod":
    case "pod2":
      return [
        { proto: "tcp", port: POD_PORT },
        { proto: "udp", port: POD_PORT },
      ];
    case "node": {
      const listens: ListenSpec[] = [
        { proto: "tcp", port: HOST_NETWORK_PORT },
        { proto: "udp", port: HOST_NETWORK_PORT },
      ];
      // A wildcard UDP socket answers from the primary address; a local LB address needs its own.
      if (spec.kubeProxy === "ipvs-like") {
        for (const f of familiesOf(spec)) {
          listens.push({ proto: "udp", port: HOST_NETWORK_PORT, address: poolOf(spec.case, f).lbAddress });
        }
      }
      return listens;
    }
    case "client":
      return [{ proto: "tcp", port: CLIENT_PORT }];
    default:
      return [];
  }
}

interface BuildOptions {
  readonly prefix?: string;
  /** Probes keep serving after this process exits (`lab up`). */
  readonly persistent?: boolean;
}

/**
 * Builds the topology of `spec` and starts a probe in every namespace. On any failure what was
 * built is torn down before the error is thrown; on success the caller owns `teardown()`.
 */
export async function buildTopology(spec: LabSpec, options: BuildOptions = {}): Promise<Topology> {
  const prefix = options.prefix ?? newPrefix();
  const hosts = hostsOf(spec);
  const namespaces: Partial<Record<Host, string>> = {};
  for (const h of hosts) namespaces[h] = `${prefix}${h}`;
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const probes = new Map<Host, ProbeProcess>();
  const created: string[] = [];
  let tornDown: Promise<void> | undefined;

  const namespaceOf = (host: Host): string => {
    const name = namespaces[host];
    if (name === undefined)
      throw new Error(`host ${host} is not part of ${spec.case === 2 ? "case 2" : `case ${spec.case}`}`);
    return name;
  };
  const topology: Topology = {
    spec,
    prefix,
    namespaces,
    dir,
    pools: familiesOf(spec).map((f) => poolOf(spec.case, f)),
    namespaceOf,
    exec: (host, argv, runOptions) =>
      runTool("ip", ["netns", "exec", namespaceOf(host), ...argv], runOptions),
    probe: (host) => {
      const probe = probes.get(host);
      if (probe === undefined) throw new Error(`no probe runs on ${host}`);
      return probe;
    },
    teardown: () => {
      tornDown ??= (async () => {
        await Promise.allSettled([...probes.values()].map((p) => p.stop()));
        // Deleting a namespace deletes its veths (and their peers) with it.
        await Promise.allSettled(
          created.map((n) => runTool("ip", ["netns", "del", n], { allowFailure: true })),
        );
        await rm(dir, { recursive: true, force: true });
        live.delete(topology);
      })();
      return tornDown;
    },
    detach: () => {
      for (const p of probes.values()) p.detach();
      live.delete(topology);
    },
  };
  live.add(topology);

  try {
    for (const h of hosts) {
      await runTool("ip", ["netns", "add", namespaceOf(h)]);
      created.push(namespaceOf(h));
    }
    const { setups, nodeLinks, routerLinks } = hostSetups(spec);
    const sysctl = (h: Host, settings: readonly string[]) =>
      settings.length === 0
        ? Promise.resolve()
        : topology.exec(h, ["sysctl", "-q", "-w", ...settings]).then(() => undefined);
    await Promise.all(hosts.map((h) => sysctl(h, setups[h].early)));
    await Promise.all(
      hosts
        .filter((h) => setups[h].ifPresent.length > 0)
        .map((h) => topology.exec(h, ["sysctl", "-q", "-e", "-w", ...setups[h].ifPresent])),
    );
    const resolveNs = (line: string) => line.replace(/@([a-z]+)/g, (_, h: string) => namespaceOf(h as Host));
    // Router first (it creates the client's veth), then the node (it creates every other veth).
    await runTool("ip", ["-n", namespaceOf("router"), "-batch", "-"], {
      input: `${routerLinks.map(resolveNs).join("\n")}\n`,
    });
    for (const node of nodesOf(spec)) {
      await runTool("ip", ["-n", namespaceOf(node), "-batch", "-"], {
        input: `${nodeLinks[node].map(resolveNs).join("\n")}\n`,
      });
    }
    await Promise.all(
      hosts.map((h) =>
        runTool("ip", ["-n", namespaceOf(h), "-batch", "-"], {
          input: `${setups[h].batch.map(resolveNs).join("\n")}\n`,
        }),
      ),
    );
    await Promise.all(
      hosts
        .filter((h) => setups[h].batch6.length > 0)
        .map((h) =>
          runTool("ip", ["-6", "-n", namespaceOf(h), "-batch", "-"], {
            input: `${setups[h].batch6.join("\n")}\n`,
          }),
        ),
    );
    await Promise.all(hosts.map((h) => sysctl(h, setups[h].late)));
    const counters = ingressCountersText(spec);
    if (counters !== "") await topology.exec("node", ["nft", "-f", "-"], { input: counters });
    for (const node of nodesOf(spec)) {
      for (const rules of kubeProxyRules(spec)) {
        const argv = rules.tool === "nft" ? ["nft", "-f", "-"] : [rules.tool, "--noflush"];
        await topology.exec(node, argv, { input: rules.text });
      }
    }
    if (spec.dualStack) await topology.exec("router", ["nft", "-f", "-"], { input: ROUTER_IPV6_URPF });
    // Each probe is registered as soon as it runs, so that a sibling's failure still stops it.
    const starts = await Promise.allSettled(
      hosts.map(async (h) => {
        const probe = await ProbeProcess.start(namespaceOf(h), listensOf(spec, h), {
          persistent: options.persistent === true,
        });
        probes.set(h, probe);
      }),
    );
    const failed = starts.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    await writeFile(join(dir, "spec.json"), `${JSON.stringify(spec)}\n`);
    return topology;
  } catch (error) {
    // Whatever was built goes: probes that started, namespaces, the run directory.
    await topology.teardown();
    throw error;
  }
}

/** Every namespace whose name starts with "srlab-": what `lab down` removes. */
export async function listLabNamespaces(): Promise<string[]> {
  const result = await runTool("ip", ["-j", "netns", "list"], { allowFailure: true });
  if (result.code !== 0 || result.stdout.trim() === "") return [];
  const entries = JSON.parse(result.stdout) as { name: string }[];
  return entries.map((e) => e.name).filter((n) => n.startsWith(LAB_PREFIX));
}

/** Removes lab namespaces, all of them or those of one prefix; returns the names removed. */
export async function removeLabNamespaces(prefix: string = LAB_PREFIX): Promise<string[]> {
  const names = (await listLabNamespaces()).filter((n) => n.startsWith(prefix));
  for (const n of names) {
    // Probes started by `lab up` run in the namespace; end them first so nothing lingers.
    const pids = await runTool("ip", ["netns", "pids", n], { allowFailure: true });
    for (const pid of pids.stdout.split(/\s+/).filter((p) => /^[0-9]+$/.test(p))) {
      try {
        process.kill(Number(pid), "SIGTERM");
      } catch {
        // Already gone.
      }
    }
    await runTool("ip", ["netns", "del", n], { allowFailure: true });
  }
  // The run directories of `lab up` (config and state), named after the same prefix.
  for (const entry of await readdir(tmpdir())) {
    if (entry.startsWith(prefix) && entry.startsWith(LAB_PREFIX)) {
      await rm(join(tmpdir(), entry), { recursive: true, force: true });
    }
  }
  return names;
}
