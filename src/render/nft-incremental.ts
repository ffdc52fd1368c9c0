// The nftables front end's whole-table transaction (renderNft) split by chain, and the partial
// transaction that turns a table the agent knows it wrote into the one a new whole-table script
// would write: only the chains whose text changed are flushed and filled again, new chains added,
// removed ones deleted (after the rules that jump to them are gone), all in one `nft -f`. Pure.

import { ARP_KEY_PREFIX, NFT_TABLE } from "../model/firewall.ts";

/** One chain of a transaction: where it is and its text (the lines between its braces). */
export interface ScriptChain {
  readonly family: "inet" | "netdev" | "arp";
  readonly chain: string;
  readonly text: string;
}

/**
 * Each chain of a whole-table transaction, by the label its listing lines carry (`pre`,
 * `guard_ext0` of the netdev table; `arp:probes` for the ARP table); undefined for any script of
 * another shape, or one where two tables name a chain alike (their listing lines would mix).
 */
export function scriptChains(script: string): Map<string, ScriptChain> | undefined {
  const lines = script.split("\n");
  if (lines[0] !== `table inet ${NFT_TABLE} {}` || lines[1] !== `delete table inet ${NFT_TABLE}`)
    return undefined;
  const chains = new Map<string, ScriptChain>();
  let family: ScriptChain["family"] | undefined;
  let chain: string | undefined;
  let body: string[] = [];
  // An indexed loop: a whole table is thousands of lines, split on every reconcile of the agent,
  // and each step of for...of allocates under --lite-mode.
  for (let i = 2; i < lines.length; i++) {
    const line = lines[i] as string;
    if (chain !== undefined) {
      if (line === "  }") {
        const label = family === "arp" ? `${ARP_KEY_PREFIX}${chain}` : chain;
        if (family === undefined || chains.has(label)) return undefined;
        chains.set(label, { family, chain, text: body.join("\n") });
        chain = undefined;
      } else body.push(line);
      continue;
    }
    const chainStart = /^ {2}chain (\S+) \{$/.exec(line);
    if (chainStart !== null && family !== undefined) {
      chain = chainStart[1];
      body = [];
      continue;
    }
    const table = /^(?:table|delete table) (inet|netdev|arp) (\S+)( \{\}| \{)?$/.exec(line);
    if (table !== null && table[2] === NFT_TABLE) {
      family = table[3] === " {" ? (table[1] as ScriptChain["family"]) : undefined;
      continue;
    }
    if (line === "}" && family !== undefined) {
      family = undefined;
      continue;
    }
    if (line !== "") return undefined;
  }
  return chain === undefined && family === undefined ? chains : undefined;
}

const RULE_INDENT = "    ";

/** A chain's base-chain declaration (`type ... hook ...; policy ...;`), undefined for a regular chain. */
function hookOf(text: string): string | undefined {
  const first = text.split("\n", 1)[0] ?? "";
  return first.startsWith(`${RULE_INDENT}type `) ? first.slice(RULE_INDENT.length) : undefined;
}

/** A chain's rules, each as the script writes it (without the indentation). */
function rulesOf(text: string): string[] {
  if (text === "") return [];
  return text
    .split("\n")
    .filter((line) => !line.startsWith(`${RULE_INDENT}type `))
    .map((line) => line.slice(RULE_INDENT.length));
}

const FAMILIES: readonly ScriptChain["family"][] = ["inet", "netdev", "arp"];

/**
 * The partial transaction that brings symroute's tables from `previous` (the chains of the
 * whole-table transaction that wrote them, nothing changed since) to `next`: the same tables, rule
 * for rule, as `next`'s whole-table transaction would leave. In order: tables that gain their first
 * chain, new chains (so that any rule may jump to them), the changed chains flushed, the rules of
 * new and changed chains, the removed chains flushed and then deleted (every jump to them is gone
 * by then: they are flushed or changed), tables left without chains deleted (the whole-table
 * transaction leaves no empty table). Undefined when nothing differs, or when a chain would change
 * its hook or table (nft cannot change a chain's hook in place): the whole-table transaction then.
 */
export function renderNftIncremental(
  previous: ReadonlyMap<string, ScriptChain>,
  next: ReadonlyMap<string, ScriptChain>,
): string | undefined {
  const where = (c: ScriptChain): string => `${c.family} ${NFT_TABLE} ${c.chain}`;
  // Map.forEach, not for...of or spreads: thousands of chains on every reconcile of the agent, and
  // each step of an iterator allocates under --lite-mode.
  const tablesBefore = new Set<ScriptChain["family"]>();
  previous.forEach((c) => tablesBefore.add(c.family));
  const tablesAfter = new Set<ScriptChain["family"]>();
  next.forEach((c) => tablesAfter.add(c.family));
  const added: ScriptChain[] = [];
  const changed: ScriptChain[] = [];
  let whole = false;
  next.forEach((chain, label) => {
    if (whole) return;
    const before = previous.get(label);
    if (before === undefined) added.push(chain);
    else if (before.family !== chain.family || before.chain !== chain.chain) whole = true;
    else if (before.text !== chain.text) {
      if (hookOf(before.text) !== hookOf(chain.text)) whole = true;
      else changed.push(chain);
    }
  });
  if (whole) return undefined;
  // A removed chain goes with its table when the table goes.
  const removed: ScriptChain[] = [];
  previous.forEach((c, label) => {
    if (!next.has(label) && tablesAfter.has(c.family)) removed.push(c);
  });
  const tablesRemoved = FAMILIES.filter((f) => tablesBefore.has(f) && !tablesAfter.has(f));
  if (added.length + changed.length + removed.length + tablesRemoved.length === 0) return undefined;
  const lines: string[] = [];
  for (const f of FAMILIES)
    if (tablesAfter.has(f) && !tablesBefore.has(f)) lines.push(`add table ${f} ${NFT_TABLE}`);
  for (const c of added) {
    const hook = hookOf(c.text);
    lines.push(`add chain ${where(c)}${hook === undefined ? "" : ` { ${hook} }`}`);
  }
  for (const c of changed) lines.push(`flush chain ${where(c)}`);
  for (const c of [...added, ...changed])
    for (const rule of rulesOf(c.text)) lines.push(`add rule ${where(c)} ${rule}`);
  for (const c of removed) lines.push(`flush chain ${where(c)}`);
  for (const c of removed) lines.push(`delete chain ${where(c)}`);
  for (const f of tablesRemoved) lines.push(`delete table ${f} ${NFT_TABLE}`);
  return `${lines.join("\n")}\n`;
}

/** The chains the partial transaction from `previous` to `next` adds, or flushes and fills again. */
export function rewrittenChains(
  previous: ReadonlyMap<string, ScriptChain>,
  next: ReadonlyMap<string, ScriptChain>,
): Set<string> {
  const rewritten = new Set<string>();
  next.forEach((chain, label) => {
    if (previous.get(label)?.text !== chain.text) rewritten.add(label);
  });
  return rewritten;
}
