// Issue 15 item 1 (the nftables classify form): what a NEW flow costs by where it enters the node,
// with N networks on ext0, for builds of symroute side by side (an A/B of two classify forms).
// Each variant is a node of the harness with a kube-proxy stand-in (iptables nat DNAT rules, so
// conntrack is on in every variant) and a pod behind the DNAT; paths, all new flows (one datagram
// per new destination port, conntrack flushed before every batch):
//   eth0        to a service through eth0, an interface without pools (bench/dataplane.bench.ts's path)
//   ext0-pool   to an LB address in the first network's pool, through ext0: classified, its ct mark set
//   ext0-other  to a service outside every pool, through ext0 (pools' interface, no pool matches),
//               from a client the node routes back through ext0 (so the anti-spoofing guard passes it)
// The baseline `none` runs no symroute, with ext0's rp_filter at 0 as symroute would leave it (an
// interface without an address drops everything otherwise, KERNEL-FACTS 5). Rounds visit the
// variants in turn, alternating the order; ratios are taken per round against `none` (adjacent in
// time, so a load change hits both) and summarised by their median with min-max, of wall time and
// of the sender thread's CPU time (bench/flow-sender.c; less exposed to other work's load).
// Writes SRBENCH_CLASSIFY_OUT (default tmp/bench/classify-form.json; never bench/results/).
// Run (root): node --import tsx bench/classify-form.bench.ts
// Knobs: SRBENCH_CLASSIFY_VARIANTS=none,nftables,nftables@/other/tree/bin/symroute,iptables
//   SRBENCH_CLASSIFY_NETWORKS=1000  SRBENCH_CLASSIFY_ROUNDS=15  SRBENCH_CLASSIFY_DATAGRAMS=20000

import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { counted } from "../src/model/plural.ts";
import {
  CLI,
  cleanupScratch,
  createNode,
  createPod,
  destroyAll,
  log,
  must,
  POD_ADDRESS as POD,
  REPO,
  run,
  scratch,
  stats,
  writeConfig,
  type BenchNode,
  writeAbResults,
} from "./lib.ts";

type PathName = "eth0" | "ext0-pool" | "ext0-other";
const PATHS: readonly PathName[] = ["eth0", "ext0-pool", "ext0-other"];

const SERVICE = "10.96.0.10";
/** A service outside every pool, reached through ext0. */
const OTHER_SERVICE = "10.96.0.12";
/** An LB address in the first network's pool (bench/lib.ts: 100.64.0.0/24, gateway .1). */
const LB = "100.64.0.10";
const LB_GATEWAY = "100.64.0.1";
/** A client on ext0's segment whose source the node routes back through ext0. */
const CLIENT = "203.0.113.5";

interface Variant {
  /** As asked for: none, nftables, iptables, each but none with an optional @CLI. */
  readonly spec: string;
  readonly firewall: "none" | "nftables" | "iptables";
  readonly cli?: string;
}

interface Setup {
  readonly variant: Variant;
  readonly node: BenchNode;
  readonly pod: string;
  /** The classify object `plan -o json` reported (undefined for none). */
  readonly classify?: unknown;
  /** Wall time per datagram, one value per round. */
  readonly ns: Record<PathName, number[]>;
  /** The sender thread's CPU time per datagram (softirq work in its context included unless the
   * kernel accounts IRQ time apart), one value per round: less exposed to other work's load. */
  readonly cpuNs: Record<PathName, number[]>;
}

function variantsOf(text: string): Variant[] {
  return text.split(",").map((spec) => {
    const at = spec.indexOf("@");
    const firewall = (at < 0 ? spec : spec.slice(0, at)).trim();
    const cli = at < 0 ? undefined : resolve(spec.slice(at + 1));
    if (firewall !== "none" && firewall !== "nftables" && firewall !== "iptables")
      throw new Error(`variant ${spec}: expected none, nftables[@CLI] or iptables[@CLI]`);
    if (firewall === "none" && cli !== undefined) throw new Error(`variant ${spec}: none takes no CLI`);
    return { spec, firewall, ...(cli === undefined ? {} : { cli }) };
  });
}

function setUp(variant: Variant, networks: number): Setup {
  const node = createNode();
  const pod = createPod(node);
  must(node.inside(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
  for (const service of [SERVICE, LB, OTHER_SERVICE])
    must(
      node
        .inside(["iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-d", service, "-p", "udp"])
        .concat(["-j", "DNAT", "--to-destination", POD]),
    );
  must(node.inside(["ip", "route", "add", `${CLIENT}/32`, "dev", "ext0"]));
  // The sender's side: services through eth0; the LB address (from the gateway's address) and the
  // other service (from the client's) through r-ext0, ext0's MAC pinned (MetalLB's reply stands in).
  const ext0 = JSON.parse(must(node.inside(["ip", "-j", "link", "show", "ext0"]))) as { address: string }[];
  const mac = ext0[0]?.address ?? "";
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      `addr add ${LB_GATEWAY}/24 dev r-ext0`,
      `addr add ${CLIENT}/32 dev r-ext0`,
      `route add ${SERVICE}/32 via 192.168.1.10`,
      `route add ${OTHER_SERVICE}/32 dev r-ext0 src ${CLIENT}`,
      `neigh add ${LB} lladdr ${mac} dev r-ext0 nud permanent`,
      `neigh add ${OTHER_SERVICE} lladdr ${mac} dev r-ext0 nud permanent`,
      "",
    ].join("\n"),
  );
  let classify: unknown;
  if (variant.firewall === "none") {
    must(node.inside(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.ext0.rp_filter=0"]));
  } else {
    const config = join(scratch(), `classify-${variant.firewall}-${networks}.yaml`);
    writeFileSync(config, `firewall: ${variant.firewall}\n${readFileSync(writeConfig(networks), "utf8")}`);
    const argv = (args: string[]): string[] =>
      node.symroute(args).map((a) => (a === CLI && variant.cli !== undefined ? variant.cli : a));
    const applied = run(argv(["apply", "-c", config]));
    if (applied.code !== 0) throw new Error(`apply ${variant.spec}: ${applied.stderr}${applied.stdout}`);
    classify = (JSON.parse(must(argv(["plan", "-c", config, "-o", "json"]))) as { classify: unknown })
      .classify;
  }
  return {
    variant,
    node,
    pod,
    classify,
    ns: { eth0: [], "ext0-pool": [], "ext0-other": [] },
    cpuNs: { eth0: [], "ext0-pool": [], "ext0-other": [] },
  };
}

const DESTINATION: Record<PathName, string> = { eth0: SERVICE, "ext0-pool": LB, "ext0-other": OTHER_SERVICE };

function send(sender: string, s: Setup, count: number, path: PathName): { wall: number; cpu: number } {
  run(s.node.inside(["conntrack", "-F"]));
  const out = must([
    "ip",
    "netns",
    "exec",
    s.node.peer,
    sender,
    DESTINATION[path],
    String(count),
    "1024",
    "new",
  ]);
  const [ns, failed, cpu] = out.trim().split(" ").map(Number);
  if (failed !== 0) throw new Error(`sender: ${failed} sends failed`);
  return { wall: ns as number, cpu: cpu as number };
}

/** The pod's received packets: a path whose datagrams do not arrive measures nothing. */
function podReceived(s: Setup): number {
  const link = JSON.parse(must(["ip", "-n", s.pod, "-s", "-j", "link", "show", "eth0"])) as {
    stats64: { rx: { packets: number } };
  }[];
  return link[0]?.stats64.rx.packets ?? 0;
}

/** Whether a new flow to the LB address got a ct mark (symroute classified it). */
function poolFlowMarked(sender: string, s: Setup): boolean {
  run(s.node.inside(["conntrack", "-F"]));
  must(["ip", "netns", "exec", s.node.peer, sender, LB, "1", "2000", "new"]);
  const listed = run(s.node.inside(["conntrack", "-L", "-p", "udp", "--dport", "2000"])).stdout;
  return / mark=[1-9]/.test(listed);
}

async function main(): Promise<void> {
  const count = Number(process.env["SRBENCH_CLASSIFY_DATAGRAMS"] ?? "20000");
  const rounds = Number(process.env["SRBENCH_CLASSIFY_ROUNDS"] ?? "15");
  const networks = Number(process.env["SRBENCH_CLASSIFY_NETWORKS"] ?? "1000");
  const variants = variantsOf(process.env["SRBENCH_CLASSIFY_VARIANTS"] ?? "none,nftables");
  const out = resolve(process.env["SRBENCH_CLASSIFY_OUT"] ?? join(REPO, "tmp/bench/classify-form.json"));
  const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
  const sender = join(scratch(), "flow-sender");
  must(["cc", "-O2", "-o", sender, join(REPO, "bench/flow-sender.c")]);
  const setups = variants.map((v) => {
    log(`classify-form: ${v.spec} with ${counted(networks, "network")}`);
    return setUp(v, networks);
  });
  for (const s of setups) {
    const before = podReceived(s);
    for (const p of PATHS) send(sender, s, 1000, p);
    const arrived = podReceived(s) - before;
    if (arrived < PATHS.length * 1000)
      throw new Error(`${s.variant.spec}: ${arrived} of ${PATHS.length * 1000} datagrams reached the pod`);
    const marked = poolFlowMarked(sender, s);
    if (marked !== (s.variant.firewall !== "none"))
      throw new Error(`${s.variant.spec}: pool flow ${marked ? "marked" : "not marked"}`);
  }
  for (let r = 0; r < rounds; r++) {
    log(`classify-form: round ${r + 1}/${rounds}`);
    const order = r % 2 === 0 ? setups : [...setups].reverse();
    for (const p of PATHS)
      for (const s of order) {
        const t = send(sender, s, count, p);
        s.ns[p].push(t.wall);
        s.cpuNs[p].push(t.cpu);
      }
  }
  const none = setups.find((s) => s.variant.firewall === "none");
  const perRound = (values: number[], base: number[] | undefined) =>
    stats(base === undefined ? [] : values.map((v, i) => v / (base[i] as number)));
  const results = setups.map((s) => ({
    variant: s.variant.spec,
    classify: s.classify,
    paths: Object.fromEntries(
      PATHS.map((p) => [
        p,
        {
          ns: s.ns[p],
          cpuNs: s.cpuNs[p],
          wall: stats(s.ns[p]),
          cpu: stats(s.cpuNs[p]),
          wallVsNonePerRound: perRound(s.ns[p], none?.ns[p]),
          cpuVsNonePerRound: perRound(s.cpuNs[p], none?.cpuNs[p]),
        },
      ]),
    ),
  }));
  writeAbResults(out, { networks, datagramsPerRound: count, rounds, loadBefore }, results);
  log(`classify-form: results in ${out}`);
  type Summary = ReturnType<typeof stats>;
  const show = (x: Summary, digits: number): string =>
    `${x.median.toFixed(digits)} (${x.min.toFixed(digits)}-${x.max.toFixed(digits)})`;
  for (const p of PATHS)
    for (const r of results) {
      const x = r.paths[p] as Record<"wall" | "cpu" | "wallVsNonePerRound" | "cpuVsNonePerRound", Summary>;
      log(
        `  ${p} ${r.variant}: wall ${show(x.wall, 0)} ns, ${show(x.wallVsNonePerRound, 3)}x none; cpu ${show(x.cpu, 0)} ns, ${show(x.cpuVsNonePerRound, 3)}x none (per round)`,
      );
    }
}

try {
  await main();
} finally {
  destroyAll();
  cleanupScratch();
}
