// What the reliability proofs ask of a node beyond the namespace harness (test/support/netns.ts,
// shared with the end-to-end tests, scripts/reliability/ and the benchmarks): a config of many
// networks, and the consistency checks a crash must not break.

import { readFileSync } from "node:fs";
import type { Netns } from "../../support/netns.ts";

/**
 * Loads kube-proxy's own iptables rules, chains and ipsets (fixtures/crash-foreign-*) into the
 * node: what a crash run must leave alone. IPv4 has a mangle table of kube-proxy's, IPv6 none (the
 * iptables front end makes it, and drops it again).
 */
export function loadForeignKubeProxy(node: Pick<Netns, "exec">): void {
  const fixture = (name: string): string =>
    readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");
  for (const [argv, file] of [
    [["ipset", "restore"], "crash-foreign.ipset"],
    [["iptables-restore", "--noflush"], "crash-foreign-iptables.rules"],
    [["ip6tables-restore", "--noflush"], "crash-foreign-ip6tables.rules"],
  ] as const) {
    const r = node.exec(argv, fixture(file));
    if (r.code !== 0) throw new Error(`${argv.join(" ")} < ${file} failed (${r.code}): ${r.stderr.trim()}`);
  }
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

type Json = Record<string, unknown>;

/** The output of a read inside the node; a failed read throws instead of reading as "nothing". */
function output(node: Pick<Netns, "exec">, argv: readonly string[]): string {
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
export function duplicateObjects(node: Pick<Netns, "exec">): string[] {
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
