// The firewall's rules (src/model/firewall.ts) as the scripts each tool reads: one `nft -f`
// transaction, or one `iptables-restore --noflush` payload per family with its `ipset restore`
// payloads (the sets filled before, the stale ones destroyed after).

import type { Family } from "../model/address.ts";
import {
  BUILTIN,
  IPT_CLASSIFY,
  IPT_GUARD,
  IPT_NEW,
  IPT_OUT,
  IPT_PRE,
  NFT_PRE_PRIORITY,
  NFT_TABLE,
  arpRules,
  guardChainOfKey,
  knownJumps,
  nftGuardChain,
  IPSET_PREFIX,
  iptablesRules,
  ipsetsOf,
  nftRules,
  type IpSet,
  type FirewallRule,
  type FirewallSpec,
  type IptablesRule,
} from "../model/firewall.ts";
import { ifnameToken, ipsetNameToken } from "../model/tokens.ts";

/** `nft -f` lines that replace symroute's `arp` table whole (or only remove it). */
function arpTableLines(spec: FirewallSpec | undefined): string[] {
  const lines = [`table arp ${NFT_TABLE} {}`, `delete table arp ${NFT_TABLE}`];
  const rules = spec === undefined ? [] : arpRules(spec);
  if (rules.length === 0) return lines;
  lines.push(
    `table arp ${NFT_TABLE} {`,
    "  chain probes {",
    "    type filter hook output priority 0; policy accept;",
  );
  for (const r of rules) lines.push(`    ${r.body} comment "${r.key}"`);
  lines.push("  }", "}");
  return lines;
}

/** One `nft -f` transaction for the iptables front end's ARP probes (or their removal). */
export function renderNftArp(spec: FirewallSpec | undefined): string {
  return `${arpTableLines(spec).join("\n")}\n`;
}

/**
 * `table netdev symroute` (replaced whole, or only removed): the guards' and the classify chains,
 * each hooked at ingress of its interface, and the tag chains the classify chains jump to.
 */
function netdevTableLines(byChain: Map<string, FirewallRule[]>): string[] {
  const lines = [`table netdev ${NFT_TABLE} {}`, `delete table netdev ${NFT_TABLE}`];
  if (byChain.size === 0) return lines;
  lines.push(`table netdev ${NFT_TABLE} {`);
  for (const [chain, rules] of byChain) {
    lines.push(`  chain ${chain} {`);
    const device = rules[0]?.device;
    if (device !== undefined) {
      const priority = chain === nftGuardChain(device) ? GUARD_PRIORITY : CLASSIFY_PRIORITY;
      lines.push(
        `    type filter hook ingress device "${ifnameToken(device)}" priority ${priority}; policy accept;`,
      );
    }
    for (const r of rules) lines.push(`    ${r.body} comment "${r.key}"`);
    lines.push("  }");
  }
  lines.push("}");
  return lines;
}

/** The guards' ingress priority: before any other netdev ingress chain (the usual one is 0). */
const GUARD_PRIORITY = -500;
/** The classify chains' ingress priority: after the guards (a spoofed packet is dropped untagged). */
const CLASSIFY_PRIORITY = -450;

/** One `nft -f` transaction that replaces symroute's tables whole (or only removes them). */
export function renderNft(spec: FirewallSpec | undefined): string {
  const lines = [`table inet ${NFT_TABLE} {}`, `delete table inet ${NFT_TABLE}`];
  if (spec === undefined)
    return `${[...lines, ...netdevTableLines(new Map()), ...arpTableLines(undefined)].join("\n")}\n`;
  // Group once, in order of first appearance: one chain per mark value, so never filter per chain.
  const byChain = new Map<string, FirewallRule[]>();
  const netdevChains = new Map<string, FirewallRule[]>();
  for (const r of nftRules(spec)) {
    const chains = r.table === "netdev" ? netdevChains : byChain;
    const list = chains.get(r.chain);
    if (list === undefined) chains.set(r.chain, [r]);
    else list.push(r);
  }
  // Only guards or ARP probes: no inet table at all.
  if (byChain.size > 0) lines.push(`table inet ${NFT_TABLE} {`);
  for (const [chain, rules] of byChain) {
    lines.push(`  chain ${chain} {`);
    if (chain === "pre")
      lines.push(`    type filter hook prerouting priority ${NFT_PRE_PRIORITY}; policy accept;`);
    // Only a `route` chain re-routes a locally generated packet whose mark changed (KERNEL-FACTS 4).
    if (chain === "out") lines.push("    type route hook output priority mangle; policy accept;");
    for (const r of rules) lines.push(`    ${r.body} comment "${r.key}"`);
    lines.push("  }");
  }
  if (byChain.size > 0) lines.push("}");
  lines.push(...netdevTableLines(netdevChains), ...arpTableLines(spec));
  return `${lines.join("\n")}\n`;
}

// The comment sits before the target, where iptables-save prints it, so that `-D` finds the rule.
const iptablesLine = (op: string, r: IptablesRule): string =>
  [op, r.chain, r.match, `-m comment --comment "${r.key}"`, r.target].filter((w) => w !== "").join(" ");

/**
 * One `iptables-restore --noflush` payload for a family: declaring our chains flushes them, the jumps
 * from the built-in chains are inserted only when missing (`presentKeys` from the observer), and
 * what the spec no longer asks for (jumps, chains) is removed. A jump listed more than once
 * (`copies`: iptables keeps duplicates, and `-D` removes one copy) loses its extra copies: a `-D`
 * per copy, never one more (a `-D` that finds no rule fails the whole restore).
 */
export function renderIptables(
  spec: FirewallSpec | undefined,
  family: Family,
  presentKeys: ReadonlySet<string>,
  copies: ReadonlyMap<string, number> = new Map(),
): string {
  const wanted = spec === undefined ? [] : iptablesRules(spec, family);
  const wantedChains = new Set(wanted.filter((r) => !BUILTIN.has(r.chain)).map((r) => r.chain));
  // Interface chains of guards applied before: found by their jumps' (or dispatch rules') keys.
  const staleGuardChains = [...presentKeys].flatMap((k) => guardChainOfKey(k) ?? []);
  const chains = [
    ...new Set([IPT_PRE, IPT_OUT, IPT_NEW, IPT_CLASSIFY, IPT_GUARD, ...wantedChains, ...staleGuardChains]),
  ];
  const lines = ["*mangle", ...chains.map((c) => `:${c} - [0:0]`)];
  const wantedKeys = new Set(wanted.map((r) => r.key));
  const deleted = new Set<string>();
  for (const r of knownJumps(family, presentKeys)) {
    if (!presentKeys.has(r.key) || deleted.has(r.key)) continue;
    deleted.add(r.key);
    const extra = (copies.get(r.key) ?? 1) - (wantedKeys.has(r.key) ? 1 : 0);
    for (let i = 0; i < extra; i++) lines.push(iptablesLine("-D", r));
  }
  // Each missing rule of the built-in chains goes in at the top, the last first: together they
  // keep the spec's order (the guards before classify and the replies' restore).
  const builtins = wanted.filter((r) => BUILTIN.has(r.chain) && !presentKeys.has(r.key));
  for (const r of builtins.reverse()) lines.push(iptablesLine("-I", { ...r, chain: `${r.chain} 1` }));
  for (const r of wanted) if (!BUILTIN.has(r.chain)) lines.push(iptablesLine("-A", r));
  // Declared above (so they exist), emptied, and no longer jumped to: these go.
  for (const c of chains) if (!wantedChains.has(c)) lines.push(`-X ${c}`);
  lines.push("COMMIT");
  return `${lines.join("\n")}\n`;
}

/**
 * The built-in chains a renderIptables payload inserts jumps into (`-I CHAIN 1`): where
 * iptables-nft makes a chain that is missing.
 */
export function builtinChainsInserted(script: string): string[] {
  return [...new Set([...script.matchAll(/^-I (\S+) 1 /gm)].map((m) => m[1] as string))];
}

const ipsetCreate = (name: string, set: IpSet): string =>
  `create ${name} hash:net,iface family ${set.family === 4 ? "inet" : "inet6"}${set.skbinfo ? " skbinfo" : ""}`;

/** The temporary set a set is filled in before it is swapped in. */
const ipsetTemp = (name: string): string => `${name}-t`;

/**
 * One `ipset restore -exist` payload that fills every set the spec needs. `ipset restore` is not a
 * transaction (it stops at a failing line and keeps what ran): each set is filled as a temporary
 * set and swapped in whole, so a packet sees either the old content or the new, never a half.
 * `-exist` makes the create of a set present already, and the destroy of one absent, no error.
 */
export function renderIpsetFill(spec: FirewallSpec | undefined): string | undefined {
  const sets = ipsetsOf(spec);
  if (sets.length === 0) return undefined;
  const lines: string[] = [];
  for (const set of sets) {
    const temp = ipsetTemp(set.name);
    lines.push(ipsetCreate(temp, set), `flush ${temp}`);
    for (const e of set.elements) lines.push(`add ${temp} ${e}`);
    lines.push(ipsetCreate(set.name, set), `swap ${temp} ${set.name}`, `destroy ${temp}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * One `ipset restore -exist` payload that destroys symroute's sets present (`present`, names) and
 * no longer asked for: it runs after the iptables-restore that stopped referring to them (a set in
 * use cannot be destroyed).
 */
export function renderIpsetRemove(
  spec: FirewallSpec | undefined,
  present: readonly string[],
): string | undefined {
  const wanted = new Set(ipsetsOf(spec).map((s) => s.name));
  const stale = present.filter((n) => !wanted.has(n) && n.startsWith(IPSET_PREFIX));
  if (stale.length === 0) return undefined;
  return `${stale.map((n) => `destroy ${ipsetNameToken(n)}`).join("\n")}\n`;
}
