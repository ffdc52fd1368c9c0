// Fresh network namespaces for end-to-end tests: unique names, always torn down, and the node
// dumps (ip -j, sysctls) that prove a round trip byte for byte.

import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { TestContext } from "node:test";
import { checkLabPrerequisites } from "../../src/lab/preflight.ts";
import { missing } from "./skip.ts";

export const REPO = resolve(import.meta.dirname, "../..");
export const CLI = join(REPO, "bin/symroute");

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

export interface Netns {
  readonly name: string;
  readonly peer: string;
  readonly stateDir: string;
  exec(argv: readonly string[], input?: string): Run;
  symroute(args: readonly string[], input?: string): Run;
  dump(): string;
}

/**
 * Creates the namespaces `name` (the node) and `peer` (the router's ends) of the article's node:
 * eth0 192.168.1.10/24 with the default route via 192.168.1.1, ext0 without an address, rp_filter 1
 * on conf.all. Shared by the end-to-end tests, the reliability runs and the benchmarks' peers.
 */
export function buildArticleNode(name: string, peer: string, options: { dualStack?: boolean } = {}): void {
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
}

/**
 * A node namespace like the article's: eth0 192.168.1.10/24 with the default route via 192.168.1.1
 * (the peer namespace holds the router end), ext0 without an address, rp_filter 1 on conf.all.
 */
export function createNode(t: TestContext, options: { dualStack?: boolean } = {}): Netns {
  const id = `${process.pid}-${++counter}`;
  const name = `sr-t-${id}`;
  const peer = `sr-tp-${id}`;
  const stateDir = mkdtempSync(join(tmpdir(), "symroute-test-"));
  t.after(() => {
    run(["ip", "netns", "del", name]);
    run(["ip", "netns", "del", peer]);
    rmSync(stateDir, { recursive: true, force: true });
  });
  buildArticleNode(name, peer, options);
  const exec = (argv: readonly string[], input?: string): Run =>
    run(["ip", "netns", "exec", name, ...argv], { input });
  return {
    name,
    peer,
    stateDir,
    exec,
    symroute: (args, input) => exec([process.execPath, CLI, ...args, "--state-dir", stateDir], input),
    dump: () => dumpNamespace(name),
  };
}

/**
 * A fresh veth pair comes up a moment after it is created, and IPv6 DAD runs after that: carrier (and the routes' linkdown flag),
 * operational state, DAD flags and address lifetimes change by themselves, not by configuration.
 * Dropping them keeps a dump taken at once comparable with one taken after a round trip.
 */
export function withoutCarrierState(json: string): string {
  const transient = new Set(["NO-CARRIER", "LOWER_UP", "M-DOWN", "linkdown"]);
  const links = JSON.parse(json) as Record<string, unknown>[];
  for (const link of links) {
    delete link.operstate;
    if (Array.isArray(link.flags)) link.flags = link.flags.filter((f) => !transient.has(String(f)));
    if (Array.isArray(link.addr_info)) {
      for (const a of link.addr_info as Record<string, unknown>[]) {
        for (const k of ["tentative", "dadfailed", "valid_life_time", "preferred_life_time"]) delete a[k];
      }
    }
  }
  return JSON.stringify(links);
}

/** Everything a round trip must leave as it found it. */
export function dumpNamespace(name: string): string {
  const parts = [
    ["ip", "-j", "-d", "link", "show"],
    ["ip", "-j", "-d", "addr", "show"],
    ["ip", "-j", "-d", "-4", "route", "show", "table", "all"],
    ["ip", "-j", "-d", "-6", "route", "show", "table", "all"],
    ["ip", "-j", "-4", "rule", "show"],
    ["ip", "-j", "-6", "rule", "show"],
    ["nft", "list", "ruleset"],
    ["iptables-save", "-t", "mangle"],
    ["ip6tables-save", "-t", "mangle"],
    // The iptables front end's sets (names and content; not the kernel's random hash seed).
    ["ipset", "list", "-o", "save"],
  ].map((argv) => {
    const out = must(["ip", "netns", "exec", name, ...argv]);
    const settled = argv[1] === "-j" ? withoutCarrierState(out) : out;
    // Counters and generation comments change with traffic, not with configuration.
    const canonical =
      argv[0] === "ipset" ? settled.replace(/ (initval|hashsize|bucketsize) \S+/g, "") : settled;
    return `## ${argv.join(" ")}\n${canonical.replace(/^#.*$/gm, "").replace(/\[\d+:\d+\]/g, "[0:0]")}`;
  });
  const sysctls = must(["ip", "netns", "exec", name, "sysctl", "-a"])
    .split("\n")
    .filter((l) => /\.(rp_filter|arp_ignore|arp_announce) =/.test(l))
    .join("\n");
  return `${parts.join("\n")}\n## sysctl\n${sysctls}\n`;
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

/** The article's case 3 network: the pool 1.2.3.0/24 on ext0, via the router 1.2.3.1. */
export const PUBLIC_NETWORK = `networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;

/** An HTTP server in the node itself (a host-network backend) on `port`, up until the test ends. */
export async function startHttpServer(t: TestContext, node: Netns, port: number): Promise<void> {
  const script = `require("node:http").createServer((q, r) => r.end("ok")).listen(${port}, "::", () => console.log("ready"))`;
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
