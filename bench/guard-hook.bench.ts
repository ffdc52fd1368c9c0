// Issue 15 item 2 (the anti-spoofing guard): what the guard's hook costs packets that enter an
// interface it does not guard, and packets through the one it guards, by where the guard hooks.
// Variants, each a node of the harness with a kube-proxy stand-in (conntrack on) and symroute
// applied with N networks on ext0 (nftables): `ingress` as symroute renders it (a `table netdev`
// chain hooked at ingress of ext0 only); `prerouting` the same checks as symroute rendered them
// before (a base chain at priority raw whose `iifname` verdict map every packet of every interface
// looks up), put in by hand; `no-guard` symroute without the guard (the floor); and `none`, no
// symroute. Paths: eth0 to a pod behind a DNAT (new flows, packets of an existing flow), as
// bench/dataplane.bench.ts sends them; ext0 to a pool address DNAT'ed to the pod (exempt by the
// guard's first rule) and ext0 from a source routed back through ext0 to the node's service (the
// guard's fib check runs). Rounds alternate the order; the sender is pinned to one CPU
// (SRBENCH_GUARD_CPU, default the last) so that the softirq work it measures stays on one core.
// Writes SRBENCH_GUARD_OUT (default tmp/bench/guard-hook.json; never bench/results/) and prints
// medians with min-max (the sender's CPU time per datagram, and per-round ratios against
// `no-guard`).
// Run: node --import tsx bench/guard-hook.bench.ts  (root; SRBENCH_GUARD_ROUNDS=9,
// SRBENCH_GUARD_DATAGRAMS=20000, SRBENCH_GUARD_NETWORKS=10)

import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { cpus } from "node:os";
import {
  cleanupScratch,
  createNode,
  destroyAll,
  log,
  must,
  PREFIX,
  REPO,
  run,
  scratch,
  stats,
  writeConfig,
  type BenchNode,
  createPod,
  POD_ADDRESS,
  writeAbResults,
} from "./lib.ts";

type Variant = "none" | "no-guard" | "prerouting" | "ingress";
type PathName = "eth0-new" | "eth0-existing" | "ext0-pool" | "ext0-checked";

const SERVICE = "10.96.0.10";
const NODE_SERVICE = "10.96.0.11";
const NODE_ADDRESS = "192.168.1.10";
const POD = POD_ADDRESS;
/** The first network's pool (bench/lib.ts networkAddress(0)): an LB address in it, and its gateway. */
const LB = "100.64.0.10";
const LB_GATEWAY = "100.64.0.1";
/** A client on ext0's segment whose source the node routes back through ext0. */
const CLIENT = "203.0.113.5";
const cpu = process.env["SRBENCH_GUARD_CPU"] ?? String(cpus().length - 1);
/** The sender's CPU pinning (none without taskset). */
const pin = run(["taskset", "-c", cpu, "true"]).code === 0 ? ["taskset", "-c", cpu] : [];

interface Setup {
  readonly variant: Variant;
  readonly node: BenchNode;
  readonly pod: string;
  readonly ns: Record<PathName, number[]>;
}

const inNode = (s: { node: BenchNode }, argv: readonly string[]): string[] => s.node.inside(argv);

function setUp(variant: Variant, networks: number): Setup {
  const node = createNode();
  const pod = createPod(node);
  must(node.inside(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
  for (const [service, backend] of [
    [SERVICE, POD],
    [LB, POD],
    [NODE_SERVICE, NODE_ADDRESS],
  ] as const)
    must(
      node
        .inside(["iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-d", service, "-p", "udp"])
        .concat(["-j", "DNAT", "--to-destination", backend]),
    );
  must(
    node.inside(["nft", "-f", "-"]),
    `table inet sink {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    ip daddr ${NODE_ADDRESS} udp dport 1024-65535 drop\n  }\n}\n`,
  );
  // The node routes the client's source back through ext0, so the strict check passes it.
  must(node.inside(["ip", "route", "add", `${CLIENT}/32`, "dev", "ext0"]));
  // The sender's side of ext0: the LB address and the node's service reached through r-ext0, with
  // ext0's MAC pinned (MetalLB's ARP reply stands in), from the gateway's and the client's address.
  const ext0 = JSON.parse(must(node.inside(["ip", "-j", "link", "show", "ext0"]))) as { address: string }[];
  const mac = ext0[0]?.address ?? "";
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      `addr add ${LB_GATEWAY}/24 dev r-ext0`,
      `addr add ${CLIENT}/32 dev r-ext0`,
      `route add 10.96.0.0/16 via 192.168.1.10`,
      `route add ${NODE_SERVICE}/32 dev r-ext0 src ${CLIENT}`,
      `neigh add ${LB} lladdr ${mac} dev r-ext0 nud permanent`,
      `neigh add ${NODE_SERVICE} lladdr ${mac} dev r-ext0 nud permanent`,
      "",
    ].join("\n"),
  );
  if (variant !== "none") {
    const config = join(scratch(), `guard-${networks}.yaml`);
    writeFileSync(config, `firewall: nftables\n${readFileSync(writeConfig(networks), "utf8")}`);
    const applied = run(node.symroute(["apply", "-c", config]));
    if (applied.code !== 0) throw new Error(`apply: ${applied.stderr}${applied.stdout}`);
    const listing = must(node.inside(["nft", "list", "chain", "netdev", "symroute", "guard_ext0"]));
    const rules = listing
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.includes(" comment "));
    if (rules.length === 0) throw new Error("symroute rendered no guard on ext0");
    if (variant !== "ingress") must(node.inside(["nft", "delete", "table", "netdev", "symroute"]));
    if (variant === "prerouting") {
      // The guard as symroute rendered it before issue 15: the same checks behind a raw-priority
      // prerouting chain that every packet enters for one `iifname` verdict-map lookup.
      const body = rules
        .filter((r) => !r.startsWith("vlan ") && !r.startsWith("meta pkttype "))
        .map((r) =>
          r
            .replace("meta protocol ip6 ", "meta nfproto ipv6 ")
            .replace("meta protocol ip ", "meta nfproto ipv4 "),
        );
      must(
        node.inside(["nft", "-f", "-"]),
        [
          "table inet symroute {",
          "  chain guard {",
          "    type filter hook prerouting priority raw; policy accept;",
          '    iifname vmap { "ext0" : jump guard_ext0 }',
          "  }",
          "  chain guard_ext0 {",
          ...body.map((r) => `    ${r}`),
          "  }",
          "}",
          "",
        ].join("\n"),
      );
    }
  }
  return {
    variant,
    node,
    pod,
    ns: { "eth0-new": [], "eth0-existing": [], "ext0-pool": [], "ext0-checked": [] },
  };
}

function send(sender: string, s: Setup, count: number, path: PathName): number {
  run(inNode(s, ["conntrack", "-F"]));
  let argv: string[];
  if (path === "eth0-new") argv = [SERVICE, String(count), "1024", "new"];
  else if (path === "eth0-existing") {
    must(["ip", "netns", "exec", s.node.peer, sender, SERVICE, "1", "1024", "same", "40000"]);
    must(["ip", "netns", "exec", s.pod, sender, "192.168.1.1", "1", "40000", "same", "1024"]);
    argv = [SERVICE, String(count), "1024", "same", "40000"];
  } else if (path === "ext0-pool") argv = [LB, String(count), "1024", "same", "40001"];
  else argv = [NODE_SERVICE, String(count), "1024", "same", "40002"];
  const out = must(["ip", "netns", "exec", s.node.peer, ...pin, sender, ...argv]);
  // The sender's CPU time per datagram (the node's softirq work runs in its context): steadier than
  // wall time on a busy machine, where other work takes the CPU away.
  const [, failed, cpuNs] = out.trim().split(" ").map(Number);
  if (failed !== 0) throw new Error(`sender: ${failed} sends failed`);
  return cpuNs as number;
}

async function main(): Promise<void> {
  const count = Number(process.env["SRBENCH_GUARD_DATAGRAMS"] ?? "20000");
  const rounds = Number(process.env["SRBENCH_GUARD_ROUNDS"] ?? "9");
  const networks = Number(process.env["SRBENCH_GUARD_NETWORKS"] ?? "10");
  const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
  const sender = join(scratch(), "flow-sender");
  must(["cc", "-O2", "-o", sender, join(REPO, "bench/flow-sender.c")]);
  const setups = (["none", "no-guard", "prerouting", "ingress"] as const).map((v) => setUp(v, networks));
  const paths: PathName[] = ["eth0-new", "eth0-existing", "ext0-pool", "ext0-checked"];
  for (const s of setups) for (const p of paths) send(sender, s, 1000, p);
  for (let r = 0; r < rounds; r++) {
    log(`guard-hook: round ${r + 1}/${rounds}`);
    const order = r % 2 === 0 ? setups : [...setups].reverse();
    for (const p of paths) for (const s of order) s.ns[p].push(send(sender, s, count, p));
  }
  const results = setups.map((s) => ({ variant: s.variant, ns: s.ns }));
  const out = resolve(process.env["SRBENCH_GUARD_OUT"] ?? join(REPO, "tmp/bench/guard-hook.json"));
  writeAbResults(out, { networks, datagramsPerRound: count, rounds, loadBefore }, results);
  // Ratios per round against `no-guard` (adjacent in time, so a load change hits both), summarised
  // by their median with min-max.
  const floorOf = setups.find((s) => s.variant === "no-guard");
  for (const p of paths) {
    for (const s of setups) {
      const st = stats(s.ns[p]);
      const ratios = stats(s.ns[p].map((v, r) => v / (floorOf?.ns[p][r] ?? Number.NaN)));
      log(
        `  ${p} ${s.variant}: ${st.median.toFixed(0)} ns CPU (${st.min.toFixed(0)}-${st.max.toFixed(0)}), ${ratios.median.toFixed(3)}x no-guard (${ratios.min.toFixed(3)}-${ratios.max.toFixed(3)})`,
      );
    }
  }
}

try {
  await main();
} finally {
  destroyAll();
  cleanupScratch();
}
