// Node namespaces for the reliability proofs, usable from node:test and from the scripts in
// scripts/reliability/: unique names, an explicit destroy(), a complete dump (every iptables table,
// the whole nft ruleset, every rp_filter/arp sysctl) and the consistency checks a crash must not break.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildArticleNode,
  CLI as TREE_CLI,
  REPO,
  must,
  run,
  type Run,
  withoutCarrierState,
} from "../../support/netns.ts";
export { prng } from "../../support/prng.ts";

export { REPO, must, run, type Run };

/**
 * The CLI the proofs run: bin/symroute of this tree, or SYMROUTE_CLI (long script runs point it at
 * a copy of bin/ and dist/, so that a rebuild of the tree during the run cannot break a trial).
 */
export const CLI = process.env["SYMROUTE_CLI"] ?? TREE_CLI;

let counter = 0;

export interface ReliabilityNode {
  readonly name: string;
  readonly peer: string;
  readonly stateDir: string;
  exec(argv: readonly string[], input?: string): Run;
  /** `symroute ARGS --state-dir DIR` inside the namespace, waited for; `env` adds to the environment. */
  symroute(args: readonly string[], env?: NodeJS.ProcessEnv): Run;
  /** The same, as a child process that the caller may kill. */
  spawnSymroute(args: readonly string[]): ChildProcess;
  /** Everything a round trip must leave as it found it, byte for byte. */
  dump(): string;
  destroy(): void;
}

export interface NodeOptions {
  /** Name prefix, unique per area: `sr-<area>-<pid>-<n>`. */
  readonly area: string;
  readonly dualStack?: boolean;
}

/**
 * The article's node: eth0 192.168.1.10/24 with the default route via 192.168.1.1 (the router end
 * lives in a peer namespace), ext0 without an address, conf.all.rp_filter 1.
 */
export function createReliabilityNode(options: NodeOptions): ReliabilityNode {
  const id = `${process.pid}-${++counter}`;
  const name = `sr-${options.area}-${id}`;
  const peer = `sr-${options.area}p-${id}`;
  const stateDir = mkdtempSync(join(tmpdir(), `symroute-${options.area}-`));
  const destroy = (): void => {
    run(["ip", "netns", "del", name]);
    run(["ip", "netns", "del", peer]);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    buildArticleNode(name, peer, options);
  } catch (error) {
    destroy();
    throw error;
  }
  const exec = (argv: readonly string[], input?: string): Run =>
    run(["ip", "netns", "exec", name, ...argv], { input });
  const cliArgs = (args: readonly string[]): string[] => [
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
    symroute: (args, env) => run(cliArgs(args), env === undefined ? {} : { env }),
    spawnSymroute: (args) => {
      const [file, ...rest] = cliArgs(args);
      return spawn(file as string, rest, { stdio: "ignore", env: { ...process.env, NO_COLOR: "1" } });
    },
    dump: () => fullDump(name),
    destroy,
  };
}

/** A config file readable by any user (the least-privilege proofs run the CLI as nobody). */
export function writeConfig(dir: string, fileName: string, text: string): string {
  const path = join(dir, fileName);
  writeFileSync(path, text);
  chmodSync(path, 0o644);
  return path;
}

/**
 * `count` networks on ext0, each with a /24 pool 10.112.N.0/24 and its gateway .1; every even one
 * also has an IPv6 pool 2001:db8:N::/64. 200 networks are 901 changes: 400 routes and 200 rules
 * per family in use, sysctls, and 504 nft rules.
 */
export function manyNetworksConfig(
  count: number,
  firewall: "auto" | "nftables" | "iptables" = "auto",
): string {
  const lines = [`firewall: ${firewall}`, "networks:"];
  for (let i = 0; i < count; i++) {
    const v6 = i % 2 === 0;
    const hex = i.toString(16);
    lines.push(
      `  - name: net-${i}`,
      `    addresses: [10.112.${i}.0/24${v6 ? `, "2001:db8:${hex}::/64"` : ""}]`,
      "    interface: ext0",
      `    gateway: ${v6 ? `[10.112.${i}.1, "2001:db8:${hex}::1"]` : `10.112.${i}.1`}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

const SECTIONS: readonly (readonly string[])[] = [
  ["ip", "-j", "-d", "link", "show"],
  ["ip", "-j", "-d", "addr", "show"],
  ["ip", "-j", "-d", "-4", "route", "show", "table", "all"],
  ["ip", "-j", "-d", "-6", "route", "show", "table", "all"],
  ["ip", "-j", "-4", "rule", "show"],
  ["ip", "-j", "-6", "rule", "show"],
  ["nft", "list", "ruleset"],
  ["iptables-save"],
  ["ip6tables-save"],
  ["ipset", "list", "-o", "save"],
];

/** Every section of the node, plus every rp_filter/arp_ignore/arp_announce/arp_filter sysctl. */
export function fullDump(ns: string): string {
  const parts = SECTIONS.map((argv) => {
    const raw = must(["ip", "netns", "exec", ns, ...argv]);
    const out = argv[1] === "-j" ? withoutCarrierState(raw) : raw;
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
  const sysctls = must(["ip", "netns", "exec", ns, "sysctl", "-a"])
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

type Json = Record<string, unknown>;

/** The output of a read inside the node; a failed read throws instead of reading as "nothing". */
function output(node: Pick<ReliabilityNode, "exec">, argv: readonly string[]): string {
  const r = node.exec(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

function repeated(items: readonly string[]): string[] {
  const seen = new Set<string>();
  const out = new Set<string>();
  for (const item of items) {
    if (seen.has(item)) out.add(item);
    seen.add(item);
  }
  return [...out];
}

/**
 * Duplicates a crash could leave: two equal rules (also at different priorities: the same selector
 * and action twice), two equal routes, two equal nft rules in symroute's table, two equal iptables
 * rules in one chain.
 */
export function duplicateObjects(node: Pick<ReliabilityNode, "exec">): string[] {
  const problems: string[] = [];
  for (const family of ["-4", "-6"]) {
    const rules = JSON.parse(output(node, ["ip", "-j", family, "rule", "show"])) as Json[];
    for (const dup of repeated(rules.map((r) => JSON.stringify(r))))
      problems.push(`rule ${family} twice: ${dup}`);
    const selectors = rules.map((r) => {
      const { priority: _priority, ...rest } = r;
      return JSON.stringify(rest);
    });
    for (const dup of repeated(selectors)) problems.push(`rule ${family} at two priorities: ${dup}`);
    const routes = JSON.parse(
      output(node, ["ip", "-j", "-d", family, "route", "show", "table", "all"]),
    ) as Json[];
    for (const dup of repeated(routes.map((r) => JSON.stringify(r))))
      problems.push(`route ${family} twice: ${dup}`);
  }
  const nft = node.exec(["nft", "list", "table", "inet", "symroute"]);
  if (nft.code === 0) {
    for (const dup of repeated(
      nft.stdout
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => /^(iifname|ct |meta |fib )/.test(l)),
    )) {
      problems.push(`nft rule twice: ${dup}`);
    }
  }
  for (const tool of ["iptables-save", "ip6tables-save"]) {
    const lines = output(node, [tool])
      .split("\n")
      .filter((l) => l.startsWith("-A "));
    for (const dup of repeated(lines)) problems.push(`${tool} rule twice: ${dup}`);
  }
  return problems;
}
