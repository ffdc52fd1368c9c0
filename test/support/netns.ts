// The namespace harness of the tests, the reliability scripts and the benchmarks: fresh network
// namespaces with unique names, always torn down, and the node dumps (ip -j, nft, iptables-save,
// sysctls) that prove a round trip byte for byte. The lab's own snapshot (src/lab/snapshot.ts) shares
// how an `ip -j` dump is settled.

import { spawn, spawnSync, type ChildProcess, type ChildProcessWithoutNullStreams } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { constants, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { TestContext } from "node:test";
import { checkLabPrerequisites } from "../../src/lab/preflight.ts";
import { settledIpJson } from "../../src/lab/snapshot.ts";
import { missing } from "./skip.ts";

export const REPO = resolve(import.meta.dirname, "../..");
/**
 * The CLI under test: bin/symroute of this tree, or SYMROUTE_CLI (the long runs of
 * scripts/reliability/ point it at a copy of bin/ and dist/, so that a rebuild of the tree during the
 * run cannot break a trial).
 */
export const CLI = process.env["SYMROUTE_CLI"] ?? join(REPO, "bin/symroute");

/** Whether a user other than the owner can reach and read `file` (every directory on the way lets others in). */
function openToOthers(file: string): boolean {
  try {
    if ((statSync(file).mode & 0o004) === 0) return false;
    for (let dir = dirname(file); ; dir = dirname(dir)) {
      if ((statSync(dir).mode & 0o001) === 0) return false;
      if (dir === dirname(dir)) return true;
    }
  } catch {
    return false;
  }
}

let publicCopy: string | undefined;

/**
 * The CLI at a path an unprivileged user (nobody) can run: the tree's own when its directories let
 * others in, else a world-readable copy of what it needs (a clone in a private temporary directory,
 * as CI may make, is out of nobody's reach).
 */
export function publicCli(): string {
  if (publicCopy !== undefined) return publicCopy;
  const files = ["bin/symroute", "dist/cli/main.js", "package.json", "node_modules/commander/package.json"];
  if (files.every((f) => openToOthers(join(REPO, f)))) return (publicCopy = CLI);
  const dir = mkdtempSync(join(tmpdir(), "symroute-public-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  for (const entry of ["bin", "dist", "package.json", "node_modules"])
    must(["cp", "-R", join(REPO, entry), dir]);
  must(["chmod", "-R", "a+rX", dir]);
  chmodSync(dir, 0o755);
  return (publicCopy = join(dir, "bin/symroute"));
}
/** `symroute ARGS` as nobody without capabilities, in the node's namespace. */
export function asNobody(node: Netns, args: readonly string[]): Run {
  return node.exec([
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    process.execPath,
    publicCli(),
    ...args,
  ]);
}

/** A state directory nobody owns (tests never use /var/lib/symroute), removed after the test. */
export function nobodysStateDir(t: { after: (fn: () => void) => void }): string {
  const stateDir = mkdtempSync(join(tmpdir(), "symroute-nobody-"));
  chownSync(stateDir, 65534, 65534);
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  return stateDir;
}

let counter = 0;

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command and returns its exit code and output. A command that cannot be started (a tool
 * that is not installed) throws: empty output from a missing tool would compare equal to empty
 * output from another, and a proof built on two dumps of nothing proves nothing.
 */
export function run(argv: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const [file, ...args] = argv;
  const r = spawnSync(file as string, args, {
    input: options.input,
    encoding: "utf8",
    // A ruleset of thousands of networks (the benchmarks) is far more than the default 1 MiB.
    maxBuffer: 512 * 1024 * 1024,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
  });
  if (r.error !== undefined) throw new Error(`${argv.join(" ")}: could not run ${file}: ${r.error.message}`);
  // Killed by a signal: the shell's convention, 128 + its number.
  const code = r.status ?? 128 + (r.signal === null ? 0 : constants.signals[r.signal]);
  return { code, stdout: r.stdout, stderr: r.stderr };
}

export function must(argv: readonly string[], input?: string): string {
  const r = run(argv, { input });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * The skip message when end-to-end tests cannot run here (not root), or undefined when they can.
 * Anything else missing (Linux, iproute2) throws: the test fails, it does not skip.
 */
export function e2eUnavailable(): string | undefined {
  if (process.platform !== "linux")
    throw new Error(`end-to-end tests need Linux network namespaces, not ${process.platform}`);
  if (process.getuid?.() !== 0) return missing("root", "network namespaces");
  must(["ip", "netns", "list"]);
  return undefined;
}

/** e2eUnavailable() for the lab's tests; a tool the lab needs that is missing throws, naming it. */
export async function labUnavailable(): Promise<string | undefined> {
  const why = e2eUnavailable();
  if (why === undefined) await checkLabPrerequisites();
  return why;
}

/**
 * A node namespace like the article's, with its peer (the router's ends). One harness for the
 * end-to-end tests (createNode), the reliability proofs and scripts/reliability/
 * (createNamespaceNode, destroyed explicitly) and the benchmarks (bench/lib.ts).
 */
export interface Netns {
  readonly name: string;
  readonly peer: string;
  readonly stateDir: string;
  exec(argv: readonly string[], input?: string): Run;
  /** `symroute ARGS --state-dir DIR` inside the node, waited for; `env` adds to the environment. */
  symroute(args: readonly string[], env?: NodeJS.ProcessEnv): Run;
  /** The same, as a child process that the caller may kill. */
  spawnSymroute(args: readonly string[]): ChildProcess;
  /** argv that runs `args` (symroute's, with the node's state directory) inside the node. */
  symrouteArgv(args: readonly string[]): string[];
  /** Everything a round trip must leave as it found it, byte for byte (dumpNamespace). */
  dump(): string;
  /** Removes both namespaces and the state directory; safe to call twice. */
  destroy(): void;
}

export interface NodeOptions {
  /** Namespace names are `PREFIX-<pid>-<n>` (the node) and `PREFIXp-<pid>-<n>` (its peer). */
  readonly prefix?: string;
  readonly dualStack?: boolean;
}

/**
 * Creates the namespaces `name` (the node) and `peer` (the router's ends) of the article's node:
 * eth0 192.168.1.10/24 with the default route via 192.168.1.1, ext0 without an address, rp_filter 1
 * on conf.all.
 */
function buildArticleNode(name: string, peer: string, options: { dualStack?: boolean } = {}): void {
  must(["ip", "netns", "add", name]);
  must(["ip", "netns", "add", peer]);
  // No duplicate address detection: addresses are final at once, so dumps do not race with DAD.
  for (const ns of [name, peer]) {
    must([
      "ip",
      "netns",
      "exec",
      ns,
      "sysctl",
      "-qw",
      "net.ipv6.conf.default.accept_dad=0",
      "net.ipv6.conf.all.accept_dad=0",
    ]);
  }
  const batch = [
    `link add eth0 netns ${name} type veth peer name r-eth0 netns ${peer}`,
    `link add ext0 netns ${name} type veth peer name r-ext0 netns ${peer}`,
  ];
  must(["ip", "-batch", "-"], `${batch.join("\n")}\n`);
  const node = [
    "link set lo up",
    "link set eth0 up",
    "link set ext0 up",
    "addr add 192.168.1.10/24 dev eth0",
    ...(options.dualStack === true ? ["addr add 2001:db8:1::10/64 dev eth0 nodad"] : []),
    "route add default via 192.168.1.1",
    ...(options.dualStack === true ? ["route add default via 2001:db8:1::1 dev eth0"] : []),
  ];
  must(["ip", "-n", name, "-batch", "-"], `${node.join("\n")}\n`);
  must(
    ["ip", "-n", peer, "-batch", "-"],
    "link set r-eth0 up\nlink set r-ext0 up\naddr add 192.168.1.1/24 dev r-eth0\n",
  );
  must(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
  waitForLinkLocal(name, ["eth0", "ext0"]);
}

/**
 * The kernel adds a link's IPv6 link-local address only once the link has carrier, which the link
 * watcher reports up to a second after the peer comes up: a dump taken before that and one taken
 * after differ by those addresses. Wait until they are there (a condition, polled), so the
 * starting dump of a round trip is the settled one.
 */
function waitForLinkLocal(namespace: string, links: readonly string[]): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; attempt < 500; attempt++) {
    const listing = must(["ip", "-n", namespace, "-j", "-6", "addr", "show", "scope", "link"]);
    const present = new Set(
      (JSON.parse(listing || "[]") as { ifname?: string; addr_info?: unknown[] }[])
        .filter((link) => (link.addr_info ?? []).length > 0)
        .map((link) => link.ifname),
    );
    if (links.every((link) => present.has(link))) return;
    Atomics.wait(pause, 0, 0, 10);
  }
  throw new Error(`${links.join(", ")} in ${namespace} got no IPv6 link-local address within 5 s`);
}

/** A namespace with nothing but `lo` in it (probes, the simulator's differential runs): `PREFIX-<pid>-<n>`. */
export function createBareNamespace(prefix: string): { readonly name: string; destroy(): void } {
  const name = `${prefix}-${process.pid}-${++counter}`;
  must(["ip", "netns", "add", name]);
  return { name, destroy: () => void run(["ip", "netns", "del", name]) };
}

/** SIGKILLs every process in namespace `name` (`ip netns pids`); none is no error. */
function killProcessesIn(name: string): void {
  const pids = run(["ip", "netns", "pids", name])
    .stdout.split("\n")
    .filter((p) => /^\d+$/.test(p));
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone already
    }
  }
}

/** The article's node in fresh namespaces, torn down by destroy() (also when building fails). */
export function createNamespaceNode(options: NodeOptions = {}): Netns {
  const prefix = options.prefix ?? "sr-t";
  const id = `${process.pid}-${++counter}`;
  const name = `${prefix}-${id}`;
  const peer = `${prefix}p-${id}`;
  const stateDir = mkdtempSync(join(tmpdir(), "symroute-test-"));
  const destroy = (): void => {
    // A test's agent may still be running (its own after-hook runs later): kill what lives in the
    // namespace first, so that it does not write into the state directory while it is removed.
    killProcessesIn(name);
    run(["ip", "netns", "del", name]);
    run(["ip", "netns", "del", peer]);
    // A process killed just now may still be closing its files: retry a directory that refills.
    rmSync(stateDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  };
  try {
    buildArticleNode(name, peer, options);
  } catch (error) {
    destroy();
    throw error;
  }
  const exec = (argv: readonly string[], input?: string): Run =>
    run(["ip", "netns", "exec", name, ...argv], { input });
  const symrouteArgv = (args: readonly string[]): string[] => [
    "ip",
    "netns",
    "exec",
    name,
    process.execPath,
    CLI,
    ...args,
    "--state-dir",
    stateDir,
  ];
  return {
    name,
    peer,
    stateDir,
    exec,
    symroute: (args, env) => run(symrouteArgv(args), env === undefined ? {} : { env }),
    spawnSymroute: (args) => {
      const [file, ...rest] = symrouteArgv(args);
      return spawn(file as string, rest, { stdio: "ignore", env: { ...process.env, NO_COLOR: "1" } });
    },
    symrouteArgv,
    dump: () => dumpNamespace(name),
    destroy,
  };
}

/** createNamespaceNode for one test: destroyed when the test ends. */
export function createNode(t: TestContext, options: NodeOptions = {}): Netns {
  const node = createNamespaceNode(options);
  t.after(node.destroy);
  return node;
}

/** The node's state file (`netns-ID/state.json` under its state directory), once a run wrote it. */
export function stateFileOf(node: Netns): string {
  const files = readdirSync(node.stateDir)
    .filter((entry) => entry.startsWith("netns-"))
    .map((entry) => join(node.stateDir, entry, "state.json"))
    .filter((file) => existsSync(file));
  const [file] = files;
  if (file === undefined || files.length > 1)
    throw new Error(`expected one state file under ${node.stateDir}, found ${files.length}`);
  return file;
}

const DUMPS: readonly (readonly string[])[] = [
  ["ip", "-j", "-d", "link", "show"],
  ["ip", "-j", "-d", "addr", "show"],
  ["ip", "-j", "-d", "-4", "route", "show", "table", "all"],
  ["ip", "-j", "-d", "-6", "route", "show", "table", "all"],
  ["ip", "-j", "-4", "rule", "show"],
  ["ip", "-j", "-6", "rule", "show"],
  ["nft", "list", "ruleset"],
  ["iptables-save"],
  ["ip6tables-save"],
  // The iptables front end's sets, names and content.
  ["ipset", "list", "-o", "save"],
];

/**
 * Everything a round trip must leave as it found it: links, addresses, routes and rules (settled:
 * src/lab/snapshot.ts's settledIpJson), the whole nft ruleset, every iptables table, every ipset, and every
 * rp_filter/arp_ignore/arp_announce/arp_filter/src_valid_mark sysctl.
 */
export function dumpNamespace(name: string): string {
  const parts = DUMPS.map((argv) => {
    const raw = must(["ip", "netns", "exec", name, ...argv]);
    const out = argv[1] === "-j" ? settledIpJson(raw) : raw;
    // Counters (iptables-save's, and nft's for iptables-nft tables) and generation comments change
    // with traffic and time, not with configuration.
    const normalised = out
      .replace(/^#.*$/gm, "")
      .replace(/\[\d+:\d+\]/g, "[0:0]")
      .replace(/packets \d+ bytes \d+/g, "packets 0 bytes 0")
      // ipset's hash seed is random, and its hash size grows with the set: neither is content.
      .replace(/ (initval|hashsize|bucketsize) \S+/g, "");
    return `## ${argv.join(" ")}\n${normalised}`;
  });
  const sysctls = must(["ip", "netns", "exec", name, "sysctl", "-a"])
    .split("\n")
    .filter((l) => /\.(rp_filter|arp_ignore|arp_announce|arp_filter|src_valid_mark) =/.test(l))
    .join("\n");
  return `${parts.join("\n")}\n## sysctl\n${sysctls}\n`;
}

/** The dump with every JSON list and text section sorted: equal when the same objects exist. */
export function canonicalDump(dump: string): string {
  return dump
    .split(/^## /m)
    .map((section) => {
      const [head = "", ...body] = section.split("\n");
      const text = body.join("\n").trim();
      if (text.startsWith("[")) {
        const items = (JSON.parse(text) as unknown[]).map((x) => JSON.stringify(x)).sort();
        return `${head}\n${items.join("\n")}`;
      }
      return `${head}\n${text.split("\n").sort().join("\n")}`;
    })
    .join("\n## ");
}

/** The lines of `a` and `b` that differ, for a readable failure. */
export function dumpDifference(a: string, b: string, limit = 12): string {
  const left = a.split("\n");
  const right = b.split("\n");
  const onlyA = left.filter((l) => !right.includes(l)).slice(0, limit);
  const onlyB = right.filter((l) => !left.includes(l)).slice(0, limit);
  return [...onlyA.map((l) => `- ${l}`), ...onlyB.map((l) => `+ ${l}`)].join("\n");
}

/** Fails with only the lines that differ (a whole dump in an assertion message is unreadable). */
export function assertSameDump(expected: string, actual: string, what: string): void {
  if (actual !== expected) throw new Error(`${what}:\n${dumpDifference(expected, actual)}`);
}

/** A directory of its own for a test's config files, readable by anyone (some runs are unprivileged). */
export function configDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** Writes a config file readable by anyone and returns its path. */
export function writeConfigFile(dir: string, fileName: string, text: string): string {
  const path = join(dir, fileName);
  writeFileSync(path, text);
  chmodSync(path, 0o644);
  return path;
}

// Kept here too: the e2e tests, scripts and benches take it with the harness.
export { PUBLIC_NETWORK } from "./config.ts";

/** An HTTP server in the node itself (a host-network backend) on `port`, up until the test ends. */
export async function startHttpServer(t: TestContext, node: Netns, port: number): Promise<void> {
  await startServer(
    t,
    node,
    `require("node:http").createServer((q, r) => r.end("ok")).listen(${port}, "::", () => console.log("ready"))`,
  );
}

/**
 * A server in the node, up until the test ends: `script` (node -e) prints "ready" once it listens.
 */
export async function startServer(t: TestContext, node: Netns, script: string): Promise<void> {
  const child = spawn("ip", ["netns", "exec", node.name, process.execPath, "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.after(() => child.kill());
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("ready")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`the server exited (${code})`)));
  });
}

/** A veth `name` in the node whose other end, `r-NAME`, is in the peer (as ext0 and r-ext0), both down. */
export function addPeerLink(node: Netns, name: string): void {
  must([
    "ip",
    "link",
    "add",
    name,
    "netns",
    node.name,
    "type",
    "veth",
    "peer",
    "name",
    `r-${name}`,
    "netns",
    node.peer,
  ]);
}

/** One TCP connection from the peer to a line-echo server behind the node, held open. */
export interface Connection {
  /** Sends `line` and waits for its echo. */
  echo(line: string): Promise<string>;
  /** The connection's ct mark in the node's conntrack table. */
  ctMark(): number;
}

/**
 * Opens a connection from `from` (an address of `namespace`'s, the peer's unless given) to
 * `to`:`port`, open until the test ends (the mark-move and freed-mark e2e tests hold one across
 * applies).
 */
export async function connect(
  t: TestContext,
  node: Netns,
  { from, to, port, namespace = node.peer }: { from: string; to: string; port: number; namespace?: string },
): Promise<Connection> {
  const script = `const s = require("node:net").connect({ host: "${to}", port: ${port}, localAddress: "${from}" }, () => console.log("connected " + s.localPort));
s.setEncoding("utf8"); s.on("data", (d) => process.stdout.write(d));
process.stdin.on("data", (d) => s.write(d));`;
  const child: ChildProcessWithoutNullStreams = spawn("ip", [
    "netns",
    "exec",
    namespace,
    process.execPath,
    "-e",
    script,
  ]);
  t.after(() => child.kill());
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const { value, done } = await lines.next();
    if (done === true) throw new Error("the client exited");
    return value as string;
  };
  const first = await next();
  const localPort = Number(/^connected (\d+)$/.exec(first)?.[1]);
  if (!(localPort > 0)) throw new Error(`the client did not connect: ${first}`);
  return {
    echo: async (line) => {
      child.stdin.write(`${line}\n`);
      return next();
    },
    ctMark: () => {
      const entries = node.exec([
        "conntrack",
        "-L",
        "-p",
        "tcp",
        "--sport",
        String(localPort),
        "-o",
        "extended",
      ]).stdout;
      return Number(/ mark=(\d+)/.exec(entries)?.[1]);
    },
  };
}

/** The MAC address of the node's ext0: what the peer pins for the node's addresses (MetalLB's ARP answer). */
export function ext0Mac(node: Netns): string {
  const links = JSON.parse(must(["ip", "-n", node.name, "-j", "link", "show", "ext0"])) as {
    address?: string;
  }[];
  const mac = links[0]?.address;
  if (mac === undefined) throw new Error(`ext0 of ${node.name} has no MAC address`);
  return mac;
}

/** The packets a named counter of the node's nft table `FAMILY TABLE` counted so far. */
export function nftCounter(node: Netns, table: string, name: string, family = "inet"): number {
  const listed = JSON.parse(
    must(["ip", "netns", "exec", node.name, "nft", "-j", "list", "counter", family, table, name]),
  ) as {
    nftables: { counter?: { packets: number } }[];
  };
  return listed.nftables.find((o) => o.counter !== undefined)?.counter?.packets ?? 0;
}
