// Shared pieces of the benchmarks: node namespaces from the tests' harness (test/support/netns.ts), generated
// configurations of N gateway networks, process timing (wall clock and peak memory) and statistics.
// Every namespace name starts with SRBENCH_PREFIX (set by bench/run.sh), so run.sh can remove
// whatever a crashed script left behind.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  CLI,
  REPO,
  createBareNamespace,
  createNamespaceNode,
  run as runInHarness,
  type Run,
} from "../test/support/netns.ts";

export { CLI, REPO, type Run };
export const RESULTS = join(REPO, "bench/results");
export const PREFIX = process.env["SRBENCH_PREFIX"] ?? `srbench-${process.pid}-`;
const GNU_TIME = "/usr/bin/time";
export const HAVE_GNU_TIME = existsSync(GNU_TIME);

let counter = 0;

export function run(argv: readonly string[], input?: string): Run {
  return runInHarness(argv, { input, env: { LC_ALL: "C" } });
}

export function must(argv: readonly string[], input?: string): string {
  const r = run(argv, input);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr.slice(0, 2000)}`);
  return r.stdout;
}

export interface Timed extends Run {
  readonly ms: number;
  /** Peak resident set size of the process tree's largest process, MiB (GNU time), if known. */
  readonly maxRssMiB: number | undefined;
}

/**
 * Runs argv and measures its wall time from spawn to exit. Under GNU time (when installed) the peak
 * RSS comes along; time itself costs about a millisecond, the same for every variant.
 */
export async function timed(argv: readonly string[], options: { input?: string } = {}): Promise<Timed> {
  const rssFile = HAVE_GNU_TIME ? join(scratch(), `rss-${++counter}`) : undefined;
  const full = rssFile === undefined ? [...argv] : [GNU_TIME, "-f", "%M", "-o", rssFile, ...argv];
  const [file, ...args] = full;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const start = process.hrtime.bigint();
  const code = await new Promise<number>((resolveCode, reject) => {
    const child = spawn(file as string, args, {
      env: { ...process.env, NO_COLOR: "1", LC_ALL: "C" },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (c) => resolveCode(c ?? 1));
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  let maxRssMiB: number | undefined;
  if (rssFile !== undefined && existsSync(rssFile)) {
    // GNU time writes "Command exited with non-zero status N" before the value on failures.
    const kb = Number(readFileSync(rssFile, "utf8").trim().split("\n").pop());
    if (Number.isFinite(kb)) maxRssMiB = kb / 1024;
    rmSync(rssFile, { force: true });
  }
  return {
    code,
    stdout: Buffer.concat(out).toString("utf8"),
    stderr: Buffer.concat(err).toString("utf8"),
    ms,
    maxRssMiB,
  };
}

export async function timedOk(
  argv: readonly string[],
  what: string,
  okCodes: readonly number[] = [0],
): Promise<Timed> {
  const r = await timed(argv);
  if (!okCodes.includes(r.code)) throw new Error(`${what}: exit ${r.code}: ${r.stderr.slice(0, 2000)}`);
  return r;
}

let scratchDir: string | undefined;
/** A temporary directory for this process, removed by cleanupScratch(). */
export function scratch(): string {
  scratchDir ??= mkdtempSync(join(tmpdir(), "srbench-"));
  return scratchDir;
}
export function cleanupScratch(): void {
  if (scratchDir !== undefined) rmSync(scratchDir, { recursive: true, force: true });
  scratchDir = undefined;
}

export interface BenchNode {
  readonly name: string;
  readonly peer: string;
  readonly stateDir: string;
  /** argv that runs `argv` inside the node namespace. */
  inside(argv: readonly string[]): string[];
  symroute(args: readonly string[]): string[];
  destroy(): void;
}

const live = new Set<BenchNode>();

/** The article's node (the harness's), its names starting with PREFIX. */
export function createNode(): BenchNode {
  const node = createNamespaceNode({ prefix: `${PREFIX}n` });
  const bench: BenchNode = {
    name: node.name,
    peer: node.peer,
    stateDir: node.stateDir,
    inside: (argv) => ["ip", "netns", "exec", node.name, ...argv],
    symroute: node.symrouteArgv,
    destroy() {
      live.delete(bench);
      node.destroy();
    },
  };
  live.add(bench);
  return bench;
}

export function destroyAll(): void {
  for (const node of [...live]) node.destroy();
  for (const pod of [...pods]) pod.destroy();
}

/** The pod a bench node forwards to (createPod). */
export const POD_ADDRESS = "10.112.0.5";
const pods = new Set<{ destroy(): void }>();

/**
 * A pod namespace behind `node`: the node's `vpod` 10.112.0.1/24 to the pod's eth0 POD_ADDRESS,
 * default route via the node. The pod drops what it receives before its own stack (no ICMP back:
 * the one-way cost of a datagram), counting UDP datagrams to ports 1024-65535 (nft counter
 * `inet sink delivered`). Removed by destroyAll. Returns the pod namespace's name.
 */
export function createPod(node: BenchNode): string {
  const namespace = createBareNamespace(`${PREFIX}pod`);
  const pod = {
    destroy() {
      pods.delete(pod);
      namespace.destroy();
    },
  };
  pods.add(pod);
  const name = namespace.name;
  must(["ip", "-n", node.name, "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", name]);
  must(["ip", "-n", node.name, "-batch", "-"], "addr add 10.112.0.1/24 dev vpod\nlink set vpod up\n");
  must(
    ["ip", "-n", name, "-batch", "-"],
    `link set lo up\naddr add ${POD_ADDRESS}/24 dev eth0\nlink set eth0 up\nroute add default via 10.112.0.1\n`,
  );
  must(
    ["ip", "netns", "exec", name, "nft", "-f", "-"],
    'table inet sink {\n  counter delivered {}\n  chain in {\n    type filter hook prerouting priority -400; policy drop;\n    udp dport 1024-65535 counter name "delivered"\n  }\n}\n',
  );
  return name;
}

export async function withNode<T>(body: (node: BenchNode) => Promise<T>): Promise<T> {
  const node = createNode();
  try {
    return await body(node);
  } finally {
    node.destroy();
  }
}

/** Third and second octets vary: 100.(64 + i/256).(i%256).0/24, gateway .1; up to 16,384 networks. */
export function networkAddress(i: number): { pool: string; gateway: string } {
  const b = 64 + Math.floor(i / 256);
  const c = i % 256;
  return { pool: `100.${b}.${c}.0/24`, gateway: `100.${b}.${c}.1` };
}

export function configText(networks: number): string {
  const lines = [
    "marks: { mask: 0x3fff, avoid: [kube-proxy] }",
    "tables: { from: 20000, to: 29999 }",
    "networks:",
  ];
  for (let i = 0; i < networks; i++) {
    const { pool, gateway } = networkAddress(i);
    lines.push(`  - { name: n${i}, addresses: [${pool}], interface: ext0, gateway: ${gateway} }`);
  }
  return `${lines.join("\n")}\n`;
}

export function writeConfig(networks: number): string {
  const path = join(scratch(), `config-${networks}.yaml`);
  if (!existsSync(path)) writeFileSync(path, configText(networks));
  return path;
}

export interface Stats {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n: 0, median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const mid = Math.floor(n / 2);
  const median =
    n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { n, median, min: sorted[0] as number, max: sorted[n - 1] as number };
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

export function writeResult(name: string, value: unknown): void {
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, `${name}.json`), `${JSON.stringify(value, null, 2)}\n`);
}

export function readResult<T>(name: string): T | undefined {
  const path = join(RESULTS, `${name}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as T) : undefined;
}

/** Sizes and repeats, from SRBENCH_SIZES ("10,100,500,1000,5000") and SRBENCH_QUICK (1: fewer repeats). */
export function sizes(): number[] {
  const text = process.env["SRBENCH_SIZES"] ?? "10,100,500,1000,5000";
  return text
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

export function repeatsFor(networks: number): number {
  if (process.env["SRBENCH_QUICK"] === "1") return 1;
  return 5;
}

/** A POSIX shell word: single quotes, with any single quote closed, escaped and reopened. */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    destroyAll();
    cleanupScratch();
    process.exit(130);
  });
}

/** Writes an A/B bench's results to `out` (tmp/bench/, never bench/results/) with the run's machine facts. */
export function writeAbResults(
  out: string,
  run: { networks: number; datagramsPerRound: number; rounds: number; loadBefore: string },
  results: unknown,
): void {
  mkdirSync(dirname(out), { recursive: true });
  const body = {
    date: new Date().toISOString(),
    ...run,
    cpus: cpus().length,
    loadAfter: readFileSync("/proc/loadavg", "utf8").trim(),
    results,
  };
  writeFileSync(out, `${JSON.stringify(body, null, 2)}\n`);
}
