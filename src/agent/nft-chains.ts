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
  for (const content of contents) {
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

/** The chains of `next` that must be listed: new ones, and those whose text differs from `previous`'s. */
export function chainsToList(
  previous: ReadonlyMap<string, ScriptChain>,
  listed: ReadonlyMap<string, readonly string[]>,
  next: ReadonlyMap<string, ScriptChain>,
): string[] {
  const changed: string[] = [];
  for (const [label, { text }] of next) {
    if (previous.get(label)?.text === text && listed.has(label)) continue;
    changed.push(label);
  }
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
  for (const label of next.keys()) {
    const rules = fresh.get(label);
    if (rules !== undefined) {
      for (const r of rules) {
        if (r.key !== undefined) ruleKeys.push(r.key);
        contents.push(r.content);
      }
      continue;
    }
    for (const content of listed.get(label) ?? []) {
      const key = keyOf(label, content);
      if (key !== undefined) ruleKeys.push(key);
      contents.push(content);
    }
  }
  return { backend: "nftables", ruleKeys, contents };
}

const commentOf = (rule: string): string | undefined => / comment "([^"]*)"$/.exec(rule)?.[1];

/**
 * A chain's rules as `nft -t list chain` lists them (adapters/kernel.ts nftRulesFromText), from the
 * `add rule` lines `nft monitor` printed for the agent's transaction that flushed and filled the
 * chain or added it: the kernel's own report of what it stored, anonymous maps and sets with their
 * elements. nft 1.0.6 prints `handle N` before some rules' text, which the listing does not; the
 * counters are dropped as the listing's are. Undefined when the lines cannot stand for the listing:
 * their comment keys are not the script's rule for rule (a line lost), or the chain is a base chain
 * whose declaration was not listed before with the same text (a new one is listed).
 */
export function printedChain(
  script: ScriptChain,
  previous: ScriptChain | undefined,
  previousListed: readonly string[] | undefined,
  printed: readonly string[],
): ListedRule[] | undefined {
  const prefix = `add rule ${script.family} ${NFT_TABLE} ${script.chain} `;
  const rules = printed
    .filter((line) => line.startsWith(prefix))
    .map((line) =>
      line
        .slice(prefix.length)
        .replace(/^handle \d+ /, "")
        .replace(/counter packets \d+ bytes \d+/g, "counter"),
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
    if (previous?.text.split("\n", 1)[0]?.trim() !== declaration) return undefined;
    const label = script.family === "arp" ? `${ARP_KEY_PREFIX}${script.chain}` : script.chain;
    // The ARP table's declaration is not in the front end's read (asListed): nothing to take.
    if (script.family !== "arp") {
      header = (previousListed ?? [])
        .filter((content) => keyOf(label, content) === undefined)
        .map((content) => ({ key: undefined, content }));
      if (header.length === 0) return undefined;
    }
  }
  return [...header, ...rules.map((rule) => ({ key: commentOf(rule), content: `${script.chain}: ${rule}` }))];
}
