// The nftables front end's transaction replaces symroute's tables whole (render/firewall-scripts.ts).
// Once it succeeded, a chain whose text is the same as in the agent's previous transaction lists as
// it did after that one (same nft, same kernel, same input), so verification needs to list only the
// chains whose text changed (read-cache.ts). These functions split a transaction and a listing by
// chain and put a listing together again.

import { ARP_KEY_PREFIX, arpKeyBackend, NFT_TABLE } from "../model/firewall.ts";
import type { OwnedFirewall } from "../model/state.ts";
import type { ScriptChain } from "../render/nft-incremental.ts";

export { scriptChains, type ScriptChain } from "../render/nft-incremental.ts";

/** One rule of a listing (adapters/kernel.ts NftRule): the comment key and the content. */
export interface ListedRule {
  readonly key: string | undefined;
  readonly content: string;
}

/** The key the kernel adapter gives a listed line (nftRulesFromText): its comment. */
function keyOf(label: string, content: string): string | undefined {
  const line = content.slice(label.length + 2);
  if (line.startsWith("type ") || line.startsWith("policy ")) return undefined;
  const key = / comment "([^"]*)"$/.exec(line)?.[1] ?? `uncommented rule: ${line}`;
  return label.startsWith(ARP_KEY_PREFIX) ? `${ARP_KEY_PREFIX}${key}` : key;
}

const labelOf = (content: string): string => content.slice(0, content.indexOf(": "));

/**
 * A listing's lines by chain label; undefined when the keys derived from the lines are not the
 * listing's own (a rule without a comment, whose key held its counters): then it is listed whole.
 */
export function listingByChain(owned: OwnedFirewall): Map<string, string[]> | undefined {
  const contents = owned.contents ?? [];
  const byChain = new Map<string, string[]>();
  const keys: string[] = [];
  // Indexed loops and Map.forEach in this file: thousands of lines and chains on every reconcile,
  // and each step of for...of allocates under --lite-mode.
  for (let i = 0; i < contents.length; i++) {
    const content = contents[i] as string;
    const label = labelOf(content);
    if (label === "") return undefined;
    const list = byChain.get(label);
    if (list === undefined) byChain.set(label, [content]);
    else list.push(content);
    const key = keyOf(label, content);
    if (key !== undefined) keys.push(key);
  }
  if (keys.length !== owned.ruleKeys.length || keys.some((k, i) => k !== owned.ruleKeys[i])) return undefined;
  return byChain;
}

/**
 * The chains of `next` that must be listed, by label: new ones, and those whose text differs from
 * `previous`'s.
 */
export function chainsToList(
  previous: ReadonlyMap<string, ScriptChain>,
  listed: ReadonlyMap<string, readonly string[]>,
  next: ReadonlyMap<string, ScriptChain>,
): [string, ScriptChain][] {
  const changed: [string, ScriptChain][] = [];
  next.forEach((chain, label) => {
    if (previous.get(label)?.text !== chain.text || !listed.has(label)) changed.push([label, chain]);
  });
  return changed;
}

/**
 * A listed chain's rules as the nftables front end's read gives them: the ARP table's carry the
 * `arp:` prefix and only those of the nftables front end are kept (adapters/kernel.ts arpRulesOf).
 */
export function asListed(label: string, rules: readonly ListedRule[]): ListedRule[] {
  if (!label.startsWith(ARP_KEY_PREFIX)) return [...rules];
  return rules
    .filter((r) => r.key !== undefined && arpKeyBackend(r.key) === "nftables")
    .map((r) => ({ key: `${ARP_KEY_PREFIX}${r.key ?? ""}`, content: `${ARP_KEY_PREFIX}${r.content}` }));
}

/** The listing after `next` ran: the unchanged chains as listed before, the others as listed now. */
export function composeListing(
  listed: ReadonlyMap<string, readonly string[]>,
  next: ReadonlyMap<string, ScriptChain>,
  fresh: ReadonlyMap<string, readonly ListedRule[]>,
): OwnedFirewall {
  const ruleKeys: string[] = [];
  const contents: string[] = [];
  next.forEach((_chain, label) => {
    const rules = fresh.get(label);
    if (rules !== undefined) {
      for (let i = 0; i < rules.length; i++) {
        const r = rules[i] as ListedRule;
        if (r.key !== undefined) ruleKeys.push(r.key);
        contents.push(r.content);
      }
      return;
    }
    const before = listed.get(label) ?? [];
    for (let i = 0; i < before.length; i++) {
      const content = before[i] as string;
      const key = keyOf(label, content);
      if (key !== undefined) ruleKeys.push(key);
      contents.push(content);
    }
  });
  return { backend: "nftables", ruleKeys, contents };
}

const commentOf = (rule: string): string | undefined => / comment "([^"]*)"$/.exec(rule)?.[1];

/**
 * What `nft monitor` printed of one chain in one of the agent's transactions: its `add rule` lines'
 * text (after `add rule FAMILY symroute CHAIN `) and, for a base chain the transaction created, the
 * declaration between the braces of its `add chain` line (undefined for a regular chain, whose line
 * has none, and for a chain the transaction did not create).
 */
export interface PrintedChain {
  readonly rules: readonly string[];
  readonly declaration?: string;
}

const PRINTED_LINE = /^add (rule|chain) (inet|netdev|arp) (\S+) (\S+)(?: (.*))?$/;

/**
 * The `add rule` and `add chain` lines nft's monitor printed for a transaction on symroute's tables,
 * by the chain's label (`arp:` before the ARP table's); other lines are left out.
 */
export function printedByChain(lines: readonly string[]): Map<string, PrintedChain> {
  // Built line by line; returned as PrintedChain, read only.
  const byChain = new Map<string, { rules: string[]; declaration?: string }>();
  for (const line of lines) {
    const m = PRINTED_LINE.exec(line);
    if (m === null || m[3] !== NFT_TABLE) continue;
    const [, what, family, , chain, rest = ""] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string?,
    ];
    const label = family === "arp" ? `${ARP_KEY_PREFIX}${chain}` : chain;
    let printed = byChain.get(label);
    if (printed === undefined) {
      printed = { rules: [] };
      byChain.set(label, printed);
    }
    if (what === "rule") printed.rules.push(rest);
    else {
      const declaration = /^\{ (.*) \}$/.exec(rest)?.[1];
      if (declaration !== undefined) printed.declaration = declaration;
    }
  }
  return byChain;
}

/**
 * A chain's rules as `nft -t list chain` lists them (adapters/kernel.ts nftRulesFromText), from what
 * `nft monitor` printed for the agent's transaction that flushed and filled the chain or added it
 * (whole-table transactions add every chain): the kernel's own report of what it stored, anonymous
 * maps and sets with their elements. nft 1.0.6 prints `handle N` before some rules' text, which the
 * listing does not; the counters are dropped as the listing's are. A base chain's declaration is
 * the printed `add chain` line's when that is the script's, character for character (measured on
 * nft 1.0.6: it is then the listing's); nft leaves a netdev chain's `device` out of that line, so
 * such a chain's declaration comes from the listing before, when the previous transaction declared
 * it with the same text. Undefined when the lines cannot stand for the listing: their comment keys
 * are not the script's rule for rule (a line lost, a rule not as rendered), or a base chain's
 * declaration is neither printed as the script's nor listed before with the same text.
 */
export function printedChain(
  script: ScriptChain,
  previous: ScriptChain | undefined,
  previousListed: readonly string[] | undefined,
  printed: PrintedChain | undefined,
): ListedRule[] | undefined {
  const rules = (printed?.rules ?? []).map((line) =>
    line.replace(/^handle \d+ /, "").replace(/counter packets \d+ bytes \d+/g, "counter"),
  );
  const lines = script.text.split("\n").map((l) => l.trim());
  const declaration = lines[0]?.startsWith("type ") === true ? lines[0] : undefined;
  const wanted = lines.filter((l) => l !== "" && l !== declaration);
  if (rules.length !== wanted.length) return undefined;
  for (const [i, rule] of rules.entries()) {
    const key = commentOf(rule);
    if (key === undefined || key !== commentOf(wanted[i] ?? "")) return undefined;
  }
  let header: ListedRule[] = [];
  if (declaration !== undefined) {
    const printedAsScript = printed?.declaration === declaration;
    const declaredAsBefore = previous?.text.split("\n", 1)[0]?.trim() === declaration;
    if (!printedAsScript && !declaredAsBefore) return undefined;
    // The ARP table's declaration is not in the front end's read (asListed): nothing to take.
    if (script.family !== "arp") {
      header = printedAsScript
        ? [{ key: undefined, content: `${script.chain}: ${declaration}` }]
        : (previousListed ?? [])
            .filter((content) => keyOf(script.chain, content) === undefined)
            .map((content) => ({ key: undefined, content }));
      if (header.length === 0) return undefined;
    }
  }
  return [...header, ...rules.map((rule) => ({ key: commentOf(rule), content: `${script.chain}: ${rule}` }))];
}
