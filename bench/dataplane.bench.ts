// Issue 15 item 2: what symroute costs every new flow through a node. One node namespace per variant
// (no symroute; symroute with 0, 10, 100, 1,000, 5,000 networks in each front end), each with a
// kube-proxy stand-in (iptables nat DNAT rules, so conntrack is on in every variant): one service
// forwarded to a pod namespace, one delivered to the node's own address (a host-network backend).
// The sender (bench/flow-sender.c, compiled here) sits in the node's peer and sends datagrams to a
// service address: each to a new port (a new flow) or all on one flow (packets of an existing flow).
// Those flows enter through eth0 and concern no pool. A third path, `pool`, enters through ext0 (a
// pool's interface) to a LoadBalancer address in network 0's pool, DNATed to the pod: the pool's
// own traffic, which symroute classifies (the `classify` form `plan` reports is recorded per
// variant). A fourth, `reply`, is that traffic's other direction: the pod answers a client beyond
// the gateway of the variant's last network (timed in the pod's sender), a reply symroute gives the
// connection's mark, routed through its fwmark rules (the last of them when they are one list). `make bench` measures it for a few variants only (POOL_VARIANTS: no symroute, its A/A,
// the one-rule control, each front end at 1,000 networks); SRBENCH_DATAPLANE_VARIANTS, for all. Rounds visit the variants in turn, so that a load change
// hits all of them alike; the ratio is each variant's median over the baseline's median from the
// same run.
// Writes bench/results/dataplane.json (docs/benchmarks.md section 7), or, with chosen variants, a
// file of its own (below) and the section for them on stdout.
// Run: node --import tsx bench/dataplane.bench.ts   (root; or SRBENCH_ONLY=dataplane bash bench/run.sh)
// Knobs: SRBENCH_DATAPLANE_SIZES=0,10,100,1000,5000  SRBENCH_QUICK=1 (5,000 left out, 12 rounds)
//   SRBENCH_DATAPLANE_ROUNDS=36  SRBENCH_DATAPLANE_DATAGRAMS=5000 (many short rounds: steadier ratios)
//   SRBENCH_DATAPLANE_PATHS=pod,node,pool,reply  SRBENCH_DATAPLANE_MODES=new,existing  SRBENCH_DATAPLANE_PIN=CPU
//   SRBENCH_DATAPLANE_VARIANTS=none,nftables:1000,...  only these variants, in this order; the results go
//     to SRBENCH_DATAPLANE_OUT (default tmp/bench/dataplane.json, git-ignored) and its .md beside it,
//     never to bench/results/. A variant is KIND[:NETWORKS][:narrow][@CLI]:
//       none                     no symroute (the baseline every ratio is taken against)
//       nftables:N, iptables:N   symroute applied with N networks in that front end
//       ...:narrow               the same in a band of 4 rule priorities (no room for the skip rule)
//       ip-rules:N               N `ip rule fwmark` lines only, no firewall; ip-rules-skip:N: behind a skip
//       one-rule                 no symroute, plus one `ip rule` no packet matches (routing's fixed cost)
//       rule-removed             no symroute, that rule added and deleted again (a node after delete)
//       empty-chain              no symroute, plus an empty nft base chain at prerouting
//       ...@CLI                  symroute from another build, e.g. nftables:1000@/work/main/bin/symroute
//                                (A/B of two builds side by side in one run)

import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { cpus, release } from "node:os";
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
  createPod,
  networkAddress,
  POD_ADDRESS,
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
  readonly firewall:
    | "none"
    | "nftables"
    | "iptables"
    | "ip-rules"
    | "ip-rules-skip"
    | "one-rule"
    | "rule-removed"
    | "empty-chain";
  readonly networks: number;
  /** The classify form `plan` reported (map, set; rules before ipset), when symroute is applied. */
  readonly classify?: string;
  /** Whether `plan` reported symroute's skip rule over its fwmark rules (absent in older results). */
  readonly ruleSkip?: boolean;
  /** symroute applied with a band of 4 priorities, too narrow for its skip rule: the same node without it. */
  readonly narrowBand?: boolean;
  /** The symroute CLI applied, when not this tree's bin/symroute (an A/B of two builds). */
  readonly cli?: string;
  /** The same spec as an earlier variant of the run: the pair shows the run's noise (an A/A). */
  readonly again?: boolean;
  /** Nanoseconds per datagram, one value per round. */
  readonly newFlowNs: number[];
  readonly existingFlowNs: number[];
  /** The sender thread's CPU time per datagram, one value per round (absent in older results). */
  readonly newFlowCpuNs?: number[];
  readonly existingFlowCpuNs?: number[];
  /** Datagrams the pod received over the sent ones (all rounds): 1 when nothing was lost. */
  readonly delivered: number;
  /** The same flows to a service whose backend is the node itself (absent in older results). */
  readonly toNode?: PathResult;
  /**
   * Flows arriving on ext0, a pool's interface, to a LoadBalancer address in a pool, DNATed to the
   * pod (the pool's own traffic); absent where not measured (older results, variants left out).
   */
  readonly toPool?: PathResult;
  /**
   * Replies of a pool's established connection: the pod answering a client beyond the gateway of
   * the variant's last network (its fwmark rule comes last in a list), through the node; existing
   * flows only. Absent where not measured (older results, SRBENCH_DATAPLANE_PATHS).
   */
  readonly toReply?: PathResult;
  /** The proof that an existing flow is one confirmed conntrack entry that saw every datagram. */
  readonly existingFlowProof?: string;
  /** What batches found in conntrack that the mode does not mean (the first few); empty when sound. */
  readonly problems?: string[];
}

/** One path's measurements: nanoseconds per datagram, one value per round, and what arrived. */
export interface PathResult {
  readonly newFlowNs: number[];
  readonly existingFlowNs: number[];
  readonly newFlowCpuNs?: number[];
  readonly existingFlowCpuNs?: number[];
  readonly delivered: number;
  readonly existingFlowProof?: string;
  /**
   * Whether the existing flow's conntrack entry carried a ct mark (symroute classified the
   * connection), read with the proof; only where it tells something (the pool path).
   */
  readonly classified?: boolean;
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
  /** The CPU the sender (and with it the node's softirq work) was pinned to (SRBENCH_DATAPLANE_PIN). */
  readonly pinnedCpu?: string;
  /**
   * What the ratios are taken from: "cpu", the sender thread's CPU time (softirq work included: the
   * kernel does not account it apart), or "wall" (absent in older results: wall).
   */
  readonly timeBase?: "cpu" | "wall";
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
  "one-rule",
  "rule-removed",
  "empty-chain",
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
      const bare =
        firewall === "none" ||
        firewall === "one-rule" ||
        firewall === "rule-removed" ||
        firewall === "empty-chain";
      if (bare && (networks !== 0 || narrowBand || cli !== undefined))
        throw new Error(`variant ${spec}: ${firewall} takes no networks, band or CLI`);
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
  // "none" twice: the second is the A/A that shows what the run's noise alone makes of a ratio.
  const specs = ["none", "none", "one-rule", "empty-chain"];
  const largest = Math.max(...sizesOf());
  if (largest > 0) specs.push(`ip-rules:${largest}`, `ip-rules-skip:${largest}`);
  // symroute itself with and without its skip rule: the same networks in a band too narrow for it.
  const skipControl = Math.min(largest, 1000);
  if (skipControl >= 3) specs.push(`nftables:${skipControl}:narrow`);
  for (const firewall of ["nftables", "iptables"]) for (const n of sizesOf()) specs.push(`${firewall}:${n}`);
  return parseVariants(specs.join(","));
}

const SERVICE = "10.96.0.10";
/** A LoadBalancer address in network 0's pool (bench/lib.ts: 100.64.0.0/24, gateway .1). */
const LB = "100.64.0.10";
/** The pool's gateway: the sender's address on ext0's side, which the node routes replies to. */
const LB_GATEWAY = "100.64.0.1";
/** The variants whose pool path `make bench` measures (every chosen variant's otherwise). */
const POOL_VARIANTS: readonly string[] = ["none", "one-rule", "nftables:1000", "iptables:1000"];
/** A service whose backend is the node's own eth0 address (host network), on the same ports. */
const NODE_SERVICE = "10.96.0.11";
const NODE_ADDRESS = "192.168.1.10";
const hex = (v: number): string => `0x${v.toString(16)}`;
/** The pod namespaces made (the harness's bare namespaces), removed at the end (bench/run.sh also removes them by prefix). */
const POD = POD_ADDRESS;
/** The source port of the existing flow. */
const EXISTING_SOURCE_PORT = 40000;
/** A source no packet of the bench has: the one-rule control's rule matches nothing. */
const UNRELATED = "198.51.100.0/24";

function sizesOf(): number[] {
  const quick = process.env["SRBENCH_QUICK"] === "1";
  return (process.env["SRBENCH_DATAPLANE_SIZES"] ?? (quick ? "0,10,100,1000" : "0,10,100,1000,5000"))
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n >= 0);
}

interface PathMeasure {
  readonly newFlowNs: number[];
  readonly existingFlowNs: number[];
  readonly newFlowCpuNs: number[];
  readonly existingFlowCpuNs: number[];
  /** Datagrams sent (all rounds, the set-up datagram of an existing flow included). */
  sent: number;
}

interface Setup {
  readonly node: BenchNode;
  readonly pod: string;
  /** The node's host-network backend (flow-sender sink). */
  readonly sink: Sink;
  readonly variant: {
    spec: string;
    firewall: DataplaneVariant["firewall"];
    networks: number;
    classify?: string;
    ruleSkip?: boolean;
    narrowBand?: boolean;
    cli?: string;
  };
  readonly paths: Record<Path, PathMeasure>;
  /** The paths this variant measures (the pool path only for some). */
  readonly measured: readonly Path[];
  /** The pool path's datagrams that reached the pod (all rounds; the pod path's counter is shared). */
  poolArrived: number;
  /** The reply path's connection: the LB address of the variant's last network and its gateway (the client). */
  readonly reply: { readonly lb: string; readonly gateway: string };
  /** What a batch found that it should not have (conntrack entries, failed sends); empty when sound. */
  readonly problems: string[];
}

/**
 * Where a batch goes: through the node to the pod, to the node itself, to the pod from ext0 to a
 * pool address, or (reply) from the pod back through the node to a client beyond a pool's gateway.
 */
type Path = "pod" | "node" | "pool" | "reply";
const PATHS: readonly Path[] = ["pod", "node", "pool", "reply"];
/** The service address a path's flows are sent to (the reply path's: its connection's LB address). */
const destinationOf = (s: Setup, path: Path): string =>
  path === "pod" ? SERVICE : path === "node" ? NODE_SERVICE : path === "pool" ? LB : s.reply.lb;
/** The reply path's client port (the pool path's is EXISTING_SOURCE_PORT): the peer drops and counts it. */
const REPLY_CLIENT_PORT = 40001;

/** The port of the node's host-network backend: every node-service datagram is DNATed to it. */
const SINK_PORT = 9;

/** `flow-sender sink PORT` in the node, talked to one line at a time. */
class Sink {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiting: { resolve: (line: string) => void; reject: (error: Error) => void } | undefined;
  private exited: Error | undefined;
  constructor(argv: readonly string[]) {
    const [file, ...args] = argv;
    this.child = spawn(file as string, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stderr.on("data", (b: Buffer) => log(`sink: ${b.toString().trim()}`));
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w !== undefined) w.resolve(line);
      else this.lines.push(line);
    });
    this.child.once("exit", (code) => {
      this.exited = new Error(`sink exited (${code})`);
      this.waiting?.reject(this.exited);
      this.waiting = undefined;
    });
  }
  /** The next line it prints (the child exiting first is an error). */
  next(): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.exited !== undefined) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }
  async ask(command: "drain" | "reply"): Promise<string> {
    this.child.stdin.write(`${command}\n`);
    const answer = await this.next();
    if (answer.startsWith("error")) throw new Error(`sink ${command}: ${answer}`);
    return answer;
  }
  close(): void {
    this.child.stdin.end();
  }
}
const sinks: Sink[] = [];

/** A node with a pod behind a DNAT, and symroute applied (or not). */
async function setUp(spec: VariantSpec, sender: string, measured: readonly Path[]): Promise<Setup> {
  const { firewall, networks } = spec;
  // The reply path's connection: to the last network's pool (network 0's without networks).
  const last = networkAddress(Math.max(0, networks - 1));
  const reply = { lb: last.gateway.replace(/\.1$/, ".10"), gateway: last.gateway };
  const node = createNode();
  // Another build's CLI in place of this tree's.
  const symroute = (args: readonly string[]): string[] =>
    node.symroute(args).map((a) => (a === CLI && spec.cli !== undefined ? spec.cli : a));
  // The pod takes the datagrams and drops them before its own stack (no ICMP back: one-way cost),
  // counting the bench's. The node has forwarded them by then: its conntrack confirmed their
  // entries in postrouting.
  const pod = createPod(node);
  must(node.inside(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
  // The LB address's rule last, in every variant: the eth0 flows match theirs before it.
  for (const [service, backend] of [
    [SERVICE, POD],
    [NODE_SERVICE, `${NODE_ADDRESS}:${SINK_PORT}`],
    [LB, POD],
    ...(reply.lb === LB ? [] : [[reply.lb, POD] as const]),
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
  // The node's host-network backend: a socket that is not read while the sender runs, with the
  // smallest receive buffer. The kernel delivers every datagram to it, after every input hook
  // (conntrack confirms the entry in the last), and drops it at the full buffer: the same in
  // every variant, no ICMP back, counted in /proc/net/snmp.
  const sink = new Sink(node.inside([sender, "sink", String(SINK_PORT)]));
  sinks.push(sink);
  const ready = await sink.next();
  if (ready !== "ready") throw new Error(`sink: ${ready}`);
  must(["ip", "-n", node.peer, "route", "add", "10.96.0.0/16", "via", "192.168.1.10"]);
  // The pool's side: the sender reaches the LB address from the pool's gateway address through
  // r-ext0, ext0's MAC pinned (MetalLB's ARP reply stands in).
  const ext0 = JSON.parse(must(node.inside(["ip", "-j", "link", "show", "ext0"]))) as { address: string }[];
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    `addr add ${LB_GATEWAY}/24 dev r-ext0
neigh add ${LB} lladdr ${ext0[0]?.address ?? ""} dev r-ext0 nud permanent
${
  reply.lb === LB
    ? ""
    : `addr add ${reply.gateway}/24 dev r-ext0
neigh add ${reply.lb} lladdr ${ext0[0]?.address ?? ""} dev r-ext0 nud permanent
`
}`,
  );
  // The reply path's client: the peer counts and drops the pod's replies in its first hook,
  // whichever interface the node sent them out of (no socket, no ICMP back).
  must(
    ["ip", "netns", "exec", node.peer, "nft", "-f", "-"],
    `table inet replies {\n  counter arrived {}\n  chain in {\n    type filter hook prerouting priority -400; policy accept;\n    udp dport ${REPLY_CLIENT_PORT} counter name "arrived" drop\n  }\n}\n`,
  );
  const applied = firewall === "nftables" || firewall === "iptables";
  if (!applied) {
    // rp_filter as symroute leaves it (strict on every interface but the pool's, none there): the
    // harness's all=1 would drop the pool's packets on ext0, whose source the node routes through
    // eth0; the eth0 paths keep strict mode (eth0 and vpod raised before `all` is lowered).
    must(
      node.inside([
        "sysctl",
        "-qw",
        "net.ipv4.conf.eth0.rp_filter=1",
        "net.ipv4.conf.vpod.rp_filter=1",
        "net.ipv4.conf.ext0.rp_filter=0",
        "net.ipv4.conf.all.rp_filter=0",
      ]),
    );
  }
  let classify: string | undefined;
  let ruleSkip: boolean | undefined;
  if (firewall === "ip-rules" || firewall === "ip-rules-skip") {
    const lines: string[] = [];
    if (firewall === "ip-rules-skip") lines.push("rule add priority 1000 fwmark 0x0/0x3fff goto 1002");
    for (let i = 0; i < networks; i++)
      lines.push(`rule add priority 1001 fwmark ${hex(i + 1)}/0x3fff lookup ${20000 + i}`);
    if (firewall === "ip-rules-skip") lines.push("rule add priority 1002 nop");
    must(["ip", "-n", node.name, "-batch", "-"], `${lines.join("\n")}\n`);
  } else if (firewall === "one-rule") {
    // One rule no packet of the bench matches: the kernel's policy routing is on from the first
    // rule of anyone's (the merged local/main lookup is gone, KERNEL-FACTS).
    must(node.inside(["ip", "rule", "add", "priority", "1000", "from", UNRELATED, "lookup", "30000"]));
  } else if (firewall === "rule-removed") {
    // The same rule added and deleted again, as a node after `symroute delete` has it: whether
    // the kernel goes back to its merged lookup once no rule of anyone's is left.
    must(node.inside(["ip", "rule", "add", "priority", "1000", "from", UNRELATED, "lookup", "30000"]));
    must(node.inside(["ip", "rule", "del", "priority", "1000", "from", UNRELATED, "lookup", "30000"]));
  } else if (firewall === "empty-chain") {
    must(
      node.inside(["nft", "-f", "-"]),
      "table inet control {\n  chain prerouting {\n    type filter hook prerouting priority mangle; policy accept;\n  }\n}\n",
    );
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
    sink,
    variant: {
      spec: spec.spec,
      firewall,
      networks,
      ...(classify === undefined ? {} : { classify }),
      ...(ruleSkip === undefined ? {} : { ruleSkip }),
      ...(spec.narrowBand === true ? { narrowBand: true } : {}),
      ...(spec.cli === undefined ? {} : { cli: spec.cli }),
    },
    paths: {
      pod: { newFlowNs: [], existingFlowNs: [], newFlowCpuNs: [], existingFlowCpuNs: [], sent: 0 },
      node: { newFlowNs: [], existingFlowNs: [], newFlowCpuNs: [], existingFlowCpuNs: [], sent: 0 },
      pool: { newFlowNs: [], existingFlowNs: [], newFlowCpuNs: [], existingFlowCpuNs: [], sent: 0 },
      reply: { newFlowNs: [], existingFlowNs: [], newFlowCpuNs: [], existingFlowCpuNs: [], sent: 0 },
    },
    measured,
    poolArrived: 0,
    reply,
    problems: [],
  };
}

/** UDP datagrams the node's stack delivered to a socket: queued (InDatagrams) or dropped at a full buffer (RcvbufErrors). */
function nodeReceived(s: Setup): number {
  const snmp = must(s.node.inside(["cat", "/proc/net/snmp"])).split("\n");
  const [names, values] = snmp.filter((l) => l.startsWith("Udp:"));
  const fields = (names ?? "").split(/\s+/);
  const numbers = (values ?? "").split(/\s+/).map(Number);
  const of = (name: string): number => numbers[fields.indexOf(name)] ?? Number.NaN;
  return of("InDatagrams") + of("RcvbufErrors");
}

/** The bench's datagrams that reached the pod (its sink's counter). */
function podReceived(s: Setup): number {
  const listing = JSON.parse(
    must(["ip", "netns", "exec", s.pod, "nft", "-j", "list", "counter", "inet", "sink", "delivered"]),
  ) as { nftables: { counter?: { packets: number } }[] };
  return listing.nftables.find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
}

/** The pod's replies that reached the client (the peer's counter). */
function replyReceived(s: Setup): number {
  const listing = JSON.parse(
    must(["ip", "netns", "exec", s.node.peer, "nft", "-j", "list", "counter", "inet", "replies", "arrived"]),
  ) as { nftables: { counter?: { packets: number } }[] };
  return listing.nftables.find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
}

const received = (s: Setup, path: Path): number =>
  path === "node" ? nodeReceived(s) : path === "reply" ? replyReceived(s) : podReceived(s);

/** The node's conntrack entries of a service (confirmed entries only: `conntrack -L` lists the hash table). */
function conntrackEntries(s: Setup, path: Path): string[] {
  const listed = must(s.node.inside(["conntrack", "-L", "-p", "udp", "--orig-dst", destinationOf(s, path)]));
  return listed.split("\n").filter((l) => l.startsWith("udp"));
}

/** A subset of `all` from a comma-separated knob (all of them when unset); throws on a word it does not know. */
function listOf<T extends string>(knob: string, all: readonly T[]): T[] {
  const text = process.env[knob];
  if (text === undefined || text.trim() === "") return [...all];
  const words = text.split(",").map((w) => w.trim());
  const unknown = words.filter((w) => !all.includes(w as T));
  if (unknown.length > 0) throw new Error(`${knob}: unknown ${unknown.join(", ")} (${all.join(", ")})`);
  return all.filter((w) => words.includes(w));
}

/** The sender's argv, pinned to one CPU when SRBENCH_DATAPLANE_PIN says which. */
function senderArgv(namespace: string, sender: string, args: readonly string[]): string[] {
  const pin = process.env["SRBENCH_DATAPLANE_PIN"];
  const pinned = pin === undefined || pin === "" ? [] : ["taskset", "-c", pin];
  return ["ip", "netns", "exec", namespace, ...pinned, sender, ...args];
}

/**
 * One batch: `count` datagrams on new flows or on one existing flow, through the node to the pod
 * or to the node's own socket. Returns nanoseconds per datagram; records what the batch left in
 * conntrack when it is not what the mode means (every new flow confirmed; one replied entry).
 */
async function send(
  sender: string,
  s: Setup,
  count: number,
  mode: "new" | "same",
  path: Path,
): Promise<{ wall: number; cpu: number }> {
  // A fresh conntrack table each time: every datagram of a `new` round is a new connection.
  run(s.node.inside(["conntrack", "-F"]));
  if (path === "reply") return sendReplies(sender, s, count);
  const service = destinationOf(s, path);
  const podBefore = path === "pool" ? podReceived(s) : 0;
  const from = mode === "same" ? [String(EXISTING_SOURCE_PORT)] : [];
  if (mode === "same") {
    // An established connection: one datagram, then the backend answers on the same flow (a UDP
    // flow stays NEW in conntrack until it has seen a reply).
    if (path === "node") await s.sink.ask("drain");
    must(senderArgv(s.node.peer, sender, [service, "1", "1024", "same", ...from]));
    if (path !== "node")
      // The pod answers the client (the peer's eth0 address, or the pool's gateway): conntrack
      // takes the reply at the node's prerouting, whatever the node's routing does with it after.
      must([
        "ip",
        "netns",
        "exec",
        s.pod,
        sender,
        path === "pool" ? LB_GATEWAY : "192.168.1.1",
        "1",
        String(EXISTING_SOURCE_PORT),
        "same",
        "1024",
      ]);
    else await s.sink.ask("reply");
  }
  const out = must(senderArgv(s.node.peer, sender, [service, String(count), "1024", mode, ...from]));
  // The pod's counter also counts the pod path's datagrams: the pool path's are told apart here.
  if (path === "pool") s.poolArrived += podReceived(s) - podBefore;
  const [ns, failed, cpu] = out.trim().split(" ").map(Number);
  if (failed !== 0) s.problems.push(`${path} ${mode}: ${failed} sends failed`);
  s.paths[path].sent += count + (mode === "same" ? 1 : 0);
  const entries = conntrackEntries(s, path);
  if (mode === "new" && entries.length !== count)
    s.problems.push(`${path} new: ${entries.length} confirmed conntrack entries after ${count} new flows`);
  if (mode === "same" && (entries.length !== 1 || /UNREPLIED/.test(entries[0] ?? "")))
    s.problems.push(
      `${path} existing: ${entries.length} confirmed conntrack entries (expected one replied): ${entries.slice(0, 2).join(" / ")}`,
    );
  return { wall: ns as number, cpu: cpu as number };
}

/**
 * The reply path's batch: the client's one datagram to its connection's LB address (DNATed to the
 * pod; symroute, where applied, classifies it by its pool), then `count` answers of the pod on
 * that flow, timed in the pod's sender: each is a reply in conntrack, given the connection's mark
 * and routed by the mark's table (by main without symroute). Returns nanoseconds per datagram.
 */
function sendReplies(sender: string, s: Setup, count: number): { wall: number; cpu: number } {
  const client = String(REPLY_CLIENT_PORT);
  must(senderArgv(s.node.peer, sender, [s.reply.lb, "1", "1024", "same", client]));
  const out = must(senderArgv(s.pod, sender, [s.reply.gateway, String(count), client, "same", "1024"]));
  const [ns, failed, cpu] = out.trim().split(" ").map(Number);
  if (failed !== 0) s.problems.push(`reply: ${failed} sends failed`);
  s.paths.reply.sent += count;
  const entries = conntrackEntries(s, "reply");
  if (entries.length !== 1 || /UNREPLIED/.test(entries[0] ?? ""))
    s.problems.push(
      `reply: ${entries.length} confirmed conntrack entries (expected one replied): ${entries.slice(0, 2).join(" / ")}`,
    );
  return { wall: ns as number, cpu: cpu as number };
}

/**
 * The proof, outside the timed rounds: with conntrack accounting on, one existing flow of `count`
 * datagrams is one confirmed, replied entry that counted every datagram, and every datagram arrived.
 */
async function proveExistingFlow(sender: string, s: Setup, path: Path, count: number): Promise<string> {
  must(s.node.inside(["sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"]));
  try {
    const before = received(s, path);
    await send(sender, s, count, "same", path);
    const arrived = received(s, path) - before;
    const entries = conntrackEntries(s, path);
    // The reply path's datagrams are the entry's reply direction (the second count); one more
    // went the original way. The other paths' are the original direction, the setup's one included.
    const counts = [...(entries[0] ?? "").matchAll(/packets=(\d+)/g)].map((m) => Number(m[1]));
    const packets = (path === "reply" ? counts[1] : counts[0]) ?? Number.NaN;
    const expected = path === "reply" ? count : count + 1;
    const replied = entries.length === 1 && !/UNREPLIED/.test(entries[0] ?? "");
    const sound = replied && packets === expected && arrived === expected;
    return `${sound ? "ok" : "FAILED"}: ${entries.length} confirmed conntrack entr${entries.length === 1 ? "y" : "ies"}${replied ? ", replied" : ""}, ${packets} datagrams counted in it${path === "reply" ? " (reply direction)" : ""}, ${arrived} arrived, of ${expected} sent`;
  } finally {
    must(s.node.inside(["sysctl", "-qw", "net.netfilter.nf_conntrack_acct=0"]));
  }
}

/**
 * Whether the sender's CPU time holds the softirq work done in its context: only when the kernel
 * does not account softirq time apart (CONFIG_IRQ_TIME_ACCOUNTING off). Unknown config: wall time.
 */
function timeBase(): "cpu" | "wall" {
  const boot = `/boot/config-${release()}`;
  const config = existsSync("/proc/config.gz")
    ? run(["zcat", "/proc/config.gz"]).stdout
    : existsSync(boot)
      ? readFileSync(boot, "utf8")
      : "";
  return /^# CONFIG_IRQ_TIME_ACCOUNTING is not set$/m.test(config) ? "cpu" : "wall";
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
  const count = Number(process.env["SRBENCH_DATAPLANE_DATAGRAMS"] ?? "5000");
  const rounds = Number(
    process.env["SRBENCH_DATAPLANE_ROUNDS"] ?? (process.env["SRBENCH_QUICK"] === "1" ? "12" : "36"),
  );
  const pin = process.env["SRBENCH_DATAPLANE_PIN"];
  const base: Omit<DataplaneResults, "variants" | "available"> = {
    ...(chosen === undefined || chosen.trim() === "" ? {} : { chosen: true }),
    date: new Date().toISOString(),
    datagramsPerRound: count,
    rounds,
    loadBefore,
    cpus: cpus().length,
    ...(pin === undefined || pin === "" ? {} : { pinnedCpu: pin }),
    timeBase: timeBase(),
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
  const paths = listOf("SRBENCH_DATAPLANE_PATHS", PATHS);
  const setups: Setup[] = [];
  for (const spec of specs) {
    log(`dataplane: setting up ${spec.spec}`);
    // make bench measures the pool path for a few variants only (its time); chosen ones, all.
    const pool = base.chosen === true || POOL_VARIANTS.includes(spec.spec);
    // symroute applied without networks has no pool: ext0 keeps its strict rp_filter, which drops
    // the client's packets from a pool's gateway address, so neither pool path can be measured.
    const poolless = (spec.firewall === "nftables" || spec.firewall === "iptables") && spec.networks === 0;
    const measured = paths.filter(
      (p) => !(p === "pool" && (!pool || poolless)) && !(p === "reply" && poolless),
    );
    setups.push(await setUp(spec, sender, measured));
  }
  const modes = listOf("SRBENCH_DATAPLANE_MODES", ["new", "existing"] as const);
  // Warm up: neighbours resolved, caches filled.
  for (const s of setups) {
    for (const path of s.measured) {
      await send(sender, s, 1000, "new", path);
      s.paths[path].sent = 0;
    }
    s.poolArrived = 0;
    s.problems.length = 0;
  }
  const before = setups.map((s) => ({
    pod: podReceived(s),
    node: nodeReceived(s),
    reply: s.measured.includes("reply") ? replyReceived(s) : 0,
  }));
  for (let r = 0; r < rounds; r++) {
    log(`dataplane: round ${r + 1}/${rounds}`);
    // Alternate the order so that no variant always runs first or last.
    const order = r % 2 === 0 ? setups : [...setups].reverse();
    for (const path of paths) {
      const measuring = order.filter((s) => s.measured.includes(path));
      // The reply path has existing flows only: a reply belongs to a connection.
      if (modes.includes("new") && path !== "reply")
        for (const s of measuring) {
          const t = await send(sender, s, count, "new", path);
          s.paths[path].newFlowNs.push(t.wall);
          s.paths[path].newFlowCpuNs.push(t.cpu);
        }
      if (modes.includes("existing"))
        for (const s of measuring) {
          const t = await send(sender, s, count, "same", path);
          s.paths[path].existingFlowNs.push(t.wall);
          s.paths[path].existingFlowCpuNs.push(t.cpu);
        }
    }
  }
  const delivered = setups.map((s, i) => ({
    pod: (podReceived(s) - (before[i]?.pod ?? 0) - s.poolArrived) / s.paths.pod.sent,
    node: (nodeReceived(s) - (before[i]?.node ?? 0)) / s.paths.node.sent,
    pool: s.poolArrived / s.paths.pool.sent,
    reply: (replyReceived(s) - (before[i]?.reply ?? 0)) / s.paths.reply.sent,
  }));
  log("dataplane: proving the existing flows (conntrack accounting on, outside the timed rounds)");
  const variants: DataplaneVariant[] = [];
  for (const [i, s] of setups.entries()) {
    const proof: Partial<Record<Path, string>> = {};
    // Whether symroute classified the pool's connection, and the reply path's (whose replies then
    // took its mark): read from the proof's entry, there until the next batch flushes conntrack.
    const marked: Partial<Record<Path, boolean>> = {};
    for (const path of s.measured) {
      proof[path] = await proveExistingFlow(sender, s, path, 1000);
      if (path === "pool" || path === "reply")
        marked[path] = / mark=[1-9]/.test(conntrackEntries(s, path)[0] ?? "");
    }
    const classified = marked.pool;
    const replyClassified = marked.reply;
    const d = delivered[i] as { pod: number; node: number; pool: number; reply: number };
    const again = setups.slice(0, i).some((earlier) => earlier.variant.spec === s.variant.spec);
    variants.push({
      ...s.variant,
      ...(again ? { again } : {}),
      newFlowNs: s.paths.pod.newFlowNs,
      existingFlowNs: s.paths.pod.existingFlowNs,
      newFlowCpuNs: s.paths.pod.newFlowCpuNs,
      existingFlowCpuNs: s.paths.pod.existingFlowCpuNs,
      delivered: d.pod,
      ...(proof.pod === undefined ? {} : { existingFlowProof: proof.pod }),
      toNode: {
        newFlowNs: s.paths.node.newFlowNs,
        existingFlowNs: s.paths.node.existingFlowNs,
        newFlowCpuNs: s.paths.node.newFlowCpuNs,
        existingFlowCpuNs: s.paths.node.existingFlowCpuNs,
        delivered: d.node,
        ...(proof.node === undefined ? {} : { existingFlowProof: proof.node }),
      },
      ...(s.measured.includes("pool")
        ? {
            toPool: {
              newFlowNs: s.paths.pool.newFlowNs,
              existingFlowNs: s.paths.pool.existingFlowNs,
              newFlowCpuNs: s.paths.pool.newFlowCpuNs,
              existingFlowCpuNs: s.paths.pool.existingFlowCpuNs,
              delivered: d.pool,
              ...(proof.pool === undefined ? {} : { existingFlowProof: proof.pool }),
              ...(classified === undefined ? {} : { classified }),
            },
          }
        : {}),
      ...(s.measured.includes("reply")
        ? {
            toReply: {
              newFlowNs: [],
              existingFlowNs: s.paths.reply.existingFlowNs,
              existingFlowCpuNs: s.paths.reply.existingFlowCpuNs,
              delivered: d.reply,
              ...(proof.reply === undefined ? {} : { existingFlowProof: proof.reply }),
              ...(replyClassified === undefined ? {} : { classified: replyClassified }),
            },
          }
        : {}),
      problems: s.problems.slice(0, 5),
    });
  }
  save({
    ...base,
    available: true,
    loadAfter: readFileSync("/proc/loadavg", "utf8").trim(),
    variants,
  } satisfies DataplaneResults);
  // The same lines as the page's section (CPU-time ratios where the run used them).
  for (const line of dataplaneSection({ ...base, available: true, variants }).filter((l) =>
    l.startsWith("- "),
  ))
    log(line);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } finally {
    for (const sink of sinks) sink.close();
    destroyAll();
    cleanupScratch();
  }
}
