// Issue 15 item 2: what symroute costs every new flow through a node. One node namespace per variant
// (no symroute; symroute with 0, 10, 100, 1,000, 5,000 networks in each front end), each with a
// kube-proxy stand-in (iptables nat DNAT rules, so conntrack is on in every variant): one service
// forwarded to a pod namespace, one delivered to the node's own address (a host-network backend).
// The sender (bench/flow-sender.c, compiled here) sits in the node's peer and sends datagrams to a
// service address: each to a new port (a new flow, the case that walks symroute's classify path) or
// all on one flow (packets of an existing flow). These flows concern no pool: a rule list would be
// walked to its end; nftables' map and iptables' ipset are one lookup each (the `classify` form
// `plan` reports is recorded per variant). Rounds visit the variants in turn, so that a load change
// hits all of them alike; the ratio is each variant's median over the baseline's median from the
// same run.
// Writes bench/results/dataplane.json (docs/benchmarks.md section 7), or, with chosen variants, a
// file of its own (below) and the section for them on stdout.
// Run: node --import tsx bench/dataplane.bench.ts   (root; or SRBENCH_ONLY=dataplane bash bench/run.sh)
// Knobs: SRBENCH_DATAPLANE_SIZES=0,10,100,1000,5000  SRBENCH_QUICK=1 (5,000 left out, 3 rounds)
//   SRBENCH_DATAPLANE_ROUNDS=9  SRBENCH_DATAPLANE_DATAGRAMS=20000
//   SRBENCH_DATAPLANE_VARIANTS=none,nftables:1000,...  only these variants, in this order; the results go
//     to SRBENCH_DATAPLANE_OUT (default tmp/bench/dataplane.json, git-ignored) and its .md beside it,
//     never to bench/results/. A variant is KIND[:NETWORKS][:narrow][@CLI]:
//       none                     no symroute (the baseline every ratio is taken against)
//       nftables:N, iptables:N   symroute applied with N networks in that front end
//       ...:narrow               the same in a band of 4 rule priorities (no room for the skip rule)
//       ip-rules:N               N `ip rule fwmark` lines only, no firewall; ip-rules-skip:N: behind a skip
//       ...@CLI                  symroute from another build, e.g. nftables:1000@/work/main/bin/symroute
//                                (A/B of two builds side by side in one run)

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { cpus } from "node:os";
import { createBareNamespace } from "../test/support/netns.ts";
import { dataplaneSection } from "./dataplane-report.ts";
import {
  CLI,
  cleanupScratch,
  createNode,
  destroyAll,
  log,
  PREFIX,
  must,
  REPO,
  run,
  scratch,
  stats,
  writeConfig,
  writeResult,
  type BenchNode,
} from "./lib.ts";

export interface DataplaneVariant {
  /** How the variant was asked for (KIND[:NETWORKS][:narrow][@CLI]); absent in older results. */
  readonly spec?: string;
  /**
   * "none", a front end with symroute applied, or "ip-rules": no firewall, only as many `ip rule
   * fwmark` lines as symroute adds for the networks (what the route lookup walks; the control that
   * separates routing's share from the firewall's); "ip-rules-skip": the same lines behind one
   * `fwmark 0/MASK goto` rule that sends unmarked packets past them to a `nop` (a possible fix).
   */
  readonly firewall: "none" | "nftables" | "iptables" | "ip-rules" | "ip-rules-skip";
  readonly networks: number;
  /** The classify form `plan` reported (map, set; rules before ipset), when symroute is applied. */
  readonly classify?: string;
  /** Whether `plan` reported symroute's skip rule over its fwmark rules (absent in older results). */
  readonly ruleSkip?: boolean;
  /** symroute applied with a band of 4 priorities, too narrow for its skip rule: the same node without it. */
  readonly narrowBand?: boolean;
  /** The symroute CLI applied, when not this tree's bin/symroute (an A/B of two builds). */
  readonly cli?: string;
  /** Nanoseconds per datagram, one value per round. */
  readonly newFlowNs: number[];
  readonly existingFlowNs: number[];
  /** Datagrams the pod received over the sent ones (all rounds): 1 when nothing was lost. */
  readonly delivered: number;
  /** The same flows to a service whose backend is the node itself (absent in older results). */
  readonly toNode?: PathResult;
}

/** One path's measurements: nanoseconds per datagram, one value per round, and what arrived. */
export interface PathResult {
  readonly newFlowNs: number[];
  readonly existingFlowNs: number[];
  readonly delivered: number;
}

export interface DataplaneResults {
  readonly date: string;
  readonly available: boolean;
  readonly reason?: string;
  readonly datagramsPerRound: number;
  readonly rounds: number;
  readonly loadBefore: string;
  readonly loadAfter?: string;
  readonly cpus: number;
  readonly variants: DataplaneVariant[];
  /** The variants were chosen (SRBENCH_DATAPLANE_VARIANTS): not the full section of `make bench`. */
  readonly chosen?: boolean;
}

/** One variant to measure, as parsed from KIND[:NETWORKS][:narrow][@CLI]. */
export interface VariantSpec {
  readonly spec: string;
  readonly firewall: DataplaneVariant["firewall"];
  readonly networks: number;
  readonly narrowBand?: boolean;
  readonly cli?: string;
}

const KINDS: readonly DataplaneVariant["firewall"][] = [
  "none",
  "nftables",
  "iptables",
  "ip-rules",
  "ip-rules-skip",
];

/** Parses SRBENCH_DATAPLANE_VARIANTS; throws on anything it does not know, naming it. */
export function parseVariants(text: string): VariantSpec[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((spec) => {
      const at = spec.indexOf("@");
      const cli = at < 0 ? undefined : spec.slice(at + 1);
      const [kind, ...rest] = (at < 0 ? spec : spec.slice(0, at)).split(":");
      const firewall = KINDS.find((k) => k === kind);
      if (firewall === undefined) throw new Error(`variant ${spec}: unknown kind (${KINDS.join(", ")})`);
      const narrowBand = rest.includes("narrow");
      const numbers = rest.filter((r) => r !== "narrow");
      const networks = numbers.length === 0 ? 0 : Number(numbers[0]);
      if (numbers.length > 1 || !Number.isInteger(networks) || networks < 0)
        throw new Error(`variant ${spec}: expected KIND[:NETWORKS][:narrow][@CLI]`);
      if (firewall === "none" && (networks !== 0 || narrowBand || cli !== undefined))
        throw new Error(`variant ${spec}: none takes no networks, band or CLI`);
      if (cli !== undefined && !existsSync(cli)) throw new Error(`variant ${spec}: no CLI at ${cli}`);
      return {
        spec,
        firewall,
        networks,
        ...(narrowBand ? { narrowBand } : {}),
        ...(cli === undefined ? {} : { cli: resolve(cli) }),
      };
    });
}

/** The variants of `make bench`: the baseline, the routing controls, then every size per front end. */
function defaultVariants(): VariantSpec[] {
  const specs = ["none"];
  const largest = Math.max(...sizesOf());
  if (largest > 0) specs.push(`ip-rules:${largest}`, `ip-rules-skip:${largest}`);
  // symroute itself with and without its skip rule: the same networks in a band too narrow for it.
  const skipControl = Math.min(largest, 1000);
  if (skipControl >= 3) specs.push(`nftables:${skipControl}:narrow`);
  for (const firewall of ["nftables", "iptables"]) for (const n of sizesOf()) specs.push(`${firewall}:${n}`);
  return parseVariants(specs.join(","));
}

const SERVICE = "10.96.0.10";
/** A service whose backend is the node's own eth0 address (host network), on the same ports. */
const NODE_SERVICE = "10.96.0.11";
const NODE_ADDRESS = "192.168.1.10";
const hex = (v: number): string => `0x${v.toString(16)}`;
/** The pod namespaces made (the harness's bare namespaces), removed at the end (bench/run.sh also removes them by prefix). */
const pods: { destroy(): void }[] = [];
const POD = "10.112.0.5";

function sizesOf(): number[] {
  const quick = process.env["SRBENCH_QUICK"] === "1";
  return (process.env["SRBENCH_DATAPLANE_SIZES"] ?? (quick ? "0,10,100,1000" : "0,10,100,1000,5000"))
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n >= 0);
}

interface Setup {
  readonly node: BenchNode;
  readonly pod: string;
  readonly variant: {
    spec: string;
    firewall: DataplaneVariant["firewall"];
    networks: number;
    classify?: string;
    ruleSkip?: boolean;
    narrowBand?: boolean;
    cli?: string;
  };
  readonly newFlowNs: number[];
  readonly existingFlowNs: number[];
  sent: number;
  /** The path to the node's own address. */
  readonly toNode: { newFlowNs: number[]; existingFlowNs: number[]; sent: number };
}

/** Where a batch goes: through the node to the pod, or to the node itself. */
type Path = "pod" | "node";

/** A node with a pod behind a DNAT, and symroute applied (or not). */
function setUp(spec: VariantSpec): Setup {
  const { firewall, networks } = spec;
  const node = createNode();
  // Another build's CLI in place of this tree's.
  const symroute = (args: readonly string[]): string[] =>
    node.symroute(args).map((a) => (a === CLI && spec.cli !== undefined ? spec.cli : a));
  const podNamespace = createBareNamespace(`${PREFIX}pod`);
  pods.push(podNamespace);
  const pod = podNamespace.name;
  must(["ip", "-n", node.name, "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", pod]);
  must(["ip", "-n", node.name, "-batch", "-"], "addr add 10.112.0.1/24 dev vpod\nlink set vpod up\n");
  must(
    ["ip", "-n", pod, "-batch", "-"],
    `link set lo up\naddr add ${POD}/24 dev eth0\nlink set eth0 up\nroute add default via 10.112.0.1\n`,
  );
  // The pod takes the datagrams and drops them before its own stack (no ICMP back: one-way cost).
  must(
    ["ip", "netns", "exec", pod, "nft", "-f", "-"],
    "table inet sink {\n  chain in {\n    type filter hook prerouting priority -400; policy drop;\n  }\n}\n",
  );
  must(node.inside(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
  for (const [service, backend] of [
    [SERVICE, POD],
    [NODE_SERVICE, NODE_ADDRESS],
  ] as const) {
    must(
      node.inside(
        ["iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-d", service, "-p", "udp"].concat([
          "-j",
          "DNAT",
          "--to-destination",
          backend,
        ]),
      ),
    );
  }
  // The node takes the datagrams delivered to it after routing (input hook) and drops them there,
  // counting them: no socket, no ICMP back, the same in every variant.
  must(
    node.inside(["nft", "-f", "-"]),
    `table inet sink {\n  counter delivered {}\n  chain in {\n    type filter hook input priority 0; policy accept;\n    ip daddr ${NODE_ADDRESS} udp dport 1024-65535 counter name "delivered" drop\n  }\n}\n`,
  );
  must(["ip", "-n", node.peer, "route", "add", "10.96.0.0/16", "via", "192.168.1.10"]);
  let classify: string | undefined;
  let ruleSkip: boolean | undefined;
  if (firewall === "ip-rules" || firewall === "ip-rules-skip") {
    const lines: string[] = [];
    if (firewall === "ip-rules-skip") lines.push("rule add priority 1000 fwmark 0x0/0x3fff goto 1002");
    for (let i = 0; i < networks; i++)
      lines.push(`rule add priority 1001 fwmark ${hex(i + 1)}/0x3fff lookup ${20000 + i}`);
    if (firewall === "ip-rules-skip") lines.push("rule add priority 1002 nop");
    must(["ip", "-n", node.name, "-batch", "-"], `${lines.join("\n")}\n`);
  } else if (firewall !== "none") {
    const base = writeConfig(networks);
    const config = join(scratch(), `dataplane-${firewall}-${networks}.yaml`);
    const text = readFileSync(base, "utf8").replace(
      /^networks:\n?/m,
      networks === 0 ? "networks: []\n" : "networks:\n",
    );
    const band = spec.narrowBand === true ? "rulePriorities: { from: 1000, to: 1003 }\n" : "";
    writeFileSync(config, `firewall: ${firewall}\n${band}${text}`);
    const applied = run(symroute(["apply", "-c", config]));
    if (applied.code !== 0) throw new Error(`apply ${spec.spec}: ${applied.stderr}${applied.stdout}`);
    const plan = JSON.parse(must(symroute(["plan", "-c", config, "-o", "json"]))) as {
      classify: { form: string } | null;
      ruleSkips?: { skip?: unknown }[];
    };
    classify = plan.classify?.form ?? "nothing rendered";
    ruleSkip = (plan.ruleSkips ?? []).some((r) => r.skip !== undefined);
  }
  return {
    node,
    pod,
    variant: {
      spec: spec.spec,
      firewall,
      networks,
      ...(classify === undefined ? {} : { classify }),
      ...(ruleSkip === undefined ? {} : { ruleSkip }),
      ...(spec.narrowBand === true ? { narrowBand: true } : {}),
      ...(spec.cli === undefined ? {} : { cli: spec.cli }),
    },
    newFlowNs: [],
    existingFlowNs: [],
    sent: 0,
    toNode: { newFlowNs: [], existingFlowNs: [], sent: 0 },
  };
}

function nodeReceived(s: Setup): number {
  const listing = JSON.parse(
    must(s.node.inside(["nft", "-j", "list", "counter", "inet", "sink", "delivered"])),
  ) as {
    nftables: { counter?: { packets: number } }[];
  };
  return listing.nftables.find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
}

function podReceived(s: Setup): number {
  const link = JSON.parse(must(["ip", "-n", s.pod, "-s", "-j", "link", "show", "eth0"])) as {
    stats64: { rx: { packets: number } };
  }[];
  return link[0]?.stats64.rx.packets ?? 0;
}

function send(sender: string, s: Setup, count: number, mode: "new" | "same", path: Path = "pod"): number {
  // A fresh conntrack table each time: every datagram of a `new` round is a new connection.
  run(s.node.inside(["conntrack", "-F"]));
  const from = mode === "same" ? ["40000"] : [];
  const service = path === "pod" ? SERVICE : NODE_SERVICE;
  if (mode === "same") {
    // An established connection: one datagram, then the backend answers on the same flow (a UDP
    // flow stays NEW in conntrack until it has seen a reply).
    must(["ip", "netns", "exec", s.node.peer, sender, service, "1", "1024", "same", ...from]);
    const backend = path === "pod" ? s.pod : s.node.name;
    must(["ip", "netns", "exec", backend, sender, "192.168.1.1", "1", "40000", "same", "1024"]);
  }
  const out = must([
    "ip",
    "netns",
    "exec",
    s.node.peer,
    sender,
    service,
    String(count),
    "1024",
    mode,
    ...from,
  ]);
  const [ns, failed] = out.trim().split(" ").map(Number);
  if (failed !== 0) throw new Error(`sender: ${failed} sends failed`);
  const sent = count + (mode === "same" ? 1 : 0);
  if (path === "pod") s.sent += sent;
  else s.toNode.sent += sent;
  return ns as number;
}

/** Where the results go: bench/results/dataplane.json, or with chosen variants a file of its own. */
function save(results: DataplaneResults): void {
  if (results.chosen !== true) {
    writeResult("dataplane", results);
    return;
  }
  const out = resolve(process.env["SRBENCH_DATAPLANE_OUT"] ?? join(REPO, "tmp/bench/dataplane.json"));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  const section = `${dataplaneSection(results).join("\n").trimEnd()}\n`;
  const md = out.replace(/\.json$/, "") + ".md";
  writeFileSync(md, section);
  process.stdout.write(section);
  log(`dataplane: chosen variants, results in ${out} and ${md} (bench/results/ untouched)`);
}

async function main(): Promise<void> {
  const chosen = process.env["SRBENCH_DATAPLANE_VARIANTS"];
  const specs = chosen === undefined || chosen.trim() === "" ? defaultVariants() : parseVariants(chosen);
  const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
  const count = Number(process.env["SRBENCH_DATAPLANE_DATAGRAMS"] ?? "20000");
  const rounds = Number(
    process.env["SRBENCH_DATAPLANE_ROUNDS"] ?? (process.env["SRBENCH_QUICK"] === "1" ? "3" : "9"),
  );
  const base: Omit<DataplaneResults, "variants" | "available"> = {
    ...(chosen === undefined || chosen.trim() === "" ? {} : { chosen: true }),
    date: new Date().toISOString(),
    datagramsPerRound: count,
    rounds,
    loadBefore,
    cpus: cpus().length,
  };
  const sender = join(scratch(), "flow-sender");
  const cc = run(["cc", "-O2", "-o", sender, join(REPO, "bench/flow-sender.c")]);
  if (cc.code !== 0) {
    save({
      ...base,
      available: false,
      reason: `no C compiler: ${cc.stderr.trim()}`,
      variants: [],
    });
    return;
  }
  const setups: Setup[] = [];
  for (const spec of specs) {
    log(`dataplane: setting up ${spec.spec}`);
    setups.push(setUp(spec));
  }
  // Warm up: neighbours resolved, caches filled.
  for (const s of setups) {
    send(sender, s, 1000, "new");
    send(sender, s, 1000, "new", "node");
    s.sent = 0;
    s.toNode.sent = 0;
  }
  const received0 = setups.map(podReceived);
  const nodeReceived0 = setups.map(nodeReceived);
  for (let r = 0; r < rounds; r++) {
    log(`dataplane: round ${r + 1}/${rounds}`);
    // Alternate the order so that no variant always runs first or last.
    const order = r % 2 === 0 ? setups : [...setups].reverse();
    for (const s of order) s.newFlowNs.push(send(sender, s, count, "new"));
    for (const s of order) s.existingFlowNs.push(send(sender, s, count, "same"));
    for (const s of order) s.toNode.newFlowNs.push(send(sender, s, count, "new", "node"));
    for (const s of order) s.toNode.existingFlowNs.push(send(sender, s, count, "same", "node"));
  }
  const variants = setups.map((s, i) => ({
    ...s.variant,
    newFlowNs: s.newFlowNs,
    existingFlowNs: s.existingFlowNs,
    delivered: (podReceived(s) - (received0[i] as number)) / s.sent,
    toNode: {
      newFlowNs: s.toNode.newFlowNs,
      existingFlowNs: s.toNode.existingFlowNs,
      delivered: (nodeReceived(s) - (nodeReceived0[i] as number)) / s.toNode.sent,
    },
  }));
  save({
    ...base,
    available: true,
    loadAfter: readFileSync("/proc/loadavg", "utf8").trim(),
    variants,
  } satisfies DataplaneResults);
  const none = stats(variants[0]?.newFlowNs ?? []).median;
  const noneToNode = stats(variants[0]?.toNode.newFlowNs ?? []).median;
  for (const v of variants)
    log(
      `  ${v.firewall} ${v.networks}: to the pod new ${stats(v.newFlowNs).median.toFixed(0)} ns (${(stats(v.newFlowNs).median / none).toFixed(2)}x), existing ${stats(v.existingFlowNs).median.toFixed(0)} ns, delivered ${v.delivered.toFixed(3)}; to the node new ${stats(v.toNode.newFlowNs).median.toFixed(0)} ns (${(stats(v.toNode.newFlowNs).median / noneToNode).toFixed(2)}x), delivered ${v.toNode.delivered.toFixed(3)}`,
    );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } finally {
    destroyAll();
    for (const pod of pods) pod.destroy();
    cleanupScratch();
  }
}
