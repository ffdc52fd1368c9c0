// Items 1, 2, 3 and 6 (apply) of the benchmark: apply, no-op reconcile and delete of N gateway
// networks (connmark method), each in a fresh node namespace, beside
//   - the floor: symroute's own payloads (from `apply --dry-run -o json` on an identical node) fed to
//     `ip -batch` and `nft -f` from a shell script, and
//   - one process per object: every ip line as its own `ip` process, every nft table, chain and rule
//     as its own `nft` process, the way hand-written scripts do it.
// Writes bench/results/apply.json; bench/report.ts turns it into docs/benchmarks.md.
// Run: SRBENCH_SIZES=10,100 node --import tsx bench/apply.bench.ts   (root)

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { counted } from "../src/model/plural.ts";
import {
  batchInput,
  IPSET_READ_ARGS,
  IPTABLES_READ_ARGS,
  ipReadArgs,
  ipReadCommands,
  KUBE_PROXY_IPTABLES_ARGS,
  KUBE_PROXY_NFT_ARGS,
  NFT_ARP_READ_ARGS,
  NFT_READ_ARGS,
} from "../src/adapters/node-reads.ts";
import {
  cleanupScratch,
  destroyAll,
  HAVE_GNU_TIME,
  log,
  must,
  repeatsFor,
  run,
  scratch,
  shellWord,
  sizes,
  timed,
  timedOk,
  withNode,
  writeConfig,
  writeResult,
  type BenchNode,
  type Timed,
} from "./lib.ts";

interface Payloads {
  readonly links: readonly string[];
  readonly sysctls: readonly { name: string; value: string }[];
  readonly ip: Readonly<Record<string, readonly string[]>>;
  readonly firewall: readonly (
    | { tool: "nft"; script: string }
    | { tool: "iptables-restore"; family: 4 | 6; script: string }
    | { tool: "ipset"; script: string }
  )[];
  readonly linkDeletes: readonly string[];
}

export interface Sample {
  readonly ms: number;
  readonly maxRssMiB: number | undefined;
}

export interface SizeResult {
  readonly networks: number;
  readonly objects: {
    ipLines: number;
    nftRules: number;
    nftChains: number;
    sysctls: number;
    processesPerObject: number;
  };
  readonly symroute: { apply: Sample[]; noop: Sample[]; plan: Sample[]; delete: Sample[]; dryRun: Sample[] };
  readonly floor: {
    apply: Sample[];
    delete: Sample[];
    reads: Sample[];
    /** `node -e 0`, the payloads side by side, then one read of what each tool wrote, side by side. */
    leastApply: Sample[];
    /** `node -e 0`, then the reads of a plan side by side. */
    leastReads: Sample[];
  };
  readonly perObject: { apply: Sample[]; delete: Sample[]; runs: number; note: string };
  readonly checks: string[];
  /** Why symroute refused this size (nothing else was measured then). */
  refused?: string;
}

export interface ProfileEntry {
  readonly fn: string;
  readonly where: string;
  readonly ms: number;
}

export interface ApplyResults {
  readonly date: string;
  /** How bin/symroute starts the CLI; absent in results from before issue 14 (bundle + code cache). */
  readonly cli?: string;
  /** Self time by function of one `apply --dry-run` at the largest size (node --cpu-prof). */
  profile?: { networks: number; totalMs: number; top: ProfileEntry[] };
  readonly overheads: { netnsExec: Sample[]; bash: Sample[]; nodeStart: Sample[]; symrouteVersion: Sample[] };
  readonly sizes: SizeResult[];
}

const OVERHEAD_RUNS = 10;
const sample = (t: Timed): Sample => ({ ms: t.ms, maxRssMiB: t.maxRssMiB });

function parsePayloads(stdout: string, what: string): Payloads {
  const doc = JSON.parse(stdout) as { payloads?: Payloads };
  if (doc.payloads === undefined) throw new Error(`${what}: no payloads in the JSON output`);
  return doc.payloads;
}

/** The payloads as files, and the command that feeds each file to its tool. */
function payloadCommands(
  p: Payloads,
  dir: string,
  label: string,
): { links?: string; sysctls?: string; transactions: string[]; linkDeletes?: string } {
  const file = (name: string, text: string): string => {
    const path = join(dir, `${label}-${name}`);
    writeFileSync(path, text);
    return shellWord(path);
  };
  const transactions: string[] = [];
  for (const [family, batch] of Object.entries(p.ip)) {
    if (batch.length === 0) continue;
    transactions.push(`ip ${family === "ipv6" ? "-6 " : ""}-batch ${file(family, `${batch.join("\n")}\n`)}`);
  }
  p.firewall.forEach((f, i) => {
    const path = file(`fw${i}`, f.script);
    transactions.push(
      f.tool === "nft"
        ? `nft -f ${path}`
        : f.tool === "ipset"
          ? `ipset -exist -file ${path} restore`
          : `${f.family === 6 ? "ip6tables" : "iptables"}-restore --noflush ${path}`,
    );
  });
  return {
    ...(p.links.length > 0 && { links: `ip -batch ${file("links", `${p.links.join("\n")}\n`)}` }),
    ...(p.sysctls.length > 0 && {
      sysctls: `sysctl -qw ${p.sysctls.map((s) => shellWord(`${s.name.replaceAll("/", ".")}=${s.value}`)).join(" ")}`,
    }),
    transactions,
    ...(p.linkDeletes.length > 0 && {
      linkDeletes: `ip -batch ${file("linkdel", `${p.linkDeletes.join("\n")}\n`)}`,
    }),
  };
}

/** The floor: the payloads through one process per tool, as the engine runs them (same order). */
function floorScript(p: Payloads, dir: string, label: string): string {
  const c = payloadCommands(p, dir, label);
  const lines = ["set -e", c.links, c.sysctls, ...c.transactions, c.linkDeletes];
  const script = join(dir, `${label}.sh`);
  writeFileSync(script, `${lines.filter((l) => l !== undefined).join("\n")}\n`);
  return script;
}

/** Runs commands side by side in bash and fails when any of them fails. */
function sideBySide(commands: readonly string[]): string[] {
  return [
    "pids=()",
    ...commands.map((c) => `${c} >/dev/null & pids+=($!)`),
    'for p in "${pids[@]}"; do wait "$p"; done',
  ];
}

/**
 * The least an apply can cost for any one-shot Node program that verifies what it wrote: Node's
 * start-up (`node -e 0`), the payloads' transactions side by side, then one read of what each tool
 * wrote, side by side. No module loading, no reading before, no planning, no state file.
 */
function leastApplyScript(p: Payloads, dir: string): string {
  const c = payloadCommands(p, dir, "least-apply");
  const reads: string[] = [];
  for (const [family, batch] of Object.entries(p.ip)) {
    if (batch.length === 0) continue;
    const f = family === "ipv6" ? 6 : 4;
    const input = join(dir, `least-read-ip${f}`);
    writeFileSync(input, batchInput(ipReadCommands({ links: false, objects: true })));
    reads.push(ipBatchRead(f, input));
  }
  for (const f of p.firewall) {
    if (f.tool === "nft") {
      if (f.script.includes("table inet ")) reads.push(`nft ${NFT_READ_ARGS.join(" ")}`);
      // The ARP probes' table (KERNEL-FACTS 10), read back like the rest.
      if (f.script.includes("table arp ")) reads.push(`nft ${NFT_ARP_READ_ARGS.join(" ")}`);
    } else if (f.tool === "ipset") reads.push(`ipset ${IPSET_READ_ARGS.join(" ")}`);
    else reads.push(`${f.family === 6 ? "ip6tables" : "iptables"}-save ${IPTABLES_READ_ARGS.join(" ")}`);
  }
  const lines = [
    "set -e",
    `${shellWord(process.execPath)} -e 0`,
    c.links,
    c.sysctls,
    ...sideBySide(c.transactions),
    c.linkDeletes,
    ...sideBySide(reads),
  ];
  const script = join(dir, "least-apply.sh");
  writeFileSync(script, `${lines.filter((l) => l !== undefined).join("\n")}\n`);
  return script;
}

/** nft table/chain/rule objects from symroute's `nft -f` script (its tables, their chains and rules). */
function nftObjects(script: string): {
  tables: string[];
  chains: { table: string; name: string; hook?: string }[];
  rules: { table: string; chain: string; body: string }[];
} {
  const tables: string[] = [];
  const chains: { table: string; name: string; hook?: string }[] = [];
  const rules: { table: string; chain: string; body: string }[] = [];
  let table: string | undefined;
  let chain: { table: string; name: string; hook?: string } | undefined;
  for (const raw of script.split("\n")) {
    const line = raw.trim();
    const opened = /^table (\S+ \S+) \{$/.exec(line);
    const open = /^chain (\S+) \{$/.exec(line);
    if (opened !== null) {
      table = opened[1] as string;
      if (!tables.includes(table)) tables.push(table);
    } else if (open !== null && table !== undefined) {
      chain = { table, name: open[1] as string };
      chains.push(chain);
    } else if (chain !== undefined && line.startsWith("type ")) chain.hook = line;
    else if (line === "}") {
      if (chain !== undefined) chain = undefined;
      else table = undefined;
    } else if (chain !== undefined && line !== "")
      rules.push({ table: chain.table, chain: chain.name, body: line });
  }
  return { tables, chains, rules };
}

/** One process per object: the shell script a person writes with one command per route, rule, chain. */
function perObjectApplyScript(p: Payloads, dir: string): { path: string; processes: number } {
  const cmds: string[] = [];
  for (const l of p.links) cmds.push(`ip ${l}`);
  for (const s of p.sysctls)
    cmds.push(`sysctl -qw ${shellWord(`${s.name.replaceAll("/", ".")}=${s.value}`)}`);
  for (const [family, batch] of Object.entries(p.ip))
    for (const l of batch) cmds.push(`ip ${family === "ipv6" ? "-6 " : ""}${l}`);
  for (const f of p.firewall) {
    if (f.tool !== "nft") throw new Error("the per-object variant is written for nftables only");
    const { tables, chains, rules } = nftObjects(f.script);
    for (const t of tables) cmds.push(`nft add table ${t}`);
    for (const c of chains) {
      const spec = c.hook === undefined ? "" : ` { ${c.hook} }`;
      cmds.push(`nft ${shellWord(`add chain ${c.table} ${c.name}${spec}`)}`);
    }
    for (const r of rules) cmds.push(`nft ${shellWord(`add rule ${r.table} ${r.chain} ${r.body}`)}`);
  }
  for (const l of p.linkDeletes) cmds.push(`ip ${l}`);
  const path = join(dir, "per-object-apply.sh");
  writeFileSync(path, `set -e\n${cmds.join("\n")}\n`);
  return { path, processes: cmds.length };
}

/** Deleting the same objects one by one: ip lines of symroute's delete payload, nft rules by handle. */
function perObjectDeleteScript(node: BenchNode, p: Payloads, dir: string): string {
  const cmds: string[] = [];
  for (const [family, batch] of Object.entries(p.ip))
    for (const l of batch) cmds.push(`ip ${family === "ipv6" ? "-6 " : ""}${l}`);
  for (const table of ["inet symroute", "netdev symroute", "arp symroute"]) {
    const listed = run(node.inside(["nft", "-j", "-a", "list", "table", ...table.split(" ")]));
    if (listed.code !== 0) continue;
    const items = (
      JSON.parse(listed.stdout) as {
        nftables: Record<string, { name?: string; chain?: string; handle?: number }>[];
      }
    ).nftables;
    const chains: string[] = [];
    for (const item of items) {
      const rule = item["rule"];
      const chain = item["chain"];
      if (rule !== undefined) cmds.push(`nft delete rule ${table} ${rule.chain} handle ${rule.handle}`);
      else if (chain?.name !== undefined) chains.push(chain.name);
    }
    for (const c of chains) cmds.push(`nft delete chain ${table} ${shellWord(c)}`);
    cmds.push(`nft delete table ${table}`);
  }
  for (const l of p.linkDeletes) cmds.push(`ip ${l}`);
  const path = join(dir, "per-object-delete.sh");
  writeFileSync(path, `set -e\n${cmds.join("\n")}\n`);
  return path;
}

/** symroute's read of one family (its `ip -batch` arguments), the batch from a file instead of stdin. */
function ipBatchRead(family: 4 | 6, input: string): string {
  return `ip ${ipReadArgs(family).slice(0, -1).join(" ")} ${shellWord(input)}`;
}

/**
 * The reads a plan runs (src/adapters/node-reads.ts), with the same tools and arguments: one after
 * the other, the floor of a no-op reconcile; and after `node -e 0`, side by side, the least a Node
 * program that reads the node can cost.
 */
function readsScripts(dir: string): { reads: string; least: string } {
  const batch = (family: 4 | 6): string => {
    const path = join(dir, `reads-ip${family}`);
    writeFileSync(path, batchInput(ipReadCommands({ links: family === 4, objects: true })));
    return ipBatchRead(family, path);
  };
  const reads = [
    batch(4),
    batch(6),
    `nft ${NFT_READ_ARGS.join(" ")}`,
    `nft ${NFT_ARP_READ_ARGS.join(" ")}`,
    `iptables-save ${IPTABLES_READ_ARGS.join(" ")}`,
    `ip6tables-save ${IPTABLES_READ_ARGS.join(" ")}`,
    `nft ${KUBE_PROXY_NFT_ARGS.join(" ")}`,
    `iptables-save ${KUBE_PROXY_IPTABLES_ARGS.join(" ")}`,
  ].map((r) => `{ ${r} 2>/dev/null || true; }`);
  const path = join(dir, "reads.sh");
  writeFileSync(path, `${reads.map((r) => `${r} >/dev/null`).join("\n")}\n`);
  const least = join(dir, "least-reads.sh");
  writeFileSync(least, `${[`${shellWord(process.execPath)} -e 0`, ...sideBySide(reads)].join("\n")}\n`);
  return { reads: path, least };
}

function countRules(node: BenchNode): number {
  return (JSON.parse(must(node.inside(["ip", "-j", "-4", "rule", "show"]))) as unknown[]).length;
}

async function overheads(): Promise<ApplyResults["overheads"]> {
  const out: ApplyResults["overheads"] = { netnsExec: [], bash: [], nodeStart: [], symrouteVersion: [] };
  await withNode(async (node) => {
    const empty = join(scratch(), "empty.sh");
    writeFileSync(empty, "true\n");
    for (let i = 0; i < OVERHEAD_RUNS; i++) {
      out.netnsExec.push(sample(await timedOk(node.inside(["true"]), "ip netns exec true")));
      out.bash.push(sample(await timedOk(node.inside(["bash", empty]), "bash")));
      out.nodeStart.push(sample(await timedOk(node.inside([process.execPath, "-e", "0"]), "node -e 0")));
      out.symrouteVersion.push(
        sample(await timedOk(node.symroute(["apply", "--help"]).slice(0, -2), "symroute apply --help")),
      );
    }
  });
  return out;
}

async function measureSize(networks: number): Promise<SizeResult> {
  const config = writeConfig(networks);
  const dir = join(scratch(), `n${networks}`);
  must(["mkdir", "-p", dir]);
  const repeats = repeatsFor(networks);
  // One process per object costs minutes from 1,000 networks on (nft reads the whole table on every
  // call): once from 500 on, extrapolated above 1,000 (and said so in the report).
  const perObjectRuns = networks > 1000 ? 0 : networks >= 500 ? 1 : Math.min(repeats, 3);
  const checks: string[] = [];
  const result: SizeResult = {
    networks,
    objects: { ipLines: 0, nftRules: 0, nftChains: 0, sysctls: 0, processesPerObject: 0 },
    symroute: { apply: [], noop: [], plan: [], delete: [], dryRun: [] },
    floor: { apply: [], delete: [], reads: [], leastApply: [], leastReads: [] },
    perObject: {
      apply: [],
      delete: [],
      runs: perObjectRuns,
      note:
        perObjectRuns > 0 && perObjectRuns < repeats
          ? `one process per object ran ${counted(perObjectRuns, "time")}, not ${repeats}, to keep \`make bench\` short`
          : "",
    },
    checks,
  };

  // The payloads, from an identical fresh node.
  let applyPayloads: Payloads | undefined;
  let deletePayloads: Payloads | undefined;
  await withNode(async (node) => {
    const dry = await timed(node.symroute(["apply", "-c", config, "--dry-run", "-o", "json"]));
    if (dry.code !== 0) {
      const why = dry.stderr.trim().split("\n").slice(0, 3).join(" / ");
      result.refused = why === "" ? `exit ${dry.code}` : why;
      return;
    }
    result.symroute.dryRun.push(sample(dry));
    applyPayloads = parsePayloads(dry.stdout, "apply --dry-run");
    await timedOk(node.symroute(["apply", "-c", config]), "apply (for the delete payloads)");
    const delDry = await timedOk(node.symroute(["delete", "--dry-run", "-o", "json"]), "delete --dry-run");
    deletePayloads = parsePayloads(delDry.stdout, "delete --dry-run");
  });
  if (result.refused !== undefined) {
    log(`${networks} networks: symroute refused the configuration: ${result.refused}`);
    return result;
  }
  if (applyPayloads === undefined || deletePayloads === undefined) throw new Error("no payloads");
  const ipLines = Object.values(applyPayloads.ip).reduce((n, b) => n + b.length, 0);
  const nft = applyPayloads.firewall.map((f) => nftObjects(f.script));
  const perObjectApply = perObjectApplyScript(applyPayloads, dir);
  Object.assign(result.objects, {
    ipLines,
    nftRules: nft.reduce((n, o) => n + o.rules.length, 0),
    nftChains: nft.reduce((n, o) => n + o.chains.length, 0),
    sysctls: applyPayloads.sysctls.length,
    processesPerObject: perObjectApply.processes,
  });
  const floorApply = floorScript(applyPayloads, dir, "floor-apply");
  const floorDelete = floorScript(deletePayloads, dir, "floor-delete");
  const reads = readsScripts(dir);
  const leastApply = leastApplyScript(applyPayloads, dir);

  for (let r = 0; r < repeats; r++) {
    log(`${networks} networks: run ${r + 1}/${repeats}`);
    // symroute: apply, no-op apply, plan, delete on one fresh node.
    await withNode(async (node) => {
      const baseline = countRules(node);
      result.symroute.apply.push(
        sample(await timedOk(node.symroute(["apply", "-c", config]), "symroute apply")),
      );
      if (r === 0) {
        const rules = countRules(node);
        // One fwmark rule per network, plus the skip rule and its nop from 3 networks on.
        const expected = networks + (networks >= 3 ? 2 : 0);
        checks.push(`symroute apply added ${rules - baseline} ip rules (expected ${expected})`);
      }
      result.symroute.noop.push(
        sample(await timedOk(node.symroute(["apply", "-c", config]), "symroute apply (no-op)")),
      );
      result.symroute.plan.push(
        sample(await timedOk(node.symroute(["plan", "-c", config]), "symroute plan (in sync)")),
      );
      result.floor.reads.push(sample(await timedOk(node.inside(["bash", reads.reads]), "reads")));
      result.floor.leastReads.push(
        sample(await timedOk(node.inside(["bash", reads.least]), "node -e 0, then the reads side by side")),
      );
      result.symroute.delete.push(sample(await timedOk(node.symroute(["delete"]), "symroute delete")));
      if (r === 0)
        checks.push(`symroute delete left ${countRules(node) - baseline} extra ip rules (expected 0)`);
    });
    // The floor: same payloads, one process per tool.
    await withNode(async (node) => {
      result.floor.apply.push(sample(await timedOk(node.inside(["bash", floorApply]), "floor apply")));
      if (r === 0 && networks <= 1000) {
        const plan = run(node.symroute(["plan", "-c", config]));
        checks.push(
          `after the floor apply, symroute plan exits ${plan.code} (0: the floor built the same state)`,
        );
      }
      result.floor.delete.push(sample(await timedOk(node.inside(["bash", floorDelete]), "floor delete")));
    });
    // The least a verifying Node program can cost: same payloads, side by side, after `node -e 0`.
    await withNode(async (node) => {
      result.floor.leastApply.push(
        sample(await timedOk(node.inside(["bash", leastApply]), "least possible apply")),
      );
    });
    // One process per object.
    if (r < perObjectRuns) {
      await withNode(async (node) => {
        result.perObject.apply.push(
          sample(await timedOk(node.inside(["bash", perObjectApply.path]), "per-object apply")),
        );
        if (r === 0 && networks <= 1000) {
          const plan = run(node.symroute(["plan", "-c", config]));
          checks.push(`after the per-object apply, symroute plan exits ${plan.code} (0: the same state)`);
        }
        const del = perObjectDeleteScript(node, deletePayloads as Payloads, dir);
        result.perObject.delete.push(sample(await timedOk(node.inside(["bash", del]), "per-object delete")));
      });
    }
  }
  return result;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Where the time of one `apply --dry-run` goes: self time per function, the largest first. */
async function profileDryRun(networks: number): Promise<NonNullable<ApplyResults["profile"]>> {
  const config = writeConfig(networks);
  const dir = join(scratch(), `profile-${networks}`);
  must(["mkdir", "-p", dir]);
  await withNode(async (node) => {
    const argv = node.symroute(["apply", "-c", config, "--dry-run", "-o", "json"]);
    const at = argv.indexOf(process.execPath);
    argv.splice(at + 1, 0, "--cpu-prof", `--cpu-prof-dir=${dir}`);
    await timedOk(argv, "apply --dry-run under --cpu-prof");
  });
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (file === undefined) throw new Error("no CPU profile written");
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, ProfileEntry>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) return;
    const where =
      frame.url === ""
        ? ""
        : `${frame.url.replace(/^.*?\/(dist|node_modules|node:)/, "$1").replace(/^file:\/\//, "")}:${frame.lineNumber + 1}`;
    const fn = frame.functionName === "" ? "(anonymous)" : frame.functionName;
    const key = `${fn} ${where}`;
    const entry = self.get(key) ?? { fn, where, ms: 0 };
    self.set(key, { ...entry, ms: entry.ms + us / 1000 });
  });
  const top = [...self.values()].sort((a, b) => b.ms - a.ms).slice(0, 12);
  return { networks, totalMs: total / 1000, top };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench/apply.bench.ts needs root (network namespaces)");
  if (!HAVE_GNU_TIME)
    log("GNU time (/usr/bin/time) is missing: peak memory is not measured (apt-get install time)");
  const results: ApplyResults = {
    date: new Date().toISOString(),
    cli: "dist/cli/main.js (tsc output, no bundle, no code cache)",
    overheads: await overheads(),
    sizes: [],
  };
  for (const networks of sizes()) {
    const started = Date.now();
    results.sizes.push(await measureSize(networks));
    log(`${networks} networks: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    writeResult("apply", results);
  }
  const measured = results.sizes.filter((s) => s.refused === undefined).map((s) => s.networks);
  if (measured.length > 0) {
    const largest = Math.max(...measured);
    log(`CPU profile of one apply --dry-run at ${largest} networks`);
    results.profile = await profileDryRun(largest);
  }
  writeResult("apply", results);
}

try {
  await main();
} finally {
  destroyAll();
  cleanupScratch();
}
