// Negative controls: take one of symroute's objects (or the node's own anti-spoofing) away on
// purpose, so that a test can show the cells that depend on it fail. A cell that still held with its
// protection gone would prove nothing.
//
// symroute's objects are found the way a reviewer would find them: its ip rules (the node has none
// of its own beyond the kernel's three), its nftables tables (named "symroute"), and rules in the
// iptables tables that carry what it writes (CONNMARK --save-mark from its classify set, the
// rpfilter match).

import type { Topology } from "./topology.ts";

type Node = "node" | "node2";

/** The kernel's own rules: local, main, default. */
const KERNEL_RULE_PRIORITIES = new Set([0, 32766, 32767]);

/** Deletes every ip rule the kernel did not create (symroute's, in the lab): both families. */
export async function removeSymrouteRules(topology: Topology, node: Node = "node"): Promise<number> {
  let removed = 0;
  for (const family of ["-4", "-6"] as const) {
    const listed = await topology.exec(node, ["ip", family, "-j", "rule", "show"]);
    const rules = JSON.parse(listed.stdout) as { priority?: number }[];
    for (const r of rules) {
      const priority = r.priority ?? 0;
      if (KERNEL_RULE_PRIORITIES.has(priority)) continue;
      await topology.exec(node, ["ip", family, "rule", "del", "priority", String(priority)]);
      removed += 1;
    }
  }
  return removed;
}

interface NftRule {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly handle: number;
  readonly expr: unknown;
}

async function nftRules(topology: Topology, node: Node): Promise<NftRule[]> {
  const listed = await topology.exec(node, ["nft", "-j", "list", "ruleset"]);
  const items = (JSON.parse(listed.stdout) as { nftables?: { rule?: NftRule }[] }).nftables ?? [];
  return items.flatMap((i) => (i.rule === undefined ? [] : [i.rule]));
}

/** Deletes the rules of symroute's nftables tables for which `pick` says yes; returns how many. */
async function removeNftRules(
  topology: Topology,
  node: Node,
  pick: (rule: NftRule, text: string) => boolean,
): Promise<number> {
  const rules = (await nftRules(topology, node)).filter(
    (r) => r.table.includes("symroute") && pick(r, JSON.stringify(r.expr)),
  );
  for (const r of rules) {
    await topology.exec(node, [
      "nft",
      "delete",
      "rule",
      r.family,
      r.table,
      r.chain,
      "handle",
      String(r.handle),
    ]);
  }
  return rules.length;
}

/**
 * Deletes the rules of one iptables table (both families) whose `-S` line matches `pattern`.
 * Rules are deleted by number, last first, so the numbers of the others stay right.
 */
async function removeIptablesRules(
  topology: Topology,
  node: Node,
  table: string,
  pattern: RegExp,
): Promise<number> {
  let removed = 0;
  for (const tool of ["iptables", "ip6tables"]) {
    const listed = await topology.exec(node, [tool, "-w", "-t", table, "-S"], { allowFailure: true });
    if (listed.code !== 0) continue;
    const position = new Map<string, number>();
    const doomed: { chain: string; number: number }[] = [];
    for (const line of listed.stdout.split("\n")) {
      const chain = /^-A (\S+) /.exec(line)?.[1];
      if (chain === undefined) continue;
      const number = (position.get(chain) ?? 0) + 1;
      position.set(chain, number);
      if (pattern.test(line)) doomed.push({ chain, number });
    }
    for (const d of doomed.reverse()) {
      await topology.exec(node, [tool, "-w", "-t", table, "-D", d.chain, String(d.number)]);
      removed += 1;
    }
  }
  return removed;
}

/** Removes the rules that put a pool's mark on new connections, in either front end. */
export async function removeSymrouteMark(topology: Topology, node: Node = "node"): Promise<number> {
  if (topology.spec.firewall === "nftables") {
    // `ct mark set ...`: a mangle statement on the ct mark key.
    return removeNftRules(topology, node, (_, text) => /"mangle":\{"key":\{"ct":\{"key":"mark"/.test(text));
  }
  // The rule that saves the mark the classify set put on the packet into the connection.
  return removeIptablesRules(topology, node, "mangle", / --save-mark /);
}

/** Removes symroute's ARP probes (rules of its tables in nft's arp family). */
export async function removeSymrouteArpProbes(topology: Topology, node: Node = "node"): Promise<number> {
  return removeNftRules(topology, node, (r) => r.family === "arp");
}

/** Removes symroute's anti-spoofing guards: nftables `fib` rules in its tables, iptables `rpfilter` matches. */
export async function removeSymrouteGuards(topology: Topology, node: Node = "node"): Promise<number> {
  let rules = await removeNftRules(topology, node, (r, text) => r.family !== "arp" && text.includes('"fib"'));
  for (const table of ["raw", "mangle"]) {
    rules += await removeIptablesRules(topology, node, table, / -m rpfilter /);
  }
  return rules;
}

/** Sets every IPv4 rp_filter of the node to 0; returns the old values, for `restoreSysctls`. */
export async function disableRpFilter(topology: Topology, node: Node = "node"): Promise<string[]> {
  const listed = await topology.exec(node, ["sysctl", "-a", "-r", "^net\\.ipv4\\.conf\\.[^.]+\\.rp_filter$"]);
  const sysctls = listed.stdout
    .split("\n")
    .filter((l) => l.includes(" = "))
    .map((l) => l.replace(" = ", "="));
  await topology.exec(node, ["sysctl", "-q", "-w", ...sysctls.map((s) => s.replace(/=.*/, "=0"))]);
  return sysctls;
}

/** Puts sysctls back as `disableRpFilter` found them. */
export async function restoreSysctls(
  topology: Topology,
  sysctls: readonly string[],
  node: Node = "node",
): Promise<void> {
  if (sysctls.length > 0) await topology.exec(node, ["sysctl", "-q", "-w", ...sysctls]);
}
